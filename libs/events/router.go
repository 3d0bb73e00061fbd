package events

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cloister-cc/cloister/libs/errs"
)

// Router dispatches events on their envelope's type to typed handlers, so
// that a consumer never decodes a payload by trial: an event of a type
// with no route is unexpected, and an event of a known type whose payload
// does not decode is corrupt; both are permanent failures (dead letters,
// each with its own reason).
type Router struct {
	routes map[protoreflect.FullName]route
	order  []protoreflect.FullName
}

type route struct {
	subject string
	handle  func(context.Context, Event) error
}

// NewRouter returns a router with no routes.
func NewRouter() *Router { return &Router{routes: map[protoreflect.FullName]route{}} }

// On routes the events of type M that producer publishes to h, which gets
// the decoded payload. It panics if M is routed twice: that is a bug of
// the consumer's declaration.
func On[M proto.Message](r *Router, producer string, h func(ctx context.Context, ev Event, m M) error) {
	var zero M
	mt := zero.ProtoReflect().Type()
	name := mt.Descriptor().FullName()
	if _, dup := r.routes[name]; dup {
		panic(fmt.Sprintf("events: %s is routed twice", name))
	}
	r.order = append(r.order, name)
	r.routes[name] = route{subject: Subject(producer, zero), handle: func(ctx context.Context, ev Event) error {
		m := mt.New().Interface().(M)
		if err := proto.Unmarshal(ev.Envelope.GetPayload(), m); err != nil {
			return Permanent(fmt.Errorf("%w: %s event %s: %v", ErrCorruptEvent, name, ev.Envelope.GetId(), err))
		}
		return h(ctx, ev, m)
	}}
}

// Subjects are the subjects of every route, in the order they were
// added: the consumer's filter.
func (r *Router) Subjects() []string {
	out := make([]string, 0, len(r.order))
	for _, n := range r.order {
		out = append(out, r.routes[n].subject)
	}
	return slices.Clip(out)
}

// Handle is the Router as a Handler. A handler's errs.Invalid refusal is
// a permanent failure: redelivery cannot fix a malformed event.
func (r *Router) Handle(ctx context.Context, ev Event) error {
	rt, ok := r.routes[protoreflect.FullName(ev.Envelope.GetType())]
	if !ok {
		return Permanent(fmt.Errorf("%w: %s (event %s on %s)", ErrUnexpectedEvent, ev.Envelope.GetType(), ev.Envelope.GetId(), ev.Subject))
	}
	err := rt.handle(ctx, ev)
	if errs.KindOf(err) == errs.Invalid && !IsPermanent(err) {
		return Permanent(err)
	}
	return err
}

// Why a routed event failed for good.
var (
	ErrUnexpectedEvent = errors.New("unexpected event type")
	ErrCorruptEvent    = errors.New("corrupt event payload")
)
