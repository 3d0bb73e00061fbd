// Package app is the node registry's use cases: join tokens, the
// enrolment of nodes, their heartbeats and status, and their removal.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/domain"
)

// Tokens stores join tokens, and finds them by the hash of their secret.
type Tokens interface {
	// Create stores a new token and makes it findable by its hash.
	Create(ctx context.Context, t domain.JoinToken, ev domain.TokenCreated) error
	Get(ctx context.Context, accountID, tokenID string) (domain.JoinToken, error) // domain.ErrTokenNotFound
	List(ctx context.Context, accountID string) ([]domain.JoinToken, error)
	// Update stores t if its version is unchanged (domain.ErrConcurrentChange),
	// with ev when it revokes the token; the lookup by hash sees a
	// revocation as soon as Update returns.
	Update(ctx context.Context, t domain.JoinToken, ev *domain.TokenRevoked) (domain.JoinToken, error)
	// Rehash gives t a new secret's hash: the lookup finds it by that
	// hash, and no longer by its old one.
	Rehash(ctx context.Context, t domain.JoinToken, hash string) (domain.JoinToken, error)
	// Lookup finds a token by the hash of its secret, through the cache.
	Lookup(ctx context.Context, hash string) (domain.TokenRef, bool, error)
	// DeleteAccount removes every token of a deleted account.
	DeleteAccount(ctx context.Context, accountID string) error
}

// Nonces keeps the nonces the registry gave until used or expired.
type Nonces interface {
	Create(ctx context.Context, nonce []byte, n domain.NodeNonce) error
	// Consume returns the nonce and forgets it; of two racing, one wins.
	// domain.ErrNonceRefused if it is unknown (or was used).
	Consume(ctx context.Context, nonce []byte) (domain.NodeNonce, error)
}

// Nodes stores nodes.
type Nodes interface {
	Create(ctx context.Context, n domain.Node, ev domain.NodeEnrolled) error
	Get(ctx context.Context, accountID, nodeID string) (domain.Node, error) // domain.ErrNodeNotFound
	List(ctx context.Context, accountID string) ([]domain.Node, error)
	// All lists the nodes of every account, for the heartbeat sweep.
	All(ctx context.Context) ([]domain.Node, error)
	// Update stores n if its version is unchanged (domain.ErrConcurrentChange),
	// with its events (the types above).
	Update(ctx context.Context, n domain.Node, evs ...domain.Event) (domain.Node, error)
	// DeleteAccount removes every node of a deleted account.
	DeleteAccount(ctx context.Context, accountID string) error
}

// Verdict is what the attestation service concluded of a node's evidence.
type Verdict struct {
	ID          string
	OK          bool
	Reason      string
	Error       string
	Simulated   bool
	VerifiedAt  time.Time
	TEE         string
	Measurement []byte // a confidential VM's (MRTD, SEV-SNP measurement)
}

// Evidence is what a node presents: an SGX or TDX quote (a simulated one,
// in simulation), or an SEV-SNP report, with what it needs beside it (an
// SEV-SNP report's VCEK or certificate table), as the attestation
// service's VerifyRequest takes them.
type Evidence struct {
	TEE   string
	Quote []byte
	Aux   []byte
}

// Attestation verifies evidence and keeps accounts' attestation policies.
type Attestation interface {
	// Verify checks evidence for the account; its REPORTDATA must be
	// binding followed by nonce.
	Verify(ctx context.Context, accountID string, e Evidence, binding, nonce []byte) (Verdict, error)
	// RequiresNodeAttestation tells whether the account's policy requires
	// every node to present evidence when it enrols.
	RequiresNodeAttestation(ctx context.Context, accountID string) (bool, error)
	// IssueSimulatedQE returns a simulated quoting enclave for the
	// account; the attestation service refuses unless the deployment runs
	// simulation and the account's policy allows it.
	IssueSimulatedQE(ctx context.Context, accountID string) ([]byte, error)
}

// Certificate is a node's client certificate as the CA issued it.
type Certificate struct {
	Serial   string // hex
	DER      []byte
	ChainPEM []byte // the issuing CA, then the root
	// Kind is "node" or "app"; an application's certificate names the
	// application (SubjectID), the node it was issued through, its image
	// and MRENCLAVE.
	Kind      string
	SubjectID string
	NodeID    string
	ImageID   string
	MRENCLAVE []byte
	Revoked   bool
}

// CA issues and revokes nodes' certificates.
type CA interface {
	IssueNodeCertificate(ctx context.Context, accountID, nodeID string, csr []byte) (Certificate, error)
	RevokeCertificate(ctx context.Context, accountID, serial, reason string) error
	// Certificate returns a certificate the CA issued, by its serial; its
	// ChainPEM is left empty.
	Certificate(ctx context.Context, accountID, serial string) (Certificate, error)
}

