package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"

	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// TestEnrolmentEvidence: with --simulation the agent asks for a simulated
// QE with its join token before its first enrolment and sends a quote of
// it binding the CSR's key; the QE it uses afterwards comes over mTLS.
func TestEnrolmentEvidence(t *testing.T) {
	g := newTestGateway(t)
	dir := t.TempDir()
	cfg := testConfig(t, g, dir)
	cfg.Simulation = true
	r := start(t, cfg)
	r.enrolled(t)
	eventually(t, "the agent has its simulated QE", func() bool { return r.qe.Load() != nil })

	g.mu.Lock()
	sent, agentQEs, qeCalls := g.enrolled[0], len(g.agentQEs), g.qeCalls
	g.mu.Unlock()
	if agentQEs != 1 || qeCalls < 1 {
		t.Fatalf("simulated QEs for the enrolment %d, over mTLS %d; want 1 and at least 1", agentQEs, qeCalls)
	}
	blk, _ := pem.Decode([]byte(sent.CSR))
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	quote, err := sgx.ParseQuote(sent.Evidence)
	if err != nil {
		t.Fatalf("the enrolment's evidence is not a quote: %v", err)
	}
	binding := sha256.Sum256(csr.RawSubjectPublicKeyInfo)
	if want := append(binding[:], sent.Nonce...); len(sent.Nonce) != 32 || !bytes.Equal(quote.Body.ReportData[:], want) {
		t.Fatalf("the enrolment's REPORTDATA = %x, want %x (SHA-256 of the CSR's key, then the server's nonce)", quote.Body.ReportData, want)
	}
	if quote.Body.MRENCLAVE != [32]byte{} || quote.Body.Debug() {
		t.Errorf("the enrolment's quote: MRENCLAVE %x, debug %v; want as the re-attestation's", quote.Body.MRENCLAVE, quote.Body.Debug())
	}
	if v := g.verify(sent.Evidence); !v.OK || !v.Simulated {
		t.Fatalf("the attestation service's verdict on the enrolment's evidence = %+v, want ok", v)
	}
	if n := g.GetNode(g.admin, g.account, readRecord(t, dir).ID); !n.Attested || !n.Simulated {
		t.Errorf("the gateway has the node as %+v, want it enrolled attested (simulated)", n)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	// A restart with an identity does not enrol, nor ask for one again.
	cfg = testConfig(t, g, dir)
	second := start(t, cfg)
	second.enrolled(t)
	g.mu.Lock()
	agentQEs = len(g.agentQEs)
	g.mu.Unlock()
	if agentQEs != 1 {
		t.Errorf("simulated QEs for an enrolment after a restart = %d, want still 1", agentQEs)
	}
}

// TestEnrolmentEvidenceRefused: when the server refuses a simulated QE
// for the enrolment (403 or 404), the agent warns and enrols without
// evidence; without --simulation it does not ask.
func TestEnrolmentEvidenceRefused(t *testing.T) {
	for _, status := range []int{http.StatusForbidden, http.StatusNotFound} {
		g := newTestGateway(t)
		g.agentQEErr = &api.Problem{Status: status, Detail: "simulation is not allowed by the account's policy"}
		cfg := testConfig(t, g, t.TempDir())
		cfg.Simulation = true
		r := start(t, cfg)
		r.enrolled(t)
		g.mu.Lock()
		sent := g.enrolled[0]
		g.mu.Unlock()
		if len(sent.Evidence) != 0 {
			t.Errorf("%d: the enrolment carried evidence, want none", status)
		}
		if !strings.Contains(r.logs.String(), "enrolling without attestation evidence") {
			t.Errorf("%d: the agent's logs do not warn of the enrolment without evidence", status)
		}
	}
	g := newTestGateway(t)
	r := start(t, testConfig(t, g, t.TempDir()))
	r.enrolled(t)
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.agentQEs) != 0 || len(g.enrolled[0].Evidence) != 0 {
		t.Errorf("without --simulation the agent asked for %d QEs and sent evidence %v, want neither", len(g.agentQEs), len(g.enrolled[0].Evidence) != 0)
	}
}
