package natsrpc

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/cloister-cc/cloister/libs/errs"
)

// EncodeRequestFunc writes an endpoint request into the request message.
type EncodeRequestFunc func(ctx context.Context, msg *nats.Msg, request any) error

// DecodeResponseFunc turns a reply message into an endpoint response.
type DecodeResponseFunc func(ctx context.Context, reply *nats.Msg) (any, error)

// Client calls one subject.
type Client struct {
	nc      *nats.Conn
	subject string
	enc     EncodeRequestFunc
	dec     DecodeResponseFunc
	// release, when set, takes back a request body once it is sent.
	release func(*nats.Msg)
	// idempotent: a request that gets no answer in AttemptTimeout is
	// sent again (Method.Idempotent).
	idempotent bool
}

// request sends msg and waits for its answer: once, or, for an idempotent
// method, again after an attempt that got no answer or was answered
// "unavailable" (a stream electing its leader), until ctx ends, and for
// AttemptTimeout again after finding no one serving the subject (as while
// replicas reconnect; a service that is down is said so then).
func (c *Client) request(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	if !c.idempotent {
		return c.nc.RequestMsgWithContext(ctx, msg)
	}
	start := time.Now()
	for n := 1; ; n++ {
		attempt, cancel := context.WithTimeout(ctx, AttemptTimeout)
		reply, err := c.nc.RequestMsgWithContext(attempt, msg)
		cancel()
		lost := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
			errors.Is(err, nats.ErrNoResponders) && time.Since(start) < AttemptTimeout ||
			err == nil && reply.Header.Get(HeaderErrorCode) == unavailableCode
		if !lost || ctx.Err() != nil {
			return reply, err
		}
		pause := time.NewTimer(retryPause(n))
		select {
		case <-ctx.Done():
			pause.Stop()
			return reply, err
		case <-pause.C:
		}
	}
}

// unavailableCode is the error code of a reply that says "try again".
var unavailableCode = strconv.Itoa(Code(errs.Unavailable))

// AttemptTimeout is how long a call of an idempotent method waits for an
// answer before it sends the request again: long beside a request's
// usual milliseconds, short beside DefaultTimeout. A request can be lost
// without a word: with the NATS node or the replica that had it, when
// either dies. A call that is not idempotent waits out its deadline.
const AttemptTimeout = 2 * time.Second

// retryPause is the pause before the attempt after attempt n (from 1):
// doubling from 50 ms, at most a second.
func retryPause(n int) time.Duration {
	return min(50*time.Millisecond<<min(n-1, 5), time.Second)
}

// NewClient returns a client for one request subject.
func NewClient(nc *nats.Conn, subject string, enc EncodeRequestFunc, dec DecodeResponseFunc) *Client {
	return &Client{nc: nc, subject: subject, enc: enc, dec: dec}
}

// Endpoint returns the client as a go-kit endpoint. Errors the service
// returned come back as *errs.Error of the same kind; a subject that nobody
// serves is errs.Unavailable.
func (c *Client) Endpoint() endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
			defer cancel()
		}
		ctx, span := otel.Tracer(tracerName).Start(ctx, c.subject,
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("messaging.system", "nats")))
		defer span.End()

		msg := nats.NewMsg(c.subject)
		deadline, _ := ctx.Deadline()
		msg.Header.Set(HeaderDeadline, strconv.FormatInt(deadline.UnixNano(), 10))
		otel.GetTextMapPropagator().Inject(ctx, HeaderCarrier(msg.Header))
		if err := c.enc(ctx, msg, request); err != nil {
			return nil, err
		}
		if a := asserterFrom(ctx); a != nil {
			v, err := a.Assert(c.subject, request)
			if err != nil {
				return nil, err
			}
			msg.Header.Set(HeaderAssertion, v)
		}
		reply, err := c.request(ctx, msg)
		if c.release != nil {
			c.release(msg)
		}
		if err != nil {
			err = transportError(c.subject, err)
			span.SetStatus(codes.Error, err.Error())
			return nil, err
		}
		if err := errorFromHeader(reply.Header); err != nil {
			span.SetStatus(codes.Error, err.Error())
			return nil, err
		}
		return c.dec(ctx, reply)
	}
}
