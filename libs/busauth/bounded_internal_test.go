package busauth

import (
	"strconv"
	"testing"
)

// TestPutBounded: a full cache stays within its bound, drops what is stale
// before anything else, and keeps what was just added.
func TestPutBounded(t *testing.T) {
	m := map[string]int{}
	stale := func(v int) bool { return v < 0 }
	for i := range cacheSize {
		v := i
		if i%10 == 0 {
			v = -1 // stale
		}
		putBounded(m, strconv.Itoa(i), v, stale)
	}
	if len(m) != cacheSize {
		t.Fatalf("filled to %d entries, want %d", len(m), cacheSize)
	}
	putBounded(m, "new", 1, stale)
	if len(m) > cacheSize*3/4+1 || m["new"] != 1 {
		t.Fatalf("after adding to a full cache: %d entries, new = %d; want at most %d, and new kept", len(m), m["new"], cacheSize*3/4+1)
	}
	for k, v := range m {
		if stale(v) {
			t.Fatalf("stale entry %s kept", k)
		}
	}
	// Until it is full again, additions sweep nothing.
	n := len(m)
	putBounded(m, "next", 2, stale)
	if len(m) != n+1 {
		t.Fatalf("adding to a cache with room: %d entries, want %d", len(m), n+1)
	}
}
