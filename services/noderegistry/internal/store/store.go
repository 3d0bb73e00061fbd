// Package store implements the node registry's ports: join tokens and
// nodes on JetStream KV buckets (the lookup by hash through the cache),
// the attestation service and the CA over NATS, and the wire form of its
// events.
package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/events"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/app"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/domain"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/wire"
)

// Producer names this service in events.
const Producer = noderegistryv1.NodeRegistryServiceName

// Buckets.
const (
	// BucketTokens keeps join tokens, keyed <account>.<token>.
	BucketTokens = "noderegistry_tokens"
	// BucketTokenHashes finds a token by the SHA-256 (hex) of its secret,
	// keyed <hash>: its account and id, expiry and revocation.
	BucketTokenHashes = "noderegistry_token_hashes"
	// BucketNodes keeps nodes, keyed <account>.<node>.
	BucketNodes = "noderegistry_nodes"
	// BucketNonces keeps the nonces given until used or expired, keyed by
	// the nonce in hex.
	BucketNonces = "noderegistry_nonces"
)

// Cache entries of the lookup by hash: "noderegistry:token:<hash>".
const (
	cachePrefix = "noderegistry:token:"
	// CacheTTL bounds how long a cached lookup is kept; changes write
	// through at once, so it only bounds what a lost cache write leaves.
	CacheTTL = time.Minute
)

const logKeyToken = "token_id"

// absent is cached for hashes of no token.
var absent = []byte("-")

// Stores are the KV adapters of every port.
type Stores struct {
	Tokens *Tokens
	Nodes  *Nodes
	Nonces *Nonces
}

// Open opens every bucket; c caches the lookups of tokens by hash.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, c cache.Cache, logger *slog.Logger, opts ...kv.Option) (*Stores, error) {
	if c == nil {
		return nil, errors.New("noderegistry: a cache is required")
	}
	tokens, err := kv.Open[domain.JoinToken](ctx, js, kv.Config{Bucket: BucketTokens, Replicas: replicas}, opts...)
	if err != nil {
		return nil, err
	}
	hashes, err := kv.Open[domain.TokenRef](ctx, js, kv.Config{Bucket: BucketTokenHashes, Replicas: replicas}, opts...)
	if err != nil {
		return nil, err
	}
	nodes, err := kv.Open[domain.Node](ctx, js, kv.Config{Bucket: BucketNodes, Replicas: replicas}, opts...)
	if err != nil {
		return nil, err
	}
	nonces, err := kv.Open[domain.NodeNonce](ctx, js, kv.Config{Bucket: BucketNonces, Replicas: replicas, TTL: app.NonceLifetime + time.Minute}, opts...)
	if err != nil {
		return nil, err
	}
	return &Stores{
		Nonces: &Nonces{kv: nonces},
		Tokens: &Tokens{kv: tokens, hashes: hashes, cache: c, logger: logger,
			r: records(tokens, func(t *domain.JoinToken) string { return t.AccountID + "." + t.ID },
				func(t *domain.JoinToken) *uint64 { return &t.Version }, domain.ErrTokenNotFound)},
		Nodes: &Nodes{kv: nodes, r: records(nodes, func(n *domain.Node) string { return n.AccountID + "." + n.ID },
			func(n *domain.Node) *uint64 { return &n.Version }, domain.ErrNodeNotFound)},
	}, nil
}

// Tokens keeps join tokens and the lookup by hash, written through to the
// cache the way libs/allowlist does: a change overwrites the cache entry,
// a lookup fills it only where it is empty (Add), so a lookup that read
// the bucket before a change cannot put the old answer back after it.
type Tokens struct {
	kv     *kv.Store[domain.JoinToken]
	r      kv.Records[domain.JoinToken, domain.Event]
	hashes *kv.Store[domain.TokenRef]
	cache  cache.Cache
	logger *slog.Logger
}

var _ app.Tokens = (*Tokens)(nil)

// Create implements app.Tokens. The hash goes first: a token whose record
// failed to be written is merely unknown (its secret was never shown).
func (s *Tokens) Create(ctx context.Context, t domain.JoinToken, ev domain.TokenCreated) error {
	msgs, err := messages(ctx, ev)
	if err != nil {
		return err
	}
	if _, err := s.hashes.Create(ctx, t.Hash, t.Ref()); err != nil {
		return fmt.Errorf("indexing join token: %w", err)
	}
	s.setCache(ctx, t.Hash, t.Ref())
	if _, err := s.kv.Create(ctx, t.AccountID+"."+t.ID, t, msgs...); err != nil {
		s.dropHash(ctx, t.Hash)
		if errors.Is(err, kv.ErrExists) {
			return domain.ErrTokenExists
		}
		return err
	}
	return nil
}

