package natsrpc

import (
	"context"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cloister-cc/cloister/libs/errs"
)

// HeaderAssertion carries the gateway's signed assertion of who a request
// is made for (libs/busauth).
const HeaderAssertion = "Cloister-Assertion"

// Asserter vouches for the caller of a request: it returns the value of
// its HeaderAssertion.
type Asserter interface {
	Assert(subject string, request any) (string, error)
}

// Verifier checks a request's assertion before it is handled. It refuses
// the request, or binds it to what the assertion says (the actor it
// names); a request that needs none passes.
type Verifier interface {
	Verify(subject string, header nats.Header, request any) error
}

type asserterKey struct{}

// WithAsserter makes every call made with ctx carry a's assertion.
func WithAsserter(ctx context.Context, a Asserter) context.Context {
	return context.WithValue(ctx, asserterKey{}, a)
}

func asserterFrom(ctx context.Context) Asserter {
	a, _ := ctx.Value(asserterKey{}).(Asserter)
	return a
}

// CallOption changes the calls of a generated client.
type CallOption func(*CallOptions)

// CallOptions are a generated client's options.
type CallOptions struct{ asserter Asserter }

// NewCallOptions collects opts.
func NewCallOptions(opts ...CallOption) CallOptions {
	var o CallOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Asserting makes a client's calls carry a's assertion when their context
// has none.
func Asserting(a Asserter) CallOption { return func(o *CallOptions) { o.asserter = a } }

// Context is ctx with the client's asserter, unless ctx has one.
func (o CallOptions) Context(ctx context.Context) context.Context {
	if o.asserter == nil || asserterFrom(ctx) != nil {
		return ctx
	}
	return WithAsserter(ctx, o.asserter)
}

// RequireNone is the verifier of a mux given none: it refuses every
// request that names an actor (sets an account.v1.Principal field
// "actor"), since only an assertion can say who that is, and passes the
// rest.
type RequireNone struct{}

// Verify refuses a request naming an actor.
func (RequireNone) Verify(subject string, _ nats.Header, request any) error {
	if r, f := ActorField(request); f != nil && r.Has(f) {
		return errs.Newf(errs.Unauthenticated, "%s names its caller, and this service verifies no assertions of callers", subject)
	}
	return nil
}

// PrincipalMessage is the protobuf message that names a caller.
const PrincipalMessage protoreflect.FullName = "cloister.account.v1.Principal"

// ActorField returns request's field "actor" that holds a Principal, if
// it has one.
func ActorField(request any) (protoreflect.Message, protoreflect.FieldDescriptor) {
	m, ok := request.(proto.Message)
	if !ok {
		return nil, nil
	}
	r := m.ProtoReflect()
	f := r.Descriptor().Fields().ByName("actor")
	if f == nil || f.Message() == nil || f.Message().FullName() != PrincipalMessage || f.IsList() {
		return r, nil
	}
	return r, f
}
