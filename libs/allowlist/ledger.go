package allowlist

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/kv"
)

// Ledger remembers the approvals that were taken back (tasks withdrawn or
// denied), so that an approval delivered late, a retried event overtaken
// by its withdrawal, cannot bring them back. Events of one task may be
// handled out of order and by different replicas; a withdrawal is final.
type Ledger struct{ kv *kv.Store[time.Time] }

// OpenLedger opens (or creates) the bucket of a ledger.
func OpenLedger(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, logger *slog.Logger) (*Ledger, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s, err := kv.Open[time.Time](ctx, js, kv.Config{Bucket: bucket, Replicas: replicas}, kv.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	return &Ledger{s}, nil
}

// Withdraw records that the approval under key was taken back. Call it
// before removing what the approval allowed.
func (l *Ledger) Withdraw(ctx context.Context, key string) error {
	_, err := l.kv.Create(ctx, key, time.Now().UTC())
	if errors.Is(err, kv.ErrExists) {
		return nil
	}
	return err
}

// Withdrawn tells whether the approval under key was taken back.
func (l *Ledger) Withdrawn(ctx context.Context, key string) (bool, error) {
	_, err := l.kv.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Apply runs an approval unless it was withdrawn: put adds what it allows,
// and remove takes it away again when the withdrawal raced with it (the
// withdrawal recorded itself, then removed, before put landed).
func (l *Ledger) Apply(ctx context.Context, key string, put, remove func(context.Context) error) error {
	if w, err := l.Withdrawn(ctx, key); err != nil || w {
		return err
	}
	if err := put(ctx); err != nil {
		return err
	}
	if w, err := l.Withdrawn(ctx, key); err != nil || !w {
		return err
	}
	return remove(ctx)
}
