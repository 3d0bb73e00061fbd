package busauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cloister-cc/cloister/libs/errs"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
)

// An assertion is the gateway's word, authenticated, that a request is
// made for a caller it authenticated: who (the principal), in which
// account, for which method, until when. Services take the actor of a
// request from it, never from the request body, and refuse one whose
// method or account differs.
//
// It is authenticated with HMAC-SHA256 under a key of the service it is
// addressed to, derived from the gateway's assertion secret: the gateway
// can vouch to every service, each service holds only its own key, so a
// service (the image converter, say) can vouch to no one but itself. A
// MAC costs a microsecond where a signature costs a call's worth.
//
// On the wire (natsrpc.HeaderAssertion): base64url(claims encoded) "."
// base64url(HMAC-SHA256(service key, assertionDomain ‖ claims)).

// AssertionTTL is how long an assertion holds: it is made for one call.
const (
	AssertionTTL = time.Minute
	// assertionSkew is how far ahead of a service's clock the gateway's
	// may run.
	assertionSkew   = 30 * time.Second
	assertionDomain = "cloister-assertion-v1\x00"
	keyDomain       = "cloister-assertion-key-v1\x00"
	// AssertionSecretSize is the size of the gateway's secret and of each
	// service's key.
	AssertionSecretSize = 32
)

// AssertionSecretFile holds the gateway's secret in a credentials
// directory; AssertionKeyFile(service) the key of one service.
const AssertionSecretFile = "assertion.key"

// AssertionKeyFile is the file of service's assertion key.
func AssertionKeyFile(service string) string { return "assertion-" + service + ".key" }

// claims are what an assertion says. Encoded (the MAC's body): the
// method and the account, each after its length (uint16, big-endian), the
// expiry in Unix milliseconds (int64, big-endian), then the principal
// (accountv1.Principal, protobuf; empty for no one).
type claims struct {
	Method    string
	Account   string
	Principal []byte
	Expires   int64
}

func (c claims) encode() ([]byte, error) {
	if len(c.Method) > math.MaxUint16 || len(c.Account) > math.MaxUint16 {
		return nil, errors.New("an assertion's method or account is too long")
	}
	b := make([]byte, 0, 2+len(c.Method)+2+len(c.Account)+8+len(c.Principal))
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Method)))
	b = append(b, c.Method...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Account)))
	b = append(b, c.Account...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Expires))
	return append(b, c.Principal...), nil
}

func decodeClaims(b []byte) (claims, bool) {
	var c claims
	str := func() (string, bool) {
		if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
			return "", false
		}
		n := int(binary.BigEndian.Uint16(b))
		v := string(b[2 : 2+n])
		b = b[2+n:]
		return v, true
	}
	var ok1, ok2 bool
	c.Method, ok1 = str()
	c.Account, ok2 = str()
	if !ok1 || !ok2 || len(b) < 8 || c.Method == "" {
		return claims{}, false
	}
	c.Expires = int64(binary.BigEndian.Uint64(b))
	if p := b[8:]; len(p) > 0 {
		c.Principal = p
	}
	return c, true
}

// AssertionSecret is the gateway's: every service's key derives from it.
type AssertionSecret []byte

