package attestation_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/cache"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/attestation"
)

// BenchmarkApprovalToAllowlist measures the time from an approval
// (TaskApproved published, as the account service does when a task
// reaches its quorum) to the approval taking effect: the first
// verification for the application that passes. Each iteration approves
// a new measurement, with Redis as the cache. It reports p50 and p99 of
// that time beside its floor, measured in the same run: one verification
// of an already approved image (the least a check for the effect costs).
func BenchmarkApprovalToAllowlist(b *testing.B) {
	ctx := context.Background()
	n := testkit.StartNATS(b)
	nc, js := n.JetStream(b)
	r := testkit.StartRedis(b)
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{7}, pki.KEKSize))
	svc, err := attestation.Start(ctx, attestation.Config{Options: service.Options{NATS: nc, Assertions: n.Verifier("attestation")}, Simulation: true, KEK: kek, Cache: cache.NewRedis(r.Client, r.Prefix)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Stop)
	account, app := uuid.NewString(), uuid.NewString()
	qe, err := svc.SimulatedQE(account)
	if err != nil {
		b.Fatal(err)
	}
	c := attestationv1.NewAttestationClient(n.Connect(b), n.Vouching(b))
	if _, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"UpToDate"}, AllowSimulation: true}}); err != nil {
		b.Fatal(err)
	}
	quoteOf := func(i int) ([]byte, sgx.ReportBody) {
		var body sgx.ReportBody
		body.MRENCLAVE[0], body.MRENCLAVE[1], body.MRENCLAVE[2] = byte(i), byte(i>>8), 0xcc
		q, err := qe.Quote(body)
		if err != nil {
			b.Fatal(err)
		}
		return q, body
	}
	verify := func(q []byte) bool {
		resp, err := c.Verify(ctx, &attestationv1.VerifyRequest{AccountId: account, Quote: q, AppId: app})
		if err != nil {
			b.Fatal(err)
		}
		return resp.GetVerdict().GetOk()
	}
	var took []time.Duration
	i := 0
	for b.Loop() {
		i++
		q, body := quoteOf(i)
		if verify(q) {
			b.Fatal("an image passed before its approval")
		}
		task := &accountv1.Task{Id: uuid.NewString(), AccountId: account, Kind: "image", Status: "approved", AppId: app,
			Image: &accountv1.TaskImage{ImageId: uuid.NewString(), Tag: "1", Mrenclave: body.MRENCLAVE[:], Mrsigner: body.MRSIGNER[:]}}
		start := time.Now()
		publish(b, js, "account", account, &accountv1.TaskApproved{Task: task})
		for !verify(q) {
			if time.Since(start) > 30*time.Second {
				b.Fatal("the approval never took effect")
			}
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	q, _ := quoteOf(1)
	var floor []time.Duration
	for range max(len(took), 20) {
		t0 := time.Now()
		verify(q)
		floor = append(floor, time.Since(t0))
	}
	b.ReportMetric(pct(took, 50), "approval-p50-ms")
	b.ReportMetric(pct(took, 99), "approval-p99-ms")
	b.ReportMetric(pct(floor, 50), "floor-verify-p50-ms")
	b.ReportMetric(pct(floor, 99), "floor-verify-p99-ms")
}

// pct is the p-th percentile of ds in milliseconds.
func pct(ds []time.Duration, p int) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, (len(s)*p+99)/100-1)
	return float64(s[max(i, 0)].Microseconds()) / 1000
}
