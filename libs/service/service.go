// Package service is the shape every Cloister service runs in: one Runner
// owns what a service's composition root used to wire by hand (the
// JetStream streams, the request/reply mux, the event consumers, the
// background loops and the periodic outbox recovery of every store opened
// through it) and stops them in order.
//
// A service's root declares what it serves and consumes:
//
//	r, err := service.Run(ctx, cav1.CAServiceName, cfg.Options, func(r *service.Runner) error {
//		st, err := store.Open(ctx, r.JetStream(), r.Replicas(), r.KVOptions()...)
//		...
//		return transport.Serve(r, app.New(...))
//	})
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/events"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/obs"
)

// DefaultRecoverEvery is how often a runner publishes what its stores'
// outboxes still hold (a publish that failed, a write of a dead replica).
const DefaultRecoverEvery = 30 * time.Second

// Options are what every service is given by its process; each service's
// Config embeds them.
type Options struct {
	NATS     *nats.Conn
	Replicas int          // of its streams and buckets; default 1
	Logger   *slog.Logger // default: silent
	// RecoverEvery is how often the outboxes are recovered; default
	// DefaultRecoverEvery.
	RecoverEvery time.Duration
	// KVOptions are added to every store opened with KVOptions (tests
	// inject publish failures with kv.WithFailPublish).
	KVOptions []kv.Option
	// Assertions verifies the gateway's assertions of who each request is
	// for (busauth.Verifier); without it, a request naming an actor is
	// refused.
	Assertions natsrpc.Verifier
}

// Runner runs one service in a process.
type Runner struct {
	name     string
	nc       *nats.Conn
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

// Run makes the runner of the service name, lets build open its stores
// and declare what it serves and consumes, then starts it. If build fails,
// whatever it started is stopped.
func Run(ctx context.Context, name string, o Options, build func(*Runner) error) (*Runner, error) {
	r, err := New(ctx, name, o)
	if err != nil {
		return nil, err
	}
	if err := build(r); err != nil {
		r.Stop()
		return nil, err
	}
	r.Start()
	return r, nil
}

// New opens the JetStream streams and the request mux of the service name:
// its request subjects are cloister.<name>.v1.<Method>, its queue group
// name.
func New(ctx context.Context, name string, o Options) (*Runner, error) {
	if o.NATS == nil || name == "" {
		return nil, errors.New("service: a name and a NATS connection are required")
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(obs.KeyComponent, name)
	natsrpc.CountReconnects(o.NATS, name)
	replicas := max(o.Replicas, 1)
	js, err := events.Open(ctx, o.NATS, replicas)
	if err != nil {
		return nil, err
	}
	every := o.RecoverEvery
	if every <= 0 {
		every = DefaultRecoverEvery
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &Runner{name: name, nc: o.NATS, replicas: replicas, every: every, logger: logger, js: js,
		mux: natsrpc.NewMux(o.NATS, name, o.Assertions), bg: bg, cancel: cancel}
	r.kvOpts = append([]kv.Option{kv.WithLogger(logger), kv.WithRegistry(r)}, o.KVOptions...)
	return r, nil
}

// NATS is the service's connection, for its clients of peer services.
func (r *Runner) NATS() *nats.Conn { return r.nc }

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

// Consume starts a durable consumer with the runner's context, JetStream
// and logger (unless cfg names one); Stop stops it.
func (r *Runner) Consume(cfg events.ConsumerConfig, h events.Handler) error {
	if cfg.Logger == nil {
		cfg.Logger = r.logger
	}
	c, err := events.Consume(r.bg, r.js, cfg, h)
	return r.keep(c, err)
}

// ConsumeRoutes starts a durable consumer of the events routes takes, on
// the EVENTS stream, each handled by its route.
func (r *Runner) ConsumeRoutes(durable string, routes *events.Router) error {
	return r.Consume(events.ConsumerConfig{Stream: events.StreamEvents, Durable: durable, FilterSubjects: routes.Subjects()}, routes.Handle)
}

// Watch follows new events on subjects of stream in this process only
// (every replica sees each), until Stop.
func (r *Runner) Watch(stream string, subjects []string, h events.Handler) error {
	c, err := events.Watch(r.bg, r.js, stream, subjects, h, r.logger)
	return r.keep(c, err)
}

// WatchAccounts calls f with the account of every event M that producer
// publishes from now on, in this process (as Watch): to drop what a
// process keeps of an account when it changes. An event without an
// account is an error.
func WatchAccounts[T any, M interface {
	*T
	proto.Message
	GetAccountId() string
}](r *Runner, producer string, f func(accountID string)) error {
	return r.Watch(events.StreamEvents, []string{events.Subject(producer, M(new(T)))}, func(_ context.Context, ev events.Event) error {
		m := M(new(T))
		if err := ev.Decode(m); err != nil {
			return err
		}
		if m.GetAccountId() == "" {
			return fmt.Errorf("%s without an account", m.ProtoReflect().Descriptor().Name())
		}
		f(m.GetAccountId())
		return nil
	})
}

func (r *Runner) keep(c *events.Consumer, err error) error {
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

// Every runs tick every interval in the background until Stop.
func (r *Runner) Every(interval time.Duration, tick func(ctx context.Context)) {
	r.Go(func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				tick(ctx)
			}
		}
	})
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
	r.Every(r.every, r.recover)
}

func (r *Runner) recover(ctx context.Context) {
	r.mu.Lock()
	stores := append([]namedStore(nil), r.stores...)
	r.mu.Unlock()
	for _, s := range stores {
		if err := s.r.Recover(ctx); err != nil && ctx.Err() == nil {
			r.logger.WarnContext(ctx, "recovering outbox", "bucket", s.bucket, "error", err)
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
