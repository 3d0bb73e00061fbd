package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/domain"
)

// AuthenticateNode tells whether a client certificate of serial still
// speaks for a node of the account: the node is enrolled there, active or
// unreachable, and serial is its current certificate's. Every refusal is
// errs.Unauthenticated. It changes nothing; the gateway calls it on every
// node-facing request.
func (s *Service) AuthenticateNode(ctx context.Context, accountID, nodeID, serial string) (domain.Node, error) {
	n, err := s.nodeFor(ctx, accountID, nodeID)
	if err != nil {
		return domain.Node{}, err
	}
	if err := n.Speaks(serial); err != nil {
		return domain.Node{}, err
	}
	return n, nil
}

// nodeFor reads a node for a node-facing call: one the account does not
// have is refused as unauthenticated, not as missing.
func (s *Service) nodeFor(ctx context.Context, accountID, nodeID string) (domain.Node, error) {
	n, err := s.Node(ctx, accountID, nodeID)
	if errors.Is(err, domain.ErrNodeNotFound) {
		return domain.Node{}, domain.ErrNodeUnknown
	}
	return n, err
}

// Heartbeat records that a node is alive and what it runs: the instances
// that appear and disappear are announced, and an unreachable node becomes
// active again. It refuses what AuthenticateNode refuses.
func (s *Service) Heartbeat(ctx context.Context, accountID, nodeID, serial string, instances []domain.Instance) (domain.Node, error) {
	n, err := s.AuthenticateNode(ctx, accountID, nodeID, serial)
	if err != nil {
		return domain.Node{}, err
	}
	if err := domain.CheckInstances(instances); err != nil {
		return domain.Node{}, err
	}
	if err := s.vouchFor(ctx, n, instances); err != nil {
		return domain.Node{}, err
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
		now := s.now()
		running, started, stopped := n.Report(instances, now)
		var evs []domain.Event
		for _, in := range started {
			evs = append(evs, domain.InstanceStarted{AccountID: n.AccountID, NodeID: n.ID, Instance: in})
		}
		for _, in := range stopped {
			evs = append(evs, domain.InstanceStopped{AccountID: n.AccountID, NodeID: n.ID, Instance: in})
		}
		n.LastHeartbeat, n.Instances = now, running
		if n.Status == domain.StatusUnreachable {
			n.Status, n.StatusReason = domain.StatusActive, ""
			evs = append(evs, domain.NodeStatusChanged{Node: n})
		}
		var err error
		out, err = s.cfg.Nodes.Update(ctx, n, evs...)
		return err
	})
	return out, err
}

// vouchFor checks that every instance n reports, that it has not reported
// before with the same certificate, runs on a certificate of n's account
// issued through n, and gives it the certificate's application, image and
// MRENCLAVE (which the report must not contradict).
func (s *Service) vouchFor(ctx context.Context, n domain.Node, instances []domain.Instance) error {
	for i := range instances {
		in := &instances[i]
		known := slices.IndexFunc(n.Instances, func(k domain.Instance) bool {
			return k.ID == in.ID && strings.EqualFold(k.CertificateSerial, in.CertificateSerial)
		})
		if known >= 0 {
			k := n.Instances[known]
			in.AppID, in.ImageID, in.MRENCLAVE = k.AppID, k.ImageID, k.MRENCLAVE
			continue
		}
		cert, err := s.cfg.CA.Certificate(ctx, n.AccountID, in.CertificateSerial)
		if errs.KindOf(err) == errs.NotFound {
			return domain.ErrNotIssuedHere.Withf("instance %s: certificate %s is not one of the account's", in.ID, in.CertificateSerial)
		}
		if err != nil {
			return fmt.Errorf("reading the certificate of instance %s: %w", in.ID, err)
		}
		switch {
		case cert.Kind != "app" || cert.NodeID != n.ID:
			return domain.ErrNotIssuedHere.Withf("instance %s: certificate %s was not issued through this node", in.ID, in.CertificateSerial)
		case in.AppID != "" && in.AppID != cert.SubjectID, in.ImageID != "" && in.ImageID != cert.ImageID,
			len(in.MRENCLAVE) != 0 && !bytes.Equal(in.MRENCLAVE, cert.MRENCLAVE):
			return domain.ErrNotIssuedHere.Withf("instance %s: the application, image or MRENCLAVE reported is not its certificate's", in.ID)
		}
		in.AppID, in.ImageID, in.MRENCLAVE = cert.SubjectID, cert.ImageID, cert.MRENCLAVE
	}
	return nil
}

// Node returns one node of an account; another account's is not found.
func (s *Service) Node(ctx context.Context, accountID, nodeID string) (domain.Node, error) {
	if uuid.Validate(accountID) != nil || uuid.Validate(nodeID) != nil {
		return domain.Node{}, domain.ErrNodeNotFound
	}
	return s.cfg.Nodes.Get(ctx, accountID, nodeID)
}

// Nodes lists an account's nodes, deregistered ones included, ordered by
// id (enrolment).
func (s *Service) Nodes(ctx context.Context, accountID string) ([]domain.Node, error) {
	if uuid.Validate(accountID) != nil {
		return nil, nil
	}
	return s.cfg.Nodes.List(ctx, accountID)
}

