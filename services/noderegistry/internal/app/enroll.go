package app

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/domain"
)

// NodeName is what an enrolling node says of its name: the one it asks
// for, if any, and its host name (see domain.JoinToken.NodeName).
type NodeName struct{ Asked, Host string }

// Enrolment is what Enroll gives a new node.
type Enrolment struct {
	Node domain.Node
	// ChainPEM is the node's certificate, then the issuing CA, then the root.
	ChainPEM []byte
}

// Enroll enrols a node with a join token: the token must be known,
// unexpired, unrevoked and have a use left; the evidence, if any (required
// when the token or the account's attestation policy says so), must be
// verified for the account and bind the CSR's key and a nonce the registry
// gave for this token (CreateEnrolmentNonce), which it uses up: evidence
// cannot be presented twice; the account's CA then issues the node's
// client certificate. When the account's policy cannot
// be read, the enrolment fails (errs.Unavailable) without taking a use.
//
// The token's use is taken after the checks and the attestation, just
// before the CA is asked, by a conditional write (see uses); if the CA
// fails, the use is given back. A failure to store the node after the CA issued its
// certificate keeps the use (the write may have committed) and is logged.
func (s *Service) Enroll(ctx context.Context, secret string, name NodeName, csrBytes []byte, evidence Evidence, nonce []byte) (Enrolment, error) {
	ref, err := s.lookup(ctx, secret)
	if err != nil {
		return Enrolment{}, err
	}
	if name.Asked != "" {
		if err := domain.CheckName("node_name", name.Asked); err != nil {
			return Enrolment{}, err
		}
	}
	// The CA checks the CSR's signature before it signs: here it is
	// read for its key, which evidence must bind, and refused early when
	// malformed.
	csr, err := pki.ParseCSRKey(csrBytes, pki.P256)
	if err != nil {
		return Enrolment{}, errs.Newf(errs.Invalid, "csr: %v", err)
	}
	// Read the token itself for what the lookup does not carry: the count
	// of uses and whether attestation is required.
	tok, err := s.cfg.Tokens.Get(ctx, ref.AccountID, ref.TokenID)
	if errors.Is(err, domain.ErrTokenNotFound) {
		return Enrolment{}, domain.ErrTokenUnknown
	}
	if err != nil {
		return Enrolment{}, err
	}
	if tok.Hash != domain.HashSecret(secret) {
		// Its secret was replaced (a creation sent again with its
		// idempotency key) after this one's lookup was cached.
		return Enrolment{}, domain.ErrTokenUnknown
	}
	if err := tok.Usable(s.now()); err != nil {
		return Enrolment{}, err
	}
	nodeName := tok.NodeName(name.Asked, name.Host)
	if domain.CheckName("host_name", nodeName) != nil {
		return Enrolment{}, errs.Newf(errs.Invalid, "node_name: none given, and the host name %q cannot name a node "+
			"(1 to %d letters, digits, '.', '_' or '-'): give the node a name", name.Host, domain.MaxNameLength)
	}
	// Fail closed: a policy that cannot be read may require evidence.
	policyRequires, err := s.cfg.Attestation.RequiresNodeAttestation(ctx, tok.AccountID)
	if err != nil {
		return Enrolment{}, fmt.Errorf("%w: %w", domain.ErrPolicyUnavailable, err)
	}

	node := domain.Node{ID: uuid.Must(uuid.NewV7()).String(), AccountID: tok.AccountID, Name: nodeName,
		Labels: maps.Clone(tok.Labels), Status: domain.StatusActive, JoinTokenID: tok.ID}
	switch {
	case len(evidence.Quote) > 0:
		if err := s.useNonce(ctx, nonce, tok.AccountID, domain.TokenScope(tok.ID)); err != nil {
			return Enrolment{}, err
		}
		v, err := s.cfg.Attestation.Verify(ctx, tok.AccountID, evidence, csr.KeyHash[:], nonce)
		if err != nil {
			return Enrolment{}, fmt.Errorf("verifying the node's evidence: %w", err)
		}
		if !v.OK {
			return Enrolment{}, errs.Newf(errs.PermissionDenied, "the node's evidence was refused (verdict %s): %s: %s", v.ID, v.Reason, v.Error)
		}
		node.Attested, node.VerdictID, node.Simulated, node.LastAttested = true, v.ID, v.Simulated, v.VerifiedAt.UTC()
		node.TEE, node.Measurement = v.TEE, v.Measurement
	case tok.RequireAttestation:
		return Enrolment{}, domain.ErrAttestationRequired
	case policyRequires:
		return Enrolment{}, domain.ErrNodeEvidenceRequired
	}

	if tok, err = s.consume(ref); err != nil {
		return Enrolment{}, err
	}
	cert, err := s.cfg.CA.IssueNodeCertificate(ctx, node.AccountID, node.ID, csrBytes)
	if err != nil {
		s.giveBack(ctx, tok, err)
		return Enrolment{}, fmt.Errorf("issuing the node's certificate: %w", err)
	}
	node.CertificateSerial, node.EnrolledAt = cert.Serial, s.now()
	enrolled := domain.NodeEnrolled{Node: node, Audit: audit.Entry{AccountID: node.AccountID, Action: "node.enroll", Target: node.ID,
		Actor: audit.Actor{Credential: audit.CredentialJoinToken, CredentialID: tok.ID}}}
	if err := s.cfg.Nodes.Create(ctx, node, enrolled); err != nil {
		s.cfg.Logger.WarnContext(ctx, "storing an enrolled node; its join token use stays taken", logKeyAccount, node.AccountID,
			logKeyNode, node.ID, logKeyToken, tok.ID, logKeyError, err)
		return Enrolment{}, fmt.Errorf("storing the node: %w", err)
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.DER})
	return Enrolment{Node: node, ChainPEM: append(chain, cert.ChainPEM...)}, nil
}

