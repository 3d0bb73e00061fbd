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
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/gramine"
	"github.com/cloister-cc/cloister/libs/sgx"
)

var (
	signerOnce sync.Once
	signer     *rsa.PrivateKey
	signerErr  error
)

func signingKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	signerOnce.Do(func() { signer, signerErr = sgx.GenerateSigningKey(nil) })
	if signerErr != nil {
		t.Fatal(signerErr)
	}
	return signer
}

// certImage is the fixture image with a certificate, app id and a signed
// SIGSTRUCT; it returns the root and the enclave's expected MRENCLAVE.
func certImage(t *testing.T, edit func(*enclave.Manifest)) (string, [32]byte) {
	t.Helper()
	root := newImage(t, fixture, func(m *enclave.Manifest) {
		m.AppID = "app_hello"
		m.MemorySize = 64 << 20
		m.ISVProdID, m.ISVSVN = 7, 3
		m.Certificate = &enclave.Certificate{Domain: "app.example", KeyType: "ec-p256", KeyPath: "/run/tls/key.pem", CertPath: "/run/tls/cert.pem"}
		if edit != nil {
			edit(m)
		}
	})
	gb, err := os.ReadFile(filepath.Join(root, enclave.GramineManifestPath))
	mustDo(t, err)
	g, err := gramine.Measure(gb, gramine.StandInELF("libpal.so"))
	mustDo(t, err)
	ss, err := g.Sign(signingKey(t), time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	mustDo(t, err)
	mustDo(t, os.WriteFile(filepath.Join(root, enclave.SigStructPath), ss, 0o644))
	return root, g.MRENCLAVE
}

// fakeAgent is a node agent that checks the report body it quotes and
// the CSR and quote it is given.
type fakeAgent struct {
	t          *testing.T
	mrenclave  [32]byte
	simulation bool
	refuse     string // route whose answer is a problem
	// gramine is the root whose /dev/attestation fakes Gramine's (SGX
	// hardware cannot run here); with it the agent is not in simulation.
	gramine string
	calls   atomic.Int32

	mu    sync.Mutex
	nonce []byte
	body  []byte
	chain string
	// bundle is sealed to the recipient key of a request that binds one,
	// or to sealTo if set.
	bundle            *enclave.Bundle
	recipient, sealTo []byte
}

func newFakeAgent(t *testing.T, mrenclave [32]byte) (*fakeAgent, *httptest.Server) {
	a := &fakeAgent{t: t, mrenclave: mrenclave, simulation: true}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv
}

func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "status": status, "detail": detail})
}

