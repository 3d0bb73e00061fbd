package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// GetJSON reads the value under key into a T. ErrMiss passes through. A
// value that does not decode (written by an older version, say) is treated
// as a miss and deleted, so the caller refills it from the owner service.
func GetJSON[T any](ctx context.Context, c Cache, key string) (T, error) {
	var v T
	b, err := c.Get(ctx, key)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		// Best effort: the caller's Set will overwrite it anyway.
		_ = c.Delete(ctx, key)
		var zero T
		return zero, ErrMiss
	}
	return v, nil
}

// SetJSON stores v encoded as JSON under key for ttl.
func SetJSON(ctx context.Context, c Cache, key string, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding cache value: %w", err)
	}
	return c.Set(ctx, key, b, ttl)
}
