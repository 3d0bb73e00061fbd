package natsrpc_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/testkit"
)

var echo = natsrpc.NewMethod[*wrapperspb.StringValue, *wrapperspb.StringValue]("test", "Echo")

// serve answers echo with f and returns a client endpoint for it.
func serve(t testing.TB, f func(ctx context.Context, in string) (string, error)) func(ctx context.Context, in string) (string, error) {
	t.Helper()
	n := testkit.StartNATS(t)
	nc := n.Connect(t)
	mux := natsrpc.NewMux(nc, "test", nil)
	srv := echo.Server(func(ctx context.Context, req any) (any, error) {
		out, err := f(ctx, req.(*wrapperspb.StringValue).GetValue())
		if err != nil {
			return nil, err
		}
		return wrapperspb.String(out), nil
	}, nil)
	if err := mux.Handle(echo.Subject(), srv); err != nil {
		t.Fatal(err)
	}
	client := echo.Client(n.Connect(t))
	return func(ctx context.Context, in string) (string, error) {
		resp, err := natsrpc.Call[*wrapperspb.StringValue](ctx, client, wrapperspb.String(in))
		return resp.GetValue(), err
	}
}

func TestRoundTrip(t *testing.T) {
	call := serve(t, func(_ context.Context, in string) (string, error) { return "echo:" + in, nil })
	got, err := call(context.Background(), "hi")
	if err != nil || got != "echo:hi" {
		t.Fatalf("call(hi) = %q, %v; want echo:hi", got, err)
	}
}

// Request bodies are reused once sent: each of many concurrent calls,
// each body different and larger than nats.go's write buffer holds at
// once, must reach the server as it was sent.
func TestConcurrentBodiesArriveIntact(t *testing.T) {
	call := serve(t, func(_ context.Context, in string) (string, error) { return in, nil })
	const calls = 300
	errc := make(chan error, calls)
	for i := range calls {
		go func() {
			in := strings.Repeat(fmt.Sprintf("%04d", i), 1+i*11) // 4 B to 13 KB
			got, err := call(context.Background(), in)
			if err == nil && got != in {
				err = fmt.Errorf("call %d: the server got %d bytes starting %.12q, sent %d starting %.12q", i, len(got), got, len(in), in)
			}
			errc <- err
		}()
	}
	for range calls {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// A request lost without an answer (its replica or NATS node died with it)
// is sent again by a call of an idempotent method, which is answered; a
// call of another method waits out its deadline, and its request is
// served once.
func TestIdempotentCallsSendAgain(t *testing.T) {
	n := testkit.StartNATS(t)
	mux := natsrpc.NewMux(n.Connect(t), "test", nil)
	var served atomic.Int32
	ended := make(chan struct{})
	t.Cleanup(func() { close(ended) })
	if err := echo.Handle(mux, nil, func(_ context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if served.Add(1) == 1 {
			<-ended // the first request is lost: never answered
			return nil, errors.New("the test ended")
		}
		return req, nil
	}); err != nil {
		t.Fatal(err)
	}
	nc := n.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), natsrpc.AttemptTimeout+3*time.Second)
	defer cancel()
	if got, err := echo.Idempotent().Invoke(ctx, nc, wrapperspb.String("x")); err != nil || got.GetValue() != "x" || served.Load() != 2 {
		t.Fatalf("an idempotent call whose first request is lost = %v, %v after %d requests; want x after 2", got, err, served.Load())
	}

	served.Store(0)
	ctx, cancel = context.WithTimeout(context.Background(), natsrpc.AttemptTimeout+time.Second)
	defer cancel()
	if _, err := echo.Invoke(ctx, nc, wrapperspb.String("y")); errs.KindOf(err) != errs.Unavailable || served.Load() != 1 {
		t.Fatalf("a call whose request is lost = %v after %d requests; want unavailable (timed out) after 1", err, served.Load())
	}
}

// A call of an idempotent method answered "unavailable" (a stream
// electing its leader) is sent again until answered otherwise; a call of
// another method is given the answer.
func TestIdempotentCallsOutwaitUnavailable(t *testing.T) {
	n := testkit.StartNATS(t)
	mux := natsrpc.NewMux(n.Connect(t), "test", nil)
	var served atomic.Int32
	if err := echo.Handle(mux, nil, func(_ context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if served.Add(1) <= 2 {
			return nil, errs.New(errs.Unavailable, "no leader for the moment; try again")
		}
		return req, nil
	}); err != nil {
		t.Fatal(err)
	}
	nc := n.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got, err := echo.Idempotent().Invoke(ctx, nc, wrapperspb.String("x")); err != nil || got.GetValue() != "x" || served.Load() != 3 {
		t.Fatalf("an idempotent call answered unavailable twice = %v, %v after %d requests; want x after 3", got, err, served.Load())
	}
	served.Store(0)
	if _, err := echo.Invoke(ctx, nc, wrapperspb.String("y")); errs.KindOf(err) != errs.Unavailable || served.Load() != 1 {
		t.Fatalf("another call answered unavailable = %v after %d requests; want unavailable after 1", err, served.Load())
	}
}

