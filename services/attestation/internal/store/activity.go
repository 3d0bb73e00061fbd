package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/services/attestation/internal/app"
	"github.com/cloister-cc/cloister/services/attestation/internal/domain"
)

const (
	// BucketActivity holds each account's attestations by the hour.
	BucketActivity = "attestation_activity"
	// ActivityTTL is how long an hour is kept after its last write: a day
	// and the hour under way.
	ActivityTTL = 25 * time.Hour
	// ActivityFlushEvery is how often a replica writes its counts: what
	// a crash of the replica may lose of them (the verdicts and their
	// events are written before each reply and are never lost).
	ActivityFlushEvery = 2 * time.Second
)

// Activity counts verdicts by account and hour for the accounts'
// overviews. Counting in memory and writing each replica's totals under
// its own key (<account>.<hour>.<replica>) keeps the verification path
// free of a shared counter that concurrent verifications would fight
// over: a busy account costs a write per flush, not per verdict.
type Activity struct {
	kv      *kv.Store[domain.ActivityHour]
	replica string
	clock   func() time.Time
	logger  *slog.Logger

	mu      sync.Mutex
	hours   map[string]*activityHour // by key
	pending map[string]bool          // keys written since the last flush
}

// activityHour is one of this replica's hours and the version of its
// record.
type activityHour struct {
	domain.ActivityHour
	version uint64
}

var _ app.Activity = (*Activity)(nil)

// OpenActivity opens the activity bucket; this replica's keys are new.
// Hours older than ActivityTTL by clock are forgotten.
func OpenActivity(ctx context.Context, js jetstream.JetStream, replicas int, clock func() time.Time, logger *slog.Logger, opts ...kv.Option) (*Activity, error) {
	s, err := kv.Open[domain.ActivityHour](ctx, js, kv.Config{Bucket: BucketActivity, Replicas: replicas, TTL: ActivityTTL}, opts...)
	if err != nil {
		return nil, err
	}
	return &Activity{kv: s, replica: uuid.NewString(), clock: clock, logger: logger, hours: map[string]*activityHour{}, pending: map[string]bool{}}, nil
}

func hourKey(accountID string, start time.Time, replica string) string {
	return accountID + "." + strconv.FormatInt(start.Unix(), 10) + "." + replica
}

// Record implements app.Activity.
func (s *Activity) Record(v domain.Verdict) {
	start := v.VerifiedAt.UTC().Truncate(time.Hour)
	key := hourKey(v.AccountID, start, s.replica)
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hours[key]
	if h == nil {
		h = &activityHour{ActivityHour: domain.ActivityHour{Start: start}}
		s.hours[key] = h
	}
	v.ReportData = [64]byte{} // the failure is shown, not re-checked
	h.Add(v)
	s.pending[key] = true
}

// Flush writes the hours counted since the last flush, and forgets the
// hours past the TTL. An hour that fails to be written is tried again at
// the next flush.
func (s *Activity) Flush(ctx context.Context) error {
	s.mu.Lock()
	keys := maps.Clone(s.pending)
	clear(s.pending)
	writes := make(map[string]activityHour, len(keys))
	for k := range keys {
		writes[k] = activityHour{ActivityHour: cloneHour(s.hours[k].ActivityHour), version: s.hours[k].version}
	}
	s.mu.Unlock()

	var errs []error
	for k, h := range writes {
		var e kv.Entry[domain.ActivityHour]
		var err error
		if h.version == 0 {
			e, err = s.kv.Create(ctx, k, h.ActivityHour)
		} else {
			e, err = s.kv.Update(ctx, k, h.ActivityHour, h.version)
		}
		s.mu.Lock()
		if err != nil {
			s.pending[k] = true
			errs = append(errs, fmt.Errorf("writing %s: %w", k, err))
		} else if cur := s.hours[k]; cur != nil {
			cur.version = e.Version
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	for k, h := range s.hours {
		if s.clock().Sub(h.Start) > ActivityTTL && !s.pending[k] {
			delete(s.hours, k)
		}
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Run flushes every ActivityFlushEvery until ctx ends, then once more.
func (s *Activity) Run(ctx context.Context) {
	t := time.NewTicker(ActivityFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := s.Flush(ctx); err != nil && ctx.Err() == nil {
				s.logger.WarnContext(ctx, "writing attestation activity", "error", err)
			}
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := s.Flush(last); err != nil {
				s.logger.Warn("writing attestation activity at stop", "error", err)
			}
			cancel()
			return
		}
	}
}

// Hours implements app.Activity: every replica's counts of each hour
// since since, merged, oldest first.
func (s *Activity) Hours(ctx context.Context, accountID string, since time.Time) ([]domain.ActivityHour, error) {
	entries, err := s.kv.List(ctx, accountID+".>")
	if err != nil {
		return nil, err
	}
	byStart := map[time.Time]*domain.ActivityHour{}
	for _, e := range entries {
		h := e.Value
		if h.Start.Before(since) {
			continue
		}
		if m := byStart[h.Start]; m != nil {
			m.Merge(h)
		} else {
			byStart[h.Start] = &h
		}
	}
	out := make([]domain.ActivityHour, 0, len(byStart))
	for _, h := range byStart {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b domain.ActivityHour) int { return a.Start.Compare(b.Start) })
	return out, nil
}

func cloneHour(h domain.ActivityHour) domain.ActivityHour {
	h.Failures = append([]domain.Verdict(nil), h.Failures...)
	return h
}
