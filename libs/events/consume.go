package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/cloister-cc/cloister/libs/natsrpc"
)

// Handler handles one event. It must be idempotent: an event can be
// delivered more than once.
type Handler func(ctx context.Context, ev Event) error

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: Consume sends the message to
// the dead letters at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// ConsumerConfig configures Consume.
type ConsumerConfig struct {
	Stream         string
	Durable        string // durable name; required
	FilterSubjects []string
	// MaxDeliver is how many times a message is handed to the handler
	// before it goes to the dead letters; default 5. Consume enforces it
	// rather than the server (whose consumer has no limit), so a message
	// is never dropped without a dead letter: one redelivered more often,
	// because its acks were lost or its handler outlived AckWait, goes to
	// the dead letters without reaching the handler again.
	MaxDeliver int
	// Backoff is the delay before redelivery n after a failure (the last
	// value repeats); default 100ms, 500ms, 2s, 5s.
	Backoff []time.Duration
	// AckWait is how long the server waits for an ack before redelivering;
	// default 30s. Long handlers extend it with InProgress.
	AckWait time.Duration
	Logger  *slog.Logger // default: discard
}

// Defaults of ConsumerConfig.
const (
	defaultMaxDeliver = 5
	defaultAckWait    = 30 * time.Second
)

var defaultBackoff = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 5 * time.Second}

const (
	// pullWait is how long one pull request waits on the server. A
	// request cancelled by Stop lives on the server until it expires, and
	// a message sent to it then waits AckWait to be redelivered.
	pullWait = 10 * time.Second
	// maxFetchRetry caps the pause between failed pull requests.
	maxFetchRetry = 5 * time.Second
	// maxReasonLen bounds the reason header and the term reason.
	maxReasonLen = 1024
	tracerName   = "github.com/cloister-cc/cloister/libs/events"
)

// Log keys.
const (
	logKeyStream   = "stream"
	logKeyConsumer = "consumer"
	logKeySubject  = "subject"
	logKeyEventID  = "event_id"
	logKeyDelivery = "delivery"
	logKeyError    = "error"
)

func (cfg ConsumerConfig) withDefaults() (ConsumerConfig, error) {
	switch {
	case cfg.Stream == "":
		return cfg, errors.New("configuring consumer: no stream")
	case cfg.Durable == "":
		return cfg, errors.New("configuring consumer: no durable name")
	case cfg.MaxDeliver < 0:
		return cfg, fmt.Errorf("configuring consumer %s: MaxDeliver %d is negative", cfg.Durable, cfg.MaxDeliver)
	case cfg.AckWait < 0:
		return cfg, fmt.Errorf("configuring consumer %s: AckWait %v is negative", cfg.Durable, cfg.AckWait)
	}
	for _, d := range cfg.Backoff {
		if d < 0 {
			return cfg, fmt.Errorf("configuring consumer %s: back-off %v is negative", cfg.Durable, d)
		}
	}
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = defaultMaxDeliver
	}
	if len(cfg.Backoff) == 0 {
		cfg.Backoff = defaultBackoff
	}
	cfg.Backoff = slices.Clone(cfg.Backoff)
	cfg.FilterSubjects = slices.Clone(cfg.FilterSubjects)
	if cfg.AckWait == 0 {
		cfg.AckWait = defaultAckWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// backoff returns the delay before the redelivery that follows delivery n.
func (cfg ConsumerConfig) backoff(n uint64) time.Duration {
	i := len(cfg.Backoff) - 1
	if n >= 1 && n-1 < uint64(i) {
		i = int(n - 1)
	}
	return cfg.Backoff[i]
}

// Consumer is a running Consume or Watch.
type Consumer struct {
	cancel   context.CancelFunc
	stopIter func()
	done     chan struct{}
}

// Stop stops fetching and waits for the handler in progress to return.
// The handler's context is not cancelled by Stop. Calling Stop again, or
// after the context given to Consume or Watch ended, is harmless; calling it
// from a handler deadlocks.
func (c *Consumer) Stop() {
	c.cancel()
	if c.stopIter != nil {
		c.stopIter()
	}
	<-c.done
}

type msgKey struct{}

// InProgress tells the server that the message being handled in ctx is
// still being worked on, which resets its AckWait. Long handlers call it
// now and then. Outside a Consume handler it does nothing; a lost progress
// report only means an early redelivery, so errors are ignored.
func InProgress(ctx context.Context) {
	if m, ok := ctx.Value(msgKey{}).(jetstream.Msg); ok {
		_ = m.InProgress()
	}
}

// Consume creates or updates the durable pull consumer cfg.Durable (explicit
// ack) on cfg.Stream and runs h for each message, one at a time, until Stop
// is called or ctx ends. The handler's context is ctx with the trace context
// of the message (a consumer span is started as its child).
//
// When h returns nil the message is acked; when it fails, it is redelivered
// after the back-off for this delivery. When it fails on delivery
// cfg.MaxDeliver, or fails with a Permanent error, or the body is not a
// valid Envelope, the message is copied to DeadLetterSubject(stream,
// durable) with the HeaderDead* headers and terminated. If the dead letter
// cannot be stored, the message is redelivered later to try again.
func Consume(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, h Handler) (*Consumer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("consuming %s as %s: nil handler", cfg.Stream, cfg.Durable)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
		Durable:        cfg.Durable,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		MaxDeliver:     -1, // enforced by process, see ConsumerConfig.MaxDeliver
		FilterSubjects: cfg.FilterSubjects,
	})
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s on %s: %w", cfg.Durable, cfg.Stream, err)
	}
	r := &runner{js: js, cons: cons, cfg: cfg, h: h,
		attrs: metric.WithAttributeSet(attribute.NewSet(attribute.String("stream", cfg.Stream), attribute.String("consumer", cfg.Durable)))}
	runCtx, cancel := context.WithCancel(ctx)
	c := &Consumer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		r.run(ctx, runCtx)
	}()
	return c, nil
}

