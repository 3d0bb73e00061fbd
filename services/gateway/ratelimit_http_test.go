package gateway_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/services/gateway"
)

// TestLoginLimits: logins are limited per account email whatever the
// address, and per client, where a trusted proxy's X-Forwarded-For names
// the client, so that clients behind one proxy do not share a bucket.
func TestLoginLimits(t *testing.T) {
	s := newStack(t, memory(t))
	s.user("ada@example.com")
	gw, err := gateway.New(context.Background(), gateway.Config{NATS: s.st.ConnectAs("gateway"), Replicas: s.st.Replicas(), Assertions: s.st.Identities().Signer(t), Cache: memory(t),
		CredentialRate: gateway.CredentialRate{Every: time.Hour, Burst: 2},
		EmailRate:      gateway.CredentialRate{Every: time.Hour, Burst: 3},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	login := func(email, remote, xff string) int {
		body := `{"email":"` + email + `","password":"wrong password!"}`
		r := httptest.NewRequest("POST", "/v1/sessions", bytes.NewBufferString(body))
		r.Header.Set("Content-Type", "application/json")
		r.RemoteAddr = remote
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, r)
		return w.Code
	}
	// Three clients behind the proxy, each in its own bucket: all heard.
	for i, client := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		if code := login("ada@example.com", "10.0.0.1:4000", client); code != http.StatusUnauthorized {
			t.Fatalf("login %d through the proxy = %d, want 401 (heard, wrong password)", i, code)
		}
	}
	// The email has had its three attempts: a fourth client is refused.
	if code := login("ada@example.com", "203.0.113.4:4000", ""); code != http.StatusTooManyRequests {
		t.Fatalf("a fourth login for the same email = %d, want 429", code)
	}
	// Another email is heard; one client past its two attempts is not.
	if code := login("bob@example.com", "203.0.113.5:4000", ""); code != http.StatusUnauthorized {
		t.Fatalf("a login for another email = %d, want 401", code)
	}
	login("carol@example.com", "203.0.113.5:4000", "")
	if code := login("dave@example.com", "203.0.113.5:4000", ""); code != http.StatusTooManyRequests {
		t.Fatalf("a third login from one client = %d, want 429", code)
	}
	// A forged X-Forwarded-For from outside the proxies changes nothing.
	if code := login("erin@example.com", "203.0.113.5:4000", "192.0.2.99"); code != http.StatusTooManyRequests {
		t.Fatalf("a client claiming another address = %d, want 429", code)
	}
}