func (a *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := a.t
	a.calls.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	route := r.Method + " " + r.URL.Path
	if route == a.refuse {
		problem(w, http.StatusForbidden, "the domain app.example is not approved for this account")
		return
	}
	switch route {
	case "GET /v1/enclave/target-info":
		a.nonce = make([]byte, 32)
		rand.Read(a.nonce)
		json.NewEncoder(w).Encode(map[string]any{"nonce": a.nonce, "simulation": a.simulation, "target_info": make([]byte, 512)})
	case "POST /v1/enclave/attest":
		var req struct {
			ReportBody []byte `json:"report_body"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			problem(w, http.StatusBadRequest, err.Error())
			return
		}
		b, err := sgx.ParseReportBody(req.ReportBody)
		if err != nil {
			t.Errorf("report body: %v", err)
			problem(w, http.StatusBadRequest, err.Error())
			return
		}
		signerMR := sgx.MRSIGNEROf(&signingKey(t).PublicKey)
		if b.MRENCLAVE != a.mrenclave || b.MRSIGNER != signerMR || b.ISVProdID != 7 || b.ISVSVN != 3 ||
			b.Attributes[0] != sgx.AttributeInit|sgx.AttributeMode64 || !bytes.Equal(b.ReportData[32:], a.nonce) {
			t.Errorf("report body %+v: want MRENCLAVE %x, MRSIGNER %x, ISVPRODID 7, ISVSVN 3, INIT|MODE64, nonce %x", b, a.mrenclave, signerMR, a.nonce)
		}
		a.body = req.ReportBody
		json.NewEncoder(w).Encode(map[string]any{"quote": append([]byte("quote:"), req.ReportBody...), "simulation": true})
	case "POST /v1/certificate/issue":
		var req struct {
			AppID        string `json:"app_id"`
			CSR          string `json:"csr"`
			Quote        []byte `json:"quote"`
			RecipientKey []byte `json:"recipient_key"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			problem(w, http.StatusBadRequest, err.Error())
			return
		}
		if a.gramine != "" {
			// The report data Gramine was given stands in for the body.
			data, err := os.ReadFile(filepath.Join(a.gramine, "dev/attestation/user_report_data"))
			mustDo(t, err)
			a.body = make([]byte, sgx.ReportBodySize)
			copy(a.body[320:], data)
			if !bytes.Equal(req.Quote, gramineQuoteBytes) || len(data) != 64 {
				t.Errorf("quote %q with %d bytes of report data; want Gramine's and 64 bytes", req.Quote, len(data))
			}
		} else if !bytes.Equal(req.Quote, append([]byte("quote:"), a.body...)) {
			t.Errorf("quote %x is not the one the agent gave", req.Quote)
		}
		if req.AppID != "app_hello" {
			t.Errorf("app_id %q, want app_hello", req.AppID)
		}
		blk, _ := pem.Decode([]byte(req.CSR))
		if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
			t.Fatalf("csr %q is not a PEM certificate request", req.CSR)
		}
		csr, err := x509.ParseCertificateRequest(blk.Bytes)
		mustDo(t, err)
		mustDo(t, csr.CheckSignature())
		if csr.Subject.CommonName != "app.example" || !slices.Equal(csr.DNSNames, []string{"app.example"}) {
			t.Errorf("CSR for %q, %q; want app.example", csr.Subject.CommonName, csr.DNSNames)
		}
		body, _ := sgx.ParseReportBody(a.body)
		sum := enclave.KeyBinding(sha256.Sum256(csr.RawSubjectPublicKeyInfo), req.RecipientKey)
		if !bytes.Equal(body.ReportData[:32], sum[:]) || !bytes.Equal(body.ReportData[32:], a.nonce) {
			t.Errorf("REPORTDATA %x, want the binding of the CSR's key and the recipient key %x then the nonce %x", body.ReportData, sum, a.nonce)
		}
		a.chain = issueChain(t, csr)
		answer := map[string]any{"certificate": map[string]any{"serial": "02"}, "chain_pem": a.chain,
			"verdict": map[string]any{}, "instance_id": "inst_1"}
		a.recipient = req.RecipientKey
		if a.bundle != nil && req.RecipientKey != nil {
			to := req.RecipientKey
			if a.sealTo != nil {
				to = a.sealTo
			}
			sealed, err := enclave.SealBundle(to, enclave.BundleInfo("app_hello", "2"), *a.bundle)
			mustDo(t, err)
			answer["secrets"] = sealed
		}
		json.NewEncoder(w).Encode(answer)
	default:
		problem(w, http.StatusNotFound, "no such resource: "+r.URL.Path)
	}
}

// issueChain is a certificate for csr's key, then its issuer.
func issueChain(t *testing.T, csr *x509.CertificateRequest) string {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mustDo(t, err)
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: now, NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	mustDo(t, err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: csr.Subject, DNSNames: csr.DNSNames, NotBefore: now, NotAfter: now.Add(time.Hour)}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, csr.PublicKey, caKey)
	mustDo(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
}

func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	mustDo(t, err)
	return fi.Mode().Perm()
}

