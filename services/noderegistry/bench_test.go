package noderegistry_test

import (
	"context"
	"crypto/sha256"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/pki"
)

// BenchmarkEnroll100 enrols 100 nodes at once per iteration, with one
// token of 100 uses, through NATS, the registry, the real CA and KV, beside
// its floor measured in the same run: what an enrolment cannot do without,
// the CA's signature of a node certificate for a P-256 CSR (pki's
// IssueClient) and the SHA-256 of the token, 100 times in process. The
// ratio floor/ours is reported as x-floor (1 would be the floor).
func BenchmarkEnroll100(b *testing.B) {
	const batch = 100
	ctx := context.Background()
	s := newStack(b, nil, 0)
	acct := s.account()
	nodes := make([]*node, batch)
	for i := range nodes {
		nodes[i] = newNode(b)
	}

	var ours time.Duration
	for b.Loop() {
		b.StopTimer()
		secret := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{Name: "bench", MaxUses: batch}).GetSecret()
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		errc := make(chan error, batch)
		for _, n := range nodes {
			wg.Go(func() {
				_, err := s.nr.Enroll(ctx, &noderegistryv1.EnrollRequest{JoinToken: secret, NodeName: "bench", Csr: n.csr})
				errc <- err
			})
		}
		wg.Wait()
		ours += time.Since(start)
		close(errc)
		for err := range errc {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()

	ca, err := pki.NewCA(acct, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	csrs := make([]*pki.CSR, batch)
	for i, n := range nodes {
		if csrs[i], err = pki.CheckCSRKey(n.csr, pki.P256); err != nil {
			b.Fatal(err)
		}
	}
	secret := "cjt_" + uuid.NewString() + "0123456"
	floorStart := time.Now()
	for range b.N {
		for _, csr := range csrs {
			_ = sha256.Sum256([]byte(secret))
			uri := &url.URL{Scheme: "urn", Opaque: "cloister:node:" + acct + ":" + uuid.NewString()}
			if _, err := ca.IssueClient(csr, "node", uri, 90*24*time.Hour, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	}
	floor := time.Since(floorStart)
	n := float64(b.N * batch)
	b.ReportMetric(n/ours.Seconds(), "enrolments/s")
	b.ReportMetric(n/floor.Seconds(), "floor-enrolments/s")
	b.ReportMetric(floor.Seconds()/ours.Seconds(), "x-floor")
}
