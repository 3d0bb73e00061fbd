package app

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/cloister-cc/cloister/services/noderegistry/internal/domain"
)

// NonceLifetime bounds the time from a nonce to the evidence that uses it.
const NonceLifetime = 5 * time.Minute

// nonceSize is the size of a nonce: the second half of REPORTDATA.
const nonceSize = 32

// CreateEnrolmentNonce gives a node agent, on its join token's word, a
// nonce to bind into the evidence of its enrolment with that token: the
// token is checked as Enroll checks it, and no use is taken.
func (s *Service) CreateEnrolmentNonce(ctx context.Context, secret string) ([]byte, time.Time, error) {
	ref, err := s.lookup(ctx, secret)
	if err != nil {
		return nil, time.Time{}, err
	}
	tok, err := s.cfg.Tokens.Get(ctx, ref.AccountID, ref.TokenID)
	if errors.Is(err, domain.ErrTokenNotFound) {
		return nil, time.Time{}, domain.ErrTokenUnknown
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	if err := tok.Usable(s.now()); err != nil {
		return nil, time.Time{}, err
	}
	return s.newNonce(ctx, tok.AccountID, domain.TokenScope(tok.ID))
}

// CreateAttestationNonce gives an enrolled node a nonce for its next
// re-attestation.
func (s *Service) CreateAttestationNonce(ctx context.Context, accountID, nodeID, serial string) ([]byte, time.Time, error) {
	n, err := s.AuthenticateNode(ctx, accountID, nodeID, serial)
	if err != nil {
		return nil, time.Time{}, err
	}
	return s.newNonce(ctx, n.AccountID, domain.NodeScope(n.ID))
}

func (s *Service) newNonce(ctx context.Context, accountID, scope string) ([]byte, time.Time, error) {
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, time.Time{}, err
	}
	expires := s.now().Add(NonceLifetime).UTC()
	if err := s.cfg.Nonces.Create(ctx, nonce, domain.NodeNonce{AccountID: accountID, Scope: scope, ExpiresAt: expires}); err != nil {
		return nil, time.Time{}, err
	}
	return nonce, expires, nil
}

// useNonce consumes a nonce given for scope in accountID: the evidence
// bound to it is then fresh, and cannot be presented again.
func (s *Service) useNonce(ctx context.Context, nonce []byte, accountID, scope string) error {
	if len(nonce) != nonceSize {
		return domain.ErrNonceRefused
	}
	n, err := s.cfg.Nonces.Consume(ctx, nonce)
	if err != nil {
		return err
	}
	if n.AccountID != accountID || n.Scope != scope || !s.now().Before(n.ExpiresAt) {
		return domain.ErrNonceRefused
	}
	return nil
}
