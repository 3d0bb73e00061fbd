package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloister-cc/cloister/libs/errs"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// The node-facing API: node agents call it over mutual TLS with the client
// certificate their account's CA issued them at enrolment, on a listener
// of its own (NodeHandler with NodeTLSConfig), never on the REST API's.

const (
	// nodeURIPrefix is the opaque part of a node certificate's URI,
	// urn:cloister:node:<account>:<node>, up to the account.
	nodeURIPrefix = "cloister:node:"
	// caPoolTTL is how long an account's parsed CA stays in memory. A
	// certificate the cached CA does not verify makes a fresh fetch, so a
	// rotation is seen at once; the TTL only bounds staleness otherwise.
	caPoolTTL = time.Minute
	// maxCAPools bounds the accounts whose CA is kept in memory.
	maxCAPools = 10000
)

// NodeRoutes lists the node-facing operations, which NodeHandler serves;
// they are not among Routes.
func (g *Gateway) NodeRoutes() []Route { return g.nodeRoutes() }

func (g *Gateway) nodeRoutes() []Route {
	return []Route{
		{Method: "POST", Pattern: "/v1/node/heartbeat", Handler: g.nodeAuthed(g.nodeHeartbeat)},
		{Method: "POST", Pattern: "/v1/node/nonce", Handler: g.nodeAuthed(g.nodeNonce)},
		{Method: "POST", Pattern: "/v1/node/certificate", Handler: g.nodeAuthed(g.nodeCertificate)},
		{Method: "POST", Pattern: "/v1/node/attest", Handler: g.nodeAuthed(g.nodeAttest)},
		{Method: "POST", Pattern: "/v1/node/attestation-nonce", Handler: g.nodeAuthed(g.nodeAttestationNonce)},
		{Method: "POST", Pattern: "/v1/node/simulation/qe", Handler: g.nodeAuthed(g.nodeSimulatedQE)},
	}
}

// NodeHandler serves the node-facing API under /v1/node/. Serve it over
// TLS with NodeTLSConfig: every operation requires the client certificate
// of an enrolled node and answers 401 without one.
func (g *Gateway) NodeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveMux(g.nodeMux, w, r) })
}

// NodeTLSConfig is the TLS configuration of the node listener, presenting
// cert. The handshake asks for a client certificate and takes any: each
// account has its own CA, which one pool of client CAs cannot hold, so
// NodeHandler verifies the chain against the account the certificate
// names, on every request, before any handler runs.
func (g *Gateway) NodeTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
	}
}

// nodeIdentity is whom a node-facing request comes from, as its verified
// client certificate says: nothing else in a request names the node.
type nodeIdentity struct {
	AccountID, NodeID string
	// Serial is the client certificate's serial, lower-case hex.
	Serial string
}

func (g *Gateway) nodeAuthed(h func(w http.ResponseWriter, r *http.Request, n nodeIdentity) (reply, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := g.authenticateNode(r.Context(), r)
		if err != nil {
			if errs.KindOf(err) == errs.Unauthenticated {
				g.logger.InfoContext(r.Context(), "node request refused", "path", r.URL.Path, "remote", r.RemoteAddr,
					"reason", errs.PublicMessage(err))
			}
			g.finish(w, r, reply{}, err)
			return
		}
		res, err := h(w, r, n)
		g.finish(w, r, res, err)
	})
}

func errNotNode(format string, args ...any) error {
	return errs.New(errs.Unauthenticated, "the client certificate is not a node's of this deployment: "+fmt.Sprintf(format, args...))
}

