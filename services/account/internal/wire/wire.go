// Package wire converts the account service's domain values and events
// to their protobuf forms, for its endpoints and its events alike.
package wire

import (
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	eventsv1 "github.com/cloister-cc/cloister/libs/gen/cloister/events/v1"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// Event is an event's wire form: its account and protobuf form; an audit
// entry goes to the AUDIT stream's subject of its account.
func Event(ev domain.Event) events.Outgoing {
	switch e := ev.(type) {
	case domain.AccountCreated:
		return events.Outgoing{AccountID: e.Account.ID, Payload: &accountv1.AccountCreated{Account: AccountToProto(e.Account, "")}}
	case domain.AccountUpdated:
		return events.Outgoing{AccountID: e.Account.ID, Payload: &accountv1.AccountUpdated{Account: AccountToProto(e.Account, "")}}
	case domain.AccountDeleted:
		return events.Outgoing{AccountID: e.AccountID, Payload: &accountv1.AccountDeleted{AccountId: e.AccountID}}
	case domain.UserSignedUp:
		return events.Outgoing{Payload: &accountv1.UserSignedUp{User: UserToProto(e.User)}}
	case domain.MemberChanged:
		return events.Outgoing{AccountID: e.AccountID, Payload: &accountv1.MemberChanged{AccountId: e.AccountID, UserId: e.UserID, Role: string(e.Role)}}
	case domain.SessionRevoked:
		return events.Outgoing{Payload: &accountv1.SessionRevoked{UserId: e.UserID, TokenHash: e.TokenHash}}
	case domain.APIKeyRevoked:
		return events.Outgoing{AccountID: e.AccountID, Payload: &accountv1.APIKeyRevoked{AccountId: e.AccountID, KeyId: e.KeyID, TokenHash: e.TokenHash}}
	case domain.TaskCreated:
		return events.Outgoing{AccountID: e.Task.AccountID, Payload: &accountv1.TaskCreated{Task: TaskToProto(e.Task)}}
	case domain.TaskApproved:
		return events.Outgoing{AccountID: e.Task.AccountID, Payload: &accountv1.TaskApproved{Task: TaskToProto(e.Task)}}
	case domain.TaskDenied:
		return events.Outgoing{AccountID: e.Task.AccountID, Payload: &accountv1.TaskDenied{Task: TaskToProto(e.Task)}}
	case domain.TaskWithdrawn:
		return events.Outgoing{AccountID: e.Task.AccountID, Payload: &accountv1.TaskWithdrawn{Task: TaskToProto(e.Task)}}
	case domain.Audited:
		return events.Outgoing{AccountID: e.Entry.AccountID, Payload: AuditToProto(e.Entry), Subject: events.AuditSubject(e.Entry.AccountID, accountv1.AccountServiceName)}
	}
	panic(fmt.Sprintf("wire: no wire form for event %T", ev))
}

// AuditToProto converts an audit entry.
func AuditToProto(e domain.AuditEntry) *eventsv1.AuditRecord {
	return &eventsv1.AuditRecord{
		ActorUserId: e.Actor.UserID, ActorEmail: e.Actor.Email, ActorCredential: string(e.Actor.Credential),
		ActorCredentialId: e.Actor.CredentialID,
		Action:            e.Action, Target: e.Target, Outcome: e.Outcome, Error: e.Error, Cause: e.Cause,
	}
}

// UserToProto converts a user, leaving out its password hash.
func UserToProto(u domain.User) *accountv1.User {
	return &accountv1.User{Id: u.ID, Email: u.Email, CreatedAt: timestamppb.New(u.CreatedAt)}
}

// AccountToProto converts an account as seen by a member with role.
func AccountToProto(a domain.Account, role domain.Role) *accountv1.Account {
	return &accountv1.Account{Id: a.ID, Name: a.Name, Description: a.Description,
		CreatedAt: timestamppb.New(a.CreatedAt), UpdatedAt: timestamppb.New(a.UpdatedAt),
		CreatedBy: a.CreatedBy, Role: string(role), ApprovalsRequired: uint32(a.ApprovalsRequired), SecretsNeedApproval: a.SecretsNeedApproval}
}

// TaskToProto converts a task.
func TaskToProto(t domain.Task) *accountv1.Task {
	out := &accountv1.Task{Id: t.ID, AccountId: t.AccountID, Kind: string(t.Kind), Status: string(t.Status),
		RequesterId: t.RequesterID, AppId: t.AppID, Domain: t.Domain,
		CreatedAt: timestamppb.New(t.CreatedAt), UpdatedAt: timestamppb.New(t.UpdatedAt),
		ApprovalsCounted: uint32(t.Counted), ApprovalsRequired: uint32(t.Required),
		NewApprovalsRequired: uint32(t.NewQuorum), Applied: t.Applied}
	if g := t.Admin; g != nil {
		out.AdminUserId, out.AdminEmail = g.UserID, g.Email
	}
	if c := t.Secret; c != nil {
		out.Secret = &accountv1.TaskSecret{Name: c.Name, Version: c.Version, Size: c.Size, VersionId: c.VersionID}
	}
	if im := t.Image; im != nil {
		out.Image = &accountv1.TaskImage{ImageId: im.ImageID, Tag: im.Tag, Mrenclave: im.MRENCLAVE, Mrsigner: im.MRSIGNER,
			Isvprodid: im.ISVProdID, Isvsvn: im.ISVSVN}
	}
	for _, a := range t.Approvals {
		out.Approvals = append(out.Approvals, &accountv1.TaskApproval{UserId: a.UserID, At: timestamppb.New(a.At)})
	}
	return out
}
