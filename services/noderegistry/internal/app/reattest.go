package app

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/domain"
)

// Reattest checks a node's fresh evidence, as enrolment does but bound to
// the key of the node's current certificate: its REPORTDATA must be
// SHA-256 of that certificate's SubjectPublicKeyInfo followed by a nonce
// the registry gave this node (CreateAttestationNonce), which it uses up,
// and the account's policy must accept it. It refuses what
// AuthenticateNode refuses; a nonce that is not the node's, or was used,
// is refused (domain.ErrNonceRefused) without judging the node.
//
// Accepted, the verdict is recorded and the node is attested as of now,
// by the registry's clock, which the sweep measures the period with.
// Refused, the node is marked untrusted and its certificate revoked
// (MarkUntrusted), and the refusal is errs.PermissionDenied. A failure to
// decide (the attestation service or the CA unavailable) changes nothing.
func (s *Service) Reattest(ctx context.Context, accountID, nodeID, serial string, evidence Evidence, nonce []byte) (domain.Node, error) {
	n, err := s.AuthenticateNode(ctx, accountID, nodeID, serial)
	if err != nil {
		return domain.Node{}, err
	}
	if len(evidence.Quote) == 0 {
		return domain.Node{}, errs.New(errs.Invalid, "evidence is required: a quote binding the key of the node's certificate and a nonce")
	}
	if err := s.useNonce(ctx, nonce, n.AccountID, domain.NodeScope(n.ID)); err != nil {
		return domain.Node{}, err
	}
	cert, err := s.cfg.CA.Certificate(ctx, n.AccountID, n.CertificateSerial)
	if err != nil {
		return domain.Node{}, fmt.Errorf("reading the node's certificate: %w", err)
	}
	parsed, err := x509.ParseCertificate(cert.DER)
	if err != nil {
		return domain.Node{}, fmt.Errorf("parsing the node's certificate %s: %w", n.CertificateSerial, err)
	}
	binding := sha256.Sum256(parsed.RawSubjectPublicKeyInfo)
	v, err := s.cfg.Attestation.Verify(ctx, n.AccountID, evidence, binding[:], nonce)
	if err != nil {
		return domain.Node{}, fmt.Errorf("verifying the node's evidence: %w", err)
	}
	if v.OK && n.TEE != "" && v.TEE != n.TEE {
		// A machine does not change its TEE: evidence of another one is
		// another machine's.
		v.OK, v.Reason, v.Error = false, "tee_changed", fmt.Sprintf("the node attested as %s, and now presents %s evidence", n.TEE, v.TEE)
	}
	if !v.OK {
		reason := "re-attestation failed: " + v.Reason
		if _, err := s.MarkUntrusted(ctx, n.AccountID, n.ID, reason); err != nil {
			return domain.Node{}, fmt.Errorf("marking the node untrusted after its re-attestation failed (verdict %s): %w", v.ID, err)
		}
		return domain.Node{}, errs.Newf(errs.PermissionDenied, "the node's re-attestation was refused (verdict %s): %s: %s; the node is untrusted", v.ID, v.Reason, v.Error)
	}

	var out domain.Node
	reread := false
	err = retry(ctx, func() error {
		if reread {
			var err error
			if n, err = s.AuthenticateNode(ctx, accountID, nodeID, serial); err != nil {
				return err
			}
		}
		reread = true
		n.Attested, n.VerdictID, n.Simulated, n.LastAttested = true, v.ID, v.Simulated, s.now()
		n.TEE, n.Measurement = v.TEE, v.Measurement
		var err error
		out, err = s.cfg.Nodes.Update(ctx, n)
		return err
	})
	return out, err
}
