// Package endpoint adapts the account Service to its wire types: each
// method takes a protobuf request, converts it to domain values, calls the
// service and converts the result back. Wire types stop here.
package endpoint

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloister-cc/cloister/libs/authz"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/reply"
	"github.com/cloister-cc/cloister/services/account/internal/app"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
	"github.com/cloister-cc/cloister/services/account/internal/wire"
)

// Set holds the service behind its wire-typed methods: it is the
// generated server interface, registered with
// accountv1.RegisterAccountServer.
type Set struct{ svc app.Service }

var _ accountv1.AccountServer = (*Set)(nil)

// New returns the endpoints of svc.
func New(svc app.Service) *Set { return &Set{svc: svc} }

func principal(p *accountv1.Principal) domain.Principal {
	return domain.Principal{
		UserID: p.GetUserId(), Email: p.GetEmail(), Credential: domain.Credential(p.GetCredential()),
		CredentialID: p.GetCredentialId(), AccountID: p.GetAccountId(), ExpiresAt: p.GetExpiresAt().AsTime(),
	}
}

// PrincipalToProto converts an authenticated principal.
func PrincipalToProto(p domain.Principal) *accountv1.Principal {
	return &accountv1.Principal{UserId: p.UserID, Email: p.Email, Credential: string(p.Credential),
		CredentialId: p.CredentialID, AccountId: p.AccountID, ExpiresAt: timestamppb.New(p.ExpiresAt)}
}

func page(p *accountv1.Page) app.Page {
	return app.Page{Limit: int(p.GetLimit()), Cursor: p.GetCursor()}
}

func accountView(v app.AccountView) *accountv1.Account {
	return wire.AccountToProto(v.Account, v.Role)
}

func member(m domain.Member) *accountv1.Member {
	return &accountv1.Member{AccountId: m.AccountID, UserId: m.UserID, Email: m.Email, Role: string(m.Role), AddedAt: timestamppb.New(m.AddedAt)}
}

func apiKey(k domain.APIKey) *accountv1.APIKey {
	return &accountv1.APIKey{Id: k.ID, AccountId: k.AccountID, UserId: k.UserID, Name: k.Name,
		CreatedAt: timestamppb.New(k.CreatedAt), ExpiresAt: timestamppb.New(k.ExpiresAt)}
}

func auditEntry(e domain.AuditEntry) *accountv1.AuditEntry {
	return &accountv1.AuditEntry{Id: e.ID, AccountId: e.AccountID, OccurredAt: timestamppb.New(e.OccurredAt),
		ActorUserId: e.Actor.UserID, ActorEmail: e.Actor.Email, ActorCredential: string(e.Actor.Credential),
		ActorCredentialId: e.Actor.CredentialID,
		Action:            e.Action, Target: e.Target, Outcome: e.Outcome, Error: e.Error, Cause: e.Cause}
}

func (s *Set) SignUp(ctx context.Context, r *accountv1.SignUpRequest) (*accountv1.SignUpResponse, error) {
	u, err := s.svc.SignUp(ctx, r.GetEmail(), r.GetPassword())
	if err != nil {
		return nil, err
	}
	return &accountv1.SignUpResponse{User: wire.UserToProto(u)}, nil
}

func (s *Set) Login(ctx context.Context, r *accountv1.LoginRequest) (*accountv1.LoginResponse, error) {
	token, sess, err := s.svc.Login(ctx, r.GetEmail(), r.GetPassword())
	if err != nil {
		return nil, err
	}
	return &accountv1.LoginResponse{Token: token, ExpiresAt: timestamppb.New(sess.ExpiresAt),
		User: &accountv1.User{Id: sess.UserID, Email: sess.Email}}, nil
}

func (s *Set) Logout(ctx context.Context, r *accountv1.LogoutRequest) (*accountv1.LogoutResponse, error) {
	return &accountv1.LogoutResponse{}, s.svc.Logout(ctx, r.GetToken())
}

func (s *Set) Authenticate(ctx context.Context, r *accountv1.AuthenticateRequest) (*accountv1.AuthenticateResponse, error) {
	p, err := s.svc.Authenticate(ctx, r.GetToken())
	if err != nil {
		return nil, err
	}
	return &accountv1.AuthenticateResponse{Principal: PrincipalToProto(p)}, nil
}

