package events_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	eventsv1 "github.com/cloister-cc/cloister/libs/gen/cloister/events/v1"
)

func eventOf(t *testing.T, m proto.Message) events.Event {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return events.Event{Envelope: &eventsv1.Envelope{Id: "e1", Type: string(proto.MessageName(m)), Payload: b}}
}

// TestRouter: events go to the handler of their type with the decoded
// payload; an unrouted type is unexpected and a payload that does not
// decode is corrupt, both for good.
func TestRouter(t *testing.T) {
	r := events.NewRouter()
	var got []string
	events.On(r, "account", func(_ context.Context, _ events.Event, m *accountv1.AccountCreated) error {
		got = append(got, "created "+m.GetAccount().GetId())
		return nil
	})
	events.On(r, "account", func(_ context.Context, _ events.Event, m *accountv1.AccountDeleted) error {
		got = append(got, "deleted "+m.GetAccountId())
		return nil
	})
	if s := r.Subjects(); len(s) != 2 || s[0] != events.Subject("account", &accountv1.AccountCreated{}) || s[1] != events.Subject("account", &accountv1.AccountDeleted{}) {
		t.Fatalf("Subjects() = %q", s)
	}
	ctx := context.Background()
	for _, m := range []proto.Message{&accountv1.AccountCreated{Account: &accountv1.Account{Id: "a1"}}, &accountv1.AccountDeleted{AccountId: "a2"}} {
		if err := r.Handle(ctx, eventOf(t, m)); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 || got[0] != "created a1" || got[1] != "deleted a2" {
		t.Fatalf("handled %q", got)
	}

	err := r.Handle(ctx, eventOf(t, &accountv1.UserSignedUp{}))
	if !events.IsPermanent(err) || !errors.Is(err, events.ErrUnexpectedEvent) {
		t.Errorf("an unrouted type = %v, want a permanent ErrUnexpectedEvent", err)
	}
	corrupt := eventOf(t, &accountv1.AccountDeleted{AccountId: "a3"})
	corrupt.Envelope.Payload = []byte{0xff, 0xff, 0xff}
	err = r.Handle(ctx, corrupt)
	if !events.IsPermanent(err) || !errors.Is(err, events.ErrCorruptEvent) {
		t.Errorf("a corrupt payload = %v, want a permanent ErrCorruptEvent", err)
	}

	// A handler's refusal of the event as invalid is for good; any other
	// failure is retried.
	invalid, transient := errs.New(errs.Invalid, "no such domain"), errors.New("connection lost")
	for _, c := range []struct {
		err       error
		permanent bool
	}{{invalid, true}, {transient, false}} {
		rr := events.NewRouter()
		events.On(rr, "account", func(context.Context, events.Event, *accountv1.AccountDeleted) error { return c.err })
		err := rr.Handle(ctx, eventOf(t, &accountv1.AccountDeleted{AccountId: "a4"}))
		if !errors.Is(err, c.err) || events.IsPermanent(err) != c.permanent {
			t.Errorf("handler error %v: Handle = %v, permanent %v; want permanent %v", c.err, err, events.IsPermanent(err), c.permanent)
		}
	}

	defer func() {
		if recover() == nil {
			t.Error("routing a type twice did not panic")
		}
	}()
	events.On(r, "account", func(context.Context, events.Event, *accountv1.AccountCreated) error { return nil })
}
