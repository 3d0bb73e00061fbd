package natsrpc

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// DefaultConcurrency bounds how many requests one Mux handles at once.
const DefaultConcurrency = 64

// Mux subscribes servers to their subjects in one queue group, so any
// number of replicas share the load, and handles requests concurrently.
type Mux struct {
	nc    *nats.Conn
	queue string
	subs  []*nats.Subscription
	sem   chan struct{}
}

// NewMux returns a Mux whose subscriptions join the given queue group
// (by convention the service name).
func NewMux(nc *nats.Conn, queue string) *Mux {
	return &Mux{nc: nc, queue: queue, sem: make(chan struct{}, DefaultConcurrency)}
}

// Handle subscribes s to subject.
func (m *Mux) Handle(subject string, s *Server) error {
	sub, err := m.nc.QueueSubscribe(subject, m.queue, func(msg *nats.Msg) {
		m.sem <- struct{}{}
		go func() {
			defer func() { <-m.sem }()
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

// Drain stops taking requests and lets those under way finish.
func (m *Mux) Drain() error {
	for _, s := range m.subs {
		if err := s.Drain(); err != nil {
			return err
		}
	}
	for range cap(m.sem) {
		m.sem <- struct{}{}
	}
	return nil
}