// Rehash implements app.Tokens. The new hash's lookup goes first, the
// token then (if unchanged), and the old hash's lookup last: a failure
// leaves the token as it was, with its old secret.
func (s *Tokens) Rehash(ctx context.Context, t domain.JoinToken, hash string) (domain.JoinToken, error) {
	if _, err := s.hashes.Create(ctx, hash, t.Ref()); err != nil {
		return domain.JoinToken{}, fmt.Errorf("indexing join token: %w", err)
	}
	s.setCache(ctx, hash, t.Ref())
	old := t.Hash
	t.Hash = hash
	updated, err := s.r.Update(ctx, t)
	if err != nil {
		s.dropHash(ctx, hash)
		return domain.JoinToken{}, err
	}
	s.dropHash(ctx, old)
	return updated, nil
}

// Get implements app.Tokens.
func (s *Tokens) Get(ctx context.Context, accountID, tokenID string) (domain.JoinToken, error) {
	return s.r.Get(ctx, accountID+"."+tokenID)
}

// List implements app.Tokens.
func (s *Tokens) List(ctx context.Context, accountID string) ([]domain.JoinToken, error) {
	return s.r.List(ctx, accountID+".*")
}

// Update implements app.Tokens. A revocation commits with its event and
// audit record, then writes through to the lookup by hash and the cache.
func (s *Tokens) Update(ctx context.Context, t domain.JoinToken, ev *domain.TokenRevoked) (domain.JoinToken, error) {
	var evs []domain.Event
	if ev != nil {
		evs = append(evs, *ev)
	}
	t, err := s.r.Update(ctx, t, evs...)
	if err != nil {
		return domain.JoinToken{}, err
	}
	if ev != nil {
		// The revocation has committed on the token, which enrolment
		// reads before it takes a use; the lookup follows.
		s.putHash(ctx, t.Hash, t.Ref())
	}
	return t, nil
}

// putHash writes ref under hash, in the bucket and through to the cache.
// A failure is logged, not returned: the token itself holds the change.
func (s *Tokens) putHash(ctx context.Context, hash string, ref domain.TokenRef) {
	ctx = context.WithoutCancel(ctx)
	s.setCache(ctx, hash, ref)
	for range 10 {
		e, err := s.hashes.Get(ctx, hash)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			_, err = s.hashes.Create(ctx, hash, ref)
		case err == nil:
			_, err = s.hashes.Update(ctx, hash, ref, e.Version)
		}
		if errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrExists) {
			continue
		}
		if err != nil {
			s.logger.WarnContext(ctx, "updating the lookup of a join token; enrolment still reads the token", logKeyToken, ref.TokenID, obs.KeyError, err)
		}
		return
	}
}

// dropHash removes the lookup of a hash, in the bucket and the cache.
func (s *Tokens) dropHash(ctx context.Context, hash string) {
	ctx = context.WithoutCancel(ctx)
	for range 10 {
		e, err := s.hashes.Get(ctx, hash)
		if err == nil {
			err = s.hashes.Delete(ctx, hash, e.Version)
		}
		if errors.Is(err, kv.ErrConflict) {
			continue
		}
		if err != nil && !errors.Is(err, kv.ErrNotFound) {
			s.logger.WarnContext(ctx, "removing the lookup of a join token", obs.KeyError, err)
		}
		break
	}
	s.setCacheBytes(ctx, hash, absent)
}

// Lookup implements app.Tokens: from the cache when it holds the answer,
// else from the bucket, filling the cache where it is empty.
func (s *Tokens) Lookup(ctx context.Context, hash string) (domain.TokenRef, bool, error) {
	if b, err := s.cache.Get(ctx, cachePrefix+hash); err == nil {
		if bytes.Equal(b, absent) {
			return domain.TokenRef{}, false, nil
		}
		var ref domain.TokenRef
		if json.Unmarshal(b, &ref) == nil {
			return ref, true, nil
		}
	}
	e, err := s.hashes.Get(ctx, hash)
	if errors.Is(err, kv.ErrNotFound) {
		_, _ = s.cache.Add(ctx, cachePrefix+hash, absent, CacheTTL)
		return domain.TokenRef{}, false, nil
	}
	if err != nil {
		return domain.TokenRef{}, false, err
	}
	if b, err := json.Marshal(e.Value); err == nil {
		_, _ = s.cache.Add(ctx, cachePrefix+hash, b, CacheTTL)
	}
	return e.Value, true, nil
}

// Revoked writes a revocation another process made through to this
// process's cache (an in-process one is not shared): what the watcher of
// JoinTokenRevoked calls.
func (s *Tokens) Revoked(ctx context.Context, hash string, ref domain.TokenRef) {
	ref.Revoked = true
	s.setCache(ctx, hash, ref)
}

