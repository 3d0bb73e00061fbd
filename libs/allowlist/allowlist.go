// Package allowlist keeps a service's projection of approvals (approved
// images in the attestation service, approved domains in the CA): entries
// in a JetStream KV bucket, the source of truth, looked up through the
// cache.
//
// Changes write through: the KV write commits, then the cache entry is
// overwritten with the new value or an absence marker. Lookups fill the
// cache with Add, which never overwrites, so a lookup that read the bucket
// before a change cannot put the old answer back after it. An answer is
// therefore never stale by more than one change's write, not a TTL; the
// TTL bounds what the cache can get wrong otherwise: a lost cache write
// (cache.Tolerant swallows the error while Redis is down), an absence
// marker evicted before a racing fill lands, or two changes of one key
// whose cache writes land in the opposite order. Decisions that must not
// rest on the cache (a certificate about to be handed out) confirm with
// Fresh, which reads the bucket.
package allowlist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/kv"
)

// TTL bounds how long a cached answer is kept.
const TTL = time.Minute

// absent is cached for keys that are not on the list.
var absent = []byte("-")

// List is an allowlist of T by key.
type List[T any] struct {
	kv     *kv.Store[T]
	cache  cache.Cache
	prefix string // of cache keys: "allowlist:<bucket>:"
	logger *slog.Logger
}

// Open opens (or creates) the bucket behind a list.
func Open[T any](ctx context.Context, js jetstream.JetStream, bucket string, replicas int, c cache.Cache, logger *slog.Logger) (*List[T], error) {
	if c == nil {
		return nil, errors.New("allowlist: a cache is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s, err := kv.Open[T](ctx, js, kv.Config{Bucket: bucket, Replicas: replicas}, kv.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	return &List[T]{kv: s, cache: c, prefix: "allowlist:" + bucket + ":", logger: logger}, nil
}

// Put adds or replaces the entry under key.
func (l *List[T]) Put(ctx context.Context, key string, v T) error {
	for range 10 {
		var err error
		e, gerr := l.kv.Get(ctx, key)
		switch {
		case errors.Is(gerr, kv.ErrNotFound):
			_, err = l.kv.Create(ctx, key, v)
		case gerr != nil:
			return gerr
		default:
			_, err = l.kv.Update(ctx, key, v, e.Version)
		}
		if errors.Is(err, kv.ErrExists) || errors.Is(err, kv.ErrConflict) {
			continue // a concurrent change: read again
		}
		if err != nil {
			return err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		l.setCache(ctx, key, b)
		return nil
	}
	return fmt.Errorf("allowlist: %s keeps changing under concurrent writes", key)
}

// Remove takes key off the list; removing an absent key is not an error.
func (l *List[T]) Remove(ctx context.Context, key string) error {
	for range 10 {
		e, err := l.kv.Get(ctx, key)
		if errors.Is(err, kv.ErrNotFound) {
			l.setCache(ctx, key, absent)
			return nil
		}
		if err != nil {
			return err
		}
		err = l.kv.Delete(ctx, key, e.Version)
		if errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		l.setCache(ctx, key, absent)
		return nil
	}
	return fmt.Errorf("allowlist: %s keeps changing under concurrent writes", key)
}

// setCache writes a change through to the cache. When that fails the
// cached answer may be wrong until it expires, so it is deleted as a
// second chance and the failure logged.
func (l *List[T]) setCache(ctx context.Context, key string, b []byte) {
	if err := l.cache.Set(ctx, l.prefix+key, b, TTL); err != nil {
		_ = l.cache.Delete(ctx, l.prefix+key)
		l.logger.WarnContext(ctx, "allowlist change not written to the cache; cached answers may lag until they expire",
			"key", key, "ttl", TTL, "error", err)
	}
}

// Lookup returns the entry under key and whether there is one, from the
// cache when it holds the answer, else from the bucket.
func (l *List[T]) Lookup(ctx context.Context, key string) (T, bool, error) {
	var zero T
	if b, err := l.cache.Get(ctx, l.prefix+key); err == nil {
		if bytes.Equal(b, absent) {
			return zero, false, nil
		}
		var v T
		if json.Unmarshal(b, &v) == nil {
			return v, true, nil
		}
	}
	e, err := l.kv.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		_, _ = l.cache.Add(ctx, l.prefix+key, absent, TTL)
		return zero, false, nil
	}
	if err != nil {
		return zero, false, err
	}
	if b, err := json.Marshal(e.Value); err == nil {
		_, _ = l.cache.Add(ctx, l.prefix+key, b, TTL)
	}
	return e.Value, true, nil
}

// Fresh returns the entry under key from the bucket, bypassing the cache:
// for decisions that must not rest on a cached answer.
func (l *List[T]) Fresh(ctx context.Context, key string) (T, bool, error) {
	var zero T
	e, err := l.kv.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, err
	}
	return e.Value, true, nil
}

// List returns the entries whose keys match filter (NATS wildcards), from
// the bucket.
func (l *List[T]) List(ctx context.Context, filter string) ([]kv.Entry[T], error) {
	return l.kv.List(ctx, filter)
}

// RemoveMatching removes every entry whose key matches filter and returns
// what it removed.
func (l *List[T]) RemoveMatching(ctx context.Context, filter string) ([]kv.Entry[T], error) {
	es, err := l.kv.List(ctx, filter)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if err := l.Remove(ctx, e.Key); err != nil {
			return nil, err
		}
	}
	return es, nil
}
