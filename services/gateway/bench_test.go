package gateway_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// BenchmarkMeCacheHit measures an authenticated GET /v1/users/me answered
// from the Redis cache, beside its floor: a raw Redis GET of the same
// entry on the same server, measured in the same run.
func BenchmarkMeCacheHit(b *testing.B) {
	r := testkit.StartRedis(b)
	s := newStack(b, cache.NewRedis(r.Client, r.Prefix))
	_, token := s.user("ada@example.com")
	req, _ := http.NewRequest("GET", s.srv.URL+"/v1/users/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	get := func() {
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("GET /v1/users/me = %d", resp.StatusCode)
		}
	}
	get() // fills the cache
	keys, err := r.Client.Keys(context.Background(), r.Prefix+"auth:session:*").Result()
	if err != nil || len(keys) != 1 {
		b.Fatalf("cache entry after the first request: %v, %v", keys, err)
	}
	ctx := context.Background()

	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		get()
	}
	ours := time.Since(start)
	b.StopTimer()
	floorStart := time.Now()
	for range b.N {
		if err := r.Client.Get(ctx, keys[0]).Err(); err != nil {
			b.Fatal(err)
		}
	}
	floor := time.Since(floorStart)
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(floor)/float64(ours), "x-floor")
}
