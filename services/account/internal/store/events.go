// Package store implements the account service's ports on JetStream: KV
// buckets for state, the AUDIT stream for the audit log. It is also where
// domain events take their wire form.
package store

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
	"github.com/cloister-cc/cloister/services/account/internal/wire"
)

// Producer names this service in event envelopes and subjects.
const Producer = accountv1.AccountServiceName

// messages turns domain events into ready-to-publish messages.
func messages(ctx context.Context, evs []domain.Event) ([]*nats.Msg, error) {
	out := make([]*nats.Msg, 0, len(evs))
	for _, ev := range evs {
		account, payload := wire.Event(ev)
		subject := events.Subject(Producer, payload)
		if a, ok := ev.(domain.Audited); ok {
			subject = events.AuditSubject(a.Entry.AccountID, Producer)
		}
		m, _, err := events.NewMessage(ctx, subject, Producer, account, payload)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", proto.MessageName(payload), err)
		}
		out = append(out, m)
	}
	return out, nil
}
