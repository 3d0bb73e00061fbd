package events_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/events"
)

// TestMessages: each event becomes its payload on its type's subject (or
// the one it names), then its audit record; an audit record may stand
// alone.
func TestMessages(t *testing.T) {
	actor := audit.Actor{UserID: "u1", Email: "ada@example.com"}
	evs := []events.Outgoing{
		{AccountID: "a1", Payload: &timestamppb.Timestamp{Seconds: 1}},
		{AccountID: "a1", Payload: wrapperspb.String("x"), Subject: "events.custom", Audit: &audit.Entry{AccountID: "a1", Actor: actor, Action: "x.y"}},
		{Audit: &audit.Entry{AccountID: "a2", Actor: actor, Action: "z.w"}},
	}
	msgs, err := events.Messages(context.Background(), "svc", evs, func(o events.Outgoing) events.Outgoing { return o })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{events.Subject("svc", &timestamppb.Timestamp{}), "events.custom", events.AuditSubject("a1", "svc"), events.AuditSubject("a2", "svc")}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		if m.Subject != want[i] {
			t.Errorf("message %d on %s, want %s", i, m.Subject, want[i])
		}
		ev, err := events.DecodeMessage(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if i < 3 && ev.Envelope.GetAccountId() != "a1" || i == 3 && ev.Envelope.GetAccountId() != "a2" {
			t.Errorf("message %d for account %q", i, ev.Envelope.GetAccountId())
		}
	}
}