func (s *Tokens) setCache(ctx context.Context, hash string, ref domain.TokenRef) {
	b, err := json.Marshal(ref)
	if err != nil {
		_ = s.cache.Delete(ctx, cachePrefix+hash)
		return
	}
	s.setCacheBytes(ctx, hash, b)
}

// setCacheBytes overwrites a cache entry. When that fails the cached
// answer may be wrong until it expires, so it is deleted as a second
// chance; enrolment reads the token itself before it takes a use anyway.
func (s *Tokens) setCacheBytes(ctx context.Context, hash string, b []byte) {
	if err := s.cache.Set(ctx, cachePrefix+hash, b, CacheTTL); err != nil {
		_ = s.cache.Delete(ctx, cachePrefix+hash)
		s.logger.WarnContext(ctx, "join token change not written to the cache", "ttl", CacheTTL, obs.KeyError, err)
	}
}

// DeleteAccount implements app.Tokens.
func (s *Tokens) DeleteAccount(ctx context.Context, accountID string) error {
	ts, err := s.List(ctx, accountID)
	if err != nil {
		return err
	}
	for _, t := range ts {
		s.dropHash(ctx, t.Hash)
		if err := s.kv.Delete(ctx, t.AccountID+"."+t.ID, t.Version); err != nil && !errors.Is(err, kv.ErrNotFound) {
			return err // a conflict too: the redelivery deletes what is left
		}
	}
	return nil
}

// Nodes keeps nodes, keyed <account>.<node>.
type Nodes struct {
	kv *kv.Store[domain.Node]
	r  kv.Records[domain.Node, domain.Event]
}

var _ app.Nodes = (*Nodes)(nil)

// Create implements app.Nodes.
func (s *Nodes) Create(ctx context.Context, n domain.Node, ev domain.NodeEnrolled) error {
	_, err := s.r.Create(ctx, n, ev)
	if errors.Is(err, kv.ErrExists) {
		return domain.ErrConcurrentChange
	}
	return err
}

// Get implements app.Nodes.
func (s *Nodes) Get(ctx context.Context, accountID, nodeID string) (domain.Node, error) {
	return s.r.Get(ctx, accountID+"."+nodeID)
}

// List implements app.Nodes.
func (s *Nodes) List(ctx context.Context, accountID string) ([]domain.Node, error) {
	return s.list(ctx, accountID+".*")
}

// All implements app.Nodes.
func (s *Nodes) All(ctx context.Context) ([]domain.Node, error) { return s.list(ctx, ">") }

func (s *Nodes) list(ctx context.Context, filter string) ([]domain.Node, error) {
	return s.r.List(ctx, filter)
}

// Update implements app.Nodes.
func (s *Nodes) Update(ctx context.Context, n domain.Node, evs ...domain.Event) (domain.Node, error) {
	return s.r.Update(ctx, n, evs...)
}

// DeleteAccount implements app.Nodes.
func (s *Nodes) DeleteAccount(ctx context.Context, accountID string) error {
	ns, err := s.List(ctx, accountID)
	if err != nil {
		return err
	}
	for _, n := range ns {
		if err := s.kv.Delete(ctx, n.AccountID+"."+n.ID, n.Version); err != nil && !errors.Is(err, kv.ErrNotFound) {
			return err
		}
	}
	return nil
}

// messages gives a write's events their wire form, ready for the outbox.
func messages(ctx context.Context, evs ...domain.Event) ([]*nats.Msg, error) {
	return events.Messages(ctx, Producer, evs, wire.Event)
}

// records keeps values of one kind in s, their writes with their events,
// answering a missing one with notFound.
func records[T any](s *kv.Store[T], key func(*T) string, version func(*T) *uint64, notFound error) kv.Records[T, domain.Event] {
	return kv.Records[T, domain.Event]{Store: s, Key: key, Version: version, Messages: messages,
		NotFound: notFound, Conflict: domain.ErrConcurrentChange}
}

// Nonces keeps the nonces the registry gave.
type Nonces struct{ kv *kv.Store[domain.NodeNonce] }

var _ app.Nonces = (*Nonces)(nil)

// Create implements app.Nonces.
func (s *Nonces) Create(ctx context.Context, nonce []byte, n domain.NodeNonce) error {
	_, err := s.kv.Create(ctx, hex.EncodeToString(nonce), n)
	return err
}

// Consume implements app.Nonces: of two racing requests one wins.
func (s *Nonces) Consume(ctx context.Context, nonce []byte) (domain.NodeNonce, error) {
	n, err := s.kv.Take(ctx, hex.EncodeToString(nonce))
	if errors.Is(err, kv.ErrNotFound) {
		return domain.NodeNonce{}, domain.ErrNonceRefused
	}
	return n, err
}
