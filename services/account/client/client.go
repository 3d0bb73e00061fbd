// Package client is the account service's API over NATS: its method table,
// shared with the server, and a typed client for the gateway and peers.
package client

import (
	"context"

	"github.com/nats-io/nats.go"

	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
)

// Service is the name of the service on the wire.
const Service = "account"

// The methods, one per request subject cloister.account.v1.<Name>.
var (
	SignUp        = natsrpc.NewMethod[*accountv1.SignUpRequest, *accountv1.SignUpResponse](Service, "SignUp")
	Login         = natsrpc.NewMethod[*accountv1.LoginRequest, *accountv1.LoginResponse](Service, "Login")
	Logout        = natsrpc.NewMethod[*accountv1.LogoutRequest, *accountv1.LogoutResponse](Service, "Logout")
	Authenticate  = natsrpc.NewMethod[*accountv1.AuthenticateRequest, *accountv1.AuthenticateResponse](Service, "Authenticate")
	CreateAccount = natsrpc.NewMethod[*accountv1.CreateAccountRequest, *accountv1.CreateAccountResponse](Service, "CreateAccount")
	ListAccounts  = natsrpc.NewMethod[*accountv1.ListAccountsRequest, *accountv1.ListAccountsResponse](Service, "ListAccounts")
	GetAccount    = natsrpc.NewMethod[*accountv1.GetAccountRequest, *accountv1.GetAccountResponse](Service, "GetAccount")
	UpdateAccount = natsrpc.NewMethod[*accountv1.UpdateAccountRequest, *accountv1.UpdateAccountResponse](Service, "UpdateAccount")
	DeleteAccount = natsrpc.NewMethod[*accountv1.DeleteAccountRequest, *accountv1.DeleteAccountResponse](Service, "DeleteAccount")
	AddMember     = natsrpc.NewMethod[*accountv1.AddMemberRequest, *accountv1.AddMemberResponse](Service, "AddMember")
	ListMembers   = natsrpc.NewMethod[*accountv1.ListMembersRequest, *accountv1.ListMembersResponse](Service, "ListMembers")
	RemoveMember  = natsrpc.NewMethod[*accountv1.RemoveMemberRequest, *accountv1.RemoveMemberResponse](Service, "RemoveMember")
	SetMemberRole = natsrpc.NewMethod[*accountv1.SetMemberRoleRequest, *accountv1.SetMemberRoleResponse](Service, "SetMemberRole")
	CreateAPIKey  = natsrpc.NewMethod[*accountv1.CreateAPIKeyRequest, *accountv1.CreateAPIKeyResponse](Service, "CreateAPIKey")
	ListAPIKeys   = natsrpc.NewMethod[*accountv1.ListAPIKeysRequest, *accountv1.ListAPIKeysResponse](Service, "ListAPIKeys")
	RevokeAPIKey  = natsrpc.NewMethod[*accountv1.RevokeAPIKeyRequest, *accountv1.RevokeAPIKeyResponse](Service, "RevokeAPIKey")
	ListAudit     = natsrpc.NewMethod[*accountv1.ListAuditRequest, *accountv1.ListAuditResponse](Service, "ListAudit")
	Authorize     = natsrpc.NewMethod[*accountv1.AuthorizeRequest, *accountv1.AuthorizeResponse](Service, "Authorize")
	ListTasks     = natsrpc.NewMethod[*accountv1.ListTasksRequest, *accountv1.ListTasksResponse](Service, "ListTasks")
	GetTask       = natsrpc.NewMethod[*accountv1.GetTaskRequest, *accountv1.GetTaskResponse](Service, "GetTask")
	ApproveTask   = natsrpc.NewMethod[*accountv1.TaskActionRequest, *accountv1.TaskActionResponse](Service, "ApproveTask")
	DenyTask      = natsrpc.NewMethod[*accountv1.TaskActionRequest, *accountv1.TaskActionResponse](Service, "DenyTask")
	WithdrawTask  = natsrpc.NewMethod[*accountv1.TaskActionRequest, *accountv1.TaskActionResponse](Service, "WithdrawTask")
)

// Client calls the account service over NATS. Errors keep the kind the
// service gave them (errs.KindOf).
type Client struct{ nc *nats.Conn }

// New returns a client on nc.
func New(nc *nats.Conn) *Client { return &Client{nc: nc} }

