// Package cachetest is the contract every cache.Cache must keep. Run it
// from each implementation's tests:
//
//	func TestMemory(t *testing.T) {
//		cachetest.Run(t, func(t *testing.T) cache.Cache { return cache.NewMemory(0) })
//	}
package cachetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/cache"
)

// hour is the TTL of entries that must outlive a test.
const hour = time.Hour

// expiryDeadline is how long a short-lived entry may take to disappear. It
// is a bound on waiting, not a threshold the result depends on.
const expiryDeadline = 10 * time.Second

// Run checks the contract of cache.Cache against the caches newCache
// returns. newCache is called once per subtest and must return an empty
// cache (a fresh key prefix is enough), cleaned up by the test.
func Run(t *testing.T, newCache func(t *testing.T) cache.Cache) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, c cache.Cache)
	}{
		{"MissOnAbsentKey", testMiss},
		{"SetGet", testSetGet},
		{"Overwrite", testOverwrite},
		{"ValuesAreCopied", testValuesAreCopied},
		{"Delete", testDelete},
		{"Expiry", testExpiry},
		{"KeyIsolation", testKeyIsolation},
		{"InvalidTTL", testInvalidTTL},
		{"CancelledContext", testCancelledContext},
		{"Concurrent", testConcurrent},
		{"Add", testAdd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newCache(t)) })
	}
}

func mustSet(t *testing.T, c cache.Cache, key string, value []byte, ttl time.Duration) {
	t.Helper()
	if err := c.Set(t.Context(), key, value, ttl); err != nil {
		t.Fatalf("Set(%q) = %v, want nil", key, err)
	}
}

func wantValue(t *testing.T, c cache.Cache, key string, want []byte) {
	t.Helper()
	got, err := c.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q) error = %v, want %q", key, err, want)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

func wantMiss(t *testing.T, c cache.Cache, key string) {
	t.Helper()
	got, err := c.Get(t.Context(), key)
	if !errors.Is(err, cache.ErrMiss) {
		t.Fatalf("Get(%q) = %q, %v, want ErrMiss", key, got, err)
	}
}

func testMiss(t *testing.T, c cache.Cache) {
	wantMiss(t, c, "absent")
}

func testSetGet(t *testing.T, c cache.Cache) {
	tests := []struct {
		name  string
		key   string
		value []byte
	}{
		{"text", "k", []byte("v")},
		{"empty value is a hit", "empty", []byte{}},
		{"every byte", "binary", allBytes()},
		{"large", "large", bytes.Repeat([]byte("0123456789abcdef"), 64<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustSet(t, c, tt.key, tt.value, hour)
			wantValue(t, c, tt.key, tt.value)
		})
	}
}

func testOverwrite(t *testing.T, c cache.Cache) {
	mustSet(t, c, "k", []byte("first"), hour)
	mustSet(t, c, "k", []byte("second"), hour)
	wantValue(t, c, "k", []byte("second"))
}

// A caller that reuses its buffer must not change what the cache holds.
func testValuesAreCopied(t *testing.T, c cache.Cache) {
	v := []byte("original")
	mustSet(t, c, "k", v, hour)
	copy(v, "CHANGED!")
	got, err := c.Get(t.Context(), "k")
	if err != nil {
		t.Fatalf("Get(k) error = %v", err)
	}
	if string(got) != "original" {
		t.Fatalf("Get(k) after changing the set slice = %q, want %q", got, "original")
	}
	copy(got, "CHANGED!")
	wantValue(t, c, "k", []byte("original"))
}

func testDelete(t *testing.T, c cache.Cache) {
	tests := []struct {
		name   string
		set    []string
		delete []string
		kept   []string
	}{
		{"one", []string{"a", "b"}, []string{"a"}, []string{"b"}},
		{"many", []string{"a", "b", "c"}, []string{"a", "c"}, []string{"b"}},
		{"absent", []string{"a"}, []string{"nope"}, []string{"a"}},
		{"present and absent", []string{"a", "b"}, []string{"nope", "b", "nope2"}, []string{"a"}},
		{"twice", []string{"a"}, []string{"a", "a"}, nil},
		{"none", []string{"a"}, nil, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			// Each case uses its own keys so cases cannot see each other.
			k := func(s string) string { return tt.name + "/" + s }
			for _, s := range tt.set {
				mustSet(t, c, k(s), []byte(s), hour)
			}
			del := make([]string, len(tt.delete))
			for i, s := range tt.delete {
				del[i] = k(s)
			}
			if err := c.Delete(ctx, del...); err != nil {
				t.Fatalf("Delete(%q) = %v, want nil", del, err)
			}
			for _, s := range tt.delete {
				wantMiss(t, c, k(s))
			}
			for _, s := range tt.kept {
				wantValue(t, c, k(s), []byte(s))
			}
		})
	}
}

