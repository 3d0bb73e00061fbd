package natsrpc

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/cloister-cc/cloister/libs/errs"
)

// DecodeRequestFunc turns a request message into an endpoint request.
type DecodeRequestFunc func(ctx context.Context, msg *nats.Msg) (any, error)

// EncodeResponseFunc writes an endpoint response into the reply message.
type EncodeResponseFunc func(ctx context.Context, reply *nats.Msg, response any) error

// Server answers requests on one subject with one endpoint.
type Server struct {
	e      endpoint.Endpoint
	dec    DecodeRequestFunc
	enc    EncodeResponseFunc
	logger *slog.Logger
	verify Verifier
	// okAttrs holds, by subject, the metric attributes of a success: made
	// once rather than per request (sorting them was a fifth of Serve).
	okAttrs sync.Map
}

// ServerOption configures a Server.
type ServerOption func(*Server)

// ServerLogger sets where internal errors are logged; by default nowhere.
func ServerLogger(l *slog.Logger) ServerOption { return func(s *Server) { s.logger = l } }

// NewServer returns a server for one endpoint.
func NewServer(e endpoint.Endpoint, dec DecodeRequestFunc, enc EncodeResponseFunc, opts ...ServerOption) *Server {
	s := &Server{e: e, dec: dec, enc: enc, verify: RequireNone{}}
	for _, o := range opts {
		o(s)
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	return s
}

// Serve handles one request message and sends the reply. It builds the
// request context from the message: the caller's deadline and trace.
func (s *Server) Serve(nc *nats.Conn, msg *nats.Msg) {
	start := time.Now()
	ctx := otel.GetTextMapPropagator().Extract(context.Background(), HeaderCarrier(msg.Header))
	// The caller's deadline applies, but never one further off than
	// MaxDeadline: a request cannot hold the server forever.
	deadline := start.Add(MaxDeadline)
	if d := msg.Header.Get(HeaderDeadline); d != "" {
		if ns, err := strconv.ParseInt(d, 10, 64); err == nil && time.Unix(0, ns).Before(deadline) {
			deadline = time.Unix(0, ns)
		}
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	ctx, span := otel.Tracer(tracerName).Start(ctx, msg.Subject,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("messaging.system", "nats")))
	defer span.End()
	ctx = withHeader(ctx, msg.Header)

	reply := nats.NewMsg(msg.Reply)
	err := s.handle(ctx, msg, reply)
	if busUnavailable(err) {
		// The bus, not the service, failed: the caller is to try again.
		s.logger.WarnContext(ctx, "request failed: the bus is unavailable for the moment", "subject", msg.Subject, "error", err)
		err = errBusUnavailable
	}
	code := 0
	if err != nil {
		code = Code(errs.KindOf(err))
	}
	serverDuration.Record(ctx, time.Since(start).Seconds(), s.attributes(msg.Subject, code))
	if err != nil {
		if errs.KindOf(err) == errs.Internal {
			s.logger.ErrorContext(ctx, "request failed", "subject", msg.Subject, "error", err)
			span.SetStatus(codes.Error, err.Error())
		}
		reply.Data = nil
		setError(reply.Header, err)
	}
	if msg.Reply == "" {
		return
	}
	if err := nc.PublishMsg(reply); err != nil {
		s.logger.ErrorContext(ctx, "sending reply", "subject", msg.Subject, "error", err)
	}
}

// attributes are the metric attributes of a request to subject answered
// with code.
func (s *Server) attributes(subject string, code int) metric.MeasurementOption {
	if code == 0 {
		if o, ok := s.okAttrs.Load(subject); ok {
			return o.(metric.MeasurementOption)
		}
	}
	o := metric.WithAttributeSet(attribute.NewSet(attribute.String("rpc.method", subject), attribute.Int("rpc.code", code)))
	if code == 0 {
		s.okAttrs.Store(subject, o)
	}
	return o
}

func (s *Server) handle(ctx context.Context, msg, reply *nats.Msg) error {
	if ctx.Err() != nil {
		return errs.New(errs.Unavailable, "deadline passed before the request was handled")
	}
	req, err := s.dec(ctx, msg)
	if err != nil {
		return err
	}
	if err := s.verify.Verify(msg.Subject, msg.Header, req); err != nil {
		return err
	}
	resp, err := s.e(ctx, req)
	if err != nil {
		return err
	}
	if f, ok := resp.(endpoint.Failer); ok && f.Failed() != nil {
		return f.Failed()
	}
	return s.enc(ctx, reply, resp)
}

const tracerName = "github.com/cloister-cc/cloister/libs/natsrpc"

// MaxDeadline bounds how long a server works on one request, whatever
// deadline the caller sent.
const MaxDeadline = 5 * time.Minute

// serverDuration counts and times the requests served, by subject and
// error code (0 for success). The global meter provider delegates to the
// one obs.Setup installs, even when that happens later.
var serverDuration, _ = otel.Meter(tracerName).Float64Histogram("rpc.server.duration",
	metric.WithUnit("s"), metric.WithDescription("Time to serve a NATS request, by subject and error code"))

type headerKey struct{}

func withHeader(ctx context.Context, h nats.Header) context.Context {
	return context.WithValue(ctx, headerKey{}, h)
}

// RequestHeader returns the headers of the request being served, so
// endpoints can read metadata the caller attached.
func RequestHeader(ctx context.Context) nats.Header {
	h, _ := ctx.Value(headerKey{}).(nats.Header)
	return h
}

// errBusUnavailable is what a caller is told of a request that failed
// because the bus did (a stream without a leader, say): the details,
// which name the service's keys, stay in its log.
var errBusUnavailable = errs.New(errs.Unavailable, "the message bus is unavailable for the moment; try again")

// busUnavailable tells whether err, of no kind of its own (an internal
// error), is NATS or JetStream being out of reach for a moment (Transient,
// or the connection being remade). Such a failure passes with a leader
// election or a reconnection; the caller is to try again rather than be
// told of an internal error.
func busUnavailable(err error) bool {
	if err == nil || errs.KindOf(err) != errs.Internal {
		return false
	}
	return Transient(err) || errors.Is(err, nats.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

// jsClusterUnavailable is JetStream's error code for a stream or the meta
// group without a leader for the moment.
const jsClusterUnavailable jetstream.ErrorCode = 10008

// Transient reports whether err is JetStream being unreachable for a
// moment: no leader, no answer, no one serving the API. What fails so is
// worth trying again.
func Transient(err error) bool {
	var api *jetstream.APIError
	var legacy *nats.APIError // from nats.go's older JetStream API, which its KV watchers use
	return errors.As(err, &api) && api.ErrorCode == jsClusterUnavailable ||
		errors.As(err, &legacy) && legacy.ErrorCode == nats.ErrorCode(jsClusterUnavailable) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse)
}
