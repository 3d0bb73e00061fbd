package gateway

import (
	"time"

	"github.com/cloister-cc/cloister/libs/cache/local"
)

// Principals found in the cache are also kept decoded in process for
// localTTL (libs/cache/local), so that a caller's next requests cost
// neither a Redis round trip nor a JSON decoding. A revocation drops the
// entry at once on the gateway that handles it and, through the
// revocation event, on every other; localTTL bounds how long an entry
// outlives a revocation whose event this gateway missed.
const (
	localTTL = 2 * time.Second
	// maxLocal bounds the entries; past it they start afresh.
	maxLocal = 10000
)

func newLocalPrincipals() *local.Map[principal] { return local.New[principal](localTTL, maxLocal) }