type runner struct {
	js    jetstream.JetStream
	cons  jetstream.Consumer
	cfg   ConsumerConfig
	h     Handler
	attrs metric.MeasurementOption // of its metrics
}

// run pulls one message at a time, so that no message waits in a client
// buffer, its AckWait running, behind a long handler. ctx is the base of
// handler contexts; runCtx ends the loop.
func (r *runner) run(ctx, runCtx context.Context) {
	log := r.cfg.Logger.With(logKeyStream, r.cfg.Stream, logKeyConsumer, r.cfg.Durable)
	var retry time.Duration
	for runCtx.Err() == nil {
		fetchCtx, cancel := context.WithTimeout(runCtx, pullWait)
		msg, err := r.cons.Next(jetstream.FetchContext(fetchCtx))
		cancel()
		if err == nil {
			retry = 0
			if ctx.Err() != nil {
				// Shutting down: let another instance have it now.
				_ = msg.Nak()
				return
			}
			r.process(ctx, msg)
			continue
		}
		switch {
		case runCtx.Err() != nil:
			return
		case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
			retry = 0
			continue
		case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, jetstream.ErrConnectionClosed):
			log.Error("stopping consumer: connection closed", logKeyError, err)
			return
		}
		retry = min(max(2*retry, 100*time.Millisecond), maxFetchRetry)
		log.Warn("fetching message", logKeyError, err, "retry_in", retry)
		if !pause(runCtx, retry) {
			return
		}
	}
}

// Metrics of every consumer, by stream and consumer: what operators
// watch for a consumer falling behind or failing (docs/operations.md).
var (
	meter           = otel.Meter(tracerName)
	redeliveries, _ = meter.Int64Counter("cloister.events.redeliveries",
		metric.WithDescription("Messages handed to a consumer again: its handler failed, its ack was lost, or the instance that had it died"))
	consumerPending, _ = meter.Int64Gauge("cloister.events.consumer.pending",
		metric.WithDescription("Messages a consumer has yet to be handed, as of its last delivery: its lag"))
	deadLetters, _ = meter.Int64Counter("cloister.events.dead_letters",
		metric.WithDescription("Messages a consumer gave up on and copied to the dead letters"))
)

func (r *runner) process(ctx context.Context, msg jetstream.Msg) {
	log := r.cfg.Logger.With(logKeyStream, r.cfg.Stream, logKeyConsumer, r.cfg.Durable, logKeySubject, msg.Subject())
	md, err := msg.Metadata()
	if err != nil {
		// Only a message without a JetStream reply subject lacks
		// metadata, and it cannot be acked either.
		log.Error("reading message metadata", logKeyError, err)
		return
	}
	delivery := md.NumDelivered
	consumerPending.Record(ctx, int64(md.NumPending), r.attrs)
	if delivery > 1 {
		redeliveries.Add(ctx, 1, r.attrs)
	}
	ev, err := DecodeMessage(msg.Subject(), msg.Headers(), msg.Data())
	if err != nil {
		r.deadLetter(ctx, log, msg, md, err)
		return
	}
	log = log.With(logKeyEventID, ev.Envelope.Id, logKeyDelivery, delivery)
	maxDeliver := uint64(r.cfg.MaxDeliver)
	if delivery > maxDeliver {
		r.deadLetter(ctx, log, msg, md, fmt.Errorf("delivered %d times without an ack, more than the %d allowed", delivery, maxDeliver))
		return
	}
	ev.Delivery = delivery
	err = handle(ctx, log, msg, ev, r.h)
	switch {
	case err == nil:
		if err := msg.Ack(); err != nil {
			log.Warn("acking message", logKeyError, err)
		}
	case IsPermanent(err):
		r.deadLetter(ctx, log, msg, md, err)
	case delivery >= maxDeliver:
		r.deadLetter(ctx, log, msg, md, fmt.Errorf("after %d deliveries: %w", delivery, err))
	default:
		delay := r.cfg.backoff(delivery)
		log.Debug("handler failed; redelivering later", logKeyError, err, "delay", delay)
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn("naking message", logKeyError, err)
		}
	}
}

