package app

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// revokeKeys deletes the account's API keys that match, announcing each.
func (s *service) revokeKeys(ctx context.Context, accountID string, match func(domain.APIKey) bool) error {
	keys, err := s.APIKeys.ByAccount(ctx, accountID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if !match(k) {
			continue
		}
		err := s.APIKeys.Delete(ctx, k, domain.APIKeyRevoked{AccountID: accountID, KeyID: k.ID, TokenHash: k.TokenHash})
		if err != nil && !errors.Is(err, domain.ErrAPIKeyNotFound) {
			return err
		}
	}
	return nil
}

func (s *service) CreateAPIKey(ctx context.Context, actor domain.Principal, accountID, name string, ttl time.Duration) (domain.APIKey, string, error) {
	k, token, err := s.createAPIKey(ctx, actor, accountID, name, ttl)
	return k, token, s.failed(ctx, actor, accountID, authz.APIKeyCreate, cmp.Or(k.ID, name), err)
}

func (s *service) createAPIKey(ctx context.Context, actor domain.Principal, accountID, name string, ttl time.Duration) (domain.APIKey, string, error) {
	if _, _, err := s.authorize(ctx, actor, accountID, authz.APIKeyCreate); err != nil {
		return domain.APIKey{}, "", err
	}
	if actor.Credential == domain.CredentialAPIKey {
		return domain.APIKey{}, "", domain.ErrAPIKeyNotAllowed
	}
	if err := domain.CheckAccountName(name); err != nil {
		return domain.APIKey{}, "", errs.New(errs.Invalid, strings.Replace(err.Error(), "name", "API key name", 1))
	}
	switch {
	case ttl == 0:
		ttl = s.APIKeyTTL
	case ttl < time.Minute || ttl > s.MaxAPIKeyTTL:
		return domain.APIKey{}, "", errs.Newf(errs.Invalid, "ttl must be between 60 and %d seconds", int64(s.MaxAPIKeyTTL/time.Second))
	}
	now := s.now()
	k := domain.APIKey{ID: newID(), AccountID: accountID, UserID: actor.UserID, Email: actor.Email,
		Name: strings.TrimSpace(name), CreatedAt: now, ExpiresAt: now.Add(ttl)}
	token := authz.APIKeyPrefix + k.ID + "_" + randomSecret()
	k.TokenHash = authz.HashToken(token)
	if err := s.APIKeys.Create(ctx, k, domain.Audited{Entry: s.auditEntry(actor, accountID, authz.APIKeyCreate, k.ID)}); err != nil {
		return domain.APIKey{}, "", err
	}
	return k, token, nil
}

func (s *service) ListAPIKeys(ctx context.Context, actor domain.Principal, accountID string, p Page) ([]domain.APIKey, string, error) {
	_, m, err := s.authorize(ctx, actor, accountID, authz.APIKeyList)
	if err != nil {
		return nil, "", err
	}
	ks, err := s.APIKeys.ByAccount(ctx, accountID)
	if err != nil {
		return nil, "", err
	}
	if m.Role != domain.RoleAdmin { // others see their own keys only
		ks = slices.DeleteFunc(ks, func(k domain.APIKey) bool { return k.UserID != actor.UserID })
	}
	return paginate(ks, p, func(k domain.APIKey) string { return k.ID })
}

func (s *service) RevokeAPIKey(ctx context.Context, actor domain.Principal, accountID, keyID string) error {
	err := s.revokeAPIKey(ctx, actor, accountID, keyID)
	return s.failed(ctx, actor, accountID, authz.APIKeyRevoke, keyID, err)
}

func (s *service) revokeAPIKey(ctx context.Context, actor domain.Principal, accountID, keyID string) error {
	_, m, err := s.authorize(ctx, actor, accountID, authz.APIKeyRevoke)
	if err != nil {
		return err
	}
	k, err := s.APIKeys.Get(ctx, accountID, keyID)
	if err != nil {
		return err
	}
	if m.Role != domain.RoleAdmin && k.UserID != actor.UserID {
		return domain.ErrAPIKeyNotFound
	}
	return s.APIKeys.Delete(ctx, k, domain.APIKeyRevoked{AccountID: accountID, KeyID: k.ID, TokenHash: k.TokenHash},
		domain.Audited{Entry: s.auditEntry(actor, accountID, authz.APIKeyRevoke, k.ID)})
}
