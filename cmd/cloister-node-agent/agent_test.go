package main

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// The tests drive the agent in process against the real gateway and
// services (testGateway).

// testConfig is a config for g with short schedules; start gives it a
// logger.
func testConfig(t *testing.T, g *testGateway, dir string) config {
	t.Helper()
	pub, node := g.urls()
	return config{Server: pub, NodeServer: node, ServerCA: g.serverCA(), JoinToken: g.token, Name: "node-a", DataDir: dir,
		HeartbeatEvery: 50 * time.Millisecond,
		Backoff:        backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		Forward:        retryPolicy{Attempts: 3, Backoff: backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}}}
}

// running is an agent started by start.
type running struct {
	*agent
	url    string // base of the local API, ending in /v1
	logs   *testkit.Logs
	cancel context.CancelFunc
	done   chan error
}

// start runs an agent with cfg (its Logger replaced by one into the
// returned logs) on a free loopback port, and stops it at the end of the
// test.
func start(t *testing.T, cfg config) *running {
	t.Helper()
	logs := &testkit.Logs{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	a, err := newAgent(cfg)
	if err != nil {
		t.Fatalf("newAgent() = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{agent: a, url: "http://" + ln.Addr().String() + "/v1", logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Errorf("the agent did not stop within 15 s of its context ending")
		}
		if t.Failed() {
			t.Logf("agent logs:\n%s", logs)
		}
	})
	return r
}

// stop ends the agent's context and returns what run returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

// wait returns what run returns, failing the test if it runs on.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("run did not return within 15 s")
		return nil
	}
}

// enrolled waits until the agent's health says it is enrolled.
func (r *running) enrolled(t *testing.T) healthAnswer {
	t.Helper()
	var h healthAnswer
	eventually(t, "the agent is enrolled", func() bool {
		status, _ := getJSON(t, r.url+"/health", &h)
		return status == http.StatusOK && h.Enrolled
	})
	return h
}

// eventually polls cond until it holds, for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s, and still not: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func getJSON(t *testing.T, u string, out any) (int, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: decoding the answer: %v", u, err)
		}
	}
	return resp.StatusCode, resp.Header
}

func postJSON(t *testing.T, u string, body any, out any) (int, http.Header) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("POST %s: decoding the answer: %v", u, err)
		}
	}
	return resp.StatusCode, resp.Header
}

// launcherRequest is what a launcher sends to /v1/certificate/issue.
func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func readRecord(t *testing.T, dir string) nodeRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, nodeFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec nodeRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("%s: %v", nodeFile, err)
	}
	return rec
}

func readChain(t *testing.T, dir string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, chainFile))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := parseChain(b)
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

// noSecrets fails the test if the logs hold the join token or a key.
func noSecrets(t *testing.T, logs, token string) {
	t.Helper()
	if strings.Contains(logs, token) || strings.Contains(logs, strings.TrimPrefix(token, "cjt_")) {
		t.Errorf("the logs hold the join token:\n%s", logs)
	}
	if strings.Contains(logs, "PRIVATE KEY") {
		t.Errorf("the logs hold a private key:\n%s", logs)
	}
}