// NewAssertionSecret makes a fresh secret.
func NewAssertionSecret() (AssertionSecret, error) {
	b := make([]byte, AssertionSecretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// ServiceKey is the key of the assertions addressed to service.
func (s AssertionSecret) ServiceKey(service string) []byte {
	m := hmac.New(sha256.New, s)
	m.Write([]byte(keyDomain + service))
	return m.Sum(nil)
}

// writeKey writes a secret or key, base64, to a file that must not exist.
func writeKey(path string, key []byte) error {
	return WriteNew(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
}

// readKey reads a secret or key written by writeKey.
func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading an assertion key: %w", err)
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != AssertionSecretSize {
		return nil, fmt.Errorf("%s does not hold %d bytes in base64", path, AssertionSecretSize)
	}
	return k, nil
}

// LoadAssertionSecret reads the gateway's secret from dir.
func LoadAssertionSecret(dir string) (AssertionSecret, error) {
	return readKey(filepath.Join(dir, AssertionSecretFile))
}

// LoadServiceKey reads service's assertion key from dir.
func LoadServiceKey(dir, service string) ([]byte, error) {
	return readKey(filepath.Join(dir, AssertionKeyFile(service)))
}

// Signer makes the gateway's assertions.
type Signer struct {
	secret AssertionSecret
	now    func() time.Time
	keys   sync.Map // service → its key

	mu   sync.Mutex
	made map[string]made // reused while they have half their life left
}

type made struct {
	token   string
	expires time.Time
}

// NewSigner vouches with secret; now is the clock (nil: time.Now).
func NewSigner(secret AssertionSecret, now func() time.Time) (*Signer, error) {
	if len(secret) != AssertionSecretSize {
		return nil, fmt.Errorf("the assertion secret must be %d bytes", AssertionSecretSize)
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{secret: secret, now: now, made: map[string]made{}}, nil
}

// For is an asserter of calls made for principal (nil: no one signed in)
// acting on account ("" for none).
func (s *Signer) For(principal *accountv1.Principal, account string) natsrpc.Asserter {
	var p []byte
	if principal != nil {
		var err error
		if p, err = proto.Marshal(principal); err != nil {
			return failing{err}
		}
	}
	return caller{s: s, principal: p, account: account}
}

type caller struct {
	s         *Signer
	principal []byte
	account   string
}

func (c caller) Assert(subject string, _ any) (string, error) {
	return c.s.assert(subject, c.account, c.principal)
}

type failing struct{ err error }

func (f failing) Assert(string, any) (string, error) { return "", f.err }

func (s *Signer) key(service string) []byte {
	if k, ok := s.keys.Load(service); ok {
		return k.([]byte)
	}
	k := s.secret.ServiceKey(service)
	s.keys.Store(service, k)
	return k
}

// assert vouches for principal (marshalled) acting on account, for the
// method subject, to the service that serves it; it reuses the assertion
// it made last for the same while that has half its life left.
func (s *Signer) assert(subject, account string, principal []byte) (string, error) {
	now := s.now()
	key := subject + "\x00" + account + "\x00" + string(principal)
	s.mu.Lock()
	m, ok := s.made[key]
	s.mu.Unlock()
	if ok && m.expires.Sub(now) > AssertionTTL/2 {
		return m.token, nil
	}
	service, ok := serviceOf(subject)
	if !ok {
		return "", fmt.Errorf("asserting a caller of %s: not a method subject", subject)
	}
	exp := now.Add(AssertionTTL)
	body, err := claims{Method: subject, Account: account, Principal: principal, Expires: exp.UnixMilli()}.encode()
	if err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(mac(s.key(service), body))
	s.mu.Lock()
	putBounded(s.made, key, made{token, exp}, func(m made) bool { return !now.Before(m.expires) })
	s.mu.Unlock()
	return token, nil
}

// cacheSize bounds the signer's and the verifiers' caches.
const cacheSize = 10000

// putBounded adds k to m, keeping m within cacheSize. When m is full it
// drops what stale says is of no more use and then, while m is over three
// quarters full, arbitrary entries (a dropped one is only made again when
// next needed): the sweep runs once per cacheSize/4 additions at most, not
// on every addition to a full cache.
func putBounded[V any](m map[string]V, k string, v V, stale func(V) bool) {
	if len(m) >= cacheSize {
		for key, old := range m {
			if stale(old) {
				delete(m, key)
			}
		}
		for key := range m {
			if len(m) <= cacheSize*3/4 {
				break
			}
			delete(m, key)
		}
	}
	m[k] = v
}

func mac(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(assertionDomain))
	m.Write(body)
	return m.Sum(nil)
}

// serviceOf is the service of a method subject, cloister.<service>.v1.<Method>.
func serviceOf(subject string) (string, bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != "cloister" || parts[2] != "v1" || parts[1] == "" || parts[3] == "" {
		return "", false
	}
	return parts[1], true
}

// Verifier checks the gateway's assertions addressed to one service: it
// is the service's natsrpc.Verifier.
type Verifier struct {
	service string
	key     []byte
	now     func() time.Time

	mu   sync.Mutex
	seen map[string]verified // tokens whose MAC held, until they expire
}

type verified struct {
	c         claims
	principal *accountv1.Principal
}

// NewVerifier checks the assertions addressed to service with its key;
// now is the clock (nil: time.Now).
func NewVerifier(service string, key []byte, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{service: service, key: key, now: now, seen: map[string]verified{}}
}

var _ natsrpc.Verifier = (*Verifier)(nil)

// ErrAssertionRefused is the refusal of a request whose assertion of the
// caller is missing or does not hold; errors.Is recognises it.
var ErrAssertionRefused = errs.Define(errs.Unauthenticated, "assertion_refused", "the gateway's assertion of the caller is refused")

func refused(format string, a ...any) error { return ErrAssertionRefused.Withf(format, a...) }

// Verify refuses a request whose assertion is missing (when it names an
// actor: a peer service's call, which carries none, names no one), forged,
// expired, or made for another method or account; and sets the actor of
// the request to the assertion's principal.
func (v *Verifier) Verify(subject string, h nats.Header, request any) error {
	r, actor := natsrpc.ActorField(request)
	token := h.Get(natsrpc.HeaderAssertion)
	if token == "" {
		// A peer's call names no one; one that names a caller must
		// carry the gateway's word for it.
		if actor != nil && r.Has(actor) {
			return refused("%s names its caller but carries no assertion of it from the gateway", subject)
		}
		return nil
	}
	c, principal, err := v.check(token)
	if err != nil {
		return err
	}
	if c.Method != subject {
		return refused("the assertion of the caller was made for %s, not %s", c.Method, subject)
	}
	if r == nil {
		return nil
	}
	if f := r.Descriptor().Fields().ByName("account_id"); f != nil && f.Kind() == protoreflect.StringKind {
		if acct := r.Get(f).String(); acct != c.Account {
			return refused("the assertion of the caller was made for account %q, not %q", c.Account, acct)
		}
	}
	if actor != nil {
		if principal == nil {
			r.Clear(actor)
		} else {
			// A copy: the handler owns its request.
			r.Set(actor, protoreflect.ValueOfMessage(proto.Clone(principal).ProtoReflect()))
		}
	}
	return nil
}

// check returns the claims of a token whose MAC and expiry hold.
func (v *Verifier) check(token string) (claims, *accountv1.Principal, error) {
	v.mu.Lock()
	got, ok := v.seen[token]
	v.mu.Unlock()
	if !ok {
		var err error
		if got, err = v.parse(token); err != nil {
			return claims{}, nil, err
		}
	}
	now := v.now()
	exp := time.UnixMilli(got.c.Expires)
	if !now.Before(exp) {
		return claims{}, nil, refused("the assertion of the caller expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if exp.Sub(now) > AssertionTTL+assertionSkew {
		return claims{}, nil, refused("the assertion of the caller expires too far ahead (%s)", exp.UTC().Format(time.RFC3339))
	}
	if !ok {
		v.mu.Lock()
		putBounded(v.seen, token, got, func(old verified) bool { return !now.Before(time.UnixMilli(old.c.Expires)) })
		v.mu.Unlock()
	}
	return got.c, got.principal, nil
}

// parse checks a token's MAC and reads its claims.
func (v *Verifier) parse(token string) (verified, error) {
	b64body, b64mac, ok := strings.Cut(token, ".")
	body, err1 := base64.RawURLEncoding.DecodeString(b64body)
	sum, err2 := base64.RawURLEncoding.DecodeString(b64mac)
	if !ok || err1 != nil || err2 != nil {
		return verified{}, refused("the assertion of the caller is malformed")
	}
	if !hmac.Equal(sum, mac(v.key, body)) {
		return verified{}, refused("the assertion of the caller is not the gateway's word to %s", v.service)
	}
	c, ok := decodeClaims(body)
	if !ok {
		return verified{}, refused("the assertion of the caller is malformed")
	}
	got := verified{c: c}
	if c.Principal != nil {
		got.principal = &accountv1.Principal{}
		if err := proto.Unmarshal(c.Principal, got.principal); err != nil {
			return verified{}, refused("the assertion's principal is malformed")
		}
	}
	return got, nil
}
