package natsrpc

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// How many requests one Mux handles at once, per core it may use
// (GOMAXPROCS).
const (
	// WorkersPerCore suits requests that mostly wait, on JetStream and on
	// other services: enough to keep the cores busy (an enrolment, which
	// makes a dozen JetStream operations and calls two services, lost a
	// sixth of its rate at 16), few enough to bound memory and the load
	// passed on.
	WorkersPerCore = 128
	// CPUBoundWorkersPerCore suits requests that mostly compute (the
	// attestation service's verifications): enough to keep the cores busy
	// while each waits on its one write, few enough that the cores are not
	// shared among hundreds of half-done requests, which cost those
	// verifications a twentieth of their CPU at WorkersPerCore.
	CPUBoundWorkersPerCore = 16
)

// Mux subscribes servers to their subjects in one queue group, so any
// number of replicas share the load, and handles requests concurrently.
type Mux struct {
	nc       *nats.Conn
	queue    string
	verify   Verifier
	subs     []*nats.Subscription
	sem      chan struct{} // a token per worker
	work     chan request  // to a worker that is waiting for one
	inflight sync.WaitGroup
}

// request is a message for a server.
type request struct {
	s   *Server
	msg *nats.Msg
}

// workerIdle is how long a worker waits for another request before it
// ends. Workers are kept rather than a goroutine started per request: a
// new goroutine's stack grows on every request (verifying a signature
// goes deep), and copying it was a twentieth of a verification's CPU.
const workerIdle = time.Second

// NewMux returns a Mux whose subscriptions join the given queue group
// (by convention the service name). Its requests are checked by verify;
// nil refuses every request that needs an assertion (RequireNone).
func NewMux(nc *nats.Conn, queue string, verify Verifier) *Mux {
	if verify == nil {
		verify = RequireNone{}
	}
	return &Mux{nc: nc, queue: queue, verify: verify, sem: make(chan struct{}, WorkersPerCore*runtime.GOMAXPROCS(0)), work: make(chan request)}
}

// SetWorkersPerCore sets how many requests m handles at once, per core;
// it is for before the first Handle.
func (m *Mux) SetWorkersPerCore(n int) {
	m.sem = make(chan struct{}, max(n, 1)*runtime.GOMAXPROCS(0))
}

// Concurrency is how many requests m handles at once.
func (m *Mux) Concurrency() int { return cap(m.sem) }

// Handle subscribes s to subject; its requests are checked by the mux's
// verifier.
func (m *Mux) Handle(subject string, s *Server) error {
	s.verify = m.verify
	sub, err := m.nc.QueueSubscribe(subject, m.queue, func(msg *nats.Msg) {
		m.inflight.Add(1)
		r := request{s, msg}
		// A waiting worker takes it, else a new one while there are fewer
		// than the mux allows, else the first to be free.
		select {
		case m.work <- r:
			return
		default:
		}
		select {
		case m.work <- r:
		case m.sem <- struct{}{}:
			go m.worker(r)
		}
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

// worker serves r, then whatever requests come while it waits, until none
// has come for workerIdle.
func (m *Mux) worker(r request) {
	defer func() { <-m.sem }()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		r.s.Serve(m.nc, r.msg)
		m.inflight.Done()
		idle.Reset(workerIdle)
		select {
		case r = <-m.work:
		case <-idle.C:
			return
		}
	}
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