func (c *Client) SignUp(ctx context.Context, r *accountv1.SignUpRequest) (*accountv1.SignUpResponse, error) {
	return SignUp.Invoke(ctx, c.nc, r)
}
func (c *Client) Login(ctx context.Context, r *accountv1.LoginRequest) (*accountv1.LoginResponse, error) {
	return Login.Invoke(ctx, c.nc, r)
}
func (c *Client) Logout(ctx context.Context, r *accountv1.LogoutRequest) (*accountv1.LogoutResponse, error) {
	return Logout.Invoke(ctx, c.nc, r)
}
func (c *Client) Authenticate(ctx context.Context, r *accountv1.AuthenticateRequest) (*accountv1.AuthenticateResponse, error) {
	return Authenticate.Invoke(ctx, c.nc, r)
}
func (c *Client) CreateAccount(ctx context.Context, r *accountv1.CreateAccountRequest) (*accountv1.CreateAccountResponse, error) {
	return CreateAccount.Invoke(ctx, c.nc, r)
}
func (c *Client) ListAccounts(ctx context.Context, r *accountv1.ListAccountsRequest) (*accountv1.ListAccountsResponse, error) {
	return ListAccounts.Invoke(ctx, c.nc, r)
}
func (c *Client) GetAccount(ctx context.Context, r *accountv1.GetAccountRequest) (*accountv1.GetAccountResponse, error) {
	return GetAccount.Invoke(ctx, c.nc, r)
}
func (c *Client) UpdateAccount(ctx context.Context, r *accountv1.UpdateAccountRequest) (*accountv1.UpdateAccountResponse, error) {
	return UpdateAccount.Invoke(ctx, c.nc, r)
}
func (c *Client) DeleteAccount(ctx context.Context, r *accountv1.DeleteAccountRequest) (*accountv1.DeleteAccountResponse, error) {
	return DeleteAccount.Invoke(ctx, c.nc, r)
}
func (c *Client) AddMember(ctx context.Context, r *accountv1.AddMemberRequest) (*accountv1.AddMemberResponse, error) {
	return AddMember.Invoke(ctx, c.nc, r)
}
func (c *Client) ListMembers(ctx context.Context, r *accountv1.ListMembersRequest) (*accountv1.ListMembersResponse, error) {
	return ListMembers.Invoke(ctx, c.nc, r)
}
func (c *Client) RemoveMember(ctx context.Context, r *accountv1.RemoveMemberRequest) (*accountv1.RemoveMemberResponse, error) {
	return RemoveMember.Invoke(ctx, c.nc, r)
}
func (c *Client) SetMemberRole(ctx context.Context, r *accountv1.SetMemberRoleRequest) (*accountv1.SetMemberRoleResponse, error) {
	return SetMemberRole.Invoke(ctx, c.nc, r)
}
func (c *Client) CreateAPIKey(ctx context.Context, r *accountv1.CreateAPIKeyRequest) (*accountv1.CreateAPIKeyResponse, error) {
	return CreateAPIKey.Invoke(ctx, c.nc, r)
}
func (c *Client) ListAPIKeys(ctx context.Context, r *accountv1.ListAPIKeysRequest) (*accountv1.ListAPIKeysResponse, error) {
	return ListAPIKeys.Invoke(ctx, c.nc, r)
}
func (c *Client) RevokeAPIKey(ctx context.Context, r *accountv1.RevokeAPIKeyRequest) (*accountv1.RevokeAPIKeyResponse, error) {
	return RevokeAPIKey.Invoke(ctx, c.nc, r)
}
func (c *Client) ListAudit(ctx context.Context, r *accountv1.ListAuditRequest) (*accountv1.ListAuditResponse, error) {
	return ListAudit.Invoke(ctx, c.nc, r)
}
func (c *Client) Authorize(ctx context.Context, r *accountv1.AuthorizeRequest) (*accountv1.AuthorizeResponse, error) {
	return Authorize.Invoke(ctx, c.nc, r)
}
func (c *Client) ListTasks(ctx context.Context, r *accountv1.ListTasksRequest) (*accountv1.ListTasksResponse, error) {
	return ListTasks.Invoke(ctx, c.nc, r)
}
func (c *Client) GetTask(ctx context.Context, r *accountv1.GetTaskRequest) (*accountv1.GetTaskResponse, error) {
	return GetTask.Invoke(ctx, c.nc, r)
}

// ApproveTask, DenyTask and WithdrawTask are the admins' decisions on a task.
func (c *Client) ApproveTask(ctx context.Context, r *accountv1.TaskActionRequest) (*accountv1.TaskActionResponse, error) {
	return ApproveTask.Invoke(ctx, c.nc, r)
}
func (c *Client) DenyTask(ctx context.Context, r *accountv1.TaskActionRequest) (*accountv1.TaskActionResponse, error) {
	return DenyTask.Invoke(ctx, c.nc, r)
}
func (c *Client) WithdrawTask(ctx context.Context, r *accountv1.TaskActionRequest) (*accountv1.TaskActionResponse, error) {
	return WithdrawTask.Invoke(ctx, c.nc, r)
}
