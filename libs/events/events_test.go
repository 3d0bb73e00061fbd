package events_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloister-cc/cloister/libs/events"
	eventsv1 "github.com/cloister-cc/cloister/libs/gen/cloister/events/v1"
	"github.com/cloister-cc/cloister/libs/testkit"
)

const within = 10 * time.Second

// fastBackoff keeps redeliveries quick in tests.
var fastBackoff = []time.Duration{10 * time.Millisecond}

// startJetStream starts an embedded server with the streams declared.
func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	n := testkit.StartNATS(t)
	_, js := n.JetStream(t)
	if err := events.EnsureStreams(t.Context(), js, 1); err != nil {
		t.Fatalf("EnsureStreams() = %v, want nil", err)
	}
	return js
}

func newMessage(t *testing.T, ctx context.Context, subject string, payload proto.Message) (*nats.Msg, *eventsv1.Envelope) {
	t.Helper()
	msg, env, err := events.NewMessage(ctx, subject, "test", "acct-1", payload)
	if err != nil {
		t.Fatalf("NewMessage() = %v, want nil", err)
	}
	return msg, env
}

func publish(t *testing.T, js jetstream.JetStream, subject string, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	msg, env := newMessage(t, t.Context(), subject, payload)
	if err := events.Publish(t.Context(), js, msg); err != nil {
		t.Fatalf("Publish() = %v, want nil", err)
	}
	return env
}

func consume(t *testing.T, js jetstream.JetStream, cfg events.ConsumerConfig, h events.Handler) {
	t.Helper()
	c, err := events.Consume(t.Context(), js, cfg, h)
	if err != nil {
		t.Fatalf("Consume() = %v, want nil", err)
	}
	t.Cleanup(c.Stop)
}

// settled reports whether the consumer has nothing pending or unacked.
func settled(t *testing.T, js jetstream.JetStream, stream, durable string) bool {
	t.Helper()
	c, err := js.Consumer(t.Context(), stream, durable)
	if err != nil {
		t.Fatalf("Consumer(%s) = %v", durable, err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatalf("Info(%s) = %v", durable, err)
	}
	return info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
}

func deadLetters(t *testing.T, js jetstream.JetStream, durable string) []*jetstream.RawStreamMsg {
	t.Helper()
	dls, err := events.DeadLetters(t.Context(), js, events.StreamEvents, durable, 10)
	if err != nil {
		t.Fatalf("DeadLetters(%s) = %v, want nil", durable, err)
	}
	return dls
}

// recorder collects what a handler saw, safely across goroutines.
type recorder struct {
	mu     sync.Mutex
	events []events.Event
}

func (r *recorder) add(ev events.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) snapshot() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) count(id string) int {
	n := 0
	for _, ev := range r.snapshot() {
		if ev.Envelope.Id == id {
			n++
		}
	}
	return n
}

func TestSubject(t *testing.T) {
	tests := []struct {
		producer string
		m        proto.Message
		want     string
	}{
		{"x", &eventsv1.AuditRecord{}, "events.x.v1.AuditRecord"},
		{"account", &eventsv1.Envelope{}, "events.account.v1.Envelope"},
		{"x", &timestamppb.Timestamp{}, "events.x.v1.Timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := events.Subject(tt.producer, tt.m); got != tt.want {
				t.Errorf("Subject(%q, %T) = %q, want %q", tt.producer, tt.m, got, tt.want)
			}
		})
	}
}

func TestAuditSubject(t *testing.T) {
	tests := []struct {
		account, producer, want string
	}{
		{"acct-1", "account", "audit.acct-1.account"},
		{"", "gateway", "audit._.gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := events.AuditSubject(tt.account, tt.producer); got != tt.want {
				t.Errorf("AuditSubject(%q, %q) = %q, want %q", tt.account, tt.producer, got, tt.want)
			}
		})
	}
}

