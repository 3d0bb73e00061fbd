// Package service is the shape every Cloister service runs in: one Runner
// owns what a service's composition root used to wire by hand (the
// JetStream streams, the request/reply mux, the event consumers, the
// background loops and the periodic outbox recovery of every store opened
// through it) and stops them in order.
//
// A service's root declares what it serves and consumes:
//
//	r, err := service.New(ctx, service.Config{Name: client.Service, NATS: nc})
//	st, err := store.Open(ctx, r.JetStream(), r.Replicas(), r.KVOptions()...)
//	... r.Mux() ... r.Consume(func(ctx context.Context) (*events.Consumer, error) { ... })
//	r.Start()
//	defer r.Stop()
package service

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/events"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/obs"
)

// DefaultRecoverEvery is how often a runner publishes what its stores'
// outboxes still hold (a publish that failed, a write of a dead replica).
const DefaultRecoverEvery = 30 * time.Second

// Config is what a runner needs.
type Config struct {
	// Name is the service's: its request subjects are
	// cloister.<Name>.v1.<Method>, its queue group Name.
	Name     string
	NATS     *nats.Conn
	Replicas int          // of its streams and buckets; default 1
	Logger   *slog.Logger // default: silent
	// RecoverEvery is how often the outboxes are recovered; default
	// DefaultRecoverEvery.
	RecoverEvery time.Duration
	// KVOptions are added to every store opened with KVOptions (tests
	// inject publish failures with kv.WithFailPublish).
	KVOptions []kv.Option
}

// Runner runs one service in a process.
type Runner struct {
	name     string
	replicas int
	every    time.Duration
	logger   *slog.Logger
	js       jetstream.JetStream
	mux      *natsrpc.Mux
	kvOpts   []kv.Option

	bg     context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup

	mu        sync.Mutex
	stores    []namedStore
	consumers []*events.Consumer
	started   bool
	stopped   bool
}

type namedStore struct {
	bucket string
	r      kv.Recoverer
}

var _ kv.Registry = (*Runner)(nil)

// New opens the service's JetStream streams and its request mux.
func New(ctx context.Context, cfg Config) (*Runner, error) {
	if cfg.NATS == nil || cfg.Name == "" {
		return nil, errors.New("service: a name and a NATS connection are required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(obs.KeyComponent, cfg.Name)
	replicas := max(cfg.Replicas, 1)
	js, err := events.Open(ctx, cfg.NATS, replicas)
	if err != nil {
		return nil, err
	}
	every := cfg.RecoverEvery
	if every <= 0 {
		every = DefaultRecoverEvery
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &Runner{name: cfg.Name, replicas: replicas, every: every, logger: logger, js: js,
		mux: natsrpc.NewMux(cfg.NATS, cfg.Name), bg: bg, cancel: cancel}
	r.kvOpts = append([]kv.Option{kv.WithLogger(logger), kv.WithRegistry(r)}, cfg.KVOptions...)
	return r, nil
}

// JetStream is the service's JetStream context.
func (r *Runner) JetStream() jetstream.JetStream { return r.js }

// Mux is where the service's request handlers are registered.
func (r *Runner) Mux() *natsrpc.Mux { return r.mux }

// Logger is the service's logger.
func (r *Runner) Logger() *slog.Logger { return r.logger }

// Replicas is the replication of the service's streams and buckets.
func (r *Runner) Replicas() int { return r.replicas }

// Context lives until Stop: for consumers and background loops.
func (r *Runner) Context() context.Context { return r.bg }

// KVOptions are the options every store of the service is opened with:
// its logger, and registration for the runner's outbox recovery.
func (r *Runner) KVOptions() []kv.Option { return r.kvOpts }

// Register adds a store to the periodic outbox recovery; stores opened
// with KVOptions register themselves.
func (r *Runner) Register(bucket string, s kv.Recoverer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stores = append(r.stores, namedStore{bucket, s})
}

// Consume starts a consumer with the runner's context; Stop stops it.
func (r *Runner) Consume(start func(ctx context.Context) (*events.Consumer, error)) error {
	c, err := start(r.bg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.consumers = append(r.consumers, c)
	return nil
}

// Go runs loop in the background until Stop, which waits for it.
func (r *Runner) Go(loop func(ctx context.Context)) {
	r.loops.Go(func() { loop(r.bg) })
}

// Start begins the periodic outbox recovery of every registered store.
// The stores already recovered once when they were opened.
func (r *Runner) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return
	}
	r.started = true
	r.Go(r.recoverEvery)
}

func (r *Runner) recoverEvery(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.mu.Lock()
			stores := append([]namedStore(nil), r.stores...)
			r.mu.Unlock()
			for _, s := range stores {
				if err := s.r.Recover(ctx); err != nil && ctx.Err() == nil {
					r.logger.WarnContext(ctx, "recovering outbox", "bucket", s.bucket, "error", err)
				}
			}
		}
	}
}

// Stop stops taking requests (draining those under way), then events,
// then the background loops, and waits for them. It may be called twice.
func (r *Runner) Stop() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	consumers := r.consumers
	r.mu.Unlock()
	_ = r.mux.Drain()
	for _, c := range consumers {
		c.Stop()
	}
	r.cancel()
	r.loops.Wait()
}
