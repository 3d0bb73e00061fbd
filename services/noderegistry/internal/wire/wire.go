// Package wire converts the node registry's domain values to and from
// their protobuf forms, for its endpoints and its events alike.
package wire

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"fmt"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/events"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/domain"
)

// TokenToProto converts a join token; its hash stays in the registry.
func TokenToProto(t domain.JoinToken) *noderegistryv1.JoinToken {
	return &noderegistryv1.JoinToken{Id: t.ID, AccountId: t.AccountID, Name: t.Name, Labels: t.Labels,
		ExpiresAt: timestamppb.New(t.ExpiresAt), MaxUses: t.MaxUses, Uses: t.Uses, Revoked: t.Revoked,
		RequireAttestation: t.RequireAttestation, CreatedAt: timestamppb.New(t.CreatedAt), CreatedBy: t.CreatedBy}
}

// TokenRefFromProto reads the lookup entry of a token from its wire form.
func TokenRefFromProto(t *noderegistryv1.JoinToken) domain.TokenRef {
	return domain.TokenRef{AccountID: t.GetAccountId(), TokenID: t.GetId(), ExpiresAt: t.GetExpiresAt().AsTime(), Revoked: t.GetRevoked()}
}

// NodeToProto converts a node.
func NodeToProto(n domain.Node) *noderegistryv1.Node {
	out := &noderegistryv1.Node{Id: n.ID, AccountId: n.AccountID, Name: n.Name, Labels: n.Labels, Status: string(n.Status),
		StatusReason: n.StatusReason, JoinTokenId: n.JoinTokenID, CertificateSerial: n.CertificateSerial, Attested: n.Attested,
		VerdictId: n.VerdictID, Simulated: n.Simulated, Tee: n.TEE, Measurement: n.Measurement, EnrolledAt: timestamppb.New(n.EnrolledAt),
		LastHeartbeat: optionalTime(n.LastHeartbeat), LastAttested: optionalTime(n.LastAttested)}
	for _, in := range n.Instances {
		out.Instances = append(out.Instances, InstanceToProto(in))
	}
	return out
}

// InstanceToProto converts an instance.
func InstanceToProto(in domain.Instance) *noderegistryv1.Instance {
	return &noderegistryv1.Instance{Id: in.ID, AppId: in.AppID, ImageId: in.ImageID, Mrenclave: in.MRENCLAVE, Status: in.Status,
		StartedAt: optionalTime(in.StartedAt), LastSeen: optionalTime(in.LastSeen), CertificateSerial: in.CertificateSerial}
}

// InstancesFromProto reads what a heartbeat reports.
func InstancesFromProto(ps []*noderegistryv1.Instance) []domain.Instance {
	out := make([]domain.Instance, 0, len(ps))
	for _, p := range ps {
		in := domain.Instance{ID: p.GetId(), AppID: p.GetAppId(), ImageID: p.GetImageId(), MRENCLAVE: p.GetMrenclave(), Status: p.GetStatus(),
			CertificateSerial: p.GetCertificateSerial()}
		if p.GetStartedAt() != nil {
			in.StartedAt = p.GetStartedAt().AsTime()
		}
		out = append(out, in)
	}
	return out
}

func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// Event is an event's wire form: its account, protobuf form and, when a
// person caused it, audit record.
func Event(ev domain.Event) events.Outgoing {
	switch e := ev.(type) {
	case domain.TokenCreated:
		return events.Outgoing{AccountID: e.Token.AccountID, Payload: &noderegistryv1.JoinTokenCreated{Token: TokenToProto(e.Token)}, Audit: byPerson(&e.Audit)}
	case domain.TokenRevoked:
		return events.Outgoing{AccountID: e.Token.AccountID, Payload: &noderegistryv1.JoinTokenRevoked{Token: TokenToProto(e.Token), TokenHash: e.Token.Hash}, Audit: byPerson(&e.Audit)}
	case domain.NodeEnrolled:
		return events.Outgoing{AccountID: e.Node.AccountID, Payload: &noderegistryv1.NodeEnrolled{Node: NodeToProto(e.Node)}, Audit: &e.Audit}
	case domain.NodeStatusChanged:
		return events.Outgoing{AccountID: e.Node.AccountID, Payload: &noderegistryv1.NodeStatusChanged{Node: NodeToProto(e.Node)}, Audit: e.Audit}
	case domain.NodeDeregistered:
		return events.Outgoing{AccountID: e.Node.AccountID, Payload: &noderegistryv1.NodeDeregistered{AccountId: e.Node.AccountID, NodeId: e.Node.ID}, Audit: byPerson(&e.Audit)}
	case domain.InstanceStarted:
		return events.Outgoing{AccountID: e.AccountID, Payload: &noderegistryv1.InstanceStarted{AccountId: e.AccountID, NodeId: e.NodeID, Instance: InstanceToProto(e.Instance)}}
	case domain.InstanceStopped:
		return events.Outgoing{AccountID: e.AccountID, Payload: &noderegistryv1.InstanceStopped{AccountId: e.AccountID, NodeId: e.NodeID, Instance: InstanceToProto(e.Instance)}}
	}
	panic(fmt.Sprintf("wire: no wire form for event %T", ev))
}

// byPerson is rec if a person made the change; a change the service made
// on its own is not audited.
func byPerson(rec *audit.Entry) *audit.Entry {
	if rec == nil || rec.Actor.UserID == "" {
		return nil
	}
	return rec
}