// SimulatedQEForToken gives a node agent in simulation mode, before it
// enrols, a simulated quoting enclave for the account of its join token,
// so that it can present evidence at enrolment. The token is checked as
// Enroll checks it (known, unexpired, unrevoked, a use left) but no use is
// taken; the attestation service then refuses unless the deployment runs
// simulation and the account's policy allows it.
func (s *Service) SimulatedQEForToken(ctx context.Context, secret string) ([]byte, error) {
	ref, err := s.lookup(ctx, secret)
	if err != nil {
		return nil, err
	}
	tok, err := s.cfg.Tokens.Get(ctx, ref.AccountID, ref.TokenID)
	if errors.Is(err, domain.ErrTokenNotFound) {
		return nil, domain.ErrTokenUnknown
	}
	if err != nil {
		return nil, err
	}
	if err := tok.Usable(s.now()); err != nil {
		return nil, err
	}
	qe, err := s.cfg.Attestation.IssueSimulatedQE(ctx, tok.AccountID)
	if err != nil {
		return nil, fmt.Errorf("issuing a simulated quoting enclave: %w", err)
	}
	return qe, nil
}

// lookup finds the token of a secret through the cache, and refuses it
// when it is unknown, revoked or expired. The count of uses is checked on
// the token itself.
func (s *Service) lookup(ctx context.Context, secret string) (domain.TokenRef, error) {
	if !domain.WellFormedSecret(secret) {
		return domain.TokenRef{}, domain.ErrTokenUnknown
	}
	ref, ok, err := s.cfg.Tokens.Lookup(ctx, domain.HashSecret(secret))
	if err != nil {
		return domain.TokenRef{}, fmt.Errorf("looking up the join token: %w", err)
	}
	if !ok {
		return domain.TokenRef{}, domain.ErrTokenUnknown
	}
	return ref, ref.Usable(s.now())
}