func TestEnrolmentWritesIdentity(t *testing.T) {
	g := newTestGateway(t)
	dir := filepath.Join(t.TempDir(), "agent") // created by the agent
	r := start(t, testConfig(t, g, dir))
	h := r.enrolled(t)
	if err := r.stop(t); err != nil {
		t.Fatalf("run() after a cancel = %v, want nil", err)
	}

	rec := readRecord(t, dir)
	if n := g.GetNode(g.admin, g.account, rec.ID); n.Name != "node-a" || n.Status != "active" {
		t.Errorf("the gateway knows node %s as %+v, want node-a, active", rec.ID, n)
	}
	if rec.Account != g.account || rec.Name != "node-a" || rec.Server != g.public.URL || rec.EnrolledAt.IsZero() {
		t.Errorf("%s = %+v, want a node of %s named node-a, enrolled with %s", nodeFile, rec, g.account, g.public.URL)
	}
	if h.NodeID != rec.ID || h.AccountID != rec.Account {
		t.Errorf("health = %+v, want node %s of %s", h, rec.ID, rec.Account)
	}
	chain := readChain(t, dir)
	root, issuer := g.authorities()
	if len(chain) != 3 || !chain[1].Equal(issuer) || !chain[2].Equal(root) {
		t.Errorf("%s holds %d certificates, want the node's, the issuing CA and the root", chainFile, len(chain))
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(chain[0].PublicKey) || key.Curve != elliptic.P256() {
		t.Errorf("%s is not the P-256 key of the node's certificate", keyFile)
	}
	for name, want := range map[string]os.FileMode{keyFile: 0o600, chainFile: 0o644, nodeFile: 0o644, ".": 0o700 | os.ModeDir} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode() != want {
			t.Errorf("mode of %s = %v (%v), want %v", name, fi.Mode(), err, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{chainFile, keyFile, nodeFile}; !slices.Equal(names, want) {
		t.Errorf("the data directory holds %q, want %q (no temporary files)", names, want)
	}

	g.mu.Lock()
	sent := g.enrolled[0]
	g.mu.Unlock()
	csrBlock, _ := pem.Decode([]byte(sent.CSR))
	csr, err := x509.ParseCertificateRequest(csrBlock.Bytes)
	if err != nil || !key.PublicKey.Equal(csr.PublicKey) {
		t.Errorf("the enrolment's CSR is not for the saved key (%v)", err)
	}
	if sent.NodeName != "node-a" || sent.JoinToken != g.token {
		t.Errorf("enrolment sent name %q and another token, want node-a and the join token", sent.NodeName)
	}
	noSecrets(t, r.logs.String(), g.token)
}

// TestEnrolmentDefaultNames: without --name, a node enrolled with a
// token for several nodes is named after its host, and one enrolled with a
// token for one node after the token; the identity keeps the server's
// name.
func TestEnrolmentDefaultNames(t *testing.T) {
	g := newTestGateway(t)
	for _, tc := range []struct {
		name    string
		maxUses uint32
		want    string
	}{{"token for many", 10, "host-a"}, {"token for one", 1, "rack-7"}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, g, dir)
			cfg.Name, cfg.HostName = "", "host-a"
			cfg.JoinToken = g.JoinToken(g.admin, g.account, api.CreateJoinToken{Name: "rack-7", MaxUses: tc.maxUses}).Secret
			r := start(t, cfg)
			r.enrolled(t)
			if err := r.stop(t); err != nil {
				t.Fatal(err)
			}
			rec := readRecord(t, dir)
			if n := g.GetNode(g.admin, g.account, rec.ID); n.Name != tc.want || rec.Name != tc.want {
				t.Errorf("the node is %q to the gateway and %q in %s, want %q", n.Name, rec.Name, nodeFile, tc.want)
			}
		})
	}
}

func TestRestartKeepsIdentity(t *testing.T) {
	g := newTestGateway(t)
	dir := t.TempDir()
	first := start(t, testConfig(t, g, dir))
	first.enrolled(t)
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	before := readChain(t, dir)[0]
	nodeID := readRecord(t, dir).ID
	_, beatsBefore := g.counts()

	cfg := testConfig(t, g, dir)
	cfg.JoinToken = "" // not needed any more
	second := start(t, cfg)
	h := second.enrolled(t)
	eventually(t, "the restarted agent sends a heartbeat", func() bool { _, n := g.counts(); return n > beatsBefore })

	if enrolls, _ := g.counts(); enrolls != 1 {
		t.Errorf("enrolments after a restart = %d, want 1", enrolls)
	}
	if h.NodeID != nodeID {
		t.Errorf("node after a restart = %q, want %s", h.NodeID, nodeID)
	}
	beats := g.heartbeats()
	last := beats[len(beats)-1]
	if last.Node != nodeID || last.Serial != before.SerialNumber.Text(16) {
		t.Errorf("heartbeat after a restart from %s with certificate %s, want %s with %s", last.Node, last.Serial, nodeID, before.SerialNumber.Text(16))
	}
	if !readChain(t, dir)[0].Equal(before) {
		t.Errorf("the restart replaced the node's certificate")
	}
}

