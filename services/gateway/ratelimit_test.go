package gateway

import (
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// TestClientKey: a client is its address, an IPv6 client its /64, and
// behind a trusted proxy the address the proxy saw; X-Forwarded-For from
// anyone else is ignored.
func TestClientKey(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, c := range []struct {
		remote, xff string
		trusted     []netip.Prefix
		want        string
	}{
		{"192.0.2.7:1234", "", nil, "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:1234", "", nil, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:1234", "", nil, "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:1234", "", nil, "192.0.2.7"},
		{"192.0.2.7:1234", "198.51.100.1", nil, "192.0.2.7"},                    // not a trusted proxy: the header is a lie
		{"10.1.2.3:1234", "198.51.100.1", proxies, "198.51.100.1"},              // the proxy saw the client
		{"10.1.2.3:1234", "203.0.113.9, 198.51.100.1", proxies, "198.51.100.1"}, // the rightmost hop the proxy added
		{"10.1.2.3:1234", "198.51.100.1, 10.9.9.9", proxies, "198.51.100.1"},    // through two trusted proxies
		{"10.1.2.3:1234", "junk", proxies, "10.1.2.3"},
		{"10.1.2.3:1234", "", proxies, "10.1.2.3"},
	} {
		r, _ := http.NewRequest("POST", "/v1/sessions", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := clientKey(r, c.trusted); got != c.want {
			t.Errorf("clientKey(%s, XFF %q) = %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

// TestLimiterNeverResets: a flood of new clients frees no exhausted
// bucket; idle buckets make room, and when none is idle the newcomer
// waits.
func TestLimiterNeverResets(t *testing.T) {
	l := newLimiter(CredentialRate{Every: time.Hour, Burst: 1})
	l.max = 3
	if ok, _ := l.allow("attacker"); !ok {
		t.Fatal("the first attempt was refused")
	}
	if ok, _ := l.allow("attacker"); ok {
		t.Fatal("the second attempt within the hour was allowed")
	}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		l.allow(k)
	}
	if ok, _ := l.allow("attacker"); ok {
		t.Fatal("new clients reset the attacker's exhausted bucket")
	}
	if ok, _ := l.allow("newcomer"); ok {
		t.Fatal("a newcomer got a bucket while every bucket is in use")
	}

	idle := newLimiter(CredentialRate{Every: time.Millisecond, Burst: 1})
	idle.max = 2
	idle.allow("x")
	idle.allow("y")
	time.Sleep(5 * time.Millisecond) // both back to full
	if ok, _ := idle.allow("z"); !ok {
		t.Fatal("idle buckets did not make room for a newcomer")
	}
}