func TestNewMessageDecodeRoundTrip(t *testing.T) {
	payload := &eventsv1.AuditRecord{ActorUserId: "u-1", Action: "member.add", Outcome: "success"}
	subject := events.Subject("x", payload)
	before := time.Now()
	msg, env, err := events.NewMessage(t.Context(), subject, "account", "acct-1", payload)
	if err != nil {
		t.Fatalf("NewMessage() = %v, want nil", err)
	}

	id, err := uuid.Parse(env.Id)
	if err != nil || id.Version() != 7 {
		t.Errorf("envelope id %q: version %v, err %v; want a UUIDv7", env.Id, id.Version(), err)
	}
	if got := msg.Header.Get(jetstream.MsgIDHeader); got != env.Id {
		t.Errorf("Nats-Msg-Id = %q, want %q", got, env.Id)
	}
	if msg.Subject != subject {
		t.Errorf("msg.Subject = %q, want %q", msg.Subject, subject)
	}
	if env.Type != "cloister.events.v1.AuditRecord" || env.Producer != "account" || env.AccountId != "acct-1" {
		t.Errorf("envelope = %v, want type cloister.events.v1.AuditRecord, producer account, account acct-1", env)
	}
	if at := env.OccurredAt.AsTime(); at.Before(before.Add(-time.Second)) {
		t.Errorf("OccurredAt = %v, want about %v", at, before)
	}

	ev, err := events.DecodeMessage(msg.Subject, msg.Header, msg.Data)
	if err != nil {
		t.Fatalf("DecodeMessage() = %v, want nil", err)
	}
	if !proto.Equal(ev.Envelope, env) {
		t.Errorf("DecodeMessage().Envelope = %v, want %v", ev.Envelope, env)
	}
	if ev.Subject != subject {
		t.Errorf("DecodeMessage().Subject = %q, want %q", ev.Subject, subject)
	}
	var got eventsv1.AuditRecord
	if err := ev.Decode(&got); err != nil {
		t.Fatalf("Decode() = %v, want nil", err)
	}
	if !proto.Equal(&got, payload) {
		t.Errorf("Decode() payload = %v, want %v", &got, payload)
	}
	if err := ev.Decode(&timestamppb.Timestamp{}); err == nil {
		t.Error("Decode(wrong type) = nil, want an error")
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	valid := func(mut func(*eventsv1.Envelope)) []byte {
		env := &eventsv1.Envelope{
			Id:         uuid.Must(uuid.NewV7()).String(),
			Type:       "cloister.events.v1.AuditRecord",
			OccurredAt: timestamppb.Now(),
			Producer:   "x",
		}
		mut(env)
		b, err := proto.Marshal(env)
		if err != nil {
			t.Fatalf("marshalling envelope: %v", err)
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"text", []byte("not an envelope")},
		{"json", []byte(`{"id":"x"}`)},
		{"no id", valid(func(e *eventsv1.Envelope) { e.Id = "" })},
		{"id not a uuid", valid(func(e *eventsv1.Envelope) { e.Id = "42" })},
		{"no type", valid(func(e *eventsv1.Envelope) { e.Type = "" })},
		{"type not a message name", valid(func(e *eventsv1.Envelope) { e.Type = "*main.Thing" })},
		{"no occurred-at", valid(func(e *eventsv1.Envelope) { e.OccurredAt = nil })},
		{"occurred-at out of range", valid(func(e *eventsv1.Envelope) { e.OccurredAt = &timestamppb.Timestamp{Seconds: -1 << 62} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := events.DecodeMessage("events.x.v1.Y", nil, tt.data); err == nil {
				t.Errorf("DecodeMessage(%q) = nil error, want an error", tt.data)
			}
		})
	}
	if _, err := events.DecodeMessage("events.x.v1.Y", nil, valid(func(*eventsv1.Envelope) {})); err != nil {
		t.Errorf("DecodeMessage(valid) = %v, want nil", err)
	}
}

func TestDuplicatePublishIsStoredAndHandledOnce(t *testing.T) {
	js := startJetStream(t)
	subject := events.Subject("test", &eventsv1.AuditRecord{})
	msg, env := newMessage(t, t.Context(), subject, &eventsv1.AuditRecord{Action: "first"})
	for i := range 2 {
		if err := events.Publish(t.Context(), js, msg); err != nil {
			t.Fatalf("Publish() #%d = %v, want nil", i+1, err)
		}
	}
	s, err := js.Stream(t.Context(), events.StreamEvents)
	if err != nil {
		t.Fatalf("Stream() = %v", err)
	}
	if got := s.CachedInfo().State.Msgs; got != 1 {
		t.Errorf("stream holds %d messages after a duplicate publish, want 1", got)
	}

	var rec recorder
	consume(t, js, events.ConsumerConfig{
		Stream: events.StreamEvents, Durable: "dup", FilterSubjects: []string{subject}, Backoff: fastBackoff,
	}, func(_ context.Context, ev events.Event) error {
		rec.add(ev)
		return nil
	})
	// Events are handled in order, so once a later one is handled, any
	// second copy of the first would have been handled too.
	sentinel := publish(t, js, subject, &eventsv1.AuditRecord{Action: "sentinel"})
	testkit.Eventually(t, within, func() bool { return rec.count(sentinel.Id) == 1 }, "sentinel event not handled")
	if got := rec.count(env.Id); got != 1 {
		t.Errorf("duplicate-published event handled %d times, want 1", got)
	}
}

func TestTransientFailureIsRedelivered(t *testing.T) {
	js := startJetStream(t)
	ours := attribute.String("consumer", "transient")
	redelivered := testkit.MetricSum(t, "cloister.events.redeliveries", ours)
	subject := events.Subject("test", &eventsv1.AuditRecord{})
	var (
		rec     recorder
		mu      sync.Mutex
		applied = map[string]int{}
	)
	consume(t, js, events.ConsumerConfig{
		Stream: events.StreamEvents, Durable: "transient", FilterSubjects: []string{subject},
		MaxDeliver: 5, Backoff: fastBackoff,
	}, func(_ context.Context, ev events.Event) error {
		rec.add(ev)
		if ev.Delivery <= 2 {
			return errors.New("database unavailable")
		}
		mu.Lock()
		defer mu.Unlock()
		applied[ev.Envelope.Id]++
		return nil
	})
	env := publish(t, js, subject, &eventsv1.AuditRecord{Action: "flaky"})
	testkit.Eventually(t, within, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return applied[env.Id] == 1
	}, "event not applied after transient failures")

	sentinel := publish(t, js, subject, &eventsv1.AuditRecord{Action: "sentinel"})
	testkit.Eventually(t, within, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return applied[sentinel.Id] == 1
	}, "sentinel event not applied")
	testkit.Eventually(t, within, func() bool {
		c, err := js.Consumer(t.Context(), events.StreamEvents, "transient")
		if err != nil {
			t.Fatalf("Consumer() = %v", err)
		}
		info, err := c.Info(t.Context())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, "consumer still has pending or unacked messages")

	var deliveries []uint64
	for _, ev := range rec.snapshot() {
		if ev.Envelope.Id == env.Id {
			deliveries = append(deliveries, ev.Delivery)
		}
	}
	if want := []uint64{1, 2, 3}; !slices.Equal(deliveries, want) {
		t.Errorf("deliveries of the flaky event = %v, want %v", deliveries, want)
	}
	// What operators watch: each event delivered twice again (the
	// handler fails its first two deliveries), nothing left to deliver.
	if n := testkit.MetricSum(t, "cloister.events.redeliveries", ours) - redelivered; n != 4 {
		t.Errorf("cloister.events.redeliveries counted %d, want 4", n)
	}
	if n := testkit.MetricSum(t, "cloister.events.consumer.pending", ours); n != 0 {
		t.Errorf("cloister.events.consumer.pending = %d after the last delivery, want 0", n)
	}
	mu.Lock()
	if got := applied[env.Id]; got != 1 {
		t.Errorf("side effect applied %d times, want 1", got)
	}
	mu.Unlock()
	if dls := deadLetters(t, js, "transient"); len(dls) != 0 {
		t.Errorf("DeadLetters() = %d messages, want 0", len(dls))
	}
}

func TestPoisonMessagesGoToDeadLetters(t *testing.T) {
	js := startJetStream(t)
	tests := []struct {
		name       string
		raw        []byte // published as is when set, instead of an event
		handler    func() error
		maxDeliver int
		wantCalls  int
		wantReason string
	}{
		{
			name:       "always failing",
			handler:    func() error { return errors.New("boom") },
			maxDeliver: 3,
			wantCalls:  3,
			wantReason: "boom",
		},
		{
			name:       "permanent",
			handler:    func() error { return fmt.Errorf("validating: %w", events.Permanent(errors.New("bad input"))) },
			maxDeliver: 5,
			wantCalls:  1,
			wantReason: "bad input",
		},
		{
			name:       "undecodable",
			raw:        []byte("not an envelope"),
			handler:    func() error { return nil },
			maxDeliver: 5,
			wantCalls:  0,
			wantReason: "decoding envelope",
		},
		{
			name:       "panicking",
			handler:    func() error { panic("nil map") },
			maxDeliver: 2,
			wantCalls:  2,
			wantReason: "panicked: nil map",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			durable := fmt.Sprintf("poison%d", i)
			subject := "events.test.v1." + durable
			var (
				mu    sync.Mutex
				calls int
			)
			consume(t, js, events.ConsumerConfig{
				Stream: events.StreamEvents, Durable: durable, FilterSubjects: []string{subject},
				MaxDeliver: tt.maxDeliver, Backoff: fastBackoff,
			}, func(context.Context, events.Event) error {
				mu.Lock()
				calls++
				mu.Unlock()
				return tt.handler()
			})

			msg := nats.NewMsg(subject)
			msg.Data = tt.raw
			if tt.raw == nil {
				msg, _ = newMessage(t, t.Context(), subject, &eventsv1.AuditRecord{Action: tt.name})
			}
			msg.Header.Set("X-Test", "kept")
			if err := events.Publish(t.Context(), js, msg); err != nil {
				t.Fatalf("Publish() = %v, want nil", err)
			}

			var dls []*jetstream.RawStreamMsg
			testkit.Eventually(t, within, func() bool {
				dls = deadLetters(t, js, durable)
				return len(dls) > 0
			}, "no dead letter for %s", durable)
			testkit.Eventually(t, within, func() bool { return settled(t, js, events.StreamEvents, durable) },
				"consumer %s still has unacked messages", durable)

			if len(dls) != 1 {
				t.Fatalf("DeadLetters() = %d messages, want 1", len(dls))
			}
			dl := dls[0]
			if got := dl.Header.Get(events.HeaderDeadReason); !strings.Contains(got, tt.wantReason) {
				t.Errorf("%s = %q, want it to contain %q", events.HeaderDeadReason, got, tt.wantReason)
			}
			if got := dl.Header.Get(events.HeaderDeadSubject); got != subject {
				t.Errorf("%s = %q, want %q", events.HeaderDeadSubject, got, subject)
			}
			if got := dl.Header.Get(events.HeaderDeadConsumer); got != durable {
				t.Errorf("%s = %q, want %q", events.HeaderDeadConsumer, got, durable)
			}
			if got := dl.Header.Get("X-Test"); got != "kept" {
				t.Errorf("dead letter header X-Test = %q, want the original's %q", got, "kept")
			}
			if !bytes.Equal(dl.Data, msg.Data) {
				t.Errorf("dead letter body = %q, want the original %q", dl.Data, msg.Data)
			}
			if want := events.DeadLetterSubject(events.StreamEvents, durable); dl.Subject != want {
				t.Errorf("dead letter subject = %q, want %q", dl.Subject, want)
			}
			mu.Lock()
			defer mu.Unlock()
			if calls != tt.wantCalls {
				t.Errorf("handler called %d times, want %d", calls, tt.wantCalls)
			}
		})
	}
}

