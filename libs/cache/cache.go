// Package cache is the look-aside cache in front of owner services: session
// and API-key lookups, join tokens, image and domain allowlists.
//
// A cache is never the source of truth. Entries carry a TTL and are deleted
// by the events that change them; with the cache down, lookups fall through
// to the owner service (see Tolerant). Redis backs a deployment; Memory backs
// -dev and tests.
package cache

import (
	"context"
	"errors"
	"time"
)

// Cache is a look-aside cache of bytes. It is never the source of truth.
type Cache interface {
	// Get returns the value stored under key, or ErrMiss when it is absent
	// or expired.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key for ttl, which must be positive.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Add stores value under key for ttl only if key holds nothing, and
	// reports whether it did. Filling a cache with Add cannot overwrite a
	// marker that an invalidation wrote meanwhile.
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Delete removes keys; absent keys are not an error.
	Delete(ctx context.Context, keys ...string) error
}

var (
	// ErrMiss is returned by Get when the key is absent or expired.
	ErrMiss = errors.New("cache miss")
	// ErrInvalidTTL is returned by Set when ttl is not positive: an entry
	// that never expires would outlive a lost invalidation forever.
	ErrInvalidTTL = errors.New("cache ttl must be positive")
	// ErrUnavailable is Tolerant's answer to a Set it could not store:
	// the cache is down. A caller that must know whether a write landed
	// (a revocation marker) checks for it; others may ignore it.
	ErrUnavailable = errors.New("cache unavailable")
)