func TestEnrolmentRetriesWhileServerUnavailable(t *testing.T) {
	g := newTestGateway(t)
	g.failFirst = 1 << 30
	r := start(t, testConfig(t, g, t.TempDir()))
	eventually(t, "three enrolment attempts", func() bool { n, _ := g.counts(); return n >= 3 })

	var h healthAnswer
	if status, _ := getJSON(t, r.url+"/health", &h); status != http.StatusServiceUnavailable || h.Enrolled || h.Status != "enrolling" {
		t.Errorf("health while enrolling = %d %+v, want 503, enrolling", status, h)
	}
	var p api.Problem
	if status, _ := getJSON(t, r.url+"/enclave/target-info", &p); status != http.StatusServiceUnavailable || p.Detail != detailNotEnrolled {
		t.Errorf("target-info while enrolling = %d %q, want 503 %q", status, p.Detail, detailNotEnrolled)
	}

	g.mu.Lock()
	g.failFirst = 0
	g.mu.Unlock()
	r.enrolled(t)
	if !strings.Contains(r.logs.String(), "enrolment failed; retrying") {
		t.Errorf("the logs do not show the retries:\n%s", r.logs)
	}
	noSecrets(t, r.logs.String(), g.token)
}

func TestHeartbeatCarriesCertificateAndInstances(t *testing.T) {
	g := newTestGateway(t)
	hello := g.approvedHello()
	dir := t.TempDir()
	r := start(t, testConfig(t, g, dir))
	r.enrolled(t)
	eventually(t, "a first heartbeat", func() bool { _, n := g.counts(); return n > 0 })
	first := g.heartbeats()[0]
	nodeID := readRecord(t, dir).ID
	serial := readChain(t, dir)[0].SerialNumber.Text(16)
	if first.Node != nodeID || first.Serial != serial || len(first.Instances) != 0 {
		t.Errorf("first heartbeat = %+v, want %s with certificate %s and no instances", first, nodeID, serial)
	}

	_, answer := g.issue(r, hello)
	instanceID, _ := answer["instance_id"].(string)
	var got seenHeartbeat
	eventually(t, "a heartbeat with the instance", func() bool {
		beats := g.heartbeats()
		got = beats[len(beats)-1]
		return len(got.Instances) == 1
	})
	in := got.Instances[0]
	certSerial, _ := answer["certificate"].(map[string]any)["serial"].(string)
	if got.Serial != serial || in.ID != instanceID || in.AppID != hello.AppID || in.ImageID != hello.ImageID || in.MRENCLAVE != helloMRENCLAVEHex ||
		in.Status != "running" || time.Since(in.StartedAt) > time.Minute || certSerial == "" || in.CertificateSerial != certSerial {
		t.Errorf("heartbeat = %+v, want certificate %s and instance %s of %s, %s, %s, running, started just now",
			got, serial, instanceID, hello.AppID, hello.ImageID, helloMRENCLAVEHex)
	}
	// The gateway recorded the instance the heartbeat reported.
	eventually(t, "the gateway lists the instance", func() bool {
		n := g.GetNode(g.admin, g.account, nodeID)
		return len(n.Instances) == 1 && n.Instances[0].ID == instanceID && n.Instances[0].Status == "running"
	})
}

func TestHeartbeatRefused(t *testing.T) {
	t.Run("401 stops the agent", func(t *testing.T) {
		g := newTestGateway(t)
		g.beatErr = &api.Problem{Status: http.StatusUnauthorized, Detail: "the node is deregistered"}
		dir := t.TempDir()
		r := start(t, testConfig(t, g, dir))
		err := r.wait(t)
		if code := exitCode(err); code != exitDeregistered {
			t.Fatalf("exit code after a 401 heartbeat = %d (%v), want %d", code, err, exitDeregistered)
		}
		for _, want := range []string{"the node is deregistered", "deregistered or its certificate revoked", dir, "new join token"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error = %q, want it to say %q", err, want)
			}
		}
		if _, beats := g.counts(); beats != 1 {
			t.Errorf("heartbeats after a 401 = %d, want 1 (no retry)", beats)
		}
	})
	t.Run("503 is retried", func(t *testing.T) {
		g := newTestGateway(t)
		g.beatErr = &api.Problem{Status: http.StatusServiceUnavailable, Detail: "the node registry is unavailable"}
		r := start(t, testConfig(t, g, t.TempDir()))
		eventually(t, "three heartbeat attempts", func() bool { _, n := g.counts(); return n >= 3 })
		select {
		case err := <-r.done:
			t.Fatalf("run() = %v after a 503 heartbeat, want it to go on", err)
		default:
		}
		g.mu.Lock()
		g.beatErr = nil
		g.mu.Unlock()
		eventually(t, "a heartbeat that succeeds", func() bool {
			var h healthAnswer
			getJSON(t, r.url+"/health", &h)
			return h.LastHeartbeat != nil
		})
		if logs := r.logs.String(); !strings.Contains(logs, "heartbeat failed; retrying") || !strings.Contains(logs, "heartbeats resumed") {
			t.Errorf("the logs do not show the retries and the recovery:\n%s", logs)
		}
	})
}