func TestEnsureStreamsIsIdempotentAndUpdates(t *testing.T) {
	n := testkit.StartNATS(t)
	_, js := n.JetStream(t)
	ctx := t.Context()

	// An EVENTS stream declared differently by an older version.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: events.StreamEvents, Subjects: []string{"events.>"}, Storage: jetstream.FileStorage,
		MaxAge: time.Hour, Duplicates: 10 * time.Second,
	}); err != nil {
		t.Fatalf("CreateStream() = %v", err)
	}
	// The first call updates EVENTS; the second finds every stream as
	// declared and updates none (an update races with consumers being
	// created by other services starting).
	// Advisories are sent asynchronously, but in order: a sentinel
	// stream created after each call says when all the call caused has
	// been told.
	advisories := make(chan string, 64)
	watcher := n.Connect(t)
	if _, err := watcher.Subscribe("$JS.EVENT.ADVISORY.STREAM.>", func(m *nats.Msg) { advisories <- m.Subject }); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := events.EnsureStreams(ctx, js, 1); err != nil {
			t.Fatalf("EnsureStreams() #%d = %v, want nil", i+1, err)
		}
		sentinel := fmt.Sprintf("SENTINEL_%d", i)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: sentinel, Subjects: []string{"sentinel." + sentinel},
			Storage: jetstream.MemoryStorage}); err != nil {
			t.Fatal(err)
		}
		updated := 0
		for done := false; !done; {
			select {
			case subject := <-advisories:
				updated += boolInt(strings.HasPrefix(subject, "$JS.EVENT.ADVISORY.STREAM.UPDATED."))
				done = subject == "$JS.EVENT.ADVISORY.STREAM.CREATED."+sentinel
			case <-time.After(10 * time.Second):
				t.Fatalf("no advisory of the sentinel stream %s", sentinel)
			}
		}
		if want := 1 - i; updated != want {
			t.Fatalf("EnsureStreams() #%d updated %d streams, want %d", i+1, updated, want)
		}
	}
	if err := events.EnsureStreams(ctx, js, -1); err == nil {
		t.Error("EnsureStreams(replicas -1) = nil, want an error")
	}

	tests := []struct {
		stream  string
		subject string
		maxAge  bool // whether the stream expires messages
	}{
		{events.StreamEvents, "events.>", true},
		{events.StreamAudit, "audit.>", false},
		{events.StreamDeadLetters, "deadletter.>", true},
	}
	for _, tt := range tests {
		t.Run(tt.stream, func(t *testing.T) {
			s, err := js.Stream(ctx, tt.stream)
			if err != nil {
				t.Fatalf("Stream(%s) = %v, want nil", tt.stream, err)
			}
			cfg := s.CachedInfo().Config
			if !slices.Equal(cfg.Subjects, []string{tt.subject}) {
				t.Errorf("Subjects = %v, want [%s]", cfg.Subjects, tt.subject)
			}
			if cfg.Storage != jetstream.FileStorage || cfg.Replicas != 1 || cfg.Retention != jetstream.LimitsPolicy {
				t.Errorf("Storage, Replicas, Retention = %v, %d, %v; want file, 1, limits", cfg.Storage, cfg.Replicas, cfg.Retention)
			}
			if cfg.Duplicates != 2*time.Minute {
				t.Errorf("Duplicates = %v, want 2m", cfg.Duplicates)
			}
			if got := cfg.MaxAge != 0; got != tt.maxAge {
				t.Errorf("MaxAge = %v, want expiry %v", cfg.MaxAge, tt.maxAge)
			}
			if cfg.MaxAge == time.Hour {
				t.Errorf("MaxAge = %v, the old value; want it updated", cfg.MaxAge)
			}
		})
	}
}

