package natsrpc

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/go-kit/kit/endpoint"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/errs"
)

// Most methods carry protobuf messages both ways; these helpers give them
// their codecs so a service only names its types.

// ProtoRequestDecoder decodes a request body as a new Req.
func ProtoRequestDecoder[Req proto.Message](newReq func() Req) DecodeRequestFunc {
	return func(_ context.Context, msg *nats.Msg) (any, error) {
		req := newReq()
		if err := proto.Unmarshal(msg.Data, req); err != nil {
			return nil, errs.Newf(errs.Invalid, "decoding %s: %v", proto.MessageName(req), err)
		}
		return req, nil
	}
}

// EncodeProto marshals a protobuf message into the message body.
func EncodeProto(_ context.Context, msg *nats.Msg, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("encoding %T: not a protobuf message", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", proto.MessageName(m), err)
	}
	msg.Data = b
	return nil
}

// requestBodies keeps request bodies for reuse: nats.go copies a body as
// it publishes it, so the slice is free once the request is sent, and a
// verification's 5 KB quote need not be new garbage on every call.
var requestBodies = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBody bounds the bodies kept: a rare large one is left to the
// collector rather than held.
const maxPooledBody = 64 << 10

// encodeProtoPooled is EncodeProto into a body from requestBodies;
// releaseBody gives it back.
func encodeProtoPooled(_ context.Context, msg *nats.Msg, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("encoding %T: not a protobuf message", v)
	}
	buf := requestBodies.Get().(*[]byte)
	b, err := proto.MarshalOptions{}.MarshalAppend((*buf)[:0], m)
	if err != nil {
		requestBodies.Put(buf)
		return fmt.Errorf("encoding %s: %w", proto.MessageName(m), err)
	}
	*buf = b
	msg.Data = b
	return nil
}

func releaseBody(msg *nats.Msg) {
	if cap(msg.Data) > maxPooledBody {
		return
	}
	b := msg.Data[:0]
	msg.Data = nil
	requestBodies.Put(&b)
}

// ProtoResponseDecoder decodes a reply body as a new Resp.
func ProtoResponseDecoder[Resp proto.Message](newResp func() Resp) DecodeResponseFunc {
	return func(_ context.Context, msg *nats.Msg) (any, error) {
		resp := newResp()
		if err := proto.Unmarshal(msg.Data, resp); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", proto.MessageName(resp), err)
		}
		return resp, nil
	}
}

// Method describes one protobuf method of a service, for both sides.
type Method[Req, Resp proto.Message] struct {
	Service string
	Name    string
	NewReq  func() Req
	NewResp func() Resp
	// idempotent: see Idempotent.
	idempotent bool
}

// Idempotent marks a method whose request may be served twice with no
// harm (a read: its proto says idempotency_level = NO_SIDE_EFFECTS or
// IDEMPOTENT): its calls send the request again when an attempt gets no
// answer in AttemptTimeout, rather than wait out their deadline.
func (m Method[Req, Resp]) Idempotent() Method[Req, Resp] {
	m.idempotent = true
	return m
}

// Subject returns the method's request subject.
func (m Method[Req, Resp]) Subject() string { return Subject(m.Service, m.Name) }

// Server returns a server for the method.
func (m Method[Req, Resp]) Server(e endpoint.Endpoint, logger *slog.Logger) *Server {
	return NewServer(e, ProtoRequestDecoder(m.NewReq), EncodeProto, ServerLogger(logger))
}

// Client returns a client endpoint for the method.
func (m Method[Req, Resp]) Client(nc *nats.Conn) endpoint.Endpoint {
	c := NewClient(nc, m.Subject(), encodeProtoPooled, ProtoResponseDecoder(m.NewResp))
	c.release, c.idempotent = releaseBody, m.idempotent
	return c.Endpoint()
}

// Call invokes a typed endpoint: it is the bridge from a go-kit endpoint
// back to a typed function.
func Call[Resp any](ctx context.Context, e endpoint.Endpoint, req any) (Resp, error) {
	var zero Resp
	resp, err := e(ctx, req)
	if err != nil {
		return zero, err
	}
	r, ok := resp.(Resp)
	if !ok {
		return zero, fmt.Errorf("endpoint returned %T, want %T", resp, zero)
	}
	return r, nil
}

// NewMethod describes method name of service with request Req and reply
// Resp, both pointer types of generated protobuf messages.
func NewMethod[Req, Resp proto.Message](service, name string) Method[Req, Resp] {
	var req Req
	var resp Resp
	return Method[Req, Resp]{
		Service: service, Name: name,
		NewReq:  func() Req { return req.ProtoReflect().New().Interface().(Req) },
		NewResp: func() Resp { return resp.ProtoReflect().New().Interface().(Resp) },
	}
}

// Invoke calls the method over nc and returns its typed reply.
func (m Method[Req, Resp]) Invoke(ctx context.Context, nc *nats.Conn, req Req) (Resp, error) {
	return Call[Resp](ctx, m.Client(nc), req)
}

// Handle serves the method on mux with a typed function.
func (m Method[Req, Resp]) Handle(mux *Mux, logger *slog.Logger, f func(context.Context, Req) (Resp, error)) error {
	return mux.Handle(m.Subject(), m.Server(func(ctx context.Context, req any) (any, error) {
		return f(ctx, req.(Req))
	}, logger))
}