func TestHealthAndTargetInfo(t *testing.T) {
	for _, simulation := range []bool{false, true} {
		t.Run(map[bool]string{false: "hardware", true: "simulation"}[simulation], func(t *testing.T) {
			g := newTestGateway(t)
			dir := t.TempDir()
			cfg := testConfig(t, g, dir)
			cfg.Simulation = simulation
			r := start(t, cfg)
			r.enrolled(t)
			if simulation {
				eventually(t, "the agent has its simulated QE", func() bool { return r.qe.Load() != nil })
			}

			var h map[string]any
			nodeID := readRecord(t, dir).ID
			if status, _ := getJSON(t, r.url+"/health", &h); status != http.StatusOK || h["status"] != "ok" || h["node_id"] != nodeID ||
				h["enrolled"] != true || h["simulation"] != simulation || h["ready"] != true {
				t.Errorf("GET /v1/health = %d %v, want 200 ok, %s, enrolled, ready, simulation %v", status, h, nodeID, simulation)
			}

			var ti map[string]any
			status, hdr := getJSON(t, r.url+"/enclave/target-info", &ti)
			nonce, _ := ti["nonce"].(string)
			raw, err := base64.StdEncoding.DecodeString(nonce)
			g.mu.Lock()
			nonces := slices.Clone(g.nonces)
			g.mu.Unlock()
			if status != http.StatusOK || hdr.Get("Content-Type") != "application/json" || err != nil || len(raw) != 32 ||
				len(nonces) != 1 || nonces[0] != nonce {
				t.Errorf("GET /v1/enclave/target-info = %d %v, want 200 and the 32-byte nonce the server gave (%q)", status, ti, nonces)
			}
			if _, ok := ti["expires_at"]; !ok {
				t.Errorf("target-info = %v, want the nonce's expires_at", ti)
			}
			if sim, _ := ti["simulation"].(bool); sim != simulation {
				t.Errorf("target-info simulation = %v, want %v", ti["simulation"], simulation)
			}
			info, _ := ti["target_info"].(string)
			rawInfo, err := base64.StdEncoding.DecodeString(info)
			if simulation && (err != nil || !bytes.Equal(rawInfo, r.qe.Load().TargetInfo())) || !simulation && info != "" {
				t.Errorf("target-info target_info = %q, want the simulated QE's only in simulation", info)
			}
			if simulation {
				eventually(t, "the agent re-attests", func() bool { return len(g.attestations()) == 1 })
			} else if n := len(g.attestations()); n != 0 {
				t.Errorf("a node agent without --simulation re-attested %d times, want none", n)
			}
		})
	}
}

