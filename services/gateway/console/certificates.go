package console

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// certificateRoutes registers the certificates pages: the account's CA
// and the certificates it issued, one certificate, the PEM downloads and
// revocation.
func (c *Console) certificateRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /a/{account}/certificates", c.certificatesPage)
	m.HandleFunc("GET /a/{account}/certificates/ca.pem", c.downloadCA)
	m.HandleFunc("GET /a/{account}/certificates/{serial}", c.certificatePage)
	m.HandleFunc("GET /a/{account}/certificates/{serial}/chain.pem", c.downloadChain)
	m.HandleFunc("POST /a/{account}/certificates/{serial}/revoke", c.revokeCertificate)
}

// certFilter is the list's filter, from the query.
type certFilter struct {
	Show string // valid (the default), revoked or all
	Kind string // "", node or app
}

func certFilterOf(r *http.Request) certFilter {
	q := r.URL.Query()
	f := certFilter{Show: q.Get("show"), Kind: q.Get("kind")}
	if f.Show != "revoked" && f.Show != "all" {
		f.Show = "valid"
	}
	if f.Kind != "node" && f.Kind != "app" {
		f.Kind = ""
	}
	return f
}

// certificatesData is what the certificates page shows.
type certificatesData struct {
	CA *api.CA
	// CAError says why the CA is not shown, e.g. while it is being made.
	CAError string
	Certs   []certRow
	Filter  certFilter
}

// certRow is a certificate with the names of what it is about.
type certRow struct {
	api.Certificate
	// SubjectName is the node's or application's name, or "" when
	// unknown.
	SubjectName string
	// NodeName is the name of the node an application's certificate was
	// requested through.
	NodeName string
}

// certificateData is what a certificate's page shows.
type certificateData struct{ Cert certRow }

func (c *Console) certificatesPage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "certificates", "Certificates")
	if v == nil {
		return
	}
	c.showCertificates(w, r, v, http.StatusOK)
}

// showCertificates renders the list as the query filters it, with status
// (the status of v.Error when it is set).
func (c *Console) showCertificates(w http.ResponseWriter, r *http.Request, v *view, status int) {
	d := certificatesData{Filter: certFilterOf(r)}
	var ca api.CA
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "ca"), nil, &ca); err != nil {
		if statusOf(err) == http.StatusUnauthorized {
			c.fail(w, r, err)
			return
		}
		// Right after the account is made its CA may not exist yet; the
		// certificates are worth showing anyway.
		d.CAError = err.Error()
	} else {
		d.CA = &ca
	}
	q := "?include_revoked=" + boolText(d.Filter.Show != "valid")
	if d.Filter.Kind != "" {
		q += "&kind=" + d.Filter.Kind
	}
	var certs api.List[api.Certificate]
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "certificates")+q, nil, &certs); err != nil {
		c.fail(w, r, err)
		return
	}
	names := c.subjectNames(r, v.Account.ID)
	for _, ct := range certs.Items {
		if d.Filter.Show == "revoked" && !ct.Revoked {
			continue
		}
		d.Certs = append(d.Certs, names.row(ct))
	}
	slices.SortStableFunc(d.Certs, func(a, b certRow) int { return b.NotBefore.Compare(a.NotBefore) })
	v.Data = d
	c.render(w, r, status, "certificates", v)
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// subjectNames are the names of the account's nodes and applications,
// which certificates name by id.
type subjectNames struct{ nodes, apps map[string]string }

// subjectNames loads the names; they only decorate the page, so a failure
// leaves ids shown.
func (c *Console) subjectNames(r *http.Request, account string) subjectNames {
	n := subjectNames{nodes: map[string]string{}, apps: c.appNames(r, account)}
	var nodes api.List[api.Node]
	if err := c.call(r, http.MethodGet, accountPath(account, "nodes"), nil, &nodes); err == nil {
		for _, nd := range nodes.Items {
			n.nodes[nd.ID] = nd.Name
		}
	}
	return n
}

func (n subjectNames) row(ct api.Certificate) certRow {
	row := certRow{Certificate: ct, NodeName: n.nodes[ct.NodeID]}
	switch ct.Kind {
	case "node":
		row.SubjectName = n.nodes[ct.SubjectID]
	case "app":
		row.SubjectName = n.apps[ct.SubjectID]
	}
	return row
}

func (c *Console) certificatePage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "certificates", "Certificate")
	if v == nil {
		return
	}
	var ct api.Certificate
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "certificates", r.PathValue("serial")), nil, &ct); err != nil {
		c.fail(w, r, err)
		return
	}
	v.Title = "Certificate " + ct.Serial
	v.Data = certificateData{Cert: c.subjectNames(r, v.Account.ID).row(ct)}
	c.render(w, r, http.StatusOK, "certificate", v)
}

// downloadCA sends the account's CA chain: the issuing CA, then the root.
func (c *Console) downloadCA(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "certificates", "Certificates")
	if v == nil {
		return
	}
	var ca api.CA
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "ca"), nil, &ca); err != nil {
		c.fail(w, r, err)
		return
	}
	sendPEM(w, "ca.pem", ca.ChainPEM)
}

// downloadChain sends a certificate followed by the CA that issued it
// (the current issuing CA, or a retired one for a certificate issued
// before a rotation) and the root.
func (c *Console) downloadChain(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "certificates", "Certificates")
	if v == nil {
		return
	}
	var ct api.Certificate
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "certificates", r.PathValue("serial")), nil, &ct); err != nil {
		c.fail(w, r, err)
		return
	}
	var ca api.CA
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "ca"), nil, &ca); err != nil {
		c.fail(w, r, err)
		return
	}
	sendPEM(w, ct.Serial+".pem", withNewline(ct.PEM)+withNewline(issuerOf(ct, ca))+withNewline(ca.RootPEM))
}

// issuerOf is the PEM of the issuing CA whose key signed ct, by its
// authority key id; the current one when none matches.
func issuerOf(ct api.Certificate, ca api.CA) string {
	b, _ := pem.Decode([]byte(ct.PEM))
	if b == nil {
		return ca.IssuerPEM
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return ca.IssuerPEM
	}
	aki := hex.EncodeToString(leaf.AuthorityKeyId)
	if strings.EqualFold(aki, ca.IssuerKeyID) {
		return ca.IssuerPEM
	}
	for _, is := range ca.RetiredIssuers {
		if strings.EqualFold(is.KeyID, aki) {
			return is.PEM
		}
	}
	return ca.IssuerPEM
}

func withNewline(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// sendPEM answers with PEM to save as filename.
func sendPEM(w http.ResponseWriter, filename, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/x-pem-file")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(body))
}

func (c *Console) revokeCertificate(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "certificates", "Certificates")
	if v == nil {
		return
	}
	in := api.Revocation{Reason: strings.TrimSpace(r.PostFormValue("reason"))}
	var ct api.Certificate
	if err := c.call(r, http.MethodPost, accountPath(v.Account.ID, "certificates", r.PathValue("serial"), "revoke"), in, &ct); err != nil {
		if statusOf(err) == http.StatusUnauthorized {
			c.fail(w, r, err)
			return
		}
		v.Error = err.Error()
		c.showCertificates(w, r, v, statusOf(err))
		return
	}
	flash(w, r, "Certificate "+ct.Serial+" revoked; the account's CRL and OCSP responder report it.")
	http.Redirect(w, r, consolePath(v.Account.ID, "certificates")+"?show=revoked", http.StatusSeeOther)
}