// authenticateNode tells which node sent r: its client certificate must
// name a node (urn:cloister:node:<account>:<node>), chain to that
// account's root through its issuing CA or a retired one, allow client
// authentication, not be revoked, and be the current certificate of a
// live node, as the node registry says. The registry and the CA are asked
// on every request; neither answer is cached, so deregistration,
// distrust and revocation take effect on the next request.
func (g *Gateway) authenticateNode(ctx context.Context, r *http.Request) (nodeIdentity, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nodeIdentity{}, errs.New(errs.Unauthenticated, "node endpoints need mutual TLS: present the client certificate the node received at enrolment")
	}
	leaf := r.TLS.PeerCertificates[0]
	account, node, err := nodeURI(leaf)
	if err != nil {
		return nodeIdentity{}, errNotNode("%v", err)
	}
	if err := g.verifyNodeChain(ctx, account, leaf); err != nil {
		return nodeIdentity{}, err
	}
	id := nodeIdentity{AccountID: account, NodeID: node, Serial: leaf.SerialNumber.Text(16)}

	revoked := make(chan error, 1)
	go func() { revoked <- g.checkNodeCertificate(ctx, id) }()
	_, authErr := g.nodes.AuthenticateNode(ctx, &noderegistryv1.AuthenticateNodeRequest{AccountId: id.AccountID, NodeId: id.NodeID,
		CertificateSerial: id.Serial})
	certErr := <-revoked
	switch {
	case authErr != nil && (errs.KindOf(authErr) == errs.Unauthenticated || undecided(authErr)):
		// The registry's refusal says why (deregistered, untrusted,
		// replaced certificate) in words fit for the caller.
		return nodeIdentity{}, fmt.Errorf("authenticating node %s: %w", id.NodeID, authErr)
	case authErr != nil:
		return nodeIdentity{}, errNotNode("%s", errs.PublicMessage(authErr))
	case certErr != nil:
		return nodeIdentity{}, certErr
	}
	return id, nil
}

// undecided tells whether err is a failure to decide rather than a
// refusal: those keep their kind (503 or 500), so that an outage is not
// mistaken for a bad certificate.
func undecided(err error) bool {
	k := errs.KindOf(err)
	return k == errs.Unavailable || k == errs.Internal
}

// nodeURI reads the account and node a node certificate names.
func nodeURI(cert *x509.Certificate) (account, node string, err error) {
	found := 0
	for _, u := range cert.URIs {
		rest, ok := strings.CutPrefix(u.Opaque, nodeURIPrefix)
		if u.Scheme != "urn" || !ok {
			continue
		}
		found++
		account, node, _ = strings.Cut(rest, ":")
	}
	switch {
	case found == 0:
		return "", "", errors.New("it names no node (no URI urn:cloister:node:<account>:<node>)")
	case found > 1:
		return "", "", errors.New("it names more than one node")
	case !isID(account) || !isID(node):
		return "", "", errors.New("its node URI is not urn:cloister:node:<account>:<node>")
	}
	return account, node, nil
}

// isID tells whether s can be an account's or a node's id (a UUID); the
// services check the rest.
func isID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// verifyNodeChain checks leaf against the CA of account.
func (g *Gateway) verifyNodeChain(ctx context.Context, account string, leaf *x509.Certificate) error {
	for fresh := false; ; fresh = true {
		pool, cached, err := g.accountCA(ctx, account, fresh)
		if err != nil {
			return err
		}
		_, err = leaf.Verify(x509.VerifyOptions{Roots: pool.roots, Intermediates: pool.issuers,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: g.clock()})
		if err == nil {
			return nil
		}
		if !cached {
			return errNotNode("%v", err)
		}
		// The CA may have rotated its issuer since it was cached.
	}
}

// checkNodeCertificate asks the CA whether the certificate is one it
// issued to the node and has not revoked: an admin may revoke a node's
// certificate without deregistering the node.
func (g *Gateway) checkNodeCertificate(ctx context.Context, id nodeIdentity) error {
	resp, err := g.ca.GetCertificate(ctx, &cav1.GetCertificateRequest{AccountId: id.AccountID, Serial: id.Serial})
	switch {
	case err != nil && undecided(err):
		return fmt.Errorf("checking the revocation of node certificate %s: %w", id.Serial, err)
	case err != nil:
		return errNotNode("the account's CA has no record of serial %s", id.Serial)
	}
	c := resp.GetCertificate()
	if c.GetKind() != "node" || c.GetSubjectId() != id.NodeID {
		return errNotNode("the account's CA issued serial %s to something else", id.Serial)
	}
	if c.GetRevoked() {
		msg := "the client certificate is revoked"
		if reason := c.GetRevocationReason(); reason != "" {
			msg += ": " + reason
		}
		return errs.New(errs.Unauthenticated, msg)
	}
	return nil
}

// caPool is an account's CA, parsed for verification.
type caPool struct {
	roots, issuers *x509.CertPool
	fetched        time.Time
}

// caPools caches accounts' CAs in memory. Only CAs that exist are cached,
// so certificates naming made-up accounts cannot fill it.
type caPools struct {
	mu        sync.Mutex
	byAccount map[string]caPool
}

