package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/cloister-cc/cloister/libs/obs"
)

// logEvery bounds how often a Tolerant cache logs: an outage fails every
// lookup, and one line per lookup would bury everything else.
const logEvery = 10 * time.Second

// retryAfter is how long Get and Set leave a failed cache alone, so that an
// outage costs each lookup nothing rather than a dial timeout.
const retryAfter = time.Second

const meterName = "github.com/cloister-cc/cloister/libs/cache"

var (
	opGet    = metric.WithAttributeSet(attribute.NewSet(attribute.String("op", "get")))
	opSet    = metric.WithAttributeSet(attribute.NewSet(attribute.String("op", "set")))
	opAdd    = metric.WithAttributeSet(attribute.NewSet(attribute.String("op", "add")))
	opDelete = metric.WithAttributeSet(attribute.NewSet(attribute.String("op", "delete")))
)

// Tolerant wraps a cache so that its failures (Redis down) behave as misses
// on Get, are ignored on Delete, and are reported as ErrUnavailable on Set
// (nothing was stored: a caller whose write must land, such as a
// revocation marker, can act on it): callers fall through to the owner
// service and stay correct. Failures are logged at warn level to logger (at
// most one line per 10 s, counting the lines it held back; a nil logger logs
// nothing) and counted in the metric cloister.cache.failures by op.
//
// After a failure, Get and Set skip the cache for a second (a miss, and
// nothing stored), so that while Redis is down a lookup does not wait out a
// dial timeout. Delete is always attempted: an invalidation must reach the
// cache whenever the cache can be reached.
//
// Misuse is not an outage: Set with a ttl that is not positive still fails
// with ErrInvalidTTL. A caller that cancelled its context is not counted.
//
// A Delete lost in an outage leaves the entry until its TTL, so the TTL is
// the bound on staleness when Redis drops invalidations.
func Tolerant(c Cache, logger *slog.Logger) Cache {
	return newTolerant(c, logger, time.Now, otel.GetMeterProvider())
}

func newTolerant(c Cache, logger *slog.Logger, now func() time.Time, mp metric.MeterProvider) *tolerant {
	if c == nil {
		panic("cache.Tolerant: nil cache")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The error only reports an invalid instrument name; the counter it
	// returns alongside is a working no-op.
	failures, _ := mp.Meter(meterName).Int64Counter("cloister.cache.failures",
		metric.WithUnit("{failure}"),
		metric.WithDescription("Cache operations that failed and were served as a miss or ignored."))
	return &tolerant{c: c, logger: logger, now: now, failures: failures}
}

type tolerant struct {
	c        Cache
	logger   *slog.Logger
	now      func() time.Time
	failures metric.Int64Counter

	mu         sync.Mutex
	openUntil  time.Time // Get and Set skip the cache until then
	lastLog    time.Time
	suppressed int
}

// skipping reports whether a recent failure says to leave the cache alone.
func (t *tolerant) skipping() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.now().Before(t.openUntil)
}

func (t *tolerant) Get(ctx context.Context, key string) ([]byte, error) {
	if t.skipping() {
		return nil, ErrMiss
	}
	b, err := t.c.Get(ctx, key)
	if err == nil || errors.Is(err, ErrMiss) {
		return b, err
	}
	t.fail(ctx, "get", opGet, err)
	return nil, ErrMiss
}

func (t *tolerant) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("setting cache entry with ttl %v: %w", ttl, ErrInvalidTTL)
	}
	if t.skipping() {
		return fmt.Errorf("setting %s: %w (skipped since a recent failure)", key, ErrUnavailable)
	}
	err := t.c.Set(ctx, key, value, ttl)
	if err == nil {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err // the caller went away; the cache may be fine
	}
	t.fail(ctx, "set", opSet, err)
	return fmt.Errorf("setting %s: %w: %v", key, ErrUnavailable, err)
}

// Add is Set's counterpart: a failure reports that nothing was stored.
func (t *tolerant) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("adding cache entry with ttl %v: %w", ttl, ErrInvalidTTL)
	}
	if t.skipping() {
		return false, nil
	}
	ok, err := t.c.Add(ctx, key, value, ttl)
	if err == nil {
		return ok, nil
	}
	t.fail(ctx, "add", opAdd, err)
	return false, nil
}

func (t *tolerant) Delete(ctx context.Context, keys ...string) error {
	if err := t.c.Delete(ctx, keys...); err != nil {
		t.fail(ctx, "delete", opDelete, err)
	}
	return nil
}

func (t *tolerant) fail(ctx context.Context, op string, opAttr metric.MeasurementOption, err error) {
	if errors.Is(err, context.Canceled) {
		return // the caller went away; the cache may be fine
	}
	t.failures.Add(context.WithoutCancel(ctx), 1, opAttr)

	t.mu.Lock()
	now := t.now()
	t.openUntil = now.Add(retryAfter)
	if !t.lastLog.IsZero() && now.Sub(t.lastLog) < logEvery {
		t.suppressed++
		t.mu.Unlock()
		return
	}
	suppressed := t.suppressed
	t.lastLog, t.suppressed = now, 0
	t.mu.Unlock()

	t.logger.LogAttrs(ctx, slog.LevelWarn, "cache unavailable; serving from the owner service",
		slog.String(obs.KeyOp, op),
		slog.String(obs.KeyError, err.Error()),
		slog.Int(obs.KeySuppressed, suppressed))
}
