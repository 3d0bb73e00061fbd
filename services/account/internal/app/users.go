package app

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

func randomSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *service) SignUp(ctx context.Context, email, password string) (domain.User, error) {
	email, err := domain.NormalizeEmail(email)
	if err != nil {
		return domain.User{}, err
	}
	if err := domain.CheckPassword(password); err != nil {
		return domain.User{}, err
	}
	hash, err := s.Hasher.Hash(password)
	if err != nil {
		return domain.User{}, fmt.Errorf("hashing password: %w", err)
	}
	u := domain.User{ID: newID(), Email: email, PasswordHash: hash, CreatedAt: s.now()}
	me := domain.Principal{UserID: u.ID, Email: u.Email}
	if err := s.Users.Create(ctx, u, domain.UserSignedUp{User: u}, domain.Audited{Entry: s.auditEntry(me, "", actionSignUp, u.ID)}); err != nil {
		return domain.User{}, err
	}
	return u, nil
}

func (s *service) Login(ctx context.Context, email, password string) (string, domain.Session, error) {
	email, err := domain.NormalizeEmail(email)
	if err != nil {
		return "", domain.Session{}, err
	}
	u, err := s.Users.ByEmail(ctx, email)
	if errors.Is(err, domain.ErrUserNotFound) {
		_, _ = s.Hasher.Verify(password, s.dummyHash)
		return "", domain.Session{}, domain.ErrBadCredentials
	}
	if err != nil {
		return "", domain.Session{}, err
	}
	ok, err := s.Hasher.Verify(password, u.PasswordHash)
	if err != nil {
		return "", domain.Session{}, fmt.Errorf("verifying password: %w", err)
	}
	if !ok {
		// A wrong password for a known user is worth knowing; unknown
		// e-mails are not recorded (anyone may try any, without bound).
		e := s.auditEntry(domain.Principal{UserID: u.ID, Email: u.Email}, "", actionLogin, u.ID)
		e.Outcome, e.Error = domain.OutcomeFailure, errs.PublicMessage(domain.ErrBadCredentials)
		if err := s.Audit.Record(ctx, e); err != nil {
			return "", domain.Session{}, errors.Join(domain.ErrBadCredentials, fmt.Errorf("recording audit entry: %w", err))
		}
		return "", domain.Session{}, domain.ErrBadCredentials
	}
	token := authz.SessionPrefix + randomSecret()
	now := s.now()
	sess := domain.Session{TokenHash: authz.HashToken(token), UserID: u.ID, Email: u.Email, CreatedAt: now, ExpiresAt: now.Add(s.SessionTTL)}
	if err := s.Sessions.Create(ctx, sess, domain.Audited{Entry: s.auditEntry(sessionPrincipal(sess), "", actionLogin, sess.TokenHash[:16])}); err != nil {
		return "", domain.Session{}, err
	}
	return token, sess, nil
}

func (s *service) Logout(ctx context.Context, token string) error {
	if !strings.HasPrefix(token, authz.SessionPrefix) {
		return domain.ErrUnauthenticated
	}
	hash := authz.HashToken(token)
	sess, err := s.Sessions.ByTokenHash(ctx, hash)
	if err != nil {
		return err
	}
	return s.Sessions.Delete(ctx, hash, domain.SessionRevoked{UserID: sess.UserID, TokenHash: hash},
		domain.Audited{Entry: s.auditEntry(sessionPrincipal(sess), "", actionLogout, hash[:16])})
}

// Audit actions of a user's own credentials, recorded under no account.
const (
	actionSignUp = "user.signup"
	actionLogin  = "session.create"
	actionLogout = "session.revoke"
)

// sessionPrincipal is who holds sess.
func sessionPrincipal(sess domain.Session) domain.Principal {
	return domain.Principal{UserID: sess.UserID, Email: sess.Email, Credential: domain.CredentialSession, CredentialID: sess.TokenHash[:16], ExpiresAt: sess.ExpiresAt}
}

func (s *service) Authenticate(ctx context.Context, token string) (domain.Principal, error) {
	switch {
	case strings.HasPrefix(token, authz.SessionPrefix):
		sess, err := s.Sessions.ByTokenHash(ctx, authz.HashToken(token))
		if err != nil {
			return domain.Principal{}, err
		}
		if !s.now().Before(sess.ExpiresAt) {
			return domain.Principal{}, domain.ErrUnauthenticated
		}
		return sessionPrincipal(sess), nil
	case strings.HasPrefix(token, authz.APIKeyPrefix):
		id, _, ok := strings.Cut(strings.TrimPrefix(token, authz.APIKeyPrefix), "_")
		if !ok || uuid.Validate(id) != nil {
			return domain.Principal{}, domain.ErrUnauthenticated
		}
		k, err := s.APIKeys.ByID(ctx, id)
		if errors.Is(err, domain.ErrAPIKeyNotFound) {
			return domain.Principal{}, domain.ErrUnauthenticated
		}
		if err != nil {
			return domain.Principal{}, err
		}
		if subtle.ConstantTimeCompare([]byte(k.TokenHash), []byte(authz.HashToken(token))) != 1 || !s.now().Before(k.ExpiresAt) {
			return domain.Principal{}, domain.ErrUnauthenticated
		}
		return domain.Principal{UserID: k.UserID, Email: k.Email, Credential: domain.CredentialAPIKey,
			CredentialID: k.ID, AccountID: k.AccountID, ExpiresAt: k.ExpiresAt}, nil
	}
	return domain.Principal{}, domain.ErrUnauthenticated
}
