package gateway

import (
	"testing"
	"time"
)

// TestLocalPrincipals: an entry is fresh for localTTL, a drop removes it,
// and a principal read before a drop is not kept after it.
func TestLocalPrincipals(t *testing.T) {
	var l localPrincipals
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	p := principal{UserID: "u1", TokenHash: "h1"}
	l.put("k1", p, now, l.epoch())
	if got, ok := l.get("k1", now.Add(localTTL-time.Nanosecond)); !ok || got.UserID != "u1" {
		t.Fatalf("get within localTTL = %+v, %v", got, ok)
	}
	if _, ok := l.get("k1", now.Add(localTTL)); ok {
		t.Fatal("an entry is still fresh at localTTL")
	}
	l.drop("k1")
	if _, ok := l.get("k1", now); ok {
		t.Fatal("a dropped entry is still there")
	}
	// A lookup that read before a revocation dropped the key puts nothing.
	epoch := l.epoch()
	l.drop("k2")
	l.put("k2", principal{UserID: "u2"}, now, epoch)
	if _, ok := l.get("k2", now); ok {
		t.Fatal("a principal read before the drop was kept after it")
	}
	// Past maxLocal the entries start afresh rather than grow.
	for i := range maxLocal + 1 {
		l.put(string(rune('a'+i%26))+time.Duration(i).String(), p, now, l.epoch())
	}
	if n := len(l.m); n > maxLocal {
		t.Fatalf("%d entries, want at most %d", n, maxLocal)
	}
}
