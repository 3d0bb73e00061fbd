package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/gramine"
	"github.com/cloister-cc/cloister/libs/sgx"
)

// envNodeAgent names the node agent's local API. The host sets it and it
// is not measured: it is only used to reach the agent, whose answers the
// gateway checks (the quote binds the key and the server's nonce).
const envNodeAgent = "NODE_AGENT_BASE_URL"

// Limits on what the launcher reads.
const (
	maxLauncherSize  = 256 << 20
	maxAgentResponse = 4 << 20
	agentTimeout     = 60 * time.Second
)

// attestError is a failure of the attestation step; it exits with
// exitAttest.
type attestError struct{ error }

// attest obtains the enclave's certificate from the node agent and writes
// its key and chain under root, with the application's secrets and volume
// keys when its manifest takes them (provide); it returns the variables
// to add to the application's environment. It does nothing when the
// manifest has no certificate.
//
// With the certificate it opens the instance's live connection to the
// agent, which the application inherits (holdLive); should that fail, the
// application still starts, and warn says why its end will not be seen.
func attest(root string, img *image, lookupEnv func(string) (string, bool), keysDir string, warn func(string)) ([]string, error) {
	c := img.manifest.Certificate
	if c == nil {
		return nil, nil
	}
	raw, _ := lookupEnv(envNodeAgent)
	if raw == "" {
		return nil, attestError{fmt.Errorf("the image needs a certificate for %s, but %s is not set: start the container with "+
			"%s=http://<node>:9092/v1/ (the node agent's local API)", c.Domain, envNodeAgent, envNodeAgent)}
	}
	a, err := newAgentClient(raw)
	if err != nil {
		return nil, attestError{err}
	}
	id, env, err := obtain(root, img, a, keysDir, warn)
	if err != nil {
		return nil, attestError{err}
	}
	if id == "" {
		warn("the node agent gave no instance_id: it will not see this instance stop")
		warn(fmt.Sprintf("certificate for %s obtained; starting the application", c.Domain))
		return env, nil
	}
	if err := a.holdLive(id); err != nil {
		warn(fmt.Sprintf("%v; instance %s will be reported as running after it stops", err, id))
	}
	warn(fmt.Sprintf("certificate for %s obtained (instance %s); starting the application", c.Domain, id))
	return env, nil
}

