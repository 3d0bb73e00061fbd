package cache_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/cache/cachetest"
	"github.com/cloister-cc/cloister/libs/testkit"
)

func TestMain(m *testing.M) {
	// go-redis logs each failed dial on its own global logger; the tests
	// against a closed port would fill the output with them.
	redis.SetLogger(discardRedisLog{})
	os.Exit(m.Run())
}

type discardRedisLog struct{}

func (discardRedisLog) Printf(context.Context, string, ...any) {}

func newMemory(t *testing.T) *cache.Memory {
	m := cache.NewMemory(0)
	t.Cleanup(func() { m.Close() })
	return m
}

// redisCaches connects to Redis once (skipping or failing as testkit
// decides) and returns a maker of empty caches: each subtest gets its own
// prefix under the test's, which testkit clears at the end.
func redisCaches(t *testing.T) func(t *testing.T) *cache.Redis {
	r := testkit.StartRedis(t)
	return func(t *testing.T) *cache.Redis {
		return cache.NewRedis(r.Client, r.Prefix+t.Name()+":")
	}
}

func TestMemory(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) cache.Cache { return newMemory(t) })
}

func TestRedis(t *testing.T) {
	newRedis := redisCaches(t)
	cachetest.Run(t, func(t *testing.T) cache.Cache { return newRedis(t) })
}

// A Tolerant cache over a working one keeps the whole contract.
func TestTolerantContract(t *testing.T) {
	t.Run("Memory", func(t *testing.T) {
		cachetest.Run(t, func(t *testing.T) cache.Cache { return cache.Tolerant(newMemory(t), nil) })
	})
	t.Run("Redis", func(t *testing.T) {
		newRedis := redisCaches(t)
		cachetest.Run(t, func(t *testing.T) cache.Cache { return cache.Tolerant(newRedis(t), nil) })
	})
}

