package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

var _ Cache = (*Redis)(nil)

// Redis is a Cache on a Redis server, standalone or cluster. Errors name no
// key: keys can hold session or API-key digests that do not belong in logs.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

// NewRedis returns a cache on a Redis client; every key is stored under
// prefix (so tests and deployments can share a server). The caller owns the
// client and closes it.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// Get returns the value under key, or ErrMiss.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := r.client.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrMiss
	}
	if err != nil {
		return nil, fmt.Errorf("getting cache entry from redis: %w", err)
	}
	return b, nil
}

// Set stores value under key for ttl, to the millisecond.
func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("setting cache entry with ttl %v: %w", ttl, ErrInvalidTTL)
	}
	// Redis counts in milliseconds; go-redis would round a shorter ttl up
	// too, but log about it on its own logger.
	ttl = max(ttl, time.Millisecond)
	if err := r.client.Set(ctx, r.prefix+key, value, ttl).Err(); err != nil {
		return fmt.Errorf("setting cache entry in redis: %w", err)
	}
	return nil
}

// Add stores value under key for ttl if key is absent (SET NX PX).
func (r *Redis) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("adding cache entry with ttl %v: %w", ttl, ErrInvalidTTL)
	}
	err := r.client.SetArgs(ctx, r.prefix+key, value, redis.SetArgs{Mode: "NX", TTL: max(ttl, time.Millisecond)}).Err()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("adding cache entry in redis: %w", err)
	}
	return true, nil
}

// Delete removes keys; absent keys are ignored.
func (r *Redis) Delete(ctx context.Context, keys ...string) error {
	switch len(keys) {
	case 0:
		return nil
	case 1:
		if err := r.client.Del(ctx, r.prefix+keys[0]).Err(); err != nil {
			return fmt.Errorf("deleting cache entry in redis: %w", err)
		}
		return nil
	}
	// One DEL per key in a single pipeline: a multi-key DEL fails in a
	// cluster when the keys hash to different slots.
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, r.prefix+k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting %d cache entries in redis: %w", len(keys), err)
	}
	return nil
}

// Ping checks that Redis answers. The cache is optional, so a service whose
// Redis is down still serves: do not make readiness depend on Ping.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("pinging redis: %w", err)
	}
	return nil
}
