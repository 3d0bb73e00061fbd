package attestation_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/attestation"
)

// TestActivity: an account's verdicts are counted by the hour, failures
// with their reasons, across two replicas that each count their own, and
// the counts outlive the replicas that made them; another account's are
// its own.
func TestActivity(t *testing.T) {
	ctx := context.Background()
	n := testkit.StartNATS(t)
	now := inWindow.Add(90 * time.Minute)
	replica := func() (*attestation.Service, *attestationv1.AttestationClient) {
		nc, _ := n.JetStream(t)
		svc, err := attestation.Start(ctx, attestation.Config{Options: service.Options{NATS: nc, Assertions: n.Verifier("attestation")},
			Clock: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Stop)
		return svc, attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t))
	}
	a, ca := replica()
	b, cb := replica()
	account, other := uuid.NewString(), uuid.NewString()
	quote := read(t, "phala_sgx_quote_v3.bin")
	if _, err := ca.PutCollateral(ctx, &attestationv1.PutCollateralRequest{CollateralJson: read(t, "phala_sgx_quote_v3_collateral.json")}); err != nil {
		t.Fatal(err)
	}
	// Under the default policy the vector's TCB status is refused; a
	// garbled quote fails its parse.
	for range 3 {
		verify(t, ca, account, quote, nil, nil)
	}
	verify(t, cb, account, []byte("not a quote"), nil, nil)
	if _, err := cb.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"ConfigurationAndSWHardeningNeeded"}}}); err != nil {
		t.Fatal(err)
	}
	verify(t, cb, account, quote, nil, nil)
	verify(t, ca, other, quote, nil, nil)

	reader := cb
	activity := func(acct string) []*attestationv1.ActivityHour {
		resp, err := reader.GetActivity(ctx, &attestationv1.GetActivityRequest{AccountId: acct})
		if err != nil {
			t.Fatalf("GetActivity = %v", err)
		}
		return resp.GetHours()
	}
	want := func(acct string, ok, failed uint64) func() bool {
		return func() bool {
			h := activity(acct)
			return len(h) == 1 && h[0].GetSucceeded() == ok && h[0].GetFailed() == failed
		}
	}
	testkit.Eventually(t, 30*time.Second, want(account, 1, 4), "the account's activity is not 1 success and 4 failures: %v", activity(account))
	h := activity(account)[0]
	if !h.GetStart().AsTime().Equal(now.Truncate(time.Hour)) {
		t.Errorf("the hour starts at %v, want %v", h.GetStart().AsTime(), now.Truncate(time.Hour))
	}
	var reasons []string
	for _, f := range h.GetFailures() {
		reasons = append(reasons, f.GetReason())
		if f.GetOk() || f.GetId() == "" || f.GetAccountId() != account {
			t.Errorf("failure %v is not one of the account's failed verdicts", f)
		}
	}
	if len(reasons) != 4 || !contains(reasons, "tcb") || !contains(reasons, "malformed") {
		t.Errorf("the failures' reasons are %q, want the 3 tcb refusals and the garbled quote", reasons)
	}
	testkit.Eventually(t, 30*time.Second, want(other, 0, 1), "the other account's activity is not its one failure: %v", activity(other))

	// Replicas stopped write what they counted last; their counts stay
	// for the replicas that follow.
	verify(t, ca, account, quote, nil, nil)
	a.Stop()
	b.Stop()
	_, reader = replica()
	if !want(account, 2, 4)() {
		t.Errorf("after the replicas stopped, the account's activity is %v, want 2 successes and 4 failures", activity(account))
	}
	// An hour a day old is no longer part of the day.
	now = now.Add(24 * time.Hour)
	if h := activity(account); len(h) != 0 {
		t.Errorf("a day later the activity is %v, want none", h)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