func (s *Set) CreateAccount(ctx context.Context, r *accountv1.CreateAccountRequest) (*accountv1.CreateAccountResponse, error) {
	v, err := s.svc.CreateAccount(ctx, principal(r.GetActor()), r.GetName(), r.GetDescription(), r.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	return &accountv1.CreateAccountResponse{Account: accountView(v)}, nil
}

func (s *Set) ListAccounts(ctx context.Context, r *accountv1.ListAccountsRequest) (*accountv1.ListAccountsResponse, error) {
	vs, next, err := s.svc.ListAccounts(ctx, principal(r.GetActor()), page(r.GetPage()))
	if err != nil {
		return nil, err
	}
	return &accountv1.ListAccountsResponse{Accounts: reply.Map(vs, accountView), NextCursor: next}, nil
}

func (s *Set) GetAccount(ctx context.Context, r *accountv1.GetAccountRequest) (*accountv1.GetAccountResponse, error) {
	v, err := s.svc.GetAccount(ctx, principal(r.GetActor()), r.GetAccountId())
	if err != nil {
		return nil, err
	}
	return &accountv1.GetAccountResponse{Account: accountView(v)}, nil
}

func (s *Set) UpdateAccount(ctx context.Context, r *accountv1.UpdateAccountRequest) (*accountv1.UpdateAccountResponse, error) {
	c := app.AccountChange{Name: r.Name, Description: r.Description, SecretsNeedApproval: r.SecretsNeedApproval}
	if r.ApprovalsRequired != nil {
		n := int(r.GetApprovalsRequired())
		c.ApprovalsRequired = &n
	}
	v, err := s.svc.UpdateAccount(ctx, principal(r.GetActor()), r.GetAccountId(), c)
	if err != nil {
		return nil, err
	}
	return &accountv1.UpdateAccountResponse{Account: accountView(v), Task: optionalTask(v.Task)}, nil
}

func (s *Set) DeleteAccount(ctx context.Context, r *accountv1.DeleteAccountRequest) (*accountv1.DeleteAccountResponse, error) {
	return &accountv1.DeleteAccountResponse{}, s.svc.DeleteAccount(ctx, principal(r.GetActor()), r.GetAccountId())
}

func (s *Set) AddMember(ctx context.Context, r *accountv1.AddMemberRequest) (*accountv1.AddMemberResponse, error) {
	m, t, err := s.svc.AddMember(ctx, principal(r.GetActor()), r.GetAccountId(), r.GetEmail(), r.GetRole())
	if err != nil {
		return nil, err
	}
	return &accountv1.AddMemberResponse{Member: member(m), Task: optionalTask(t)}, nil
}

func (s *Set) ListMembers(ctx context.Context, r *accountv1.ListMembersRequest) (*accountv1.ListMembersResponse, error) {
	ms, next, err := s.svc.ListMembers(ctx, principal(r.GetActor()), r.GetAccountId(), page(r.GetPage()))
	if err != nil {
		return nil, err
	}
	return &accountv1.ListMembersResponse{Members: reply.Map(ms, member), NextCursor: next}, nil
}

func (s *Set) RemoveMember(ctx context.Context, r *accountv1.RemoveMemberRequest) (*accountv1.RemoveMemberResponse, error) {
	return &accountv1.RemoveMemberResponse{}, s.svc.RemoveMember(ctx, principal(r.GetActor()), r.GetAccountId(), r.GetUserId())
}

func (s *Set) SetMemberRole(ctx context.Context, r *accountv1.SetMemberRoleRequest) (*accountv1.SetMemberRoleResponse, error) {
	m, t, err := s.svc.SetMemberRole(ctx, principal(r.GetActor()), r.GetAccountId(), r.GetUserId(), r.GetRole())
	if err != nil {
		return nil, err
	}
	return &accountv1.SetMemberRoleResponse{Member: member(m), Task: optionalTask(t)}, nil
}

func (s *Set) CreateAPIKey(ctx context.Context, r *accountv1.CreateAPIKeyRequest) (*accountv1.CreateAPIKeyResponse, error) {
	k, token, err := s.svc.CreateAPIKey(ctx, principal(r.GetActor()), r.GetAccountId(), r.GetName(), time.Duration(r.GetTtlSeconds())*time.Second)
	if err != nil {
		return nil, err
	}
	return &accountv1.CreateAPIKeyResponse{Key: apiKey(k), Token: token}, nil
}

func (s *Set) ListAPIKeys(ctx context.Context, r *accountv1.ListAPIKeysRequest) (*accountv1.ListAPIKeysResponse, error) {
	ks, next, err := s.svc.ListAPIKeys(ctx, principal(r.GetActor()), r.GetAccountId(), page(r.GetPage()))
	if err != nil {
		return nil, err
	}
	return &accountv1.ListAPIKeysResponse{Keys: reply.Map(ks, apiKey), NextCursor: next}, nil
}

func (s *Set) RevokeAPIKey(ctx context.Context, r *accountv1.RevokeAPIKeyRequest) (*accountv1.RevokeAPIKeyResponse, error) {
	return &accountv1.RevokeAPIKeyResponse{}, s.svc.RevokeAPIKey(ctx, principal(r.GetActor()), r.GetAccountId(), r.GetKeyId())
}

func (s *Set) Authorize(ctx context.Context, r *accountv1.AuthorizeRequest) (*accountv1.AuthorizeResponse, error) {
	role, err := s.svc.Authorize(ctx, principal(r.GetActor()), r.GetAccountId(), authz.Action(r.GetAction()))
	if err != nil {
		return nil, err
	}
	return &accountv1.AuthorizeResponse{Role: string(role)}, nil
}

func (s *Set) ListAudit(ctx context.Context, r *accountv1.ListAuditRequest) (*accountv1.ListAuditResponse, error) {
	p := page(r.GetPage())
	p.NewestFirst = r.GetNewestFirst()
	es, next, err := s.svc.ListAudit(ctx, principal(r.GetActor()), r.GetAccountId(), p)
	if err != nil {
		return nil, err
	}
	return &accountv1.ListAuditResponse{Entries: reply.Map(es, auditEntry), NextCursor: next}, nil
}

func (s *Set) ListTasks(ctx context.Context, r *accountv1.ListTasksRequest) (*accountv1.ListTasksResponse, error) {
	ts, err := s.svc.ListTasks(ctx, principal(r.GetActor()), r.GetAccountId(), r.GetStatus())
	if err != nil {
		return nil, err
	}
	return &accountv1.ListTasksResponse{Tasks: reply.Map(ts, wire.TaskToProto)}, nil
}

func (s *Set) GetTask(ctx context.Context, r *accountv1.GetTaskRequest) (*accountv1.GetTaskResponse, error) {
	t, err := s.svc.GetTask(ctx, principal(r.GetActor()), r.GetAccountId(), r.GetTaskId())
	if err != nil {
		return nil, err
	}
	return &accountv1.GetTaskResponse{Task: wire.TaskToProto(t)}, nil
}

func (s *Set) ApproveTask(ctx context.Context, r *accountv1.TaskActionRequest) (*accountv1.TaskActionResponse, error) {
	return taskAction(ctx, r, s.svc.ApproveTask)
}

func (s *Set) DenyTask(ctx context.Context, r *accountv1.TaskActionRequest) (*accountv1.TaskActionResponse, error) {
	return taskAction(ctx, r, s.svc.DenyTask)
}

func (s *Set) WithdrawTask(ctx context.Context, r *accountv1.TaskActionRequest) (*accountv1.TaskActionResponse, error) {
	return taskAction(ctx, r, s.svc.WithdrawTask)
}

func taskAction(ctx context.Context, r *accountv1.TaskActionRequest,
	do func(ctx context.Context, actor domain.Principal, accountID, taskID string) (domain.Task, error)) (*accountv1.TaskActionResponse, error) {
	t, err := do(ctx, principal(r.GetActor()), r.GetAccountId(), r.GetTaskId())
	if err != nil {
		return nil, err
	}
	return &accountv1.TaskActionResponse{Task: wire.TaskToProto(t)}, nil
}

// optionalTask converts the task a change opened, if it did.
func optionalTask(t *domain.Task) *accountv1.Task {
	if t == nil {
		return nil
	}
	return wire.TaskToProto(*t)
}