func TestIssueForwardsAndRecords(t *testing.T) {
	g := newTestGateway(t)
	hello := g.approvedHello()
	dir := t.TempDir()
	r := start(t, testConfig(t, g, dir))
	r.enrolled(t)

	req, raw := g.issue(r, hello)
	b, _ := json.Marshal(raw)
	var answer struct {
		InstanceID  string          `json:"instance_id"`
		Certificate api.Certificate `json:"certificate"`
		ChainPEM    string          `json:"chain_pem"`
		Verdict     api.Verdict     `json:"verdict"`
	}
	if err := json.Unmarshal(b, &answer); err != nil {
		t.Fatal(err)
	}
	nodeID := readRecord(t, dir).ID
	if !strings.HasPrefix(answer.InstanceID, "inst-") || answer.Certificate.ImageID != hello.ImageID || answer.Certificate.NodeID != nodeID ||
		!answer.Verdict.OK || !answer.Verdict.Simulated || answer.Verdict.MRENCLAVE != helloMRENCLAVEHex ||
		len(answer.Certificate.DNSNames) != 1 || answer.Certificate.DNSNames[0] != helloDomain ||
		!strings.Contains(answer.ChainPEM, "BEGIN CERTIFICATE") || !strings.HasPrefix(answer.ChainPEM, answer.Certificate.PEM) {
		t.Errorf("issue answer = %+v, want the CA's certificate for %s, its chain and the verdict plus an instance_id", answer, helloDomain)
	}

	g.mu.Lock()
	issues := slices.Clone(g.issues)
	g.mu.Unlock()
	last := issues[len(issues)-1]
	if last.Node != nodeID || last.Body.AppID != req.AppID || last.Body.CSR != req.CSR || !bytes.Equal(last.Body.Quote, req.Quote) {
		t.Errorf("the server received %+v last, want an issuance from %s with the launcher's app_id, CSR and quote", last, nodeID)
	}

	var h healthAnswer
	getJSON(t, r.url+"/health", &h)
	if h.Instances != 1 {
		t.Errorf("health instances = %d, want 1", h.Instances)
	}
	if got := r.snapshot(); len(got) != 1 || got[0].ID != answer.InstanceID || got[0].AppID != hello.AppID || got[0].MRENCLAVE != helloMRENCLAVEHex {
		t.Errorf("recorded instances = %+v, want %s of %s", got, answer.InstanceID, hello.AppID)
	}
}

func TestIssueServerRefusals(t *testing.T) {
	t.Run("a refusal is passed on", func(t *testing.T) {
		g := newTestGateway(t)
		g.issueErr = &api.Problem{Status: http.StatusForbidden, Detail: "the image is not approved for this account"}
		r := start(t, testConfig(t, g, t.TempDir()))
		r.enrolled(t)
		var p api.Problem
		status, hdr := postJSON(t, r.url+"/certificate/issue", opaqueRequest(t), &p)
		if status != http.StatusForbidden || p.Status != http.StatusForbidden || p.Detail != g.issueErr.Detail ||
			hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("issue refused by the server = %d %+v, want 403 with the server's detail", status, p)
		}
		if n := len(r.snapshot()); n != 0 {
			t.Errorf("instances after a refusal = %d, want 0", n)
		}
	})
	t.Run("401 means the node is no longer accepted", func(t *testing.T) {
		g := newTestGateway(t)
		r := start(t, testConfig(t, g, t.TempDir()))
		r.enrolled(t)
		eventually(t, "a first heartbeat", func() bool { _, n := g.counts(); return n > 0 })
		g.mu.Lock()
		g.issueErr = &api.Problem{Status: http.StatusUnauthorized, Detail: "the certificate is not the node's current one"}
		g.beatErr = g.issueErr
		g.mu.Unlock()
		var p api.Problem
		if status, _ := postJSON(t, r.url+"/certificate/issue", opaqueRequest(t), &p); status != http.StatusServiceUnavailable || p.Detail != detailNotAccepted {
			t.Errorf("issue refused with 401 = %d %q, want 503 %q", status, p.Detail, detailNotAccepted)
		}
		if code := exitCode(r.wait(t)); code != exitDeregistered {
			t.Errorf("exit code = %d, want %d", code, exitDeregistered)
		}
	})
}

