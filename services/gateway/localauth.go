package gateway

import (
	"sync"
	"time"
)

// Principals found in the cache are also kept decoded in process for
// localTTL, so that a caller's next requests cost neither a Redis round
// trip nor a JSON decoding. A revocation drops the entry at once on the
// gateway that handles it and, through the revocation event, on every
// other; localTTL bounds how long an entry outlives a revocation whose
// event this gateway missed.
const (
	localTTL = 2 * time.Second
	// maxLocal bounds the entries; past it they start afresh.
	maxLocal = 10000
)

// localPrincipals are the decoded principals of one gateway, by cache key.
type localPrincipals struct {
	mu sync.Mutex
	m  map[string]localPrincipal
	// drops counts drops: a principal read before a drop is not put
	// after it, so a lookup under way cannot bring a revoked one back.
	drops uint64
}

type localPrincipal struct {
	p     principal
	until time.Time
}

// get returns the principal under key while it is fresh at now.
func (l *localPrincipals) get(key string, now time.Time) (principal, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[key]
	if !ok || !now.Before(e.until) {
		return principal{}, false
	}
	return e.p, true
}

// epoch is what to give put for a principal about to be read.
func (l *localPrincipals) epoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.drops
}

// put keeps p under key until now+localTTL, unless a drop came since
// epoch (taken before p was read).
func (l *localPrincipals) put(key string, p principal, now time.Time, epoch uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.drops != epoch {
		return
	}
	if l.m == nil || len(l.m) >= maxLocal {
		l.m = map[string]localPrincipal{}
	}
	l.m[key] = localPrincipal{p: p, until: now.Add(localTTL)}
}

// drop forgets key's principal.
func (l *localPrincipals) drop(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drops++
	delete(l.m, key)
}
