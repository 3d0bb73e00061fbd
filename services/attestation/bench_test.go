package attestation_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/attestation"
)

// BenchmarkConcurrentVerify sends 1,000 concurrent Verify requests per
// iteration through natsrpc to two replicas of the service and checks that
// every one is answered with a passing verdict. It reports throughput and
// the 99th percentile latency, beside its floor measured in the same run,
// each iteration taking turns with ours so that drift in the machine's
// speed moves both alike: the same requests, 1,000 at once, as raw NATS
// requests to two raw subscribers in one queue group that verify the quote
// in process (one sgx.Verifier with the collateral parsed) on the same
// cores and answer with a byte: the verification and the round trip no
// service can avoid.
func BenchmarkConcurrentVerify(b *testing.B) {
	const concurrent = 1000
	n := testkit.StartNATS(b)
	ctx := context.Background()
	for range 2 {
		svc, err := attestation.Start(ctx, attestation.Config{Options: service.Options{NATS: n.Connect(b), Assertions: n.Verifier("attestation")}, Clock: func() time.Time { return inWindow }})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(svc.Stop)
	}
	c := attestationv1.NewAttestationClient(n.Connect(b), n.Vouching(b))
	quote := read(b, "phala_sgx_quote_v3.bin")
	colJSON := read(b, "phala_sgx_quote_v3_collateral.json")
	if _, err := c.PutCollateral(ctx, &attestationv1.PutCollateralRequest{CollateralJson: colJSON}); err != nil {
		b.Fatal(err)
	}
	account := uuid.NewString()
	if _, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"ConfigurationAndSWHardeningNeeded"}}}); err != nil {
		b.Fatal(err)
	}

	col, err := sgx.ParseCollateralJSON(colJSON)
	if err != nil {
		b.Fatal(err)
	}
	v := sgx.NewVerifier(nil)
	for range 2 {
		sub, err := n.Connect(b).QueueSubscribe("bench.floor.verify", "floor", func(m *nats.Msg) {
			if _, err := v.Verify(m.Data, sgx.Options{At: inWindow, Collateral: col}); err != nil {
				_ = m.Respond([]byte{0})
				return
			}
			_ = m.Respond([]byte{1})
		})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	floorConn := n.Connect(b)

	var latencies []time.Duration
	var mu sync.Mutex
	ours := func() error {
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		resp, err := c.Verify(ctx, &attestationv1.VerifyRequest{AccountId: account, Quote: quote})
		if err == nil && !resp.GetVerdict().GetOk() {
			err = &verdictError{resp.GetVerdict().GetError()}
		}
		if err == nil {
			mu.Lock()
			latencies = append(latencies, time.Since(t0))
			mu.Unlock()
		}
		return err
	}
	floorCall := func() error {
		m, err := floorConn.Request("bench.floor.verify", quote, time.Minute)
		if err == nil && !bytes.Equal(m.Data, []byte{1}) {
			err = errors.New("the floor's verification failed")
		}
		return err
	}
	// round sends concurrent calls at once and returns how long they took.
	round := func(call func() error) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		errc := make(chan error, concurrent)
		for range concurrent {
			wg.Go(func() {
				if err := call(); err != nil {
					errc <- err
				}
			})
		}
		wg.Wait()
		close(errc)
		if err := <-errc; err != nil {
			b.Fatalf("a request of %d failed: %v", concurrent, err)
		}
		return time.Since(start)
	}

	var elapsed, floor time.Duration
	b.ResetTimer()
	for b.Loop() {
		elapsed += round(ours)
		floor += round(floorCall)
	}
	b.StopTimer()
	if len(latencies) != b.N*concurrent {
		b.Fatalf("%d answers for %d requests", len(latencies), b.N*concurrent)
	}

	slices.Sort(latencies)
	total := float64(b.N * concurrent)
	b.ReportMetric(total/elapsed.Seconds(), "verifies/s")
	b.ReportMetric(total/floor.Seconds(), "floor-verifies/s")
	b.ReportMetric(floor.Seconds()/elapsed.Seconds(), "x-floor")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Milliseconds()), "p99-ms")
}

type verdictError struct{ msg string }

func (e *verdictError) Error() string { return "verdict refused: " + e.msg }