func TestAttest(t *testing.T) {
	for _, kt := range []string{"ec-p256", "ec-p384", "rsa-2048"} {
		t.Run(kt, func(t *testing.T) {
			root, mr := certImage(t, func(m *enclave.Manifest) { m.Certificate.KeyType = kt })
			a, srv := newFakeAgent(t, mr)
			stdout, stderr, code := launch(t, []string{"NODE_AGENT_BASE_URL=" + srv.URL + "/v1/"}, "--root", root)
			if code != 0 || !strings.Contains(stdout, "arg=default-1") {
				t.Fatalf("launcher = %d, stdout %q, stderr %q; want the application to run", code, stdout, stderr)
			}
			if a.chain == "" {
				t.Fatal("no certificate was issued")
			}
			keyFile, certFile := filepath.Join(root, "run/tls/key.pem"), filepath.Join(root, "run/tls/cert.pem")
			if m := mode(t, filepath.Join(root, "run/tls")); m != 0o700 {
				t.Errorf("/run/tls mode %o, want 700", m)
			}
			if m := mode(t, keyFile); m != 0o600 {
				t.Errorf("key mode %o, want 600", m)
			}
			if m := mode(t, certFile); m != 0o644 {
				t.Errorf("certificate mode %o, want 644", m)
			}
			cb, err := os.ReadFile(certFile)
			mustDo(t, err)
			if string(cb) != a.chain {
				t.Errorf("certificate file %q, want the chain %q", cb, a.chain)
			}
			kb, err := os.ReadFile(keyFile)
			mustDo(t, err)
			blk, _ := pem.Decode(kb)
			if blk == nil || blk.Type != "PRIVATE KEY" {
				t.Fatalf("key file %q is not a PKCS#8 PEM key", kb)
			}
			key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			mustDo(t, err)
			cblk, _ := pem.Decode(cb)
			cert, err := x509.ParseCertificate(cblk.Bytes)
			mustDo(t, err)
			if !key.(interface{ Public() crypto.PublicKey }).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
				t.Error("the key does not match the certificate")
			}
		})
	}
}

