package natsrpc

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultConcurrency bounds how many requests one Mux handles at once.
const DefaultConcurrency = 64

// Mux subscribes servers to their subjects in one queue group, so any
// number of replicas share the load, and handles requests concurrently.
type Mux struct {
	nc       *nats.Conn
	queue    string
	verify   Verifier
	subs     []*nats.Subscription
	sem      chan struct{}
	inflight sync.WaitGroup
}

// NewMux returns a Mux whose subscriptions join the given queue group
// (by convention the service name). Its requests are checked by verify;
// nil refuses every request that needs an assertion (RequireNone).
func NewMux(nc *nats.Conn, queue string, verify Verifier) *Mux {
	if verify == nil {
		verify = RequireNone{}
	}
	return &Mux{nc: nc, queue: queue, verify: verify, sem: make(chan struct{}, DefaultConcurrency)}
}

// Handle subscribes s to subject; its requests are checked by the mux's
// verifier.
func (m *Mux) Handle(subject string, s *Server) error {
	s.verify = m.verify
	sub, err := m.nc.QueueSubscribe(subject, m.queue, func(msg *nats.Msg) {
		m.inflight.Add(1)
		m.sem <- struct{}{}
		go func() {
			defer func() { <-m.sem; m.inflight.Done() }()
			s.Serve(m.nc, msg)
		}()
	})
	if err != nil {
		return fmt.Errorf("subscribing to %s: %w", subject, err)
	}
	m.subs = append(m.subs, sub)
	// Flush so the server knows the subscription before Handle returns:
	// a request sent right after must not meet "no responders".
	if err := m.nc.Flush(); err != nil {
		return fmt.Errorf("subscribing to %s: %w", subject, err)
	}
	return nil
}

// Drain stops taking requests and waits, up to timeout, for those already
// received to be answered.
func (m *Mux) Drain() error {
	return m.DrainTimeout(30 * time.Second)
}

// DrainTimeout is Drain with a chosen timeout.
func (m *Mux) DrainTimeout(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, s := range m.subs {
		if err := s.Drain(); err != nil && !errors.Is(err, nats.ErrBadSubscription) && !errors.Is(err, nats.ErrConnectionClosed) {
			return err
		}
	}
	// A draining subscription still delivers what it had received; it is
	// invalid once the last of those reached its callback.
	for _, s := range m.subs {
		for s.IsValid() {
			if time.Now().After(deadline) {
				return errors.New("natsrpc: drain timed out")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	done := make(chan struct{})
	go func() { m.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(time.Until(deadline)):
		return errors.New("natsrpc: drain timed out waiting for requests under way")
	}
}