// AuditLog records calls that failed; successes travel with their change.
type AuditLog interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Log keys.
const (
	logKeyAccount = "account_id"
	logKeyNode    = "node_id"
	logKeyToken   = "token_id"
	logKeyError   = "error"
)

// DefaultHeartbeatTimeout is how long an active node may stay silent
// before it is marked unreachable.
const DefaultHeartbeatTimeout = 90 * time.Second

// DefaultReattestEvery is how often a node that presented evidence must
// attest again.
const DefaultReattestEvery = 24 * time.Hour

// Config holds the service's dependencies.
type Config struct {
	Tokens      Tokens
	Nodes       Nodes
	Nonces      Nonces
	Attestation Attestation
	CA          CA
	Audit       AuditLog
	Clock       func() time.Time
	// HeartbeatTimeout: DefaultHeartbeatTimeout when 0.
	HeartbeatTimeout time.Duration
	// ReattestEvery is how often an attested node must re-attest; the
	// sweep marks one untrusted once a tenth more has passed since it
	// last did. DefaultReattestEvery when 0.
	ReattestEvery time.Duration
	Logger        *slog.Logger
}

// Service is the node registry.
type Service struct {
	cfg  Config
	uses uses
}

// New returns the service.
func New(cfg Config) (*Service, error) {
	if cfg.Tokens == nil || cfg.Nodes == nil || cfg.Nonces == nil || cfg.Attestation == nil || cfg.CA == nil || cfg.Audit == nil {
		return nil, errors.New("noderegistry: the stores, the audit log, the attestation service and the CA are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.HeartbeatTimeout < 0 {
		return nil, fmt.Errorf("noderegistry: heartbeat timeout %v is negative", cfg.HeartbeatTimeout)
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if cfg.ReattestEvery < 0 {
		return nil, fmt.Errorf("noderegistry: re-attestation period %v is negative", cfg.ReattestEvery)
	}
	if cfg.ReattestEvery == 0 {
		cfg.ReattestEvery = DefaultReattestEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}, nil
}

// HeartbeatTimeout is how long an active node may stay silent.
func (s *Service) HeartbeatTimeout() time.Duration { return s.cfg.HeartbeatTimeout }

// ReattestEvery is how often an attested node must re-attest.
func (s *Service) ReattestEvery() time.Duration { return s.cfg.ReattestEvery }

// reattestDeadline is how long after its last attestation an attested
// node is untrusted: the period and a grace of a tenth of it.
func (s *Service) reattestDeadline() time.Duration {
	return s.cfg.ReattestEvery + s.cfg.ReattestEvery/10
}

func (s *Service) now() time.Time { return s.cfg.Clock().UTC() }

// audited records a failed call of a person in the account's audit log
// and returns err; a stranger's call (a malformed account id) or one of
// the service itself leaves no record.
func (s *Service) audited(ctx context.Context, e audit.Entry, err error) error {
	if err == nil || uuid.Validate(e.AccountID) != nil || e.Actor.UserID == "" {
		return err
	}
	e.Err = err
	if rerr := s.cfg.Audit.Record(ctx, e); rerr != nil {
		return errors.Join(err, fmt.Errorf("recording audit entry: %w", rerr))
	}
	return err
}

// maxAttempts bounds the retries of a conditional write that keeps
// meeting concurrent writes of other requests.
const maxAttempts = 1000

// retry runs f until it does not meet a concurrent change, up to
// maxAttempts times or until ctx ends, pausing a little (more each time,
// with jitter) between attempts so that contenders spread out.
func retry(ctx context.Context, f func() error) error {
	for attempt := range maxAttempts {
		err := f()
		if !errors.Is(err, domain.ErrConcurrentChange) {
			return err
		}
		step := time.Duration(min(attempt+1, 20)) * 50 * time.Microsecond
		pause := step + rand.N(step)
		select {
		case <-ctx.Done():
			return fmt.Errorf("retrying after a concurrent change: %w", ctx.Err())
		case <-time.After(pause):
		}
	}
	return domain.ErrConcurrentChange
}

// DeleteAccount forgets a deleted account's tokens and nodes. The CA drops
// the account's certificates on the same event.
func (s *Service) DeleteAccount(ctx context.Context, accountID string) error {
	if uuid.Validate(accountID) != nil {
		return nil
	}
	if err := s.cfg.Tokens.DeleteAccount(ctx, accountID); err != nil {
		return err
	}
	return s.cfg.Nodes.DeleteAccount(ctx, accountID)
}
