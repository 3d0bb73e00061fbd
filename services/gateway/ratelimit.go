package gateway

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cloister-cc/cloister/libs/errs"
)

// CredentialRate bounds sign-ups and logins per client address: each
// address may make Burst attempts at once and then one per Every. It
// slows password guessing; argon2id makes each guess costly too.
type CredentialRate struct {
	Every time.Duration
	Burst int
}

// DefaultCredentialRate allows 10 attempts at once, then one every 6 s.
var DefaultCredentialRate = CredentialRate{Every: 6 * time.Second, Burst: 10}

// limiter keeps a token bucket per client address.
type limiter struct {
	rate CredentialRate

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newLimiter(r CredentialRate) *limiter {
	return &limiter{rate: r, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token for the request's client address, or says when to retry.
func (l *limiter) allow(r *http.Request) (bool, time.Duration) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	l.mu.Lock()
	b, ok := l.buckets[host]
	if !ok {
		if len(l.buckets) > 100000 { // bounded memory under a flood of addresses
			clear(l.buckets)
		}
		b = rate.NewLimiter(rate.Every(l.rate.Every), l.rate.Burst)
		l.buckets[host] = b
	}
	l.mu.Unlock()
	res := b.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return false, d
	}
	return true, 0
}

// limited wraps a credential route with the per-address limit.
func (g *Gateway) limited(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, retry := g.credentials.allow(r); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
			writeProblem(w, errs.Newf(errs.RateLimited, "too many sign-up or login attempts from your address; retry in %d s", int(retry.Seconds())+1))
			return
		}
		h.ServeHTTP(w, r)
	})
}
