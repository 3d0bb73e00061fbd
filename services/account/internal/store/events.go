// Package store implements the account service's ports on JetStream: KV
// buckets for state, the AUDIT stream for the audit log. It is also where
// domain events take their wire form.
package store

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
	"github.com/cloister-cc/cloister/services/account/internal/wire"
)

// Producer names this service in event envelopes and subjects.
const Producer = accountv1.AccountServiceName

// messages gives a write's events their wire form, ready for the outbox.
func messages(ctx context.Context, evs ...domain.Event) ([]*nats.Msg, error) {
	return events.Messages(ctx, Producer, evs, wire.Event)
}