func TestAttestFails(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL + "/v1/"
	closed.Close()
	tests := []struct {
		name    string
		edit    func(*enclave.Manifest)
		agent   func(*fakeAgent)
		url     string // NODE_AGENT_BASE_URL; the fake agent's if empty, none if "-"
		damage  func(t *testing.T, root string)
		wantErr string
	}{
		{name: "no NODE_AGENT_BASE_URL", url: "-",
			wantErr: "the image needs a certificate for app.example, but NODE_AGENT_BASE_URL is not set: start the container with NODE_AGENT_BASE_URL=http://<node>:9092/v1/"},
		{name: "not a URL", url: "ftp://node/v1/", wantErr: `NODE_AGENT_BASE_URL="ftp://node/v1/" is not an http(s) URL of the node agent`},
		{name: "agent unreachable", url: closedURL,
			wantErr: "getting a nonce: the node agent at " + closedURL + " cannot be reached"},
		{name: "not simulation, not Gramine", agent: func(a *fakeAgent) { a.simulation = false },
			wantErr: "the node agent is not in simulation mode, and /dev/attestation does not exist: the enclave is not running under Gramine-SGX"},
		{name: "Gramine without attestation", agent: func(a *fakeAgent) { a.simulation = false },
			damage:  func(t *testing.T, root string) { fakeGramine(t, root, "none") },
			wantErr: `the attestation type Gramine reports is "none", want "dcap": set sgx.remote_attestation = "dcap"`},
		{name: "Gramine without a quote", agent: func(a *fakeAgent) { a.simulation = false },
			damage: func(t *testing.T, root string) {
				fakeGramine(t, root, "dcap")
				mustDo(t, os.Remove(filepath.Join(root, "dev/attestation/quote")))
			},
			wantErr: "obtaining the quote from Gramine: reading /dev/attestation/quote"},
		{name: "attest refused", agent: func(a *fakeAgent) { a.refuse = "POST /v1/enclave/attest" },
			wantErr: "quoting the enclave: the node agent refused (403 Forbidden): the domain app.example is not approved"},
		{name: "certificate refused", agent: func(a *fakeAgent) { a.refuse = "POST /v1/certificate/issue" },
			wantErr: "the certificate was refused (403 Forbidden): the domain app.example is not approved for this account"},
		{name: "wrong path", url: "{agent}/nope/", wantErr: "getting a nonce: the node agent refused (404 Not Found): no such resource: /nope/enclave/target-info"},
		{name: "unknown key type", edit: func(m *enclave.Manifest) { m.Certificate.KeyType = "dsa-1024" },
			wantErr: `key type "dsa-1024" in the enclave manifest is not one of`},
		{name: "no app id", edit: func(m *enclave.Manifest) { m.AppID = "" }, wantErr: "the enclave manifest has no app_id"},
		{name: "no SIGSTRUCT", damage: func(t *testing.T, root string) { mustDo(t, os.Remove(filepath.Join(root, enclave.SigStructPath))) },
			wantErr: "reading /opt/cloister/app.sig"},
		{name: "SIGSTRUCT with a bad signature", damage: func(t *testing.T, root string) {
			p := filepath.Join(root, enclave.SigStructPath)
			b, err := os.ReadFile(p)
			mustDo(t, err)
			b[1026]++ // ISVSVN, under the signature
			mustDo(t, os.WriteFile(p, b, 0o644))
		}, wantErr: "/opt/cloister/app.sig: sgx: SIGSTRUCT SIGNATURE"},
		{name: "SIGSTRUCT of a debug enclave", damage: func(t *testing.T, root string) {
			gb, err := os.ReadFile(filepath.Join(root, enclave.GramineManifestPath))
			mustDo(t, err)
			g, err := gramine.Measure(gb, gramine.StandInELF("libpal.so"))
			mustDo(t, err)
			f := g.SigStructFields(time.Now())
			f.Attributes[0] |= 0x2 // DEBUG, which the manifest does not ask for
			ss, err := sgx.SignSigStruct(f, signingKey(t))
			mustDo(t, err)
			mustDo(t, os.WriteFile(filepath.Join(root, enclave.SigStructPath), ss, 0o644))
		}, wantErr: "its attributes, ISVPRODID or ISVSVN are not the Gramine manifest's"},
		{name: "simulating agent, launcher in an enclave", damage: func(t *testing.T, root string) { fakeGramine(t, root, "dcap") },
			wantErr: "simulates SGX, but this launcher runs inside a Gramine enclave"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, mr := certImage(t, tt.edit)
			if tt.damage != nil {
				tt.damage(t, root)
			}
			a, srv := newFakeAgent(t, mr)
			if tt.agent != nil {
				// Under the lock the handler takes: the race detector does not
				// see the order a request over a socket gives.
				a.mu.Lock()
				tt.agent(a)
				a.mu.Unlock()
			}
			var env []string
			switch {
			case tt.url == "":
				env = []string{"NODE_AGENT_BASE_URL=" + srv.URL + "/v1"} // no final slash: added
			case tt.url != "-":
				env = []string{"NODE_AGENT_BASE_URL=" + strings.Replace(tt.url, "{agent}", srv.URL, 1)}
			}
			stdout, stderr, code := launch(t, env, "--root", root)
			if code != exitAttest || !strings.Contains(stderr, "cloister-launcher: ") || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("launcher = %d, stderr %q; want %d, %q", code, stderr, exitAttest, tt.wantErr)
			}
			if stdout != "" {
				t.Errorf("the application ran: %q", stdout)
			}
			if _, err := os.Lstat(filepath.Join(root, "run/tls/key.pem")); err == nil {
				t.Error("a key was written")
			}
		})
	}
}

// gramineQuoteBytes is what the fake Gramine's quote file holds.
var gramineQuoteBytes = []byte("a DCAP quote from Gramine")