// On a cluster, a process asking for fewer replicas than the streams have
// (a gateway started without the deployment's --replicas) leaves them as
// they are; one asking for more scales them up.
func TestEnsureStreamsNeverScalesDown(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	_, js := c.JetStream(t, 0)
	ctx := t.Context()
	replicas := func() map[string]int {
		got := map[string]int{}
		for _, name := range []string{events.StreamEvents, events.StreamAudit, events.StreamDeadLetters, events.StreamJobs} {
			st, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			got[name] = st.CachedInfo().Config.Replicas
		}
		return got
	}
	for _, step := range []struct{ ask, want int }{{1, 1}, {3, 3}, {1, 3}, {0, 3}} {
		if err := events.EnsureStreams(ctx, js, step.ask); err != nil {
			t.Fatalf("EnsureStreams(%d) = %v", step.ask, err)
		}
		for name, r := range replicas() {
			if r != step.want {
				t.Fatalf("after EnsureStreams(%d), %s has %d replicas, want %d", step.ask, name, r, step.want)
			}
		}
	}
}

func TestWatchSeesOnlyNewEvents(t *testing.T) {
	js := startJetStream(t)
	old := publish(t, js, "events.test.v1.Old", &eventsv1.AuditRecord{Action: "old"})

	var rec recorder
	w, err := events.Watch(t.Context(), js, events.StreamEvents, []string{"events.test.>"},
		func(_ context.Context, ev events.Event) error {
			rec.add(ev)
			// Dropped, not retried.
			return errors.New("cache down")
		}, nil)
	if err != nil {
		t.Fatalf("Watch() = %v, want nil", err)
	}
	t.Cleanup(w.Stop)

	publish(t, js, "events.other.v1.Ignored", &eventsv1.AuditRecord{Action: "filtered out"})
	first := publish(t, js, "events.test.v1.New", &eventsv1.AuditRecord{Action: "new"})
	second := publish(t, js, "events.test.v1.New", &eventsv1.AuditRecord{Action: "newer"})
	testkit.Eventually(t, within, func() bool { return rec.count(second.Id) == 1 }, "Watch did not deliver the newest event")

	var got []string
	for _, ev := range rec.snapshot() {
		got = append(got, ev.Envelope.Id)
	}
	if want := []string{first.Id, second.Id}; !slices.Equal(got, want) {
		t.Errorf("Watch delivered %v, want %v (not the old event %s)", got, want, old.Id)
	}
}

