package local

import (
	"strconv"
	"testing"
	"time"
)

// An entry is fresh for the TTL, a drop removes it, a value read before a
// drop is not kept after it, and past its bound the map starts afresh.
func TestMap(t *testing.T) {
	const ttl, max = 2 * time.Second, 100
	m := New[string](ttl, max)
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	m.Put("k1", "v1", now, m.Epoch())
	if got, ok := m.Get("k1", now.Add(ttl-time.Nanosecond)); !ok || got != "v1" {
		t.Fatalf("Get within the TTL = %q, %v", got, ok)
	}
	if _, ok := m.Get("k1", now.Add(ttl)); ok {
		t.Fatal("an entry is still fresh at its TTL")
	}
	m.Drop("k1")
	if _, ok := m.Get("k1", now); ok {
		t.Fatal("a dropped entry is still there")
	}
	// A read that began before a change dropped the key puts nothing.
	epoch := m.Epoch()
	m.Drop("k2")
	m.Put("k2", "stale", now, epoch)
	if _, ok := m.Get("k2", now); ok {
		t.Fatal("a value read before the drop was kept after it")
	}
	for i := range max + 1 {
		m.Put(strconv.Itoa(i), "v", now, m.Epoch())
	}
	if n := m.Len(); n > max {
		t.Fatalf("%d entries, want at most %d", n, max)
	}
}