func TestIssueServerDown(t *testing.T) {
	g := newTestGateway(t)
	r := start(t, testConfig(t, g, t.TempDir()))
	r.enrolled(t)
	g.node.Close()

	var p api.Problem
	status, hdr := postJSON(t, r.url+"/certificate/issue", opaqueRequest(t), &p)
	if status != http.StatusServiceUnavailable || p.Status != http.StatusServiceUnavailable || p.Detail != detailUnreachable ||
		hdr.Get("Content-Type") != "application/problem+json" {
		t.Errorf("issue with the server down = %d %+v, want 503 %q", status, p, detailUnreachable)
	}
	if status, _ := getJSON(t, r.url+"/enclave/target-info", &p); status != http.StatusServiceUnavailable || p.Detail != detailUnreachable {
		t.Errorf("target-info with the server down = %d %+v, want 503 %q", status, p, detailUnreachable)
	}
	if n := len(r.snapshot()); n != 0 {
		t.Errorf("instances after a failed issuance = %d, want 0", n)
	}
	// Three attempts: two failures logged with a retry, then the answer.
	if n := strings.Count(r.logs.String(), `"msg":"calling the server for an enclave failed; retrying","op":"certificate"`); n != 2 {
		t.Errorf("the issuance was retried %d times, want 2; logs:\n%s", n, r.logs)
	}
	select {
	case err := <-r.done:
		t.Fatalf("run() = %v with the server down, want it to go on", err)
	default:
	}
}

func TestLocalAPIRoutes(t *testing.T) {
	g := newTestGateway(t)
	r := start(t, testConfig(t, g, t.TempDir()))
	r.enrolled(t)
	noQuote := opaqueRequest(t)
	noQuote.Quote = nil
	tests := []struct {
		name, method, path string
		body               any
		status             int
		detail             string
	}{
		{"result of a task", "GET", "/certificate/result/task-7", nil, http.StatusNotFound, "synchronously"},
		{"attest without --simulation", "POST", "/enclave/attest", map[string]any{"report_body": b64(make([]byte, 384))}, http.StatusNotImplemented, "only in simulation mode"},
		{"unknown route", "GET", "/v1/nope", nil, http.StatusNotFound, "no such resource"},
		{"wrong method", "GET", "/certificate/issue", nil, http.StatusMethodNotAllowed, "use POST"},
		{"unknown field", "POST", "/certificate/issue", map[string]any{"app_id": "a", "csr": "c", "quote": "cXVvdGU=", "extra": 1}, http.StatusBadRequest, "unknown field"},
		{"no quote", "POST", "/certificate/issue", noQuote, http.StatusBadRequest, "quote is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rd io.Reader
			if tt.body != nil {
				b, _ := json.Marshal(tt.body)
				rd = bytes.NewReader(b)
			}
			req, _ := http.NewRequest(tt.method, r.url+strings.TrimPrefix(tt.path, "/v1"), rd)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p api.Problem
			_ = json.NewDecoder(resp.Body).Decode(&p)
			if resp.StatusCode != tt.status || p.Status != tt.status || !strings.Contains(p.Detail, tt.detail) ||
				resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s %s = %d %+v, want %d with a problem saying %q", tt.method, tt.path, resp.StatusCode, p, tt.status, tt.detail)
			}
		})
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.issues) != 0 {
		t.Errorf("bad requests reached the server: %+v", g.issues)
	}
}

