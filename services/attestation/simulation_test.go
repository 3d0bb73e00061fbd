package attestation_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/attestation"
)

// TestSimulatedEvidence: simulated quotes pass only for accounts whose
// policy allows simulation, are marked simulated, and keep verifying after
// a restart because the root persists (sealed).
func TestSimulatedEvidence(t *testing.T) {
	n := testkit.StartNATS(t)
	kek, err := pki.NewKEK(bytes.Repeat([]byte{7}, pki.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cfg := attestation.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("attestation")}, Simulation: true, KEK: kek, Clock: func() time.Time { return now }}
	svc, err := attestation.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	account := uuid.NewString()
	qe, err := svc.SimulatedQE(account)
	if err != nil {
		t.Fatal(err)
	}
	var body sgx.ReportBody
	copy(body.MRENCLAVE[:], bytes.Repeat([]byte{0xab}, 32))
	copy(body.ReportData[:], []byte("bind me"))
	quote, err := qe.Quote(body)
	if err != nil {
		t.Fatal(err)
	}
	c := attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t))
	ctx := context.Background()

	v := verify(t, c, account, quote, nil, nil)
	if v.GetOk() || v.GetReason() != "simulation_not_allowed" || !v.GetSimulated() {
		t.Fatalf("simulated evidence under the default policy = %v, want simulation_not_allowed", v)
	}
	if _, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"UpToDate"}, AllowSimulation: true}}); err != nil {
		t.Fatal(err)
	}
	v = verify(t, c, account, quote, nil, nil)
	if !v.GetOk() || !v.GetSimulated() || !bytes.Equal(v.GetMrenclave(), body.MRENCLAVE[:]) {
		t.Fatalf("simulated evidence under a policy allowing it = %v", v)
	}
	// The QE was issued for the account: another account, whose policy
	// allows simulation too, refuses its evidence.
	stranger := uuid.NewString()
	if _, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: stranger, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"UpToDate"}, AllowSimulation: true}}); err != nil {
		t.Fatal(err)
	}
	if v := verify(t, c, stranger, quote, nil, nil); v.GetOk() || v.GetReason() != "simulation_other_account" {
		t.Fatalf("another account's verdict on the QE's evidence = %v, want simulation_other_account", v)
	}
	root, err := c.GetSimulationRoot(ctx, &attestationv1.GetSimulationRootRequest{})
	if err != nil || !strings.Contains(string(root.GetCertificate()), "BEGIN CERTIFICATE") {
		t.Fatalf("GetSimulationRoot = %v, %v", root, err)
	}

	// Restart: the same root comes back from its sealed copy.
	svc.Stop()
	cfg.NATS = n.Connect(t)
	svc2, err := attestation.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc2.Stop)
	if v := verify(t, c, account, quote, nil, nil); !v.GetOk() {
		t.Fatalf("simulated evidence after a restart = %v", v)
	}
	// Another KEK cannot open the stored root, and says so.
	other, _ := pki.NewKEK(bytes.Repeat([]byte{8}, pki.KEKSize))
	if _, err := attestation.Start(ctx, attestation.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("attestation")}, Simulation: true, KEK: other}); err == nil ||
		!strings.Contains(err.Error(), "master key") {
		t.Fatalf("Start with another KEK = %v, want an error about the master key", err)
	}
	if _, err := attestation.Start(ctx, attestation.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("attestation")}, Simulation: true}); err == nil {
		t.Fatal("Start with simulation but no KEK succeeded")
	}
}

func TestSimulationRootWhenOff(t *testing.T) {
	c, _ := start(t)
	_, err := c.GetSimulationRoot(context.Background(), &attestationv1.GetSimulationRootRequest{})
	if errs.KindOf(err) != errs.NotFound {
		t.Fatalf("GetSimulationRoot with simulation off = %v, want NotFound", err)
	}
	_, err = c.IssueSimulatedQE(context.Background(), &attestationv1.IssueSimulatedQERequest{AccountId: uuid.NewString()})
	if errs.KindOf(err) != errs.NotFound {
		t.Fatalf("IssueSimulatedQE with simulation off = %v, want NotFound", err)
	}
}

// TestIssueSimulatedQE: a QE is issued only to accounts whose policy
// allows simulation, and its quotes verify for them.
func TestIssueSimulatedQE(t *testing.T) {
	n := testkit.StartNATS(t)
	kek, err := pki.NewKEK(bytes.Repeat([]byte{7}, pki.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := attestation.Start(context.Background(), attestation.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("attestation")}, Simulation: true, KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	c := attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t))
	ctx := context.Background()
	account := uuid.NewString()

	_, err = c.IssueSimulatedQE(ctx, &attestationv1.IssueSimulatedQERequest{AccountId: account})
	if errs.KindOf(err) != errs.PermissionDenied || !strings.Contains(err.Error(), "simulation is not allowed by the account's policy") {
		t.Fatalf("IssueSimulatedQE under the default policy = %v, want PermissionDenied", err)
	}
	if _, err := c.IssueSimulatedQE(ctx, &attestationv1.IssueSimulatedQERequest{AccountId: "nope"}); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("IssueSimulatedQE for a bad account id = %v, want Invalid", err)
	}
	if _, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"UpToDate"}, AllowSimulation: true}}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.IssueSimulatedQE(ctx, &attestationv1.IssueSimulatedQERequest{AccountId: account})
	if err != nil {
		t.Fatalf("IssueSimulatedQE under a policy allowing simulation = %v", err)
	}
	qe, err := sim.ParseQE(resp.GetQe())
	if err != nil {
		t.Fatalf("ParseQE(issued) = %v", err)
	}
	var body sgx.ReportBody
	copy(body.MRENCLAVE[:], bytes.Repeat([]byte{0xcd}, 32))
	quote, err := qe.Quote(body)
	if err != nil {
		t.Fatal(err)
	}
	if v := verify(t, c, account, quote, nil, nil); !v.GetOk() || !v.GetSimulated() {
		t.Fatalf("Verify(quote of the issued QE) = %v, want ok and simulated", v)
	}
}
