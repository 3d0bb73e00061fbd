package gateway

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net/http"
	"strings"

	"github.com/cloister-cc/cloister/libs/errs"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

func (g *Gateway) getCA(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.ca.GetCA(r.Context(), &cav1.GetCARequest{AccountId: r.PathValue("account_id")})
	return answer(err, http.StatusOK, func() any { return toCA(resp) })
}

func (g *Gateway) rotateIssuer(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.RotateIssuer
	if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
		if err := decodeJSON(w, r, &b); err != nil {
			return reply{}, err
		}
	}
	resp, err := g.ca.RotateIssuer(r.Context(), &cav1.RotateIssuerRequest{AccountId: r.PathValue("account_id"), RevokePrevious: b.RevokePrevious, Actor: p.proto()})
	return answer(err, http.StatusOK, func() any { return api.CAChange{CA: toCA(resp.GetCa()), Revoked: int(resp.GetRevoked())} })
}

// retireIssuer serves POST .../ca/issuers/{key_id}/retire.
func (g *Gateway) retireIssuer(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.ca.RetireIssuer(r.Context(), &cav1.RetireIssuerRequest{AccountId: r.PathValue("account_id"), IssuerKeyId: r.PathValue("key_id"), Actor: p.proto()})
	return answer(err, http.StatusOK, func() any { return api.CAChange{CA: toCA(resp.GetCa()), Revoked: int(resp.GetRevoked())} })
}

func toCA(resp *cav1.GetCAResponse) api.CA {
	out := api.CA{ChainPEM: string(resp.GetChainPem()), RootPEM: string(resp.GetRootPem()), IssuerPEM: string(resp.GetIssuerPem()),
		RetiredIssuers: []api.Issuer{}}
	if b, _ := pem.Decode(resp.GetRootPem()); b != nil {
		sum := sha256.Sum256(b.Bytes)
		out.RootSHA256 = hex.EncodeToString(sum[:])
	}
	if c := parsePEMCert(resp.GetIssuerPem()); c != nil {
		out.IssuerKeyID = hex.EncodeToString(c.SubjectKeyId)
	}
	for rest := resp.GetRetiredIssuersPem(); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			out.RetiredIssuers = append(out.RetiredIssuers, api.Issuer{KeyID: hex.EncodeToString(c.SubjectKeyId),
				NotAfter: c.NotAfter.UTC(), PEM: string(pem.EncodeToMemory(b))})
		}
	}
	return out
}

func parsePEMCert(b []byte) *x509.Certificate {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil
	}
	c, _ := x509.ParseCertificate(block.Bytes)
	return c
}

// serveCRL answers GET /v1/crl/<account>.crl with the CRL of the
// account's current issuing CA, or with ?issuer=<key id> that of a
// retired one; once the account is deleted, with the final CRL its CA
// signed then. CRLs are public by nature: relying parties fetch them
// without credentials.
func (g *Gateway) serveCRL(w http.ResponseWriter, r *http.Request) {
	account, ok := strings.CutSuffix(r.PathValue("account_crl"), ".crl")
	if !ok {
		writeProblem(w, errs.New(errs.NotFound, "CRLs are at /v1/crl/<account id>.crl"))
		return
	}
	resp, err := g.ca.GetCRL(r.Context(), &cav1.GetCRLRequest{AccountId: account, IssuerKeyId: r.URL.Query().Get("issuer")})
	if err != nil {
		g.finish(w, r, reply{}, err)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(resp.GetCrl())
}

func toCertificate(c *cav1.Certificate) api.Certificate {
	out := api.Certificate{Serial: c.GetSerial(), Kind: c.GetKind(), SubjectID: c.GetSubjectId(), DNSNames: append([]string{}, c.GetDnsNames()...),
		NotBefore: c.GetNotBefore().AsTime().UTC(), NotAfter: c.GetNotAfter().AsTime().UTC(), Revoked: c.GetRevoked(),
		RevocationReason: c.GetRevocationReason(),
		PEM:              string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.GetDer()})),
		NodeID:           c.GetNodeId(), ImageID: c.GetImageId(), VerdictID: c.GetVerdictId()}
	if len(c.GetMrenclave()) > 0 {
		out.MRENCLAVE = hex.EncodeToString(c.GetMrenclave())
	}
	if c.GetRevoked() {
		t := c.GetRevokedAt().AsTime().UTC()
		out.RevokedAt = &t
	}
	return out
}

func (g *Gateway) listCertificates(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	q := r.URL.Query()
	kind := q.Get("kind")
	if kind != "" && kind != "node" && kind != "app" {
		return reply{}, errs.Newf(errs.Invalid, "kind must be node or app, not %q", kind)
	}
	resp, err := g.ca.ListCertificates(r.Context(), &cav1.ListCertificatesRequest{AccountId: r.PathValue("account_id"),
		Kind: kind, SubjectId: q.Get("subject_id"), IncludeRevoked: q.Get("include_revoked") == "true"})
	return answer(err, http.StatusOK, func() any { return list(resp.GetCertificates(), "", toCertificate) })
}

func (g *Gateway) getCertificate(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.ca.GetCertificate(r.Context(), &cav1.GetCertificateRequest{AccountId: r.PathValue("account_id"), Serial: r.PathValue("serial")})
	return answer(err, http.StatusOK, func() any { return toCertificate(resp.GetCertificate()) })
}

func (g *Gateway) revokeCertificate(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.Revocation
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.ca.RevokeCertificate(r.Context(), &cav1.RevokeCertificateRequest{AccountId: r.PathValue("account_id"), Actor: p.proto(),
		Serial: r.PathValue("serial"), Reason: b.Reason})
	return answer(err, http.StatusOK, func() any { return toCertificate(resp.GetCertificate()) })
}

// serveOCSP answers POST /v1/ocsp/{account} (RFC 6960, public).
func (g *Gateway) serveOCSP(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/ocsp-request" {
		writeProblem(w, errs.Newf(errs.Invalid, "Content-Type must be application/ocsp-request, not %q", ct))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4097))
	if err != nil || len(body) > 4096 {
		writeProblem(w, errs.New(errs.Invalid, "an OCSP request is at most 4096 bytes"))
		return
	}
	resp, err := g.ca.OCSP(r.Context(), &cav1.OCSPRequest{AccountId: r.PathValue("account"), Request: body})
	if err != nil {
		g.finish(w, r, reply{}, err)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(resp.GetResponse())
}