func TestRedisPrefix(t *testing.T) {
	r := testkit.StartRedis(t)
	ctx := t.Context()
	a := cache.NewRedis(r.Client, r.Prefix+"a:")
	b := cache.NewRedis(r.Client, r.Prefix+"b:")
	if err := a.Set(ctx, "k", []byte("from a"), time.Hour); err != nil {
		t.Fatalf("Set = %v", err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, cache.ErrMiss) {
		t.Fatalf("Get under another prefix = %v, want ErrMiss", err)
	}
	got, err := r.Client.Get(ctx, r.Prefix+"a:k").Bytes()
	if err != nil || string(got) != "from a" {
		t.Fatalf("raw GET %sa:k = %q, %v, want %q", r.Prefix, got, err, "from a")
	}
	// Redis keeps the TTL to the millisecond.
	if err := a.Set(ctx, "ms", []byte("v"), 1500*time.Millisecond); err != nil {
		t.Fatalf("Set = %v", err)
	}
	pttl, err := r.Client.PTTL(ctx, r.Prefix+"a:ms").Result()
	if err != nil || pttl <= 0 || pttl > 1500*time.Millisecond {
		t.Fatalf("PTTL = %v, %v, want in (0, 1.5s]", pttl, err)
	}
	if err := a.Ping(ctx); err != nil {
		t.Fatalf("Ping = %v, want nil", err)
	}
}

func TestMemoryLRU(t *testing.T) {
	tests := []struct {
		name    string
		touch   []string // read after setting a, b, c
		set     []string // then set
		present []string
		absent  []string
	}{
		{"evicts the oldest", nil, []string{"d"}, []string{"b", "c", "d"}, []string{"a"}},
		{"a read keeps an entry", []string{"a"}, []string{"d"}, []string{"a", "c", "d"}, []string{"b"}},
		{"an overwrite keeps an entry", nil, []string{"a", "d"}, []string{"a", "c", "d"}, []string{"b"}},
		{"evicts several", []string{"b"}, []string{"d", "e"}, []string{"b", "d", "e"}, []string{"a", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			m := cache.NewMemory(3)
			defer m.Close()
			for _, k := range []string{"a", "b", "c"} {
				if err := m.Set(ctx, k, []byte(k), time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range tt.touch {
				if _, err := m.Get(ctx, k); err != nil {
					t.Fatalf("Get(%q) = %v", k, err)
				}
			}
			for _, k := range tt.set {
				if err := m.Set(ctx, k, []byte(k), time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			if got := m.Len(); got != 3 {
				t.Errorf("Len() = %d, want 3", got)
			}
			for _, k := range tt.present {
				if got, err := m.Get(ctx, k); err != nil || string(got) != k {
					t.Errorf("Get(%q) = %q, %v, want %q", k, got, err, k)
				}
			}
			for _, k := range tt.absent {
				if _, err := m.Get(ctx, k); !errors.Is(err, cache.ErrMiss) {
					t.Errorf("Get(%q) = %v, want ErrMiss", k, err)
				}
			}
		})
	}
}

func TestMemoryDefaultBound(t *testing.T) {
	for _, n := range []int{0, -1} {
		m := cache.NewMemory(n)
		m.Close()
		if got := m.MaxEntries(); got != cache.DefaultMaxEntries {
			t.Errorf("NewMemory(%d).MaxEntries() = %d, want %d", n, got, cache.DefaultMaxEntries)
		}
	}
}

func TestMemoryJanitor(t *testing.T) {
	ctx := t.Context()
	m := newMemory(t)
	if err := m.Set(ctx, "short", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(ctx, "long", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	// As of two minutes from now, only the short entry has expired.
	m.RemoveExpired(time.Now().Add(2 * time.Minute))
	if got := m.Len(); got != 1 {
		t.Fatalf("Len() after cleanup = %d, want 1", got)
	}
	if _, err := m.Get(ctx, "long"); err != nil {
		t.Fatalf("Get(long) = %v, want a hit", err)
	}
}

func TestMemoryClose(t *testing.T) {
	m := cache.NewMemory(0)
	if err := m.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close() = %v", err)
	}
	// Still usable, with lazy expiry only.
	if err := m.Set(t.Context(), "k", []byte("v"), time.Hour); err != nil {
		t.Fatalf("Set after Close = %v", err)
	}
}

// downRedis returns a Redis cache whose server is not there: the port was
// just listened on and closed, so dialling it is refused.
func downRedis(t *testing.T) *cache.Redis {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	client := redis.NewClient(&redis.Options{
		Addr:          addr,
		DialTimeout:   200 * time.Millisecond,
		DialerRetries: 1,
		MaxRetries:    -1,
	})
	t.Cleanup(func() { client.Close() })
	return cache.NewRedis(client, "down:")
}

func TestRedisDownFails(t *testing.T) {
	ctx := t.Context()
	c := downRedis(t)
	if _, err := c.Get(ctx, "k"); err == nil || errors.Is(err, cache.ErrMiss) {
		t.Errorf("Get = %v, want a connection error", err)
	}
	if err := c.Set(ctx, "k", []byte("v"), time.Minute); err == nil {
		t.Errorf("Set = nil, want a connection error")
	}
	if err := c.Delete(ctx, "k", "l"); err == nil {
		t.Errorf("Delete = nil, want a connection error")
	}
	if err := c.Ping(ctx); err == nil {
		t.Errorf("Ping = nil, want a connection error")
	}
}

// logLines parses the JSON lines written to logs.
func logLines(t *testing.T, logs *testkit.Logs) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// clock is a settable time for the log rate limit.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestTolerantRedisDown(t *testing.T) {
	ctx := t.Context()
	var logs testkit.Logs
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	clk := &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	c := cache.NewTolerantForTest(downRedis(t), logger, clk.Now, mp)

	// A failure opens the breaker: Get and Set then skip the cache, while
	// Delete still tries it.
	if got, err := c.Get(ctx, "k"); !errors.Is(err, cache.ErrMiss) {
		t.Errorf("Get = %q, %v, want ErrMiss", got, err)
	}
	if err := c.Set(ctx, "k", []byte("v"), time.Minute); !errors.Is(err, cache.ErrUnavailable) {
		t.Errorf("Set = %v, want ErrUnavailable: nothing was stored", err)
	}
	if err := c.Delete(ctx, "k"); err != nil {
		t.Errorf("Delete = %v, want nil", err)
	}
	if err := c.Delete(ctx, "k", "l"); err != nil {
		t.Errorf("Delete(2 keys) = %v, want nil", err)
	}
	if _, err := cache.GetJSON[int](ctx, c, "k"); !errors.Is(err, cache.ErrMiss) {
		t.Errorf("GetJSON = %v, want ErrMiss", err)
	}
	if err := cache.SetJSON(ctx, c, "k", 1, time.Minute); !errors.Is(err, cache.ErrUnavailable) {
		t.Errorf("SetJSON = %v, want ErrUnavailable", err)
	}
	// Misuse is still reported.
	if err := c.Set(ctx, "k", []byte("v"), 0); !errors.Is(err, cache.ErrInvalidTTL) {
		t.Errorf("Set(ttl 0) = %v, want ErrInvalidTTL", err)
	}
	wantCounts(t, reader, map[string]int64{"get": 1, "delete": 2})

	// Three failures within one log interval log once.
	lines := logLines(t, &logs)
	if len(lines) != 1 {
		t.Fatalf("logged %d lines, want 1: %v", len(lines), lines)
	}
	first := lines[0]
	if first["level"] != "WARN" || first["op"] != "get" || first["error"] == "" || first["suppressed"] != 0.0 {
		t.Errorf("first log line = %v, want WARN, op get, an error and suppressed 0", first)
	}

	// Once the breaker closes, Set tries the cache again (and fails).
	clk.Advance(time.Second)
	if err := c.Set(ctx, "k", []byte("v"), time.Minute); !errors.Is(err, cache.ErrUnavailable) {
		t.Errorf("Set = %v, want ErrUnavailable", err)
	}
	wantCounts(t, reader, map[string]int64{"get": 1, "set": 1, "delete": 2})

	// The first failure after the log interval logs, with the count held back.
	clk.Advance(10 * time.Second)
	if _, err := c.Get(ctx, "k"); !errors.Is(err, cache.ErrMiss) {
		t.Errorf("Get = %v, want ErrMiss", err)
	}
	lines = logLines(t, &logs)
	if len(lines) != 2 {
		t.Fatalf("logged %d lines after the interval, want 2: %v", len(lines), lines)
	}
	if lines[1]["suppressed"] != 3.0 {
		t.Errorf("second log line suppressed = %v, want 3", lines[1]["suppressed"])
	}
	wantCounts(t, reader, map[string]int64{"get": 2, "set": 1, "delete": 2})
}

// The breaker closes when the cache answers again: a working cache behind
// it serves hits once retryAfter has passed.
func TestTolerantRecovers(t *testing.T) {
	ctx := t.Context()
	clk := &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	inner := newMemory(t)
	c := cache.NewTolerantForTest(inner, nil, clk.Now, sdkmetric.NewMeterProvider())
	if err := inner.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	// A lookup whose deadline has passed fails in the cache, which opens
	// the breaker.
	expired, cancel := context.WithDeadline(ctx, time.Unix(0, 0))
	defer cancel()
	if _, err := c.Get(expired, "k"); !errors.Is(err, cache.ErrMiss) {
		t.Fatalf("Get(expired ctx) = %v, want ErrMiss", err)
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, cache.ErrMiss) {
		t.Fatalf("Get with the breaker open = %v, want ErrMiss", err)
	}
	// Deletes go through even while it is open.
	if err := c.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := inner.Get(ctx, "k"); !errors.Is(err, cache.ErrMiss) {
		t.Fatalf("inner Get after Delete with the breaker open = %v, want ErrMiss", err)
	}
	clk.Advance(time.Second)
	if err := c.Set(ctx, "k", []byte("again"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "k"); err != nil || string(got) != "again" {
		t.Fatalf("Get after the breaker closed = %q, %v, want %q", got, err, "again")
	}
}

func TestTolerantIgnoresCancelledCaller(t *testing.T) {
	var logs testkit.Logs
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	c := cache.NewTolerantForTest(newMemory(t), slog.New(slog.NewJSONHandler(&logs, nil)), time.Now, mp)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Get(ctx, "k"); !errors.Is(err, cache.ErrMiss) {
		t.Errorf("Get(cancelled) = %v, want ErrMiss", err)
	}
	if err := c.Set(ctx, "k", []byte("v"), time.Minute); !errors.Is(err, context.Canceled) || errors.Is(err, cache.ErrUnavailable) {
		t.Errorf("Set(cancelled) = %v, want the caller's cancellation, not an outage", err)
	}
	if got := logLines(t, &logs); len(got) != 0 {
		t.Errorf("logged %v, want nothing", got)
	}
	if got := failureCounts(t, reader); len(got) != 0 {
		t.Errorf("cloister.cache.failures = %v, want none", got)
	}
}

func wantCounts(t *testing.T, r *sdkmetric.ManualReader, want map[string]int64) {
	t.Helper()
	if got := failureCounts(t, r); !equalCounts(got, want) {
		t.Errorf("cloister.cache.failures = %v, want %v", got, want)
	}
}

func failureCounts(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(t.Context(), &rm); err != nil {
		t.Fatalf("collecting metrics: %v", err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "cloister.cache.failures" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				op, _ := dp.Attributes.Value(attribute.Key("op"))
				got[op.AsString()] += dp.Value
			}
		}
	}
	return got
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

type account struct {
	ID    string   `json:"id"`
	Roles []string `json:"roles"`
}

func TestJSON(t *testing.T) {
	ctx := t.Context()
	c := newMemory(t)
	want := account{ID: "acc-1", Roles: []string{"admin", "viewer"}}
	if err := cache.SetJSON(ctx, c, "acc", want, time.Hour); err != nil {
		t.Fatalf("SetJSON = %v", err)
	}

	tests := []struct {
		name    string
		key     string
		raw     []byte // stored as is before the read, when not nil
		want    account
		wantErr error
		deleted bool
	}{
		{name: "round trip", key: "acc", want: want},
		{name: "absent", key: "absent", wantErr: cache.ErrMiss},
		{name: "undecodable is a miss and deleted", key: "bad", raw: []byte("{not json"), wantErr: cache.ErrMiss, deleted: true},
		{name: "wrong type is a miss and deleted", key: "wrong", raw: []byte(`{"id":42}`), wantErr: cache.ErrMiss, deleted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.raw != nil {
				if err := c.Set(ctx, tt.key, tt.raw, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			got, err := cache.GetJSON[account](ctx, c, tt.key)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("GetJSON(%q) error = %v, want %v", tt.key, err, tt.wantErr)
			}
			if tt.wantErr == nil && (got.ID != tt.want.ID || strings.Join(got.Roles, ",") != strings.Join(tt.want.Roles, ",")) {
				t.Errorf("GetJSON(%q) = %+v, want %+v", tt.key, got, tt.want)
			}
			if tt.wantErr != nil && (got.ID != "" || got.Roles != nil) {
				t.Errorf("GetJSON(%q) = %+v on error, want the zero value", tt.key, got)
			}
			if tt.deleted {
				if _, err := c.Get(ctx, tt.key); !errors.Is(err, cache.ErrMiss) {
					t.Errorf("Get(%q) after an undecodable read = %v, want ErrMiss", tt.key, err)
				}
			}
		})
	}

	t.Run("unencodable", func(t *testing.T) {
		if err := cache.SetJSON(ctx, c, "ch", make(chan int), time.Hour); err == nil {
			t.Fatal("SetJSON(chan) = nil, want an error")
		}
	})
}