// deadLetter copies msg, with the reason, to the dead letters and
// terminates it. The copy keeps the original body and headers, except the
// Nats-* directives meant for the original publish; its Nats-Msg-Id is
// derived from the original's stream sequence, so a retry is stored once.
func (r *runner) deadLetter(ctx context.Context, log *slog.Logger, msg jetstream.Msg, md *jetstream.MsgMetadata, reason error) {
	text := headerValue(reason.Error())
	dl := nats.NewMsg(DeadLetterSubject(r.cfg.Stream, r.cfg.Durable))
	dl.Data = msg.Data()
	for k, vs := range msg.Headers() {
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			continue
		}
		dl.Header[k] = slices.Clone(vs)
	}
	dl.Header.Set(HeaderDeadReason, text)
	dl.Header.Set(HeaderDeadSubject, msg.Subject())
	dl.Header.Set(HeaderDeadConsumer, r.cfg.Durable)
	dl.Header.Set(jetstream.MsgIDHeader, r.cfg.Stream+"."+r.cfg.Durable+"."+strconv.FormatUint(md.Sequence.Stream, 10))

	// The copy must be stored even when ctx ended mid-handler.
	if _, err := r.js.PublishMsg(context.WithoutCancel(ctx), dl); err != nil {
		delay := r.cfg.Backoff[len(r.cfg.Backoff)-1]
		log.Error("storing dead letter; redelivering later", logKeyError, err, "reason", text, "delay", delay)
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn("naking message", logKeyError, err)
		}
		return
	}
	deadLetters.Add(ctx, 1, r.attrs)
	log.Warn("message dead-lettered", "reason", text, "stream_sequence", md.Sequence.Stream)
	if err := msg.TermWithReason(text); err != nil {
		log.Warn("terminating message", logKeyError, err)
	}
}

// headerValue makes s fit in a NATS header: one line of valid UTF-8 of at
// most maxReasonLen bytes.
func headerValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxReasonLen {
		cut := maxReasonLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// handle runs h for ev inside a consumer span that continues the trace of
// the message, with msg reachable by InProgress. A panic in h is an error.
func handle(ctx context.Context, log *slog.Logger, msg jetstream.Msg, ev Event, h Handler) (err error) {
	// A span of the caller of Consume is not the parent of the event's.
	ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	ctx = otel.GetTextMapPropagator().Extract(ctx, natsrpc.HeaderCarrier(msg.Headers()))
	ctx, span := otel.Tracer(tracerName).Start(ctx, msg.Subject(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", msg.Subject()),
			attribute.String("messaging.message.id", ev.Envelope.Id),
		))
	defer span.End()
	ctx = context.WithValue(ctx, msgKey{}, msg)

	defer func() {
		if p := recover(); p != nil {
			log.Error("event handler panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("event handler panicked: %v", p)
		}
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	}()
	return h(ctx, ev)
}

// pause waits d or until ctx ends; it reports whether ctx is still live.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Watch delivers the messages of stream (matching filterSubjects, all when
// empty) published from now on, through an ordered ephemeral consumer, in
// order and without acks or retries: the tool for cache invalidation in
// every process. A body that is not an Envelope is skipped; errors from h
// are logged and dropped. Handlers get the same context as in Consume
// (InProgress does nothing). logger may be nil.
func Watch(ctx context.Context, js jetstream.JetStream, stream string, filterSubjects []string, h Handler, logger *slog.Logger) (*Consumer, error) {
	if h == nil {
		return nil, fmt.Errorf("watching %s: nil handler", stream)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", stream, err)
	}
	// Start after the last stored message rather than with DeliverNew: an
	// ordered consumer recreated (after a reconnect) before it delivered
	// anything would apply DeliverNew again and skip what came in between.
	oc, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: slices.Clone(filterSubjects),
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    s.CachedInfo().State.LastSeq + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("creating ordered consumer on %s: %w", stream, err)
	}
	it, err := oc.Messages()
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", stream, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	c := &Consumer{cancel: cancel, stopIter: it.Stop, done: make(chan struct{})}
	log := logger.With(logKeyStream, stream)
	go func() {
		defer close(c.done)
		defer it.Stop()
		for {
			msg, err := it.Next(jetstream.NextContext(runCtx))
			if err != nil {
				if runCtx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				log.Warn("watching: reading next message", logKeyError, err)
				if !pause(runCtx, time.Second) {
					return
				}
				continue
			}
			watchOne(ctx, log, msg, h)
		}
	}()
	return c, nil
}

func watchOne(ctx context.Context, log *slog.Logger, msg jetstream.Msg, h Handler) {
	log = log.With(logKeySubject, msg.Subject())
	ev, err := DecodeMessage(msg.Subject(), msg.Headers(), msg.Data())
	if err != nil {
		log.Warn("watching: skipping message", logKeyError, err)
		return
	}
	ev.Delivery = 1
	if md, err := msg.Metadata(); err == nil {
		ev.Delivery = md.NumDelivered
	}
	if err := handle(ctx, log, msg, ev, h); err != nil {
		log.Warn("watch handler failed; dropping event", logKeyEventID, ev.Envelope.Id, logKeyError, err)
	}
}
