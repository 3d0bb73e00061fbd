package kv

import "context"

// ListFromLeader is List's way when a replica lags behind, for the tests
// to compare with its usual way.
func (s *Store[T]) ListFromLeader(ctx context.Context, filter string) ([]Entry[T], error) {
	return s.listFromLeader(ctx, filter)
}
