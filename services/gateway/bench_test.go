package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/libs/testkit/bench"
)

// BenchmarkMeCacheHit measures an authenticated GET /v1/users/me answered
// from the cache, as cloister server serves it (behind obs.HTTPMiddleware,
// with the telemetry Setup installs: spans and metrics), beside its floor:
// a raw net/http handler that returns the same JSON to the same client,
// measured in the same run. x-floor-bare is the gateway without the
// middleware; the Redis GET that a gateway's first lookup of a principal
// makes is reported beside them (redis-ns/op). The three take turns
// (bench.Alternate).
func BenchmarkMeCacheHit(b *testing.B) {
	r := testkit.StartRedis(b)
	s := newStack(b, cache.NewRedis(r.Client, r.Prefix))
	tel, err := obs.Setup(context.Background(), obs.Config{ServiceName: "cloister-bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	served := httptest.NewServer(obs.HTTPMiddleware("gateway", s.gw))
	b.Cleanup(served.Close)
	_, token := s.user("ada@example.com")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	get := func(url string) []byte {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("GET %s = %d", url, resp.StatusCode)
		}
		return body
	}
	me := s.srv.URL + "/v1/users/me"
	body := get(me) // fills the cache
	keys, err := r.Client.Keys(context.Background(), r.Prefix+"auth:session:*").Result()
	if err != nil || len(keys) != 1 {
		b.Fatalf("cache entry after the first request: %v, %v", keys, err)
	}
	raw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(raw.Close)

	instrumented := served.URL + "/v1/users/me"
	get(instrumented)
	get(raw.URL)
	// Ours, bare and the floor take turns, so that all three meet the
	// machine in the same state.
	took := bench.Alternate(b, func() { get(instrumented) }, func() { get(me) }, func() { get(raw.URL) })
	ours, bare, floor := took[0], took[1], took[2]
	ctx := context.Background()
	redisStart := time.Now()
	for range b.N {
		if err := r.Client.Get(ctx, keys[0]).Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(ours.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(time.Since(redisStart).Nanoseconds())/float64(b.N), "redis-ns/op")
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(floor)/float64(ours), "x-floor")
	b.ReportMetric(float64(floor)/float64(bare), "x-floor-bare")
}

// BenchmarkJourneyOnACluster measures the journey from sign-up to an
// issued certificate (sign up, an account, an application converted from
// an image, its approvals, a node enrolled, an enclave's certificate),
// four at a time, on a three-node cluster (every stream and bucket on
// all three, two replicas of every service) beside the same on one
// embedded server: journeys/s on each and their ratio, x-single (1.0 =
// the cluster as fast as one server). Then the p99 of a certificate
// issuance as a node asks for one (a nonce, then the issuance) on each.
func BenchmarkJourneyOnACluster(b *testing.B) {
	const workers, issuances = 4, 200
	on := []*journeyer{journeyBench(b, testkit.StartCluster(b, 3)), journeyBench(b, nil)}
	// A first journey on each makes what every later one finds made
	// (streams, consumers, the signing key).
	for _, j := range on {
		if _, err := j.exactly(1, 1); err != nil {
			b.Fatal(err)
		}
	}
	var took [2]time.Duration
	var last [2]*journey
	b.ResetTimer()
	for i, j := range on {
		start := time.Now()
		done, err := j.exactly(b.N, workers)
		if err != nil {
			b.Fatal(err)
		}
		took[i], last[i] = time.Since(start), done[len(done)-1]
	}
	b.StopTimer()
	var p99 [2]time.Duration
	for i, j := range on {
		lat := make([]time.Duration, issuances)
		for n := range lat {
			start := time.Now()
			if err := j.issue(last[i]); err != nil {
				b.Fatal(err)
			}
			lat[n] = time.Since(start)
		}
		slices.Sort(lat)
		p99[i] = lat[len(lat)*99/100]
	}
	b.ReportMetric(float64(b.N)/took[0].Seconds(), "cluster-journeys/s")
	b.ReportMetric(float64(b.N)/took[1].Seconds(), "single-journeys/s")
	b.ReportMetric(took[1].Seconds()/took[0].Seconds(), "x-single")
	b.ReportMetric(float64(p99[0].Microseconds())/1000, "cluster-issue-p99-ms")
	b.ReportMetric(float64(p99[1].Microseconds())/1000, "single-issue-p99-ms")
}

// journeyBench is a journeyer that walks journeys up to their
// certificate on a stack of its own: on cluster, two replicas of every
// service; on a server of its own (cluster nil), one.
func journeyBench(b *testing.B, cluster *testkit.Cluster) *journeyer {
	b.Helper()
	m := cache.NewMemory(0)
	b.Cleanup(func() { _ = m.Close() })
	replicas := 1
	if cluster != nil {
		replicas = 2
	}
	s := newStackOn(b, m, cluster, replicas)
	for range replicas {
		startImageWorker(b, s)
	}
	j := &journeyer{t: b, s: s, node: s.nodeServer(b), registry: startImageRegistry(b), within: time.Minute, untilIssued: true}
	pushRandomImage(b, j.registry+"/in:1")
	return j
}