func TestErrorsKeepTheirKind(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		kind    errs.Kind
		message string
	}{
		{"not found", errs.New(errs.NotFound, "account not found"), errs.NotFound, "account not found"},
		{"invalid wrapped", fmt.Errorf("checking: %w", errs.New(errs.Invalid, "email is not valid")), errs.Invalid, "email is not valid"},
		{"conflict", errs.New(errs.Conflict, "exists"), errs.Conflict, "exists"},
		{"internal hides details", errors.New("disk on fire at /var/secret"), errs.Internal, "internal error"},
		// A failure of the bus passes with a leader election: the caller
		// is to try again, and is not told which key was being written.
		{"no answer from a stream", fmt.Errorf("writing users/ada: %w", jetstream.ErrNoStreamResponse), errs.Unavailable, "the message bus is unavailable for the moment; try again"},
		{"a stream without a leader", fmt.Errorf("writing users/ada: %w", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream cluster not available"}),
			errs.Unavailable, "the message bus is unavailable for the moment; try again"},
		{"a service's own refusal stays", fmt.Errorf("reading: %w", errs.New(errs.NotFound, "no such user")), errs.NotFound, "no such user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := serve(t, func(context.Context, string) (string, error) { return "", tt.err })
			_, err := call(context.Background(), "x")
			if errs.KindOf(err) != tt.kind || errs.PublicMessage(err) != tt.message && tt.kind != errs.Internal {
				t.Fatalf("call = %v (kind %v), want kind %v message %q", err, errs.KindOf(err), tt.kind, tt.message)
			}
			if tt.kind == errs.Internal && err.Error() != tt.message {
				t.Fatalf("internal error reached the caller as %q, want %q", err.Error(), tt.message)
			}
		})
	}
}

// TestSentinelSurvivesTheWire: a refusal comes back with its reason, so
// errors.Is recognises the sentinel; an error without a reason, or an
// internal one, carries none.
func TestSentinelSurvivesTheWire(t *testing.T) {
	sentinel := errs.Define(errs.NotFound, "account_not_found", "account not found")
	call := serve(t, func(_ context.Context, in string) (string, error) {
		switch in {
		case "sentinel":
			return "", fmt.Errorf("looking up: %w", sentinel)
		case "same message":
			return "", errs.New(errs.NotFound, "account not found")
		default:
			return "", errs.Define(errs.Internal, "disk_full", "disk full")
		}
	})
	_, err := call(context.Background(), "sentinel")
	if !errors.Is(err, sentinel) || errs.ReasonOf(err) != "account_not_found" {
		t.Fatalf("call = %v (reason %q), want errors.Is(sentinel)", err, errs.ReasonOf(err))
	}
	if _, err := call(context.Background(), "same message"); errors.Is(err, sentinel) || errs.ReasonOf(err) != "" {
		t.Fatalf("an error without a reason came back as the sentinel: %v (reason %q)", err, errs.ReasonOf(err))
	}
	var e *errs.Error
	if _, err := call(context.Background(), "internal"); !errors.As(err, &e) || e.Reason != "" || e.Kind != errs.Internal {
		t.Fatalf("an internal error's reason reached the caller: %#v", e)
	}
}

func TestNoRespondersIsUnavailable(t *testing.T) {
	n := testkit.StartNATS(t)
	client := echo.Client(n.Connect(t))
	_, err := client(context.Background(), wrapperspb.String("x"))
	if errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("call with no server = %v (kind %v), want Unavailable", err, errs.KindOf(err))
	}
}