// obtain gets the enclave's key and certificate, and its secrets, and
// returns the instance id the node agent recorded and the secrets'
// environment variables.
func obtain(root string, img *image, a *agentClient, keysDir string, warn func(string)) (string, []string, error) {
	m := img.manifest
	c := m.Certificate
	if m.AppID == "" {
		return "", nil, fmt.Errorf("the enclave manifest has no app_id, which the certificate request needs; convert the image again with its application")
	}

	// a. A fresh nonce, and whether the agent simulates SGX.
	var ti struct {
		Nonce      []byte `json:"nonce"`
		Simulation bool   `json:"simulation"`
	}
	if err := a.call(http.MethodGet, "enclave/target-info", nil, &ti, "getting a nonce"); err != nil {
		return "", nil, err
	}
	if len(ti.Nonce) != 32 {
		return "", nil, fmt.Errorf("the node agent at %s gave a nonce of %d bytes, want 32; check that NODE_AGENT_BASE_URL names a cloister-node-agent", a.base, len(ti.Nonce))
	}
	// b, c. The key and its CSR.
	key, err := generateKey(c.KeyType)
	if err != nil {
		return "", nil, err
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: c.Domain},
		DNSNames: []string{c.Domain},
	}, key)
	if err != nil {
		return "", nil, fmt.Errorf("creating the certificate request for %s: %v", c.Domain, err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return "", nil, fmt.Errorf("creating the certificate request for %s: %v", c.Domain, err)
	}
	// The key the secrets are sealed to, when the application takes any.
	recipient, err := recipientKey(m)
	if err != nil {
		return "", nil, err
	}
	var recipientPub []byte
	if recipient != nil {
		recipientPub = recipient.PublicKey().Bytes()
	}

	// d. The evidence: a quote of this enclave binding the keys and the
	// nonce, from the agent's simulated QE or from Gramine.
	data := reportData(csr.RawSubjectPublicKeyInfo, recipientPub, ti.Nonce)
	var quote []byte
	if ti.Simulation {
		quote, err = simulatedQuote(root, img, a, data)
	} else {
		quote, err = gramineQuote(root, data)
	}
	if err != nil {
		return "", nil, err
	}

	// e. The certificate, and the secrets sealed to the recipient key.
	var issued struct {
		ChainPEM   string `json:"chain_pem"`
		InstanceID string `json:"instance_id"`
		Secrets    []byte `json:"secrets"`
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
	req := map[string]any{"app_id": m.AppID, "csr": string(csrPEM), "quote": quote}
	if recipientPub != nil {
		req["recipient_key"] = recipientPub
	}
	if err := a.call(http.MethodPost, "certificate/issue", req, &issued, "asking for the certificate"); err != nil {
		return "", nil, err
	}
	if blk, _ := pem.Decode([]byte(issued.ChainPEM)); blk == nil || blk.Type != "CERTIFICATE" {
		return "", nil, fmt.Errorf("the node agent at %s answered without a PEM certificate chain; check its log", a.base)
	}

	// f. The key and the chain.
	var env []string
	if recipient != nil {
		if env, err = provide(root, m, recipient, issued.ChainPEM, issued.Secrets, keysDir, warn); err != nil {
			return "", nil, err
		}
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", nil, fmt.Errorf("encoding the key: %v", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeSecret(root, c.KeyPath, keyPEM, 0o600); err != nil {
		return "", nil, err
	}
	return issued.InstanceID, env, writeSecret(root, c.CertPath, []byte(issued.ChainPEM), 0o644)
}

// simulatedQuote has the node agent's simulated QE quote the report body
// this enclave would have.
func simulatedQuote(root string, img *image, a *agentClient, data [64]byte) ([]byte, error) {
	if img.gramine == nil {
		return nil, fmt.Errorf("the node agent at %s simulates SGX, but this launcher runs inside a Gramine enclave: run the node agent without --simulation", a.base)
	}
	body, err := simulatedReport(root, img, data)
	if err != nil {
		return nil, err
	}
	var q struct {
		Quote []byte `json:"quote"`
	}
	if err := a.call(http.MethodPost, "enclave/attest", map[string]any{"report_body": encodeReportBody(body)}, &q, "quoting the enclave"); err != nil {
		return nil, err
	}
	if len(q.Quote) == 0 {
		return nil, fmt.Errorf("the node agent at %s answered without a quote; check its log", a.base)
	}
	return q.Quote, nil
}

// gramineDir is Gramine's attestation interface: writing 64 bytes to
// user_report_data, then reading quote, gives a DCAP quote of the enclave
// with those bytes as REPORTDATA.
const gramineDir = "/dev/attestation"

// maxQuoteSize bounds what is read from Gramine's quote file.
const maxQuoteSize = 64 << 10

// gramineQuote obtains a hardware quote through Gramine's
// /dev/attestation (under root). The server verifies it; the launcher
// only passes it on.
func gramineQuote(root string, data [64]byte) ([]byte, error) {
	dir := hostPath(root, gramineDir)
	kind, err := os.ReadFile(filepath.Join(dir, "attestation_type"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("the node agent is not in simulation mode, and %s does not exist: the enclave is not running under Gramine-SGX; "+
			"run the image with gramine-sgx on an SGX node, or the node agent with --simulation", gramineDir)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s/attestation_type: %v", gramineDir, unwrapPath(err))
	}
	if k := strings.TrimSpace(string(kind)); k != "dcap" {
		return nil, fmt.Errorf("the attestation type Gramine reports is %q, want \"dcap\": set sgx.remote_attestation = \"dcap\" in the Gramine manifest", k)
	}
	if err := os.WriteFile(filepath.Join(dir, "user_report_data"), data[:], 0); err != nil {
		return nil, fmt.Errorf("writing %s/user_report_data: %v", gramineDir, unwrapPath(err))
	}
	quote, err := readFile(root, gramineDir+"/quote", maxQuoteSize)
	if err != nil {
		return nil, fmt.Errorf("obtaining the quote from Gramine: %v; check that the node has SGX DCAP (aesmd and the quote provider library)", err)
	}
	if len(quote) == 0 {
		return nil, fmt.Errorf("the quote Gramine gave from %s/quote is empty; check the node's SGX DCAP setup", gramineDir)
	}
	return quote, nil
}

// generateKey generates a key of a manifest's key type.
func generateKey(keyType string) (crypto.Signer, error) {
	switch keyType {
	case "ec-p256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ec-p384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa-2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "rsa-3072":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "rsa-4096":
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("key type %q in the enclave manifest is not one of ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096; "+
		"set the application's key type and convert the image again", keyType)
}

// reportData is REPORTDATA: the key binding of the certificate key's
// SubjectPublicKeyInfo and the recipient key (nil when the enclave takes
// no secrets), then the nonce.
func reportData(spki, recipient, nonce []byte) [64]byte {
	var d [64]byte
	binding := enclave.KeyBinding(sha256.Sum256(spki), recipient)
	copy(d[:32], binding[:])
	copy(d[32:], nonce)
	return d
}

// simulatedReport is the report body the enclave would have: MRENCLAVE
// measured, as Gramine measures it, from the Gramine manifest and the
// runtime's libpal.so under root, and the SIGSTRUCT's signer, product and
// attributes.
func simulatedReport(root string, img *image, data [64]byte) (sgx.ReportBody, error) {
	var r sgx.ReportBody
	// libpal.so was checked against the trusted-file list, which the
	// Gramine manifest binds.
	libpal, err := readFile(root, enclave.LibPALPath, gramine.MaxPALSize)
	if err != nil {
		return r, err
	}
	sb, err := readFile(root, enclave.SigStructPath, sgx.SigStructSize)
	if err != nil {
		return r, fmt.Errorf("%v; convert the image again", err)
	}
	ss, err := sgx.ParseSigStruct(sb)
	if err != nil {
		return r, fmt.Errorf("%s: %v; convert the image again", enclave.SigStructPath, err)
	}
	m, err := gramine.Measure(img.gramine, libpal)
	if err != nil {
		return r, fmt.Errorf("measuring the enclave: %v; convert the image again", err)
	}
	// What EINIT would check on hardware: the signature, the measurement
	// and the fields the manifest fixes.
	if err := ss.Verify(); err != nil {
		return r, fmt.Errorf("%s: %v; %s", enclave.SigStructPath, err, altered)
	}
	if ss.EnclaveHash != m.MRENCLAVE {
		return r, fmt.Errorf("%s: signs MRENCLAVE %x, but the enclave measures %x; %s", enclave.SigStructPath, ss.EnclaveHash, m.MRENCLAVE, altered)
	}
	want := m.SigStructFields(time.Time{})
	if ss.Attributes != want.Attributes || ss.AttributeMask != want.AttributeMask || ss.MiscSelect != want.MiscSelect ||
		ss.ISVProdID != want.ISVProdID || ss.ISVSVN != want.ISVSVN {
		return r, fmt.Errorf("%s: its attributes, ISVPRODID or ISVSVN are not the Gramine manifest's; %s", enclave.SigStructPath, altered)
	}
	r.MRENCLAVE = m.MRENCLAVE
	r.MRSIGNER = ss.MRSIGNER()
	r.ISVProdID, r.ISVSVN = ss.ISVProdID, ss.ISVSVN
	r.ISVExtProdID, r.ISVFamilyID = ss.ISVExtProdID, ss.ISVFamilyID
	r.MiscSelect = m.Params.MiscSelect
	binary.LittleEndian.PutUint64(r.Attributes[:8], m.Params.Flags|uint64(sgx.AttributeInit))
	binary.LittleEndian.PutUint64(r.Attributes[8:], m.Params.XFRM)
	r.ReportData = data
	return r, nil
}

// encodeReportBody is the inverse of sgx.ParseReportBody: the 384-byte
// SGX REPORTBODY, little-endian, reserved bytes zero. (libs/sgx/sim has
// the same, but would link the simulated QE into the launcher.)
func encodeReportBody(b sgx.ReportBody) []byte {
	out := make([]byte, sgx.ReportBodySize)
	copy(out[0:16], b.CPUSVN[:])
	binary.LittleEndian.PutUint32(out[16:20], b.MiscSelect)
	copy(out[32:48], b.ISVExtProdID[:])
	copy(out[48:64], b.Attributes[:])
	copy(out[64:96], b.MRENCLAVE[:])
	copy(out[128:160], b.MRSIGNER[:])
	copy(out[192:256], b.ConfigID[:])
	binary.LittleEndian.PutUint16(out[256:258], b.ISVProdID)
	binary.LittleEndian.PutUint16(out[258:260], b.ISVSVN)
	binary.LittleEndian.PutUint16(out[260:262], b.ConfigSVN)
	copy(out[304:320], b.ISVFamilyID[:])
	copy(out[320:384], b.ReportData[:])
	return out
}

// writeSecret writes data to the image path name under root, through a
// temporary file renamed into place, creating missing parent directories
// with mode 0700.
func writeSecret(root, name string, data []byte, mode os.FileMode) error {
	p := hostPath(root, name)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the directory of %s: %v; is %s writable?", name, unwrapPath(err), filepath.Dir(name))
	}
	f, err := os.CreateTemp(dir, ".cloister-*")
	if err != nil {
		return fmt.Errorf("writing %s: %v; is %s writable?", name, unwrapPath(err), filepath.Dir(name))
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %v", name, unwrapPath(err))
	}
	return nil
}

// agentClient calls the node agent's local API.
type agentClient struct {
	base *url.URL
	http *http.Client
}

func newAgentClient(raw string) (*agentClient, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s=%q is not an http(s) URL of the node agent; set it to http://<node>:9092/v1/", envNodeAgent, raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	return &agentClient{base: u, http: &http.Client{
		Timeout: agentTimeout,
		// Straight to the agent, never through a proxy of the host's.
		Transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: agentTimeout},
		// The agent answers directly; a redirect is not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// call sends in (if not nil) as JSON and decodes a 2xx answer into out.
// what says what the call is for, in messages.
func (a *agentClient) call(method, rel string, in, out any, what string) error {
	u := a.base.JoinPath(rel)
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: the node agent at %s cannot be reached (%v): is cloister-node-agent running and %s right?", what, a.base, err, envNodeAgent)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentResponse+1))
	if err != nil {
		return fmt.Errorf("%s: reading the node agent's answer: %v; try again", what, err)
	}
	if len(b) > maxAgentResponse {
		return fmt.Errorf("%s: the node agent's answer is larger than %d bytes; check that %s names a cloister-node-agent", what, maxAgentResponse, envNodeAgent)
	}
	if resp.StatusCode/100 != 2 {
		var p struct {
			Detail string `json:"detail"`
			Code   string `json:"code"`
		}
		if json.Unmarshal(b, &p) != nil || p.Detail == "" {
			return fmt.Errorf("%s: the node agent at %s answered %s; check that %s names a cloister-node-agent, and its log", what, a.base, resp.Status, envNodeAgent)
		}
		if rel == "certificate/issue" {
			return fmt.Errorf("the certificate was refused (%s): %s", resp.Status, p.Detail)
		}
		return fmt.Errorf("%s: the node agent refused (%s): %s", what, resp.Status, p.Detail)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: the node agent's answer is not what a cloister-node-agent sends (%v); check %s", what, err, envNodeAgent)
	}
	return nil
}