func testExpiry(t *testing.T, c cache.Cache) {
	mustSet(t, c, "long", []byte("stays"), hour)
	mustSet(t, c, "short", []byte("goes"), 50*time.Millisecond)
	waitForMiss(t, c, "short")
	wantValue(t, c, "long", []byte("stays"))

	// An overwrite replaces the TTL as well as the value.
	mustSet(t, c, "renewed", []byte("v1"), 50*time.Millisecond)
	mustSet(t, c, "renewed", []byte("v2"), hour)
	mustSet(t, c, "shortened", []byte("v1"), hour)
	mustSet(t, c, "shortened", []byte("v2"), 50*time.Millisecond)
	waitForMiss(t, c, "shortened")
	wantValue(t, c, "renewed", []byte("v2"))
}

// waitForMiss polls until key is gone, failing after expiryDeadline.
func waitForMiss(t *testing.T, c cache.Cache, key string) {
	t.Helper()
	deadline := time.Now().Add(expiryDeadline)
	for {
		_, err := c.Get(t.Context(), key)
		if errors.Is(err, cache.ErrMiss) {
			return
		}
		if err != nil {
			t.Fatalf("Get(%q) = %v, want a value or ErrMiss", key, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get(%q) still hits %v after its TTL", key, expiryDeadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testKeyIsolation(t *testing.T, c cache.Cache) {
	keys := []string{
		"a", "A", "a:b", "a:b:c", "a b", " a", "a ", "a*", "a?", "[a]",
		"ünïcødé", "tab\there", "new\nline", "nul\x00byte", "",
	}
	for i, k := range keys {
		mustSet(t, c, k, fmt.Appendf(nil, "value %d", i), hour)
	}
	for i, k := range keys {
		wantValue(t, c, k, fmt.Appendf(nil, "value %d", i))
	}
	// A pattern-looking key deletes only itself.
	if err := c.Delete(t.Context(), "a*"); err != nil {
		t.Fatalf("Delete(a*) = %v, want nil", err)
	}
	wantMiss(t, c, "a*")
	wantValue(t, c, "a:b", []byte("value 2"))
}

func testInvalidTTL(t *testing.T, c cache.Cache) {
	for _, ttl := range []time.Duration{0, -time.Nanosecond, -time.Hour} {
		t.Run(ttl.String(), func(t *testing.T) {
			err := c.Set(t.Context(), "k", []byte("v"), ttl)
			if !errors.Is(err, cache.ErrInvalidTTL) {
				t.Fatalf("Set(ttl %v) = %v, want ErrInvalidTTL", ttl, err)
			}
			wantMiss(t, c, "k")
		})
	}
}

// A cancelled lookup must not be answered as a hit: a caller that sees no
// error would trust the value.
func testCancelledContext(t *testing.T, c cache.Cache) {
	mustSet(t, c, "k", []byte("v"), hour)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if got, err := c.Get(ctx, "k"); err == nil {
		t.Fatalf("Get(cancelled ctx) = %q, nil, want an error", got)
	}
}

func testConcurrent(t *testing.T, c cache.Cache) {
	const workers, rounds, keys = 8, 50, 5
	ctx := t.Context()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				key := fmt.Sprintf("k%d", (w+i)%keys)
				want := fmt.Appendf(nil, "value of %s", key)
				if err := c.Set(ctx, key, want, hour); err != nil {
					errs <- fmt.Errorf("Set(%q) = %w", key, err)
					return
				}
				got, err := c.Get(ctx, key)
				switch {
				case errors.Is(err, cache.ErrMiss): // deleted by another worker
				case err != nil:
					errs <- fmt.Errorf("Get(%q) = %w", key, err)
					return
				case !bytes.Equal(got, want):
					errs <- fmt.Errorf("Get(%q) = %q, want %q", key, got, want)
					return
				}
				if i%7 == 0 {
					if err := c.Delete(ctx, key, fmt.Sprintf("k%d", (w+i+1)%keys)); err != nil {
						errs <- fmt.Errorf("Delete(%q) = %w", key, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// testAdd: Add stores only into an absent or expired key, and says so.
func testAdd(t *testing.T, c cache.Cache) {
	ctx := t.Context()
	ok, err := c.Add(ctx, "add:k", []byte("first"), time.Minute)
	if err != nil || !ok {
		t.Fatalf("Add(absent) = %v, %v; want true, nil", ok, err)
	}
	ok, err = c.Add(ctx, "add:k", []byte("second"), time.Minute)
	if err != nil || ok {
		t.Fatalf("Add(present) = %v, %v; want false, nil", ok, err)
	}
	wantValue(t, c, "add:k", []byte("first"))
	if _, err := c.Add(ctx, "add:bad", []byte("x"), 0); !errors.Is(err, cache.ErrInvalidTTL) {
		t.Fatalf("Add with ttl 0 = %v, want ErrInvalidTTL", err)
	}
	if ok, err := c.Add(ctx, "add:short", []byte("old"), 50*time.Millisecond); err != nil || !ok {
		t.Fatalf("Add(short) = %v, %v", ok, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := c.Add(ctx, "add:short", []byte("new"), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Add never succeeded after the entry expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantValue(t, c, "add:short", []byte("new"))
}
