package natsrpc

import (
	"context"
	"strconv"

	"github.com/go-kit/kit/endpoint"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
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
		reply, err := c.nc.RequestMsgWithContext(ctx, msg)
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
