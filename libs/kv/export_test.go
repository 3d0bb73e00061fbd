package kv

import "context"

// ListFromLeader is List's way when a replica lags behind, for the tests
// to compare with its usual way.
func (s *Store[T]) ListFromLeader(ctx context.Context, filter string) ([]Entry[T], error) {
	return s.listFromLeader(ctx, filter)
}

// LeaderLast is the revision List checks a watcher's listing against.
func (s *Store[T]) LeaderLast(ctx context.Context, filter string) (uint64, error) {
	return s.leaderLast(ctx, filter)
}
