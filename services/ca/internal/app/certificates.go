package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
)

// Certificates records what each account's CA issued.
type Certificates interface {
	Create(ctx context.Context, c domain.Certificate, ev domain.Issued) error
	Get(ctx context.Context, accountID, serial string) (domain.Certificate, error) // domain.ErrCertificateNotFound
	// Update stores c if its version is unchanged.
	Update(ctx context.Context, c domain.Certificate, ev domain.Revoked) (domain.Certificate, error)
	List(ctx context.Context, accountID string) ([]domain.Certificate, error)
}

// NodeCertLifetime is how long a node's client certificate lasts.
const NodeCertLifetime = 90 * 24 * time.Hour

// actionIssue is the audit action of a certificate issued.
const actionIssue = "cert.issue"

// revocationURLs are the OCSP responder and the CRL of the account's
// issuer (by key id, so that a certificate keeps naming its own issuer's
// CRL after a rotation), or nothing without a public URL.
func (s *Service) revocationURLs(accountID string, ca *pki.CA) (ocsp, crl string) {
	if s.public == "" {
		return "", ""
	}
	return s.public + "/v1/ocsp/" + accountID, s.public + "/v1/crl/" + accountID + ".crl?issuer=" + hex.EncodeToString(ca.Issuer.SubjectKeyId)
}

// randRead fills b from the system's secure random source.
var randRead = rand.Read

// IssueNodeCertificate issues a client certificate for an enrolling node,
// identified as urn:cloister:node:<account>:<node>.
func (s *Service) IssueNodeCertificate(ctx context.Context, accountID, nodeID string, csrBytes []byte) (domain.Certificate, *pki.CA, error) {
	if uuid.Validate(nodeID) != nil {
		return domain.Certificate{}, nil, errs.New(errs.Invalid, "node_id must be a node's id")
	}
	ca, err := s.openCA(ctx, accountID)
	if err != nil {
		return domain.Certificate{}, nil, err
	}
	csr, err := pki.CheckCSRKey(csrBytes, pki.P256)
	if err != nil {
		return domain.Certificate{}, nil, errs.New(errs.Invalid, err.Error())
	}
	uri := &url.URL{Scheme: "urn", Opaque: "cloister:node:" + accountID + ":" + nodeID}
	cert, err := ca.IssueClient(csr, "node "+nodeID, uri, NodeCertLifetime, s.clock())
	if err != nil {
		return domain.Certificate{}, nil, err
	}
	rec := domain.Certificate{Serial: cert.Serial.Text(16), AccountID: accountID, Kind: "node", SubjectID: nodeID,
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.DER}
	// The node registry asks for it as the node enrols.
	issued := domain.Issued{Certificate: rec, Audit: audit.Entry{AccountID: accountID, Actor: audit.Actor{Credential: audit.CredentialNode, CredentialID: nodeID},
		Action: actionIssue, Target: rec.Serial, Cause: "node " + nodeID + " enrolled"}}
	if err := s.certs.Create(ctx, rec, issued); err != nil {
		return domain.Certificate{}, nil, err
	}
	if err := s.stillOpen(ctx, rec); err != nil {
		return domain.Certificate{}, nil, err
	}
	return rec, ca, nil
}

// Certificate returns one certificate the account's CA issued.
func (s *Service) Certificate(ctx context.Context, accountID, serial string) (domain.Certificate, error) {
	if uuid.Validate(accountID) != nil || !isHex(serial) {
		return domain.Certificate{}, domain.ErrCertificateNotFound
	}
	return s.certs.Get(ctx, accountID, strings.ToLower(serial))
}

// Certificates lists what the account's CA issued, ordered by serial.
func (s *Service) Certificates(ctx context.Context, accountID, kind string, includeRevoked bool) ([]domain.Certificate, error) {
	return s.CertificatesOf(ctx, accountID, kind, "", includeRevoked)
}

// CertificatesOf lists what the account's CA issued to one subject (a
// node's or an application's id; empty for every subject), ordered by serial.
func (s *Service) CertificatesOf(ctx context.Context, accountID, kind, subjectID string, includeRevoked bool) ([]domain.Certificate, error) {
	if uuid.Validate(accountID) != nil {
		return nil, nil
	}
	all, err := s.certs.List(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, c := range all {
		if (kind == "" || c.Kind == kind) && (subjectID == "" || c.SubjectID == subjectID) && (includeRevoked || !c.Revoked) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Revoke revokes a certificate; revoking a revoked one changes nothing.
// actor is who asked, nil when the CA revokes on its own (what a
// certificate depended on went away); a person's request is audited,
// whether it succeeds or not.
func (s *Service) Revoke(ctx context.Context, accountID, serial, reason string, actor *audit.Actor) (domain.Certificate, error) {
	c, err := s.revoke(ctx, accountID, serial, reason, actor)
	if err != nil && actor != nil && !errors.Is(err, domain.ErrCANotFound) && uuid.Validate(accountID) == nil {
		if rerr := s.audit.Record(ctx, audit.Entry{AccountID: accountID, Actor: *actor, Action: string(authz.CertRevoke), Target: serial, Err: err}); rerr != nil {
			return domain.Certificate{}, errors.Join(err, fmt.Errorf("recording audit entry: %w", rerr))
		}
	}
	return c, err
}

func (s *Service) revoke(ctx context.Context, accountID, serial, reason string, actor *audit.Actor) (domain.Certificate, error) {
	c, err := s.Certificate(ctx, accountID, serial)
	if err != nil {
		return domain.Certificate{}, err
	}
	if c.Revoked {
		return c, nil
	}
	if len(reason) > 200 {
		return domain.Certificate{}, errs.New(errs.Invalid, "reason is longer than 200 characters")
	}
	c.Revoked, c.RevokedAt, c.Reason = true, s.clock().UTC(), reason
	// A revocation nobody asked for cascades from a change: the system's,
	// with its cause.
	ev := domain.Revoked{Certificate: c, Audit: &audit.Entry{AccountID: accountID, Actor: audit.System, Action: string(authz.CertRevoke),
		Target: c.Serial, Cause: reason}}
	if actor != nil {
		ev.Audit = &audit.Entry{AccountID: accountID, Actor: *actor, Action: string(authz.CertRevoke), Target: c.Serial}
	}
	return s.certs.Update(ctx, c, ev)
}
