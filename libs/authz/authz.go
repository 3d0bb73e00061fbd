// Package authz is Cloister's authorization model as data: the actions an
// account's members may take, the roles, what each role allows, and the
// forms of the credentials that identify them. The account service
// decides with it, the gateway declares each route's action with it, and
// a test of the gateway holds every route to it for every role.
package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
)

// Action is something done in an account, named "object.verb".
type Action string

// The actions. Account creation is audited but needs no role: any user
// may create an account.
const (
	AccountCreate Action = "account.create"
	AccountGet    Action = "account.get"
	AccountUpdate Action = "account.update"
	AccountDelete Action = "account.delete"

	MemberList    Action = "member.list"
	MemberAdd     Action = "member.add"
	MemberSetRole Action = "member.role"
	MemberRemove  Action = "member.remove"

	APIKeyCreate Action = "apikey.create"
	APIKeyList   Action = "apikey.list"
	APIKeyRevoke Action = "apikey.revoke"

	AuditList Action = "audit.list"

	TaskList     Action = "task.list"
	TaskGet      Action = "task.get"
	TaskApprove  Action = "task.approve"
	TaskDeny     Action = "task.deny"
	TaskWithdraw Action = "task.withdraw"

	AttestationPolicyGet Action = "attestation.policy.get"
	AttestationPolicySet Action = "attestation.policy.set"
	AttestationVerify    Action = "attestation.verify"

	CAGet      Action = "ca.get"
	CARotate   Action = "ca.rotate"
	CertList   Action = "cert.list"
	CertRevoke Action = "cert.revoke"

	AppList       Action = "app.list"
	AppCreate     Action = "app.create"
	AppUpdate     Action = "app.update"
	AppDelete     Action = "app.delete"
	SigningKeyGet Action = "signingkey.get"

	ImageConvert Action = "image.convert"
	ImageList    Action = "image.list"
	ImageDelete  Action = "image.delete"

	RegistryList   Action = "registry.list"
	RegistryPut    Action = "registry.put"
	RegistryDelete Action = "registry.delete"

	// Secrets: their names and versions are read by every member; their
	// values are set and deleted by admins only and read by nobody (an
	// attested enclave is given them); a volume key is exported by an
	// admin, for backup.
	SecretList      Action = "secret.list"
	SecretSet       Action = "secret.set"
	SecretDelete    Action = "secret.delete"
	VolumeKeyExport Action = "volume.key.export"

	NodeTokenCreate Action = "node.token.create"
	NodeTokenList   Action = "node.token.list"
	NodeTokenRevoke Action = "node.token.revoke"
	NodeList        Action = "node.list"
	NodeDeregister  Action = "node.deregister"
)

// Actions are every action, in the order above.
var Actions = []Action{
	AccountCreate,
	AccountGet,
	AccountUpdate,
	AccountDelete,
	MemberList,
	MemberAdd,
	MemberSetRole,
	MemberRemove,
	APIKeyCreate,
	APIKeyList,
	APIKeyRevoke,
	AuditList,
	TaskList,
	TaskGet,
	TaskApprove,
	TaskDeny,
	TaskWithdraw,
	AttestationPolicyGet,
	AttestationPolicySet,
	AttestationVerify,
	CAGet,
	CARotate,
	CertList,
	CertRevoke,
	AppList,
	AppCreate,
	AppUpdate,
	AppDelete,
	SigningKeyGet,
	ImageConvert,
	ImageList,
	ImageDelete,
	RegistryList,
	RegistryPut,
	RegistryDelete,
	SecretList,
	SecretSet,
	SecretDelete,
	VolumeKeyExport,
	NodeTokenCreate,
	NodeTokenList,
	NodeTokenRevoke,
	NodeList,
	NodeDeregister,
}

// The roles of an account's members.
const (
	RoleAdmin   = "admin"   // everything, including members, the CA and approvals
	RoleMember  = "member"  // apps, images, registries, nodes; reads the rest
	RoleAuditor = "auditor" // reads everything, including the audit log
)

// Roles are the roles, most powerful first.
var Roles = []string{RoleAdmin, RoleMember, RoleAuditor}

// reads are what every member may do, whatever its role.
var reads = []Action{
	AccountGet, MemberList, APIKeyCreate, APIKeyList, APIKeyRevoke, TaskList, TaskGet,
	AttestationPolicyGet, CAGet, CertList, AppList, SigningKeyGet, ImageList, RegistryList, SecretList,
	NodeTokenList, NodeList,
}

// allowed is what each role other than admin may do; an admin may do
// everything.
var allowed = map[string][]Action{
	RoleMember: append(slices.Clone(reads),
		AttestationVerify, AppCreate, AppUpdate, AppDelete, ImageConvert, ImageDelete,
		RegistryPut, RegistryDelete, NodeTokenCreate, NodeTokenRevoke, NodeDeregister),
	RoleAuditor: append(slices.Clone(reads), AuditList),
}

// Allows reports whether role may take action. An unknown role may do
// nothing.
func Allows(role string, action Action) bool {
	if role == RoleAdmin {
		return true
	}
	return slices.Contains(allowed[role], action)
}

// ValidRole reports whether role is one of Roles.
func ValidRole(role string) bool { return slices.Contains(Roles, role) }

// Credentials: their prefixes tell them apart at a glance (and to secret
// scanners), and they are stored and cached only as HashToken.
const (
	SessionPrefix   = "cls_" // a session: cls_<secret>
	APIKeyPrefix    = "clk_" // an API key: clk_<key id>_<secret>
	JoinTokenPrefix = "cjt_" // a node's join token: cjt_<secret>
)

// HashToken is the form in which a credential is stored and cached: the
// hex SHA-256 of the whole token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
