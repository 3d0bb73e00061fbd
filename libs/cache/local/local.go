// Package local keeps values decoded in process for a short time, in
// front of a cache or a service that holds the truth: a hit costs neither
// a round trip nor a decoding. A change drops its key at once on the
// process that makes it and, through the change's event, on every other;
// the TTL bounds how long an entry outlives a change whose event a
// process missed.
package local

import (
	"sync"
	"time"
)

// Map is a map of values, each fresh for its TTL after it was put. Its
// zero value is not usable: make one with New.
type Map[V any] struct {
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[string]entry[V]
	// drops counts drops: a value read before a drop is not put after
	// it, so a read under way cannot bring back what a change dropped.
	drops uint64
}

type entry[V any] struct {
	v     V
	until time.Time
}

// New returns a Map whose entries stay fresh for ttl and that holds at
// most max of them: past it, it starts afresh rather than grow.
func New[V any](ttl time.Duration, max int) *Map[V] {
	return &Map[V]{ttl: ttl, max: max}
}

// TTL is how long an entry stays fresh.
func (m *Map[V]) TTL() time.Duration { return m.ttl }

// Get returns the value under key while it is fresh at now.
func (m *Map[V]) Get(key string, now time.Time) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[key]
	if !ok || !now.Before(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Epoch is what to give Put for a value about to be read from the truth.
func (m *Map[V]) Epoch() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.drops
}

// Put keeps v under key until now+TTL, unless a drop came since epoch
// (taken before v was read).
func (m *Map[V]) Put(key string, v V, now time.Time, epoch uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.drops != epoch {
		return
	}
	if m.m == nil || len(m.m) >= m.max {
		m.m = map[string]entry[V]{}
	}
	m.m[key] = entry[V]{v: v, until: now.Add(m.ttl)}
}

// Drop forgets key's value, and fences out reads under way.
func (m *Map[V]) Drop(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.drops++
	delete(m.m, key)
}

// Len is how many entries the map holds, fresh or not.
func (m *Map[V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}
