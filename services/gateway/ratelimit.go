package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
)

// CredentialRate bounds sign-ups and logins: each client (and each
// account email) may make Burst attempts at once and then one per Every.
// It slows password guessing; argon2id makes each guess costly too.
type CredentialRate struct {
	Every time.Duration
	Burst int
}

// DefaultCredentialRate allows 10 attempts at once per client address,
// then one every 6 s.
var DefaultCredentialRate = CredentialRate{Every: 6 * time.Second, Burst: 10}

// DefaultEmailRate allows 20 attempts at once on one account's email,
// whatever the addresses they come from, then one every 30 s: enough for
// its owner, too few for guessing its password from many addresses.
var DefaultEmailRate = CredentialRate{Every: 30 * time.Second, Burst: 20}

// maxBuckets bounds the buckets a limiter keeps. Past it, buckets back to
// full (idle clients) are dropped; the others are never reset, so that
// flooding the limiter with addresses frees nobody's bucket.
const maxBuckets = 100000

// limiter keeps a token bucket per key.
type limiter struct {
	rate CredentialRate
	max  int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newLimiter(r CredentialRate) *limiter {
	return &limiter{rate: r, max: maxBuckets, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token for key, or says when to retry.
func (l *limiter) allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.max {
			now := time.Now()
			for k, idle := range l.buckets {
				if idle.TokensAt(now) >= float64(l.rate.Burst) {
					delete(l.buckets, k)
				}
			}
		}
		if len(l.buckets) >= l.max {
			l.mu.Unlock()
			return false, l.rate.Every // every bucket is in use: the newcomer waits
		}
		b = rate.NewLimiter(rate.Every(l.rate.Every), l.rate.Burst)
		l.buckets[key] = b
	}
	l.mu.Unlock()
	res := b.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return false, d
	}
	return true, 0
}

// clientKey is who a request comes from, for rate limits: its address,
// or behind a trusted proxy the address the proxy saw (the rightmost of
// X-Forwarded-For that is not itself a trusted proxy). An IPv6 client is
// its /64, which one host commonly holds whole.
func clientKey(r *http.Request, trusted []netip.Prefix) string {
	addr, ok := parseHost(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if inAny(trusted, addr) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // a malformed hop: keep the last address known
			}
			addr = hop.Unmap()
			if !inAny(trusted, addr) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func parseHost(hostport string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, err := netip.ParseAddr(host)
	return a.Unmap(), err == nil
}

func inAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// limited wraps a credential route with the per-client limit.
func (g *Gateway) limited(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, retry := g.credentials.allow(clientKey(r, g.trustedProxies)); !ok {
			tooMany(w, retry, "too many sign-up or login attempts from your address")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// allowEmail takes a token of the account email's limit, whatever the
// client: an error says when to retry.
func (g *Gateway) allowEmail(w http.ResponseWriter, email string) error {
	key := authz.HashToken(strings.ToLower(strings.TrimSpace(email)))
	if ok, retry := g.emails.allow(key); !ok {
		return tooManyError(w, retry, "too many sign-up or login attempts for this email")
	}
	return nil
}

func tooMany(w http.ResponseWriter, retry time.Duration, what string) {
	writeProblem(w, tooManyError(w, retry, what))
}

func tooManyError(w http.ResponseWriter, retry time.Duration, what string) error {
	secs := int(retry.Seconds()) + 1
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return errs.Newf(errs.RateLimited, "%s; retry in %d s", what, secs)
}
