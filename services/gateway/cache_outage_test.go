package gateway_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/gateway"
)

// TestRevocationSurvivesACacheOutage: a session logged out while the
// gateway cannot reach Redis (a TCP proxy between them, cut) stays
// refused once Redis is back (the proxy restored), though its cached
// entry, written before the outage, is still there unmarked.
func TestRevocationSurvivesACacheOutage(t *testing.T) {
	srv := testkit.StartRedisServer(t)
	proxy := testkit.StartTCPProxy(t, strings.TrimPrefix(srv.URL, "redis://"))
	client := redis.NewClient(&redis.Options{Addr: proxy.Addr, DialTimeout: 300 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	const prefix = "cloister:"
	c := cache.Tolerant(cache.NewRedis(client, prefix), nil)
	direct := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(srv.URL, "redis://")})
	t.Cleanup(func() { _ = direct.Close() })

	s := newStack(t, c)
	var logs testkit.Logs
	gw, err := gateway.New(context.Background(), gateway.Config{NATS: s.st.ConnectAs("gateway"), Replicas: s.st.Replicas(), Assertions: s.st.Identities().Signer(t), Cache: c,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Clock: func() time.Time { return vectorTime }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	api := httptest.NewServer(gw)
	t.Cleanup(api.Close)

	_, token := s.user("ada@example.com")
	if r := do(t, api, "GET", "/v1/users/me", token, nil); r.status != 200 {
		t.Fatalf("GET /v1/users/me = %d %s", r.status, r.body)
	}
	key := prefix + gateway.SessionCacheKey(authz.HashToken(token))
	cached, err := direct.Get(context.Background(), key).Bytes()
	if err != nil || !bytes.Contains(cached, []byte("ada@example.com")) {
		t.Fatalf("the session is not cached in Redis: %q, %v", cached, err)
	}

	proxy.Cut()
	if r := do(t, api, "DELETE", "/v1/sessions/current", token, nil); r.status != 204 {
		t.Fatalf("logout during the outage = %d %s", r.status, r.body)
	}
	// Both marks are lost: the logout's own, and the one the revocation
	// event brings.
	const lost = "a revocation could not be marked in the cache"
	testkit.Eventually(t, 10*time.Second, func() bool { return strings.Count(logs.String(), lost) >= 2 }, "the gateway did not try to mark the revocation twice")
	proxy.Restore()

	if still, err := direct.Get(context.Background(), key).Bytes(); err != nil || !bytes.Equal(still, cached) {
		t.Fatalf("the stale entry is gone (%q, %v): the outage was not reproduced", still, err)
	}
	// Longer than the cache's pause after a failure (one second): its
	// reads reach Redis again, and the stale entry is refused each time.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if r := do(t, api, "GET", "/v1/users/me", token, nil); r.status != 401 {
			t.Fatalf("the logged-out session after the outage = %d %s, want 401", r.status, r.body)
		}
	}
	// Redis serves again: a new session is cached.
	_, fresh := s.user("bob@example.com")
	if r := do(t, api, "GET", "/v1/users/me", fresh, nil); r.status != 200 {
		t.Fatalf("a new session = %d %s", r.status, r.body)
	}
	if n, err := direct.Exists(context.Background(), prefix+gateway.SessionCacheKey(authz.HashToken(fresh))).Result(); err != nil || n != 1 {
		t.Fatalf("the new session is not cached after the outage: %d, %v", n, err)
	}
}
