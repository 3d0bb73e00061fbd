package app

import (
	"context"
	"errors"
	"maps"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/idempotency"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/domain"
)

// Authorization of the token calls is the gateway's: it asks the account
// service (node.token.create, node.token.list, node.token.revoke) before
// it calls, as for every other service. The registry trusts the actor it
// is given and records it.

// CreateJoinToken makes a join token for an account. The secret is
// returned this once; the registry keeps its SHA-256.
//
// With an idempotency key, the token's id is derived from the key, the
// actor and the account: the same creation sent again (its answer lost)
// finds the token its first sending made and gives it a new secret, the
// first one's never having reached anyone; a token used or revoked since
// is refused (domain.ErrTokenTaken).
func (s *Service) CreateJoinToken(ctx context.Context, accountID string, spec domain.TokenSpec, actor audit.Actor, idempotencyKey string) (domain.JoinToken, string, error) {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.NodeTokenCreate), Target: spec.Name}
	t, secret, err := s.createJoinToken(ctx, accountID, spec, entry, idempotencyKey)
	return t, secret, s.audited(ctx, entry, err)
}

func (s *Service) createJoinToken(ctx context.Context, accountID string, spec domain.TokenSpec, entry audit.Entry, idempotencyKey string) (domain.JoinToken, string, error) {
	if uuid.Validate(accountID) != nil {
		return domain.JoinToken{}, "", domain.ErrTokenNotFound
	}
	if err := idempotency.Check(idempotencyKey); err != nil {
		return domain.JoinToken{}, "", err
	}
	spec, err := spec.Check()
	if err != nil {
		return domain.JoinToken{}, "", err
	}
	secret, hash, err := domain.NewSecret()
	if err != nil {
		return domain.JoinToken{}, "", err
	}
	now := s.now()
	id := uuid.Must(uuid.NewV7()).String()
	if idempotencyKey != "" {
		id = idempotency.ID(entry.Actor.UserID, "join-token", accountID, idempotencyKey)
	}
	t := domain.JoinToken{ID: id, AccountID: accountID, Name: spec.Name, Labels: spec.Labels,
		Hash: hash, ExpiresAt: now.Add(spec.TTL), MaxUses: spec.MaxUses, RequireAttestation: spec.RequireAttestation,
		CreatedAt: now, CreatedBy: entry.Actor.UserID}
	entry.Target = t.ID
	err = s.cfg.Tokens.Create(ctx, t, domain.TokenCreated{Token: t, Audit: entry})
	if idempotencyKey != "" && errors.Is(err, domain.ErrTokenExists) {
		return s.createdBefore(ctx, t, hash, secret)
	}
	if err != nil {
		return domain.JoinToken{}, "", err
	}
	return t, secret, nil
}

// createdBefore answers a creation sent again with its idempotency key:
// the token its first sending made (want, as this sending would have made
// it), given secret (of hash) in place of the lost one.
func (s *Service) createdBefore(ctx context.Context, want domain.JoinToken, hash, secret string) (domain.JoinToken, string, error) {
	var out domain.JoinToken
	err := retry(ctx, func() error {
		got, err := s.cfg.Tokens.Get(ctx, want.AccountID, want.ID)
		if err != nil {
			return err
		}
		if got.CreatedBy != want.CreatedBy || got.Name != want.Name || !maps.Equal(got.Labels, want.Labels) ||
			got.MaxUses != want.MaxUses || got.RequireAttestation != want.RequireAttestation {
			return idempotency.ErrKeyReused
		}
		if got.Uses > 0 || got.Revoked {
			return domain.ErrTokenTaken
		}
		out, err = s.cfg.Tokens.Rehash(ctx, got, hash)
		return err
	})
	if err != nil {
		return domain.JoinToken{}, "", err
	}
	return out, secret, nil
}

// JoinTokens lists an account's tokens, revoked and expired ones
// included, ordered by id (creation).
func (s *Service) JoinTokens(ctx context.Context, accountID string) ([]domain.JoinToken, error) {
	if uuid.Validate(accountID) != nil {
		return nil, nil
	}
	return s.cfg.Tokens.List(ctx, accountID)
}

// RevokeJoinToken revokes a token at once: the next enrolment with it is
// refused, on every replica. Revoking a revoked token changes nothing.
func (s *Service) RevokeJoinToken(ctx context.Context, accountID, tokenID string, actor audit.Actor) (domain.JoinToken, error) {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.NodeTokenRevoke), Target: tokenID}
	var out domain.JoinToken
	err := retry(ctx, func() error {
		t, err := s.token(ctx, accountID, tokenID)
		if err != nil || t.Revoked {
			out = t
			return err
		}
		t.Revoked, t.RevokedAt = true, s.now()
		out, err = s.cfg.Tokens.Update(ctx, t, &domain.TokenRevoked{Token: t, Audit: entry})
		return err
	})
	return out, s.audited(ctx, entry, err)
}

func (s *Service) token(ctx context.Context, accountID, tokenID string) (domain.JoinToken, error) {
	if uuid.Validate(accountID) != nil || uuid.Validate(tokenID) != nil {
		return domain.JoinToken{}, domain.ErrTokenNotFound
	}
	return s.cfg.Tokens.Get(ctx, accountID, tokenID)
}

// giveBack returns a use that an enrolment took and did not use, so that a
// failure of the CA does not cost the token a use. If that fails too, the
// use stays taken, and the log says so.
func (s *Service) giveBack(ctx context.Context, t domain.JoinToken, cause error) {
	ctx = context.WithoutCancel(ctx)
	err := retry(ctx, func() error {
		cur, err := s.cfg.Tokens.Get(ctx, t.AccountID, t.ID)
		if err != nil || cur.Uses == 0 {
			return err
		}
		cur.Uses--
		_, err = s.cfg.Tokens.Update(ctx, cur, nil)
		return err
	})
	if err != nil && !errors.Is(err, domain.ErrTokenNotFound) {
		s.cfg.Logger.WarnContext(ctx, "a failed enrolment keeps the join token use it took", logKeyAccount, t.AccountID,
			logKeyToken, t.ID, "enrolment_error", cause, logKeyError, err)
	}
}
