// Package client names the account service's API over NATS for its peers
// and its server: the method table and the typed client are generated
// from proto/cloister/account/v1 into libs/gen by protoc-gen-natsrpc
// (`make proto`); these are their short names.
package client

import (
	"github.com/nats-io/nats.go"

	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
)

// Service is the name of the service on the wire.
const Service = accountv1.AccountServiceName

// The methods, one per request subject cloister.account.v1.<Name>.
var (
	SignUp        = accountv1.AccountSignUp
	Login         = accountv1.AccountLogin
	Logout        = accountv1.AccountLogout
	Authenticate  = accountv1.AccountAuthenticate
	CreateAccount = accountv1.AccountCreateAccount
	ListAccounts  = accountv1.AccountListAccounts
	GetAccount    = accountv1.AccountGetAccount
	UpdateAccount = accountv1.AccountUpdateAccount
	DeleteAccount = accountv1.AccountDeleteAccount
	AddMember     = accountv1.AccountAddMember
	ListMembers   = accountv1.AccountListMembers
	RemoveMember  = accountv1.AccountRemoveMember
	SetMemberRole = accountv1.AccountSetMemberRole
	CreateAPIKey  = accountv1.AccountCreateAPIKey
	ListAPIKeys   = accountv1.AccountListAPIKeys
	RevokeAPIKey  = accountv1.AccountRevokeAPIKey
	ListAudit     = accountv1.AccountListAudit
	Authorize     = accountv1.AccountAuthorize
	ListTasks     = accountv1.AccountListTasks
	GetTask       = accountv1.AccountGetTask
	ApproveTask   = accountv1.AccountApproveTask
	DenyTask      = accountv1.AccountDenyTask
	WithdrawTask  = accountv1.AccountWithdrawTask
)

// Client calls the account service over NATS.
type Client = accountv1.AccountClient

// New returns a client on nc.
func New(nc *nats.Conn) *Client { return accountv1.NewAccountClient(nc) }