func TestTraceContextReachesHandler(t *testing.T) {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
		_ = tp.Shutdown(context.Background())
	})

	js := startJetStream(t)
	subject := events.Subject("test", &eventsv1.AuditRecord{})
	seen := make(chan trace.SpanContext, 1)
	consume(t, js, events.ConsumerConfig{
		Stream: events.StreamEvents, Durable: "traced", FilterSubjects: []string{subject}, Backoff: fastBackoff,
	}, func(ctx context.Context, _ events.Event) error {
		select {
		case seen <- trace.SpanContextFromContext(ctx):
		default:
		}
		return nil
	})

	ctx, span := tp.Tracer("test").Start(t.Context(), "publish")
	msg, _ := newMessage(t, ctx, subject, &eventsv1.AuditRecord{Action: "traced"})
	span.End()
	if msg.Header.Get("traceparent") == "" {
		t.Fatalf("NewMessage() headers %v carry no traceparent", msg.Header)
	}
	if err := events.Publish(t.Context(), js, msg); err != nil {
		t.Fatalf("Publish() = %v, want nil", err)
	}

	var got trace.SpanContext
	select {
	case got = <-seen:
	case <-time.After(within):
		t.Fatal("handler not called")
	}
	want := span.SpanContext()
	if got.TraceID() != want.TraceID() {
		t.Errorf("handler trace id = %s, want the publisher's %s", got.TraceID(), want.TraceID())
	}
	testkit.Eventually(t, within, func() bool {
		for _, s := range spans.Ended() {
			if s.SpanKind() == trace.SpanKindConsumer && s.Parent().SpanID() == want.SpanID() && s.SpanContext().SpanID() == got.SpanID() {
				return true
			}
		}
		return false
	}, "no consumer span that is a child of the publisher's span %s", want.SpanID())
}

