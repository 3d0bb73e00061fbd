package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
)

const (
	maxTokenLen = 256
	// authTTL bounds how long a principal stays cached. Revocations mark
	// entries at once; authTTL only matters when such a mark is lost (Redis
	// unreachable at that moment), so it is kept short.
	authTTL = time.Minute
)

var errNoToken = errs.New(errs.Unauthenticated, "send a session token or API key as 'Authorization: Bearer <token>'")

// principal is what the gateway caches for a token.
type principal struct {
	UserID       string    `json:"user_id"`
	Email        string    `json:"email"`
	Credential   string    `json:"credential"`
	CredentialID string    `json:"credential_id"`
	AccountID    string    `json:"account_id,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
	// TokenHash lets an API key's entry, keyed by key id, check the token.
	TokenHash string `json:"token_hash"`
	// CachedAt is when the entry was written: one older than the gateway's
	// last lost revocation marker is not trusted (Gateway.distrustBefore).
	CachedAt time.Time `json:"cached_at"`
}

func (p principal) proto() *accountv1.Principal {
	return &accountv1.Principal{UserId: p.UserID, Email: p.Email, Credential: p.Credential,
		CredentialId: p.CredentialID, AccountId: p.AccountID, ExpiresAt: timestamppb.New(p.ExpiresAt)}
}

// SessionCacheKey and APIKeyCacheKey name a credential's cache entry; the
// revocation events carry what is needed to build them.
func SessionCacheKey(tokenHash string) string { return "auth:session:" + tokenHash }

// APIKeyCacheKey is the cache entry of an API key by its id.
func APIKeyCacheKey(keyID string) string { return "auth:apikey:" + keyID }

// bearerToken extracts the token of an Authorization header.
func bearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errNoToken
	}
	token = strings.TrimSpace(token)
	if token == "" || len(token) > maxTokenLen {
		return "", errNoToken
	}
	return token, nil
}

// cacheKey returns where a token's principal is cached.
func cacheKey(token string) (string, bool) {
	switch {
	case strings.HasPrefix(token, authz.SessionPrefix):
		return SessionCacheKey(authz.HashToken(token)), true
	case strings.HasPrefix(token, authz.APIKeyPrefix):
		id, _, ok := strings.Cut(strings.TrimPrefix(token, authz.APIKeyPrefix), "_")
		if !ok || id == "" {
			return "", false
		}
		return APIKeyCacheKey(id), true
	}
	return "", false
}

// authenticate returns the caller's principal, from the cache when it can
// and from the account service otherwise.
func (g *Gateway) authenticate(ctx context.Context, r *http.Request) (principal, error) {
	token, err := bearerToken(r)
	if err != nil {
		return principal{}, err
	}
	key, ok := cacheKey(token)
	if !ok {
		return principal{}, errRevoked
	}
	hash := authz.HashToken(token)
	now := time.Now()
	if p, ok := g.local.Get(key, now); ok && p.TokenHash == hash && now.Before(p.ExpiresAt) && g.trusted(p.CachedAt) {
		return p, nil
	}
	epoch := g.local.Epoch()
	if b, err := g.cache.Get(ctx, key); err == nil {
		if bytes.Equal(b, revokedMarker) {
			g.local.Drop(key)
			return principal{}, errRevoked
		}
		var p principal
		if json.Unmarshal(b, &p) == nil && p.TokenHash == hash && now.Before(p.ExpiresAt) && g.trusted(p.CachedAt) {
			g.local.Put(key, p, now, epoch)
			return p, nil
		}
	}
	resp, err := g.accounts.Authenticate(ctx, &accountv1.AuthenticateRequest{Token: token})
	if err != nil {
		return principal{}, err
	}
	pp := resp.GetPrincipal()
	p := principal{UserID: pp.GetUserId(), Email: pp.GetEmail(), Credential: pp.GetCredential(),
		CredentialID: pp.GetCredentialId(), AccountID: pp.GetAccountId(), ExpiresAt: pp.GetExpiresAt().AsTime(), TokenHash: hash,
		CachedAt: time.Now()}
	// Add, not Set: if the credential was revoked while we asked, the
	// revocation's marker is already there and must win.
	if ttl := min(authTTL, time.Until(p.ExpiresAt)); ttl > 0 {
		if b, err := json.Marshal(p); err == nil {
			_, _ = g.cache.Add(ctx, key, b, ttl)
		}
	}
	return p, nil
}

// revokedMarker replaces a revoked credential's cache entry for authTTL,
// longer than any lookup that started before the revocation can take, so
// such a lookup cannot put the credential back.
var revokedMarker = []byte("revoked")

// errRevoked is the account service's refusal of a credential it does not
// know, with the same reason.
var errRevoked = errs.Define(errs.Unauthenticated, "unauthenticated", "the token is missing, expired or revoked")

// forget marks a credential revoked in the cache. The gateway that handles
// a logout or revocation calls it at once; every other gateway does it
// when the revocation event arrives. When the mark cannot be written (the
// cache is down), the revoked credential's entry may outlive the outage:
// so from then on this gateway trusts no entry written before now, and
// asks the account service until those have expired (authTTL).
func (g *Gateway) forget(ctx context.Context, key string) error {
	g.local.Drop(key)
	if err := g.cache.Set(ctx, key, revokedMarker, authTTL); err != nil {
		g.distrustBefore.Store(time.Now().UnixNano())
		g.logger.WarnContext(ctx, "a revocation could not be marked in the cache; cached credentials written before now are no longer trusted", "error", err)
		return err
	}
	return nil
}

// trusted tells whether a cache entry written at cachedAt may be used:
// written after the gateway started and after its last lost revocation
// mark.
func (g *Gateway) trusted(cachedAt time.Time) bool {
	return cachedAt.UnixNano() > g.distrustBefore.Load()
}
