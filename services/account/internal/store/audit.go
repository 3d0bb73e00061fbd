package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// List implements app.AuditLog. Oldest first, the cursor is the stream
// sequence of the last record returned; newest first, it is "n" and the
// sequence of the oldest record returned.
func (l *AuditLog) List(ctx context.Context, accountID, cursor string, limit int, newestFirst bool) ([]domain.AuditEntry, string, error) {
	filter := "audit." + accountID + ".>" // every producer's records
	if newestFirst {
		return l.newest(ctx, filter, cursor, limit)
	}
	var after uint64
	if cursor != "" {
		n, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil {
			return nil, "", errBadCursor
		}
		after = n
	}
	out, last, err := l.read(ctx, filter, after+1, limit)
	if err != nil || last == 0 {
		return entries(out), "", err
	}
	if more, err := l.matching(ctx, filter, last+1); err != nil || more == 0 {
		return entries(out), "", err
	}
	return entries(out), strconv.FormatUint(last, 10), nil
}

var errBadCursor = errs.New(errs.Invalid, "cursor is not one this API returned")

// newest lists the newest records (before the cursor's sequence), newest
// first. JetStream reads forward only: it finds the sequence from which
// the filter matches limit records up to the bound by binary search over
// the matching counts, then reads those and reverses them.
func (l *AuditLog) newest(ctx context.Context, filter, cursor string, limit int) ([]domain.AuditEntry, string, error) {
	var upper uint64 // the last sequence to show
	if cursor == "" {
		st, err := l.js.Stream(ctx, events.StreamAudit)
		if err != nil {
			return nil, "", fmt.Errorf("reading audit log: %w", err)
		}
		upper = st.CachedInfo().State.LastSeq // as of now: Stream reads it
	} else {
		n, err := strconv.ParseUint(strings.TrimPrefix(cursor, "n"), 10, 64)
		if err != nil || !strings.HasPrefix(cursor, "n") || n == 0 {
			return nil, "", errBadCursor
		}
		upper = n - 1
	}
	if upper == 0 {
		return nil, "", nil
	}
	beyond, err := l.matching(ctx, filter, upper+1)
	if err != nil {
		return nil, "", err
	}
	inRange := func(from uint64) (int, error) {
		n, err := l.matching(ctx, filter, from)
		return n - beyond, err
	}
	all, err := inRange(1)
	if err != nil || all == 0 {
		return nil, "", err
	}
	start := uint64(1)
	if all > limit {
		// The largest start with limit records in [start, upper].
		lo, hi := uint64(1), upper
		for lo < hi {
			mid := lo + (hi-lo+1)/2
			n, err := inRange(mid)
			if err != nil {
				return nil, "", err
			}
			if n >= limit {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		start = lo
	}
	out, _, err := l.read(ctx, filter, start, min(all, limit))
	if err != nil {
		return nil, "", err
	}
	slices.Reverse(out)
	next := ""
	if all > limit && len(out) > 0 {
		next = "n" + strconv.FormatUint(out[len(out)-1].seq, 10)
	}
	return entries(out), next, nil
}

// consumer reads the records the filter matches from sequence from on.
// The server forgets it seconds after its last use, not after the default
// five minutes: a page newest first makes a few dozen of them.
func (l *AuditLog) consumer(ctx context.Context, filter string, from uint64) (jetstream.Consumer, error) {
	cons, err := l.js.OrderedConsumer(ctx, events.StreamAudit, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
		InactiveThreshold: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	return cons, nil
}

// matching counts the records the filter matches from sequence from on.
func (l *AuditLog) matching(ctx context.Context, filter string, from uint64) (int, error) {
	cons, err := l.consumer(ctx, filter, from)
	if err != nil {
		return 0, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading audit log: %w", err)
	}
	return int(info.NumPending), nil
}

// sequenced is an audit entry with its stream sequence.
type sequenced struct {
	domain.AuditEntry
	seq uint64
}

func entries(s []sequenced) []domain.AuditEntry {
	out := make([]domain.AuditEntry, len(s))
	for i, e := range s {
		out[i] = e.AuditEntry
	}
	return out
}

// read returns up to n records the filter matches from sequence from on,
// oldest first, and the sequence of the last message read.
func (l *AuditLog) read(ctx context.Context, filter string, from uint64, n int) ([]sequenced, uint64, error) {
	cons, err := l.consumer(ctx, filter, from)
	if err != nil {
		return nil, 0, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("reading audit log: %w", err)
	}
	pending := int(min(info.NumPending, uint64(n)))
	if pending == 0 {
		return nil, 0, nil
	}
	batch, err := cons.Fetch(pending, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		return nil, 0, fmt.Errorf("reading audit log: %w", err)
	}
	var out []sequenced
	var last uint64
	for msg := range batch.Messages() {
		md, err := msg.Metadata()
		if err != nil {
			return nil, 0, fmt.Errorf("reading audit log: %w", err)
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
		out = append(out, sequenced{seq: last, AuditEntry: domain.AuditEntry{
			ID: ev.Envelope.GetId(), AccountID: ev.Envelope.GetAccountId(), OccurredAt: ev.Envelope.GetOccurredAt().AsTime(),
			Actor: domain.Principal{UserID: rec.GetActorUserId(), Email: rec.GetActorEmail(),
				Credential: domain.Credential(rec.GetActorCredential()), CredentialID: rec.GetActorCredentialId()},
			Action: rec.GetAction(), Target: rec.GetTarget(), Outcome: rec.GetOutcome(), Error: rec.GetError(), Cause: rec.GetCause(),
		}})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return nil, 0, fmt.Errorf("reading audit log: %w", err)
	}
	return out, last, nil
}
