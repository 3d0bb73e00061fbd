package noderegistry_test

import (
	"context"
	"crypto/sha256"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/pki"
)

// BenchmarkEnroll100 enrols 100 nodes at once per iteration, with one
// token of 100 uses, through NATS, the registry, the real CA and KV, beside
// its floor measured in the same run, 100 at once too: what an enrolment
// cannot do without, the CSR checked and the node certificate signed (pki's
// IssueClient), the SHA-256 of the token, two NATS round trips (to the
// registry, and from it to the CA), three JetStream KV writes (the token's
// use, the node, its certificate) and four JetStream publishes (the
// NodeEnrolled and CertificateIssued events and the audit record of each,
// which other services and the audit log consume), raw. x-floor is the
// fraction of the floor's speed.
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
	nc := s.n.Connect(b)
	echo, err := nc.Subscribe("bench.floor.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = echo.Unsubscribe() }()
	bucket, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "bench_floor"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BENCH_FLOOR_EVENTS", Subjects: []string{"bench.floor.events.>"}}); err != nil {
		b.Fatal(err)
	}
	secret := "cjt_" + uuid.NewString() + "0123456"
	record := make([]byte, 600) // about a node's or a certificate's record
	floorStart := time.Now()
	for range b.N {
		var wg sync.WaitGroup
		errc := make(chan error, batch)
		for _, n := range nodes {
			wg.Go(func() {
				csr, err := pki.CheckCSRKey(n.csr, pki.P256)
				if err == nil {
					_ = sha256.Sum256([]byte(secret))
					uri := &url.URL{Scheme: "urn", Opaque: "cloister:node:" + acct + ":" + uuid.NewString()}
					_, err = ca.IssueClient(csr, "node", uri, 90*24*time.Hour, time.Now())
				}
				for range 2 {
					if err == nil {
						_, err = nc.Request("bench.floor.echo", n.csr, 10*time.Second)
					}
				}
				for range 3 {
					if err == nil {
						_, err = bucket.Create(ctx, uuid.NewString(), record)
					}
				}
				for range 4 {
					if err == nil {
						_, err = s.js.Publish(ctx, "bench.floor.events.x", record, jetstream.WithMsgID(uuid.NewString()))
					}
				}
				errc <- err
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
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
