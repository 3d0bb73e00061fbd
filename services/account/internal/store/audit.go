package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/events"
	eventsv1 "github.com/cloister-cc/cloister/libs/gen/cloister/events/v1"
	"github.com/cloister-cc/cloister/services/account/internal/app"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// AuditLog keeps audit records in the AUDIT stream, one subject per
// account, so an account's log is read with a subject filter.
type AuditLog struct{ js jetstream.JetStream }

var _ app.AuditLog = (*AuditLog)(nil)

// NewAuditLog returns the audit log on js.
func NewAuditLog(js jetstream.JetStream) *AuditLog { return &AuditLog{js: js} }

// Record implements app.AuditLog.
func (l *AuditLog) Record(ctx context.Context, e domain.AuditEntry) error {
	msgs, err := messages(ctx, domain.Audited{Entry: e})
	if err != nil {
		return err
	}
	return events.Publish(ctx, l.js, msgs[0])
}

// List implements app.AuditLog. The cursor is the stream sequence of the
// last record returned.
func (l *AuditLog) List(ctx context.Context, accountID, cursor string, limit int) ([]domain.AuditEntry, string, error) {
	var after uint64
	if cursor != "" {
		n, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil {
			return nil, "", errs.New(errs.Invalid, "cursor is not one this API returned")
		}
		after = n
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"audit." + accountID + ".>"}, // every producer's records
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	cons, err := l.js.OrderedConsumer(ctx, events.StreamAudit, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("reading audit log: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("reading audit log: %w", err)
	}
	pending := int(min(info.NumPending, uint64(limit)))
	if pending == 0 {
		return nil, "", nil
	}
	batch, err := cons.Fetch(pending, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		return nil, "", fmt.Errorf("reading audit log: %w", err)
	}
	var out []domain.AuditEntry
	var last uint64
	for msg := range batch.Messages() {
		md, err := msg.Metadata()
		if err != nil {
			return nil, "", fmt.Errorf("reading audit log: %w", err)
		}
		last = md.Sequence.Stream
		ev, err := events.DecodeMessage(msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			continue // not ours to show; the log keeps it
		}
		var rec eventsv1.AuditRecord
		if err := ev.Decode(&rec); err != nil {
			continue
		}
		out = append(out, domain.AuditEntry{
			ID: ev.Envelope.GetId(), AccountID: ev.Envelope.GetAccountId(), OccurredAt: ev.Envelope.GetOccurredAt().AsTime(),
			Actor: domain.Principal{UserID: rec.GetActorUserId(), Email: rec.GetActorEmail(),
				Credential: domain.Credential(rec.GetActorCredential()), CredentialID: rec.GetActorCredentialId()},
			Action: rec.GetAction(), Target: rec.GetTarget(), Outcome: rec.GetOutcome(), Error: rec.GetError(), Cause: rec.GetCause(),
		})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return nil, "", fmt.Errorf("reading audit log: %w", err)
	}
	next := ""
	if uint64(pending) < info.NumPending {
		next = strconv.FormatUint(last, 10)
	}
	return out, next, nil
}