// DeregisterNode retires a node for good: its next heartbeat or call is
// refused, the instances it ran are stopped (domain.InstanceStopped for each, in
// the same write), and domain.NodeDeregistered has the CA revoke its certificate
// and those of the enclaves it obtained certificates for. Authorization
// (node.deregister) is the gateway's. Deregistering a deregistered node
// changes nothing.
func (s *Service) DeregisterNode(ctx context.Context, accountID, nodeID string, actor audit.Actor) (domain.Node, error) {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.NodeDeregister), Target: nodeID}
	var out domain.Node
	err := retry(ctx, func() error {
		n, err := s.Node(ctx, accountID, nodeID)
		if err != nil || n.Status == domain.StatusDeregistered {
			out = n
			return err
		}
		n.Status, n.StatusReason = domain.StatusDeregistered, "deregistered"
		if actor.Email != "" {
			n.StatusReason = "deregistered by " + actor.Email
		}
		evs := statusChanged(&n, true)
		out, err = s.cfg.Nodes.Update(ctx, n, append(evs, domain.NodeDeregistered{Node: n, Audit: entry})...)
		return err
	})
	return out, s.audited(ctx, entry, err)
}

// MarkUntrusted takes a node's trust away (its re-attestation failed, say):
// the node is untrusted, so it can no longer authenticate, the instances it
// ran are stopped (domain.InstanceStopped for each, in the same write), and its
// client certificate is revoked by the CA. Calling it again on an
// untrusted node revokes again, which finishes a revocation that failed
// the first time.
func (s *Service) MarkUntrusted(ctx context.Context, accountID, nodeID, reason string) (domain.Node, error) {
	var out domain.Node
	err := retry(ctx, func() error {
		n, err := s.Node(ctx, accountID, nodeID)
		if err != nil {
			return err
		}
		if n.Status == domain.StatusUntrusted {
			out = n
			return nil
		}
		if !n.Status.CanMoveTo(domain.StatusUntrusted) {
			return errs.Newf(errs.Conflict, "the node is %s", n.Status)
		}
		n.Status, n.StatusReason = domain.StatusUntrusted, reason
		evs := statusChanged(&n, true)
		evs[0] = domain.NodeStatusChanged{Node: n, Audit: &audit.Entry{AccountID: n.AccountID, Actor: audit.System, Action: "node.untrust",
			Target: n.ID, Cause: reason}}
		out, err = s.cfg.Nodes.Update(ctx, n, evs...)
		return err
	})
	if err != nil {
		return domain.Node{}, err
	}
	return out, s.revokeUntrusted(ctx, out, reason)
}

// revokeUntrusted has the CA revoke the certificate of a node marked
// untrusted for reason.
func (s *Service) revokeUntrusted(ctx context.Context, n domain.Node, reason string) error {
	why := "node untrusted"
	if reason != "" {
		why += ": " + reason
	}
	if len(why) > maxReason {
		why = strings.ToValidUTF8(why[:maxReason], "")
	}
	if err := s.cfg.CA.RevokeCertificate(ctx, n.AccountID, n.CertificateSerial, why); err != nil {
		return fmt.Errorf("revoking the untrusted node's certificate: %w", err)
	}
	return nil
}

// maxReason is the longest revocation reason the CA takes.
const maxReason = 200

// Sweep marks unreachable the active nodes that sent no heartbeat for the
// heartbeat timeout, and untrusted (stopping their instances and revoking
// their certificates) the live attested nodes that did not re-attest
// within the period and its grace; it returns how many it marked. Every
// replica may run it: each change is a conditional write, a node written
// meanwhile (a heartbeat, a re-attestation, another replica's sweep) is
// left alone, and only the replica whose write took revokes.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	nodes, err := s.cfg.Nodes.All(ctx)
	if err != nil {
		return 0, err
	}
	now := s.now()
	marked := 0
	var failures []error
	for _, n := range nodes {
		overdue := n.Attested && n.Status.Live() && now.Sub(n.LastAttested) > s.reattestDeadline()
		silent := now.Sub(n.LastSeen())
		switch {
		case overdue:
			n.Status, n.StatusReason = domain.StatusUntrusted, reasonOverdue
		case n.Status == domain.StatusActive && silent >= s.cfg.HeartbeatTimeout:
			n.Status, n.StatusReason = domain.StatusUnreachable, fmt.Sprintf("no heartbeat for %s", silent.Truncate(time.Second))
		default:
			continue
		}
		out, err := s.cfg.Nodes.Update(ctx, n, statusChanged(&n, overdue)...)
		switch {
		case err == nil:
			marked++
			if overdue {
				if err := s.revokeUntrusted(ctx, out, reasonOverdue); err != nil {
					failures = append(failures, fmt.Errorf("node %s: %w", out.ID, err))
				}
			}
		case errors.Is(err, domain.ErrConcurrentChange), errors.Is(err, domain.ErrNodeNotFound):
		default:
			failures = append(failures, err)
		}
	}
	return marked, errors.Join(failures...)
}

// statusChanged returns the events of n's new status: domain.NodeStatusChanged
// and, when stop (the node is deregistered or untrusted), domain.InstanceStopped
// for each instance it ran, which it marks stopped in n first, so that
// they are written with the status.
func statusChanged(n *domain.Node, stop bool) []domain.Event {
	var stopped []domain.Instance
	if stop {
		stopped = n.StopInstances()
	}
	evs := []domain.Event{domain.NodeStatusChanged{Node: *n}}
	for _, in := range stopped {
		evs = append(evs, domain.InstanceStopped{AccountID: n.AccountID, NodeID: n.ID, Instance: in})
	}
	return evs
}

// reasonOverdue is why the sweep untrusts an attested node.
const reasonOverdue = "re-attestation overdue"
