package main

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// TestReattestation: in simulation mode the agent re-attests right after
// it gets the QE, then every ReattestEvery, with a quote whose REPORTDATA
// binds the key of its certificate.
func TestReattestation(t *testing.T) {
	const period = 700 * time.Millisecond
	g := newFakeGateway(t)
	dir := t.TempDir()
	cfg := testConfig(t, g, dir)
	cfg.Simulation = true
	cfg.ReattestEvery = period
	r := start(t, cfg)
	r.enrolled(t)

	eventually(t, "two re-attestations", func() bool { return len(g.attestations()) >= 2 })
	atts := g.attestations()
	g.mu.Lock()
	qeAt := g.qeAt
	g.mu.Unlock()
	if d := atts[0].At.Sub(qeAt); d < 0 || d >= period {
		t.Errorf("the first re-attestation came %v after the QE was handed out, want right away (before the %v period)", d, period)
	}
	if d := atts[1].At.Sub(atts[0].At); d < period {
		t.Errorf("the second re-attestation came %v after the first, want at least the %v period", d, period)
	}

	// The evidence binds the key of the node's certificate, chain.pem's
	// leaf, and is a quote of the server's simulated QE.
	leaf := readChain(t, dir)[0]
	binding := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	want := append(binding[:], make([]byte, 32)...)
	for i, a := range atts[:2] {
		if a.Node != "node-1" || a.Quote == nil || !a.Bound || !bytes.Equal(a.Quote.Body.ReportData[:], want) {
			t.Fatalf("re-attestation %d from %s: quote %v, bound %v; want node-1's quote with REPORTDATA %x", i, a.Node, a.Quote != nil, a.Bound, want)
		}
		if a.Quote.Body.MRENCLAVE != [32]byte{} || a.Quote.Body.MRSIGNER != [32]byte{} || a.Quote.Body.Debug() {
			t.Errorf("re-attestation %d: MRENCLAVE %x, MRSIGNER %x, debug %v; want zero identities, not debug", i,
				a.Quote.Body.MRENCLAVE, a.Quote.Body.MRSIGNER, a.Quote.Body.Debug())
		}
	}
	now := time.Now()
	col, err := g.simRoot.Collateral(sim.DefaultPlatform(), now)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sgx.NewVerifier(g.simRoot.PublicKey(), sim.VerifierOptions()...).Verify(atts[0].Evidence, sgx.Options{At: now, Collateral: col})
	if err != nil {
		t.Fatalf("Verify(the re-attestation evidence) = %v", err)
	}
	if !bytes.Equal(res.ReportData[:], want) {
		t.Errorf("verified REPORTDATA = %x, want %x", res.ReportData, want)
	}

	if logs := r.logs.String(); !strings.Contains(logs, `"msg":"re-attested"`) {
		t.Errorf("the logs do not say the node re-attested:\n%s", logs)
	}
	select {
	case err := <-r.done:
		t.Fatalf("run() = %v, want the agent to go on", err)
	default:
	}
}

// TestReattestationRetried: failures to reach the server and 5xx are
// retried with backoff, well before the next period.
func TestReattestationRetried(t *testing.T) {
	g := newFakeGateway(t)
	g.attestFailFirst = 2
	cfg := testConfig(t, g, t.TempDir())
	cfg.Simulation = true
	cfg.ReattestEvery = time.Hour
	r := start(t, cfg)
	eventually(t, "three re-attestation attempts", func() bool { return len(g.attestations()) >= 3 })
	eventually(t, "the agent logs that it re-attested", func() bool { return strings.Contains(r.logs.String(), `"msg":"re-attested"`) })
	if logs := r.logs.String(); !strings.Contains(logs, "re-attestation failed; retrying") || !strings.Contains(logs, "the attestation service is unavailable") {
		t.Errorf("the logs do not show the retries:\n%s", logs)
	}
	if n := len(g.attestations()); n != 3 {
		t.Errorf("re-attestations = %d, want 3 (two 503s, then one accepted; the next is an hour away)", n)
	}
}

// TestReattestationRefused: a refused re-attestation (403) makes the node
// untrusted; the agent logs the server's reason and sends a heartbeat at
// once, whose 401 stops it with exitDeregistered, long before the next
// scheduled heartbeat.
func TestReattestationRefused(t *testing.T) {
	const reason = "the node's re-attestation was refused (verdict v-9): mrenclave_not_allowed: not in the policy; the node is untrusted"
	g := newFakeGateway(t)
	g.attestErr = &api.Problem{Status: http.StatusForbidden, Detail: reason}
	// Hold the QE back until the first heartbeat has gone, so that only
	// the heartbeat the refusal asks for can stop the agent.
	g.qeErr = &api.Problem{Status: http.StatusServiceUnavailable, Detail: "not yet"}
	cfg := testConfig(t, g, t.TempDir())
	cfg.Simulation = true
	cfg.HeartbeatEvery = time.Hour
	cfg.ReattestEvery = time.Hour
	r := start(t, cfg)
	eventually(t, "the first heartbeat", func() bool { _, n := g.counts(); return n >= 1 })
	g.mu.Lock()
	g.qeErr = nil
	g.mu.Unlock()

	err := r.wait(t)
	if code := exitCode(err); code != exitDeregistered {
		t.Fatalf("exit code after a refused re-attestation = %d (%v), want %d", code, err, exitDeregistered)
	}
	if !strings.Contains(err.Error(), errUntrusted.Detail) {
		t.Errorf("error = %q, want the heartbeat's 401 %q", err, errUntrusted.Detail)
	}
	if logs := r.logs.String(); !strings.Contains(logs, reason) || !strings.Contains(logs, "refused the node's re-attestation") {
		t.Errorf("the logs do not give the server's reason for the refusal:\n%s", logs)
	}
	if n := len(g.attestations()); n != 1 {
		t.Errorf("re-attestations = %d, want 1", n)
	}
	if _, beats := g.counts(); beats != 2 {
		t.Errorf("heartbeats = %d, want 2: the first, and the one the refusal asked for", beats)
	}
}