func TestDeadlineTravels(t *testing.T) {
	want := time.Now().Add(3 * time.Second).Truncate(time.Microsecond)
	call := serve(t, func(ctx context.Context, _ string) (string, error) {
		d, ok := ctx.Deadline()
		if !ok {
			return "none", nil
		}
		return d.UTC().Format(time.RFC3339Nano), nil
	})
	ctx, cancel := context.WithDeadline(context.Background(), want)
	defer cancel()
	got, err := call(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if got != want.UTC().Format(time.RFC3339Nano) {
		t.Fatalf("server saw deadline %s, want %s", got, want.UTC().Format(time.RFC3339Nano))
	}
}

func TestDefaultDeadlineApplies(t *testing.T) {
	call := serve(t, func(ctx context.Context, _ string) (string, error) {
		if _, ok := ctx.Deadline(); !ok {
			return "none", nil
		}
		return "set", nil
	})
	if got, _ := call(context.Background(), "x"); got != "set" {
		t.Fatalf("server saw deadline %q, want set (the default timeout)", got)
	}
}

func TestTraceContextTravels(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	call := serve(t, func(ctx context.Context, _ string) (string, error) {
		return trace.SpanContextFromContext(ctx).TraceID().String(), nil
	})
	ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
	defer span.End()
	got, err := call(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if want := span.SpanContext().TraceID().String(); got != want {
		t.Fatalf("server trace id = %s, want %s", got, want)
	}
}

func TestRequestHeadersReachTheEndpoint(t *testing.T) {
	n := testkit.StartNATS(t)
	nc := n.Connect(t)
	mux := natsrpc.NewMux(nc, "test", nil)
	srv := natsrpc.NewServer(func(ctx context.Context, _ any) (any, error) {
		return wrapperspb.String(natsrpc.RequestHeader(ctx).Get("X-Caller")), nil
	}, func(context.Context, *nats.Msg) (any, error) { return nil, nil }, natsrpc.EncodeProto)
	if err := mux.Handle("cloister.test.v1.Hdr", srv); err != nil {
		t.Fatal(err)
	}
	client := natsrpc.NewClient(n.Connect(t), "cloister.test.v1.Hdr",
		func(_ context.Context, m *nats.Msg, _ any) error { m.Header.Set("X-Caller", "gw"); return nil },
		natsrpc.ProtoResponseDecoder(func() *wrapperspb.StringValue { return new(wrapperspb.StringValue) })).Endpoint()
	resp, err := natsrpc.Call[*wrapperspb.StringValue](context.Background(), client, nil)
	if err != nil || resp.GetValue() != "gw" {
		t.Fatalf("header seen by server = %q, %v; want gw", resp.GetValue(), err)
	}
}

func TestMalformedRequestIsInvalid(t *testing.T) {
	n := testkit.StartNATS(t)
	nc := n.Connect(t)
	mux := natsrpc.NewMux(nc, "test", nil)
	if err := mux.Handle(echo.Subject(), echo.Server(func(context.Context, any) (any, error) {
		return wrapperspb.String("unreached"), nil
	}, nil)); err != nil {
		t.Fatal(err)
	}
	reply, err := n.Connect(t).Request(echo.Subject(), []byte{0xff, 0xff, 0xff}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := reply.Header.Get(natsrpc.HeaderErrorCode); got != "400" {
		t.Fatalf("error code for a garbage body = %q, want 400", got)
	}
}

func TestFarDeadlineIsCapped(t *testing.T) {
	call := serve(t, func(ctx context.Context, _ string) (string, error) {
		d, _ := ctx.Deadline()
		if time.Until(d) > natsrpc.MaxDeadline {
			return "uncapped", nil
		}
		return "capped", nil
	})
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(24*time.Hour))
	defer cancel()
	if got, err := call(ctx, "x"); err != nil || got != "capped" {
		t.Fatalf("server deadline for a caller asking 24h = %q, %v; want capped", got, err)
	}
}

// TestDrainAnswersWhatItReceived: no more requests than the mux allows
// run at once, those received before Drain are answered, Drain returns,
// and a second Drain does not hang.
func TestDrainAnswersWhatItReceived(t *testing.T) {
	n := testkit.StartNATS(t)
	nc := n.Connect(t)
	mux := natsrpc.NewMux(nc, "test", nil)
	if got, want := mux.Concurrency(), natsrpc.WorkersPerCore*runtime.GOMAXPROCS(0); got != want {
		t.Fatalf("a new mux's Concurrency = %d, want %d", got, want)
	}
	mux.SetWorkersPerCore(3)
	release := make(chan struct{})
	var entered atomic.Int32
	if err := echo.Handle(mux, nil, func(_ context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		entered.Add(1)
		<-release
		return req, nil
	}); err != nil {
		t.Fatal(err)
	}
	client := n.Connect(t)
	workers := int32(3 * runtime.GOMAXPROCS(0))
	calls := int(workers) + 10 // more than run at once
	results := make(chan error, calls)
	for range calls {
		go func() {
			_, err := echo.Invoke(context.Background(), client, wrapperspb.String("x"))
			results <- err
		}()
	}
	// Every slot is busy, and more requests wait behind them.
	testkit.Eventually(t, 10*time.Second, func() bool { return entered.Load() == workers },
		"%d handlers running, want %d", entered.Load(), workers)
	drained := make(chan error, 1)
	go func() { drained <- mux.DrainTimeout(20 * time.Second) }()
	close(release)
	if err := <-drained; err != nil {
		t.Fatalf("Drain = %v", err)
	}
	for range calls {
		if err := <-results; err != nil && errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("a call during drain = %v, want an answer or unavailable", err)
		}
	}
	if err := mux.DrainTimeout(time.Second); err != nil {
		t.Fatalf("second Drain = %v", err)
	}
}

// TestWorkersEndWhenIdle: the workers that served a burst of requests end
// once no request has come for a while; none is left behind.
func TestWorkersEndWhenIdle(t *testing.T) {
	call := serve(t, func(_ context.Context, in string) (string, error) { return in, nil })
	if _, err := call(context.Background(), "warm"); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	done := make(chan error, 100)
	for range 100 {
		go func() {
			_, err := call(context.Background(), "x")
			done <- err
		}()
	}
	for range 100 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return runtime.NumGoroutine() <= before },
		"%d goroutines after the burst, %d before it", runtime.NumGoroutine(), before)
}
