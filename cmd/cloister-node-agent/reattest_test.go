package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// TestReattestation: in simulation mode the agent re-attests right after
// it gets the QE, then every ReattestEvery, with a quote whose REPORTDATA
// binds the key of its certificate.
func TestReattestation(t *testing.T) {
	const period = 700 * time.Millisecond
	g := newTestGateway(t)
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
	want := append(binding[:], atts[0].Nonce...)
	nodeID := readRecord(t, dir).ID
	if bytes.Equal(atts[0].Nonce, atts[1].Nonce) {
		t.Fatal("two re-attestations bound the same nonce, want a fresh one each")
	}
	for i, a := range atts[:2] {
		if a.Node != nodeID || a.Quote == nil || !a.Bound {
			t.Fatalf("re-attestation %d from %s: quote %v, bound %v; want %s's quote with REPORTDATA SHA-256 of its key, then its nonce", i, a.Node, a.Quote != nil, a.Bound, nodeID)
		}
		if a.Quote.Body.MRENCLAVE != [32]byte{} || a.Quote.Body.MRSIGNER != [32]byte{} || a.Quote.Body.Debug() {
			t.Errorf("re-attestation %d: MRENCLAVE %x, MRSIGNER %x, debug %v; want zero identities, not debug", i,
				a.Quote.Body.MRENCLAVE, a.Quote.Body.MRSIGNER, a.Quote.Body.Debug())
		}
	}
	if v := g.verify(atts[0].Evidence); !v.OK || v.ReportData != hex.EncodeToString(want) {
		t.Errorf("the attestation service's verdict on the re-attestation evidence = %+v, want ok with REPORTDATA %x", v, want)
	}
	if n := g.GetNode(g.admin, g.account, nodeID); n.Status != "active" || n.LastAttested == nil || !n.Attested {
		t.Errorf("the gateway has the node as %+v, want active and attested", n)
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
	g := newTestGateway(t)
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

// TestReattestationRefused: a refused re-attestation (403: here the
// account's policy rose above the node's quote) makes the node untrusted;
// the agent logs the server's reason and sends a heartbeat at once, whose
// 401 stops it with exitDeregistered, long before the next scheduled
// heartbeat.
func TestReattestationRefused(t *testing.T) {
	g := newTestGateway(t)
	// Hold the QE back until the first heartbeat has gone, so that only
	// the heartbeat the refusal asks for can stop the agent.
	g.qeErr = &api.Problem{Status: http.StatusServiceUnavailable, Detail: "not yet"}
	dir := t.TempDir()
	cfg := testConfig(t, g, dir)
	cfg.Simulation = true
	cfg.HeartbeatEvery = time.Hour
	cfg.ReattestEvery = time.Hour
	r := start(t, cfg)
	eventually(t, "the first heartbeat", func() bool { _, n := g.counts(); return n >= 1 })
	g.Call(g.admin, "PUT", "/v1/accounts/"+g.account+"/attestation/policy",
		api.AttestationPolicy{AcceptStatuses: []string{"UpToDate"}, AllowSimulation: true, MinISVSVN: 1}, nil)
	g.set(func() { g.qeErr = nil })

	err := r.wait(t)
	if code := exitCode(err); code != exitDeregistered {
		t.Fatalf("exit code after a refused re-attestation = %d (%v), want %d", code, err, exitDeregistered)
	}
	g.mu.Lock()
	attests, beats := slices.Clone(g.attestAnswers), slices.Clone(g.beatAnswers)
	g.mu.Unlock()
	if len(attests) != 1 || attests[0].Status != http.StatusForbidden || !strings.Contains(attests[0].Problem.Detail, "ISVSVN") {
		t.Fatalf("the gateway answered the re-attestations %+v, want one 403 for the ISVSVN", attests)
	}
	if len(beats) != 2 || beats[1].Status != http.StatusUnauthorized {
		t.Fatalf("the gateway answered the heartbeats %+v, want the first, then the 401 the refusal asked for", beats)
	}
	if !strings.Contains(err.Error(), beats[1].Problem.Detail) {
		t.Errorf("error = %q, want the heartbeat's 401 %q", err, beats[1].Problem.Detail)
	}
	if logs := r.logs.String(); !strings.Contains(logs, attests[0].Problem.Detail) || !strings.Contains(logs, "refused the node's re-attestation") {
		t.Errorf("the logs do not give the server's reason for the refusal (%q):\n%s", attests[0].Problem.Detail, logs)
	}
	if n := g.GetNode(g.admin, g.account, readRecord(t, dir).ID); n.Status != "untrusted" {
		t.Errorf("the gateway has the node %s, want untrusted", n.Status)
	}
}
