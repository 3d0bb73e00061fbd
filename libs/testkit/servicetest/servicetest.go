// Package servicetest starts what a service test needs, one way for every
// service: an embedded NATS JetStream server, the deployment's
// key-encryption key, the cache the services share (as a deployment
// shares Redis), and the services themselves, each on its own connection
// and stopped when the test ends.
//
//	st := servicetest.New(t)
//	ca := servicetest.Start(st, func(ctx context.Context, o service.Options) (*ca.Service, error) {
//		return ca.Start(ctx, ca.Config{Options: o, KEK: st.KEK, Cache: st.Cache})
//	})
package servicetest

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// Stack is one test's deployment.
type Stack struct {
	T testing.TB
	// NATS is the stack's server, unless it runs on a cluster.
	NATS *testkit.NATS
	// Cluster, when the stack runs on one (OnCluster), is what it runs on:
	// its services connect to the nodes in turn, knowing them all, and
	// replicate their streams and buckets on up to three of them.
	Cluster *testkit.Cluster
	// KEK seals the services' secrets; the same for every service.
	KEK *pki.KEK
	// Cache is shared by the services that take one; in-process unless
	// WithCache says otherwise.
	Cache cache.Cache
	// Logger is the services' (testkit.ServiceLogger): their warnings and errors
	// are printed when the test fails.
	Logger *slog.Logger

	next int // the cluster node the next connection goes to first
}

// Option changes a stack before it starts.
type Option func(*Stack)

// WithCache makes c the cache the services share (a Redis cache, to run
// as a deployment does).
func WithCache(c cache.Cache) Option { return func(s *Stack) { s.Cache = c } }

// OnCluster runs the stack on c rather than on a server of its own.
func OnCluster(c *testkit.Cluster) Option { return func(s *Stack) { s.Cluster = c } }

// New starts an embedded NATS server (unless the stack runs on a cluster)
// and makes the stack's KEK and cache.
func New(t testing.TB, opts ...Option) *Stack {
	t.Helper()
	kek, err := pki.NewKEK(bytes.Repeat([]byte{9}, pki.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{T: t, KEK: kek, Logger: testkit.ServiceLogger(t)}
	for _, o := range opts {
		o(s)
	}
	if s.Cluster == nil {
		s.NATS = testkit.StartNATS(t)
	}
	if s.Cache == nil {
		m := cache.NewMemory(0)
		t.Cleanup(func() { _ = m.Close() })
		s.Cache = m
	}
	return s
}

// Options are what one more service named name runs with on the stack: a
// connection of its own, as its bus identity, with a deployment's
// permissions (on a cluster, to the next node in turn, and its streams and
// buckets replicated).
func (s *Stack) Options(name string) service.Options {
	return service.Options{NATS: s.ConnectAs(name), Assertions: s.Identities().Verifier(name), Replicas: s.Replicas(), Logger: s.Logger}
}

// Replicas is how many replicas the stack's streams and buckets have:
// one on a server, up to three on a cluster.
func (s *Stack) Replicas() int {
	if s.Cluster == nil {
		return 1
	}
	return min(len(s.Cluster.Nodes), 3)
}

// Identities are the stack's bus identities.
func (s *Stack) Identities() *testkit.Identities {
	if s.Cluster != nil {
		return &s.Cluster.Identities
	}
	return &s.NATS.Identities
}

// ConnectAs returns a connection as role's identity (on a cluster, to
// the next node in turn), closed when the test ends.
func (s *Stack) ConnectAs(role string) *nats.Conn {
	s.T.Helper()
	if s.Cluster == nil {
		return s.NATS.ConnectAs(s.T, role)
	}
	s.next++
	return s.Cluster.ConnectAs(s.T, role, (s.next-1)%len(s.Cluster.Nodes))
}

// Connect returns a connection of the test's probe, allowed everything
// (on a cluster, to its first node), closed when the test ends.
func (s *Stack) Connect() *nats.Conn {
	s.T.Helper()
	if s.Cluster == nil {
		return s.NATS.Connect(s.T)
	}
	return s.Cluster.Connect(s.T, 0)
}

// JetStream returns a JetStream context of the test's probe, allowed
// everything.
func (s *Stack) JetStream() jetstream.JetStream {
	s.T.Helper()
	if s.Cluster == nil {
		_, js := s.NATS.JetStream(s.T)
		return js
	}
	_, js := s.Cluster.JetStream(s.T, 0)
	return js
}

// Start starts the service name on the stack with start, given its
// options, and stops it when the test ends; a service that does not start
// fails the test.
func Start[S interface{ Stop() }](s *Stack, name string, start func(ctx context.Context, o service.Options) (S, error)) S {
	s.T.Helper()
	svc, err := start(context.Background(), s.Options(name))
	if err != nil {
		s.T.Fatalf("starting a service: %v", err)
	}
	s.T.Cleanup(svc.Stop)
	return svc
}

// OutboxRecovery is what CheckOutboxRecovery needs of a service.
type OutboxRecovery[S interface{ Stop() }] struct {
	// Name is the service's, Start starts it with o (its outbox recovery
	// frequent, its stores failing their first publish).
	Name  string
	Start func(ctx context.Context, o service.Options) (S, error)
	// Write makes, on nc, one write whose events include Event, from
	// Producer; vouch makes a client's calls carry the gateway's
	// assertion of the actor they name.
	Write    func(t *testing.T, nc *nats.Conn, vouch natsrpc.CallOption)
	Producer string
	Event    proto.Message
}

// CheckOutboxRecovery checks that a service publishes an event whose
// publish failed after its write committed, while it runs on: its
// periodic outbox recovery delivers it, no restart needed.
func CheckOutboxRecovery[S interface{ Stop() }](t *testing.T, c OutboxRecovery[S]) {
	t.Helper()
	st := New(t)
	fail, failed := testkit.FailFirstPublish()
	Start(st, c.Name, func(ctx context.Context, o service.Options) (S, error) {
		o.RecoverEvery, o.KVOptions = 100*time.Millisecond, []kv.Option{fail}
		return c.Start(ctx, o)
	})
	c.Write(t, st.NATS.Connect(t), st.NATS.Vouching(t))
	testkit.Eventually(t, 20*time.Second, failed, "the write never committed with its publish failing")
	_, js := st.NATS.JetStream(t)
	testkit.WaitForEvent(t, js, c.Producer, c.Event, 20*time.Second)
}