func newCAPools() *caPools { return &caPools{byAccount: map[string]caPool{}} }

func (c *caPools) get(account string, now time.Time) (caPool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.byAccount[account]
	if !ok || now.Sub(p.fetched) >= caPoolTTL {
		return caPool{}, false
	}
	return p, true
}

func (c *caPools) put(account string, p caPool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byAccount) >= maxCAPools {
		for a, old := range c.byAccount {
			if p.fetched.Sub(old.fetched) >= caPoolTTL {
				delete(c.byAccount, a)
			}
		}
		if len(c.byAccount) >= maxCAPools {
			clear(c.byAccount)
		}
	}
	c.byAccount[account] = p
}

// accountCA returns the account's CA, from memory unless fresh, and
// whether it came from memory.
func (g *Gateway) accountCA(ctx context.Context, account string, fresh bool) (caPool, bool, error) {
	now := time.Now()
	if !fresh {
		if p, ok := g.nodeCAs.get(account, now); ok {
			return p, true, nil
		}
	}
	resp, err := g.ca.GetCA(ctx, &cav1.GetCARequest{AccountId: account})
	switch {
	case err != nil && undecided(err):
		return caPool{}, false, fmt.Errorf("loading account CA: %w", err)
	case err != nil:
		return caPool{}, false, errNotNode("it names account %s, which has no CA here", account)
	}
	p, err := parseCAPool(resp, now)
	if err != nil {
		return caPool{}, false, fmt.Errorf("loading account CA of %s: %w", account, err)
	}
	g.nodeCAs.put(account, p)
	return p, false, nil
}

func parseCAPool(resp *cav1.GetCAResponse, now time.Time) (caPool, error) {
	root := parsePEMCert(resp.GetRootPem())
	if root == nil {
		return caPool{}, errors.New("the CA sent no root certificate")
	}
	p := caPool{roots: x509.NewCertPool(), issuers: x509.NewCertPool(), fetched: now}
	p.roots.AddCert(root)
	rest := append(append([]byte{}, resp.GetIssuerPem()...), resp.GetRetiredIssuersPem()...)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return caPool{}, fmt.Errorf("parsing an issuing CA: %w", err)
		}
		p.issuers.AddCert(c)
	}
	return p, nil
}

// nodeHeartbeat serves POST /v1/node/heartbeat: the node is alive and
// runs these instances.
func (g *Gateway) nodeHeartbeat(w http.ResponseWriter, r *http.Request, n nodeIdentity) (reply, error) {
	var b api.NodeHeartbeat
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	instances := make([]*noderegistryv1.Instance, 0, len(b.Instances))
	for i, in := range b.Instances {
		mr, err := hex.DecodeString(in.MRENCLAVE)
		if err != nil {
			return reply{}, errs.Newf(errs.Invalid, "instances[%d].mrenclave must be hex", i)
		}
		p := &noderegistryv1.Instance{Id: in.ID, AppId: in.AppID, ImageId: in.ImageID, Mrenclave: mr, Status: in.Status, CertificateSerial: in.CertificateSerial}
		if in.StartedAt != nil && !in.StartedAt.IsZero() {
			p.StartedAt = timestamppb.New(*in.StartedAt)
		}
		instances = append(instances, p)
	}
	resp, err := g.nodes.Heartbeat(r.Context(), &noderegistryv1.HeartbeatRequest{AccountId: n.AccountID, NodeId: n.NodeID,
		CertificateSerial: n.Serial, Instances: instances})
	return answer(err, http.StatusOK, func() any { return toNode(resp.GetNode()) })
}

// nodeNonce serves POST /v1/node/nonce: a nonce of the node's account's
// CA, for an enclave to put in its REPORTDATA.
func (g *Gateway) nodeNonce(_ http.ResponseWriter, r *http.Request, n nodeIdentity) (reply, error) {
	resp, err := g.ca.CreateNonce(r.Context(), &cav1.CreateNonceRequest{AccountId: n.AccountID})
	return answer(err, http.StatusCreated, func() any { return api.Nonce{Nonce: resp.GetNonce(), ExpiresAt: ts(resp.GetExpiresAt())} })
}