func TestLoadIdentity(t *testing.T) {
	g := newTestGateway(t)
	enrolledDir := t.TempDir()
	r := start(t, testConfig(t, g, enrolledDir))
	r.enrolled(t)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	expires := readChain(t, enrolledDir)[0].NotAfter
	nodeID := readRecord(t, enrolledDir).ID

	tests := []struct {
		name   string
		tamper func(dir string) error
		now    time.Time
		code   int // 0: loads
	}{
		{"intact", func(string) error { return nil }, time.Now(), 0},
		{"no key", func(dir string) error { return os.Remove(filepath.Join(dir, keyFile)) }, time.Now(), exitConfig},
		{"bad node.json", func(dir string) error { return os.WriteFile(filepath.Join(dir, nodeFile), []byte("{"), 0o644) }, time.Now(), exitConfig},
		{"another node", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, nodeFile), []byte(`{"id":"node-9","account":"acct-1","name":"x"}`), 0o644)
		}, time.Now(), exitConfig},
		{"another key", func(dir string) error {
			k, _, err := newKey("x")
			if err != nil {
				return err
			}
			der, _ := x509.MarshalPKCS8PrivateKey(k)
			return os.WriteFile(filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		}, time.Now(), exitConfig},
		{"expired", func(string) error { return nil }, expires.Add(time.Second), exitDeregistered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{keyFile, chainFile, nodeFile} {
				b, err := os.ReadFile(filepath.Join(enrolledDir, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := tt.tamper(dir); err != nil {
				t.Fatal(err)
			}
			id, err := loadIdentity(dir, tt.now)
			if code := exitCode(err); code != tt.code || tt.code == 0 && (id == nil || id.record.ID != nodeID) {
				t.Errorf("loadIdentity() = %v, exit code %d, want exit code %d", err, code, tt.code)
			}
		})
	}
	if id, err := loadIdentity(t.TempDir(), time.Now()); id != nil || err != nil {
		t.Errorf("loadIdentity(empty dir) = %v, %v, want nil, nil", id, err)
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{Min: time.Second, Max: 30 * time.Second}
	tests := []struct {
		n        int
		low, top time.Duration
	}{
		{0, time.Second, 1250 * time.Millisecond},
		{1, 1500 * time.Millisecond, 2500 * time.Millisecond},
		{3, 6 * time.Second, 10 * time.Second},
		{5, 22500 * time.Millisecond, 30 * time.Second},
		{50, 22500 * time.Millisecond, 30 * time.Second},
	}
	for _, tt := range tests {
		for range 200 {
			if d := b.delay(tt.n); d < tt.low || d > tt.top {
				t.Fatalf("delay(%d) = %v, want from %v to %v", tt.n, d, tt.low, tt.top)
			}
		}
	}
}

// TestSimulatedAttest: with --simulation the agent fetches a QE once
// enrolled (retrying while the server refuses) and quotes report bodies
// with it; the quotes verify against the server's simulation root.
func TestSimulatedAttest(t *testing.T) {
	g := newTestGateway(t)
	g.qeErr = &api.Problem{Status: http.StatusForbidden, Detail: "simulation is not allowed by the account's policy"}
	cfg := testConfig(t, g, t.TempDir())
	cfg.Simulation = true
	r := start(t, cfg)
	r.enrolled(t)

	body := make([]byte, sgx.ReportBodySize)
	body[48] = sgx.AttributeInit | sgx.AttributeMode64 // ATTRIBUTES
	for i := range 32 {
		body[64+i] = 0xa0 + byte(i) // MRENCLAVE
	}
	binary.LittleEndian.PutUint16(body[256:], 7) // ISVPRODID
	copy(body[320:], "hash of the enclave's key")

	eventually(t, "the agent asked for a QE twice", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.qeCalls >= 2
	})
	var p api.Problem
	if status, _ := postJSON(t, r.url+"/enclave/attest", map[string]any{"report_body": body}, &p); status != http.StatusServiceUnavailable || p.Detail != detailNoQE {
		t.Fatalf("attest before the QE = %d %+v, want 503 %q", status, p, detailNoQE)
	}
	if status, _ := getJSON(t, r.url+"/enclave/target-info", &p); status != http.StatusServiceUnavailable || p.Detail != detailNoQE {
		t.Fatalf("target-info before the QE = %d %+v, want 503 %q", status, p, detailNoQE)
	}
	var h healthAnswer
	if status, _ := getJSON(t, r.url+"/health", &h); status != http.StatusOK || !h.Enrolled || h.Ready {
		t.Fatalf("health before the QE = %d %+v, want 200, enrolled, not ready", status, h)
	}
	g.mu.Lock()
	g.qeErr = nil
	g.mu.Unlock()
	eventually(t, "the agent has its simulated QE", func() bool { return r.qe.Load() != nil })
	if !strings.Contains(r.logs.String(), "simulation is not allowed by the account") {
		t.Errorf("the agent's logs do not say why the QE was refused")
	}

	var out struct {
		Quote      []byte
		Simulation bool
	}
	if status, _ := postJSON(t, r.url+"/enclave/attest", map[string]any{"report_body": body}, &out); status != http.StatusOK || !out.Simulation {
		t.Fatalf("attest = %d %+v, want 200 with a simulated quote", status, out)
	}
	// The deployment's attestation service verifies the quote.
	v := g.verify(out.Quote)
	want, _ := sgx.ParseReportBody(body)
	if !v.OK || !v.Simulated || v.MRENCLAVE != hex.EncodeToString(want.MRENCLAVE[:]) || v.ReportData != hex.EncodeToString(want.ReportData[:]) ||
		v.ISVProdID != 7 || v.Debug {
		t.Errorf("the attestation service's verdict on the agent's quote = %+v, want the report body's identity", v)
	}
	g.mu.Lock()
	if len(g.qes) != 1 || !g.qes[0].PCKCertificate().Equal(r.qe.Load().PCKCertificate()) {
		t.Errorf("the agent holds another QE than the one the server gave (%d given)", len(g.qes))
	}
	g.mu.Unlock()

	for _, tc := range []struct {
		name string
		body any
	}{
		{"short body", map[string]any{"report_body": body[:383]}},
		{"no body", map[string]any{}},
		{"unknown field", map[string]any{"report_body": body, "extra": 1}},
	} {
		var p api.Problem
		if status, _ := postJSON(t, r.url+"/enclave/attest", tc.body, &p); status != http.StatusBadRequest {
			t.Errorf("attest with %s = %d %+v, want 400", tc.name, status, p)
		}
	}
}

// TestLocalAPIHostGuard: the local API answers requests that name it by
// IP address, localhost or an allowed name, and refuses any other Host, as
// a page on a domain rebinding to this machine would send.
func TestLocalAPIHostGuard(t *testing.T) {
	g := newTestGateway(t)
	cfg := testConfig(t, g, t.TempDir())
	cfg.AllowedHosts = []string{"node-agent"}
	r := start(t, cfg)
	r.enrolled(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimSuffix(r.url, "/v1"), "http://"))
	for host, want := range map[string]int{
		"127.0.0.1:" + port:          http.StatusOK,
		"localhost:" + port:          http.StatusOK,
		"[::1]:" + port:              http.StatusOK,
		"node-agent:" + port:         http.StatusOK,
		"NODE-AGENT.":                http.StatusOK,
		"rebind.attacker.example":    http.StatusForbidden,
		"evil.example:" + port:       http.StatusForbidden,
		"node-agent.evil.example":    http.StatusForbidden,
		"localhost.attacker.example": http.StatusForbidden,
	} {
		req, _ := http.NewRequest("GET", r.url+"/health", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /v1/health with Host %q = %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// TestLocalAPIUnixSocket: with --listen unix:PATH the local API is a
// socket only its owner and group can open.
func TestLocalAPIUnixSocket(t *testing.T) {
	g := newTestGateway(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	cfg := testConfig(t, g, t.TempDir())
	cfg.Listen = "unix:" + sock
	logs := &testkit.Logs{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	a, err := newAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	eventually(t, "the agent answers on its socket, enrolled", func() bool {
		resp, err := client.Get("http://localhost/v1/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("the socket %s: %v (%v), want a socket with mode 0660", sock, fi.Mode(), err)
	}
	if strings.Contains(logs.String(), "listens beyond loopback") {
		t.Errorf("the agent warns that its socket is beyond loopback")
	}
}

// TestLocalAPIBoundsNonces: a caller asking for nonces in a loop gets
// 429 past the burst, and the server is asked for no more than that. The
// refill is slowed to one an hour, so the count does not depend on how
// fast the test runs.
func TestLocalAPIBoundsNonces(t *testing.T) {
	g := newTestGateway(t)
	cfg := testConfig(t, g, t.TempDir())
	cfg.NonceRate = rate.Every(time.Hour)
	r := start(t, cfg)
	r.enrolled(t)
	limited := 0
	for range nonceBurst * 3 {
		var out map[string]any
		status, hdr := getJSON(t, r.url+"/enclave/target-info", &out)
		if status == http.StatusTooManyRequests {
			limited++
			if hdr.Get("Retry-After") == "" {
				t.Errorf("a 429 without Retry-After")
			}
		}
	}
	g.mu.Lock()
	minted := len(g.nonces)
	g.mu.Unlock()
	if limited != nonceBurst*2 || minted != nonceBurst {
		t.Fatalf("%d of %d target-info calls were refused and the server minted %d nonces; want %d refused and %d minted",
			limited, nonceBurst*3, minted, nonceBurst*2, nonceBurst)
	}
}