// fakeGramine lays out Gramine's /dev/attestation under root with the
// given attestation type: files where Gramine has pseudo-files.
func fakeGramine(t *testing.T, root, kind string) {
	t.Helper()
	dir := filepath.Join(root, "dev", "attestation")
	mustDo(t, os.MkdirAll(dir, 0o755))
	mustDo(t, os.WriteFile(filepath.Join(dir, "attestation_type"), []byte(kind), 0o444))
	mustDo(t, os.WriteFile(filepath.Join(dir, "user_report_data"), nil, 0o644))
	mustDo(t, os.WriteFile(filepath.Join(dir, "quote"), gramineQuoteBytes, 0o444))
}

// Under Gramine (the agent not in simulation), the launcher writes the
// key's hash and the nonce as Gramine's user report data and passes the
// quote Gramine gives to the agent, which never quotes anything itself.
func TestAttestGramine(t *testing.T) {
	root, mr := certImage(t, nil)
	fakeGramine(t, root, "dcap")
	a, srv := newFakeAgent(t, mr)
	a.mu.Lock()
	a.simulation, a.gramine = false, root
	a.mu.Unlock()
	stdout, stderr, code := launch(t, []string{"NODE_AGENT_BASE_URL=" + srv.URL + "/v1/"}, "--root", root)
	if code != 0 || !strings.Contains(stdout, "arg=default-1") {
		t.Fatalf("launcher = %d, stdout %q, stderr %q; want the application to run", code, stdout, stderr)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.chain == "" {
		t.Fatal("no certificate was issued")
	}
	if cb, _ := os.ReadFile(filepath.Join(root, "run/tls/cert.pem")); string(cb) != a.chain {
		t.Fatalf("certificate file %q, want the chain", cb)
	}
}

// Without a certificate in the manifest, the launcher never calls the
// agent, even when NODE_AGENT_BASE_URL is set.
func TestNoCertificateNoAttestation(t *testing.T) {
	root, mr := certImage(t, func(m *enclave.Manifest) { m.Certificate = nil })
	a, srv := newFakeAgent(t, mr)
	stdout, stderr, code := launch(t, []string{"NODE_AGENT_BASE_URL=" + srv.URL + "/v1/"}, "--root", root)
	if code != 0 || !strings.Contains(stdout, "arg=default-1") {
		t.Fatalf("launcher = %d, stdout %q, stderr %q; want the application to run", code, stdout, stderr)
	}
	if n := a.calls.Load(); n != 0 {
		t.Errorf("the launcher called the agent %d times, want none", n)
	}
}

func TestEncodeReportBody(t *testing.T) {
	var b sgx.ReportBody
	fill := func(p []byte) { rand.Read(p) }
	fill(b.CPUSVN[:])
	fill(b.ISVExtProdID[:])
	fill(b.Attributes[:])
	fill(b.MRENCLAVE[:])
	fill(b.MRSIGNER[:])
	fill(b.ConfigID[:])
	fill(b.ISVFamilyID[:])
	fill(b.ReportData[:])
	b.MiscSelect, b.ISVProdID, b.ISVSVN, b.ConfigSVN = 0x01020304, 0x0506, 0x0708, 0x090a
	enc := encodeReportBody(b)
	if len(enc) != sgx.ReportBodySize {
		t.Fatalf("%d bytes, want %d", len(enc), sgx.ReportBodySize)
	}
	back, err := sgx.ParseReportBody(enc)
	if err != nil || back != b {
		t.Fatalf("ParseReportBody(encodeReportBody(b)) = %+v, %v; want %+v", back, err, b)
	}
	// Reserved bytes are zero.
	for _, r := range [][2]int{{20, 32}, {96, 128}, {160, 192}, {262, 304}} {
		if !bytes.Equal(enc[r[0]:r[1]], make([]byte, r[1]-r[0])) {
			t.Errorf("reserved bytes %d to %d are %x", r[0], r[1], enc[r[0]:r[1]])
		}
	}
}

// With secrets in its manifest, the launcher binds a fresh recipient key
// in REPORTDATA, opens the bundle sealed to it, writes every secret to the
// secrets directory (0400, an earlier start's files gone), sets the
// secret environment, and writes each volume key to the stand-in of
// Gramine's /dev/attestation/keys and nowhere else.
func TestAttestSecrets(t *testing.T) {
	withSecrets := func(m *enclave.Manifest) {
		m.Secrets = &enclave.Secrets{Dir: "/run/secrets", Env: []enclave.SecretEnv{{Name: "DB_PASSWORD", Secret: "db-password"}}}
		m.Volumes = []enclave.Volume{{Path: "/srv/data", KeyName: "data-key"}}
	}
	root, mr := certImage(t, withSecrets)
	a, srv := newFakeAgent(t, mr)
	volumeKey := bytes.Repeat([]byte{0xa5}, enclave.VolumeKeySize)
	a.bundle = &enclave.Bundle{Secrets: map[string][]byte{"db-password": []byte("hunter2"), "api.key": []byte("k-123")},
		VolumeKeys: map[string][]byte{"data-key": volumeKey}}
	stale := filepath.Join(root, "run/secrets/deleted-since")
	mustDo(t, os.MkdirAll(filepath.Dir(stale), 0o700))
	mustDo(t, os.WriteFile(stale, []byte("old"), 0o400))
	keys := t.TempDir()
	stdout, stderr, code := launch(t, []string{"NODE_AGENT_BASE_URL=" + srv.URL + "/v1/"}, "--root", root, "--volume-keys-dir", keys)
	if code != 0 || !strings.Contains(stdout, "env=DB_PASSWORD=hunter2\n") {
		t.Fatalf("launcher = %d, stdout %q, stderr %q; want the application to run with DB_PASSWORD", code, stdout, stderr)
	}
	if len(a.recipient) != enclave.RecipientKeySize {
		t.Fatalf("the request's recipient key has %d bytes", len(a.recipient))
	}
	for name, want := range map[string]string{"db-password": "hunter2", "api.key": "k-123"} {
		p := filepath.Join(root, "run/secrets", name)
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
		if m := mode(t, p); m != 0o400 {
			t.Errorf("%s mode %o, want 400", p, m)
		}
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an earlier start's secret file is still there: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(keys, "data-key")); err != nil || !bytes.Equal(b, volumeKey) {
		t.Errorf("the volume key file = %x, %v; want %x", b, err, volumeKey)
	}
	// Nowhere else: no file under the image's root holds the key.
	mustDo(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, volumeKey) {
			t.Errorf("%s holds the volume key", p)
		}
		return nil
	}))

	// A secret the environment takes that the application does not have:
	// the launcher says which, and the application does not start.
	root2, _ := certImage(t, withSecrets)
	a.mu.Lock()
	a.bundle = &enclave.Bundle{Secrets: map[string][]byte{}, VolumeKeys: map[string][]byte{"data-key": volumeKey}}
	a.mu.Unlock()
	stdout, stderr, code = launch(t, []string{"NODE_AGENT_BASE_URL=" + srv.URL + "/v1/"}, "--root", root2, "--volume-keys-dir", keys)
	if code != exitAttest || !strings.Contains(stderr, "no secret of that name") || strings.Contains(stdout, "arg=") {
		t.Fatalf("launcher = %d, stdout %q, stderr %q; want it refused for the missing secret", code, stdout, stderr)
	}
	// A bundle sealed to another key does not open.
	root3, _ := certImage(t, withSecrets)
	other := &enclave.Bundle{Secrets: map[string][]byte{"db-password": []byte("x")}}
	a.mu.Lock()
	a.bundle = other
	a.mu.Unlock()
	a.mu.Lock()
	a.sealTo = bytes.Repeat([]byte{9}, 32)
	a.mu.Unlock()
	_, stderr, code = launch(t, []string{"NODE_AGENT_BASE_URL=" + srv.URL + "/v1/"}, "--root", root3, "--volume-keys-dir", keys)
	if code != exitAttest || !strings.Contains(stderr, "does not open with this enclave's key") {
		t.Fatalf("launcher = %d, stderr %q; want the foreign bundle refused", code, stderr)
	}
}
