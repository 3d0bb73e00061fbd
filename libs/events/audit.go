package events

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/audit"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	eventsv1 "github.com/cloister-cc/cloister/libs/gen/cloister/events/v1"
)

// AuditMessage returns e as an audit record on the AUDIT stream's subject
// for its account and producer, ready to travel in an outbox or to be
// published.
func AuditMessage(ctx context.Context, producer string, e audit.Entry) (*nats.Msg, error) {
	outcome, msg := e.Outcome()
	rec := &eventsv1.AuditRecord{ActorUserId: e.Actor.UserID, ActorEmail: e.Actor.Email, ActorCredential: e.Actor.Credential,
		ActorCredentialId: e.Actor.CredentialID, Action: e.Action, Target: e.Target, Outcome: outcome, Error: msg, Cause: e.Cause}
	m, _, err := NewMessage(ctx, AuditSubject(e.AccountID, producer), producer, e.AccountID, rec)
	return m, err
}

// ActorOf reads the actor a gateway put in a request; nil gives the zero
// Actor (a call the service made on its own).
func ActorOf(p *accountv1.Principal) audit.Actor {
	return audit.Actor{UserID: p.GetUserId(), Email: p.GetEmail(), Credential: p.GetCredential(), CredentialID: p.GetCredentialId()}
}

// AuditLog publishes audit records of one producer straight to the AUDIT
// stream: for calls that failed, whose records have no change to travel
// with (successes go in the outbox of their change).
type AuditLog struct {
	JS       jetstream.JetStream
	Producer string
}

// Record publishes e.
func (l AuditLog) Record(ctx context.Context, e audit.Entry) error {
	m, err := AuditMessage(ctx, l.Producer, e)
	if err != nil {
		return err
	}
	return Publish(ctx, l.JS, m)
}

// Outgoing is an event in its wire form, as a write's outbox publishes
// it: the account it concerns, its payload (nil for an audit record
// alone) on Subject (by default the producer's subject of its type), and
// the audit record committed with it when a person caused it.
type Outgoing struct {
	AccountID string
	Payload   proto.Message
	Subject   string
	Audit     *audit.Entry
}

// Messages turns the events of one write into the messages its outbox
// publishes, each given its wire form by wire: its payload, then its
// audit record. It is the one shape every service's store writes events
// in.
func Messages[E any](ctx context.Context, producer string, evs []E, wire func(E) Outgoing) ([]*nats.Msg, error) {
	out := make([]*nats.Msg, 0, len(evs))
	for _, ev := range evs {
		o := wire(ev)
		if o.Payload != nil {
			subject := o.Subject
			if subject == "" {
				subject = Subject(producer, o.Payload)
			}
			m, _, err := NewMessage(ctx, subject, producer, o.AccountID, o.Payload)
			if err != nil {
				return nil, fmt.Errorf("encoding %s: %w", proto.MessageName(o.Payload), err)
			}
			out = append(out, m)
		}
		if o.Audit != nil {
			m, err := AuditMessage(ctx, producer, *o.Audit)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
	}
	return out, nil
}
