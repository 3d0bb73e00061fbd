package events

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
		ActorCredentialId: e.Actor.CredentialID, Action: e.Action, Target: e.Target, Outcome: outcome, Error: msg}
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