// nodeCertificate serves POST /v1/node/certificate: an enclave's quote is
// verified for the application, then the CA issues the certificate,
// recording the node that forwarded the request.
func (g *Gateway) nodeCertificate(w http.ResponseWriter, r *http.Request, n nodeIdentity) (reply, error) {
	var b api.IssueAppCertificate
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	switch {
	case b.AppID == "":
		return reply{}, errs.New(errs.Invalid, "app_id is required: the application the enclave runs")
	case b.CSR == "":
		return reply{}, errs.New(errs.Invalid, "csr is required: the enclave's certificate request, PEM")
	case len(b.Quote) == 0:
		return reply{}, errs.New(errs.Invalid, "quote is required: the enclave's quote, base64")
	}
	vresp, err := g.attestation.Verify(r.Context(), &attestationv1.VerifyRequest{AccountId: n.AccountID, Quote: b.Quote, AppId: b.AppID})
	if err != nil {
		return reply{}, err
	}
	v := vresp.GetVerdict()
	if !v.GetOk() {
		return reply{}, errs.Newf(errs.PermissionDenied, "attestation failed (%s): %s (verdict %s)", v.GetReason(), v.GetError(), v.GetId())
	}
	cresp, err := g.ca.IssueAppCertificate(r.Context(), &cav1.IssueAppCertificateRequest{AccountId: n.AccountID, AppId: b.AppID,
		Csr: []byte(b.CSR), VerdictId: v.GetId(), NodeId: n.NodeID, RecipientKey: b.RecipientKey})
	if err != nil {
		return reply{}, err
	}
	out := api.IssuedAppCertificate{Certificate: toCertificate(cresp.GetCertificate()), ChainPEM: string(cresp.GetChainPem()), Verdict: toVerdict(v)}
	if len(b.RecipientKey) > 0 {
		// The image converter checks with the CA that this certificate
		// was just issued to this application, bound to the key, before
		// it seals anything to it: this process only carries ciphertext.
		sresp, err := g.images.SealSecrets(r.Context(), &imageconverterv1.SealSecretsRequest{AccountId: n.AccountID, AppId: b.AppID,
			CertificateSerial: cresp.GetCertificate().GetSerial()})
		if err != nil {
			return reply{}, err
		}
		out.Secrets = sresp.GetSealed()
	}
	return reply{http.StatusCreated, out}, nil
}

// nodeAttest serves POST /v1/node/attest: the node's periodic
// re-attestation. A refused quote makes the node untrusted and revokes its
// certificate (403 with the reason); its next request gets 401.
func (g *Gateway) nodeAttest(w http.ResponseWriter, r *http.Request, n nodeIdentity) (reply, error) {
	var b api.NodeAttest
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	if len(b.Evidence) == 0 {
		return reply{}, errs.New(errs.Invalid, "evidence is required: the node's quote, base64")
	}
	resp, err := g.nodes.Reattest(r.Context(), &noderegistryv1.ReattestRequest{AccountId: n.AccountID, NodeId: n.NodeID,
		CertificateSerial: n.Serial, Evidence: b.Evidence, Nonce: b.Nonce, Tee: b.TEE, EvidenceAux: b.EvidenceAux})
	return answer(err, http.StatusOK, func() any { return toNode(resp.GetNode()) })
}

// nodeAttestationNonce serves POST /v1/node/attestation-nonce: a nonce of
// the node registry's for the node's next re-attestation.
func (g *Gateway) nodeAttestationNonce(_ http.ResponseWriter, r *http.Request, n nodeIdentity) (reply, error) {
	resp, err := g.nodes.CreateAttestationNonce(r.Context(), &noderegistryv1.CreateAttestationNonceRequest{AccountId: n.AccountID, NodeId: n.NodeID,
		CertificateSerial: n.Serial})
	return answer(err, http.StatusCreated, func() any { return toNonce(resp.GetNonce()) })
}

// nodeSimulatedQE serves POST /v1/node/simulation/qe: a simulated quoting
// enclave for a node agent in simulation mode, issued by the attestation
// service for the node's account (refused unless the deployment has
// simulation on and the account's policy allows it).
func (g *Gateway) nodeSimulatedQE(_ http.ResponseWriter, r *http.Request, n nodeIdentity) (reply, error) {
	resp, err := g.attestation.IssueSimulatedQE(r.Context(), &attestationv1.IssueSimulatedQERequest{AccountId: n.AccountID})
	return answer(err, http.StatusCreated, func() any { return api.SimulatedQE{QE: resp.GetQe()} })
}