func TestConsumeRejectsBadConfig(t *testing.T) {
	js := startJetStream(t)
	ok := func(context.Context, events.Event) error { return nil }
	tests := []struct {
		name string
		cfg  events.ConsumerConfig
		h    events.Handler
	}{
		{"no durable", events.ConsumerConfig{Stream: events.StreamEvents}, ok},
		{"no stream", events.ConsumerConfig{Durable: "d"}, ok},
		{"negative max deliver", events.ConsumerConfig{Stream: events.StreamEvents, Durable: "d", MaxDeliver: -1}, ok},
		{"negative back-off", events.ConsumerConfig{Stream: events.StreamEvents, Durable: "d", Backoff: []time.Duration{-1}}, ok},
		{"nil handler", events.ConsumerConfig{Stream: events.StreamEvents, Durable: "d"}, nil},
		{"unknown stream", events.ConsumerConfig{Stream: "NOPE", Durable: "d"}, ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := events.Consume(t.Context(), js, tt.cfg, tt.h)
			if err == nil {
				c.Stop()
				t.Errorf("Consume(%+v) = nil error, want an error", tt.cfg)
			}
		})
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", base, false},
		{"permanent", events.Permanent(base), true},
		{"wrapped permanent", fmt.Errorf("handling: %w", events.Permanent(base)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := events.IsPermanent(tt.err); got != tt.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if !errors.Is(events.Permanent(base), base) {
		t.Error("errors.Is(Permanent(err), err) = false, want true")
	}
	if events.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	msg, _, err := events.NewMessage(context.Background(), "events.x.v1.AuditRecord", "x", "a",
		&eventsv1.AuditRecord{Action: "seed", Outcome: "success"})
	if err != nil {
		f.Fatalf("NewMessage() = %v", err)
	}
	f.Add(msg.Data)
	f.Add(msg.Data[:len(msg.Data)/2])
	f.Add([]byte{})
	f.Add([]byte("not an envelope"))
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := events.DecodeMessage("events.x.v1.AuditRecord", nil, data)
		if err != nil {
			return
		}
		if ev.Envelope == nil {
			t.Fatal("DecodeMessage() = nil envelope and nil error")
		}
		if _, err := uuid.Parse(ev.Envelope.Id); err != nil {
			t.Fatalf("DecodeMessage() accepted id %q: %v", ev.Envelope.Id, err)
		}
		again, err := proto.Marshal(ev.Envelope)
		if err != nil {
			t.Fatalf("re-marshalling an accepted envelope: %v", err)
		}
		if _, err := events.DecodeMessage("events.x.v1.AuditRecord", nil, again); err != nil {
			t.Fatalf("DecodeMessage(re-marshalled) = %v, want nil", err)
		}
		// Decoding the payload may fail, but must not panic.
		_ = ev.Decode(&eventsv1.AuditRecord{})
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
