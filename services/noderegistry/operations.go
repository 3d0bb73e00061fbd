package noderegistry

import "context"

// MarkUntrusted takes a node's trust away: it can no longer authenticate
// and its certificate is revoked. For the re-attestation loop.
func (s *Service) MarkUntrusted(ctx context.Context, accountID, nodeID, reason string) error {
	_, err := s.app.MarkUntrusted(ctx, accountID, nodeID, reason)
	return err
}

// Sweep marks silent nodes unreachable and overdue ones untrusted now,
// and says how many it changed.
func (s *Service) Sweep(ctx context.Context) (int, error) { return s.app.Sweep(ctx) }
