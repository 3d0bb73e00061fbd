package authz_test

import (
	"testing"

	"github.com/cloister-cc/cloister/libs/authz"
)

// TestRoles pins the model: what only an admin may do, what a member may
// change, and that an auditor changes nothing but may read the audit log.
func TestRoles(t *testing.T) {
	adminOnly := []authz.Action{authz.AccountUpdate, authz.AccountDelete, authz.MemberAdd, authz.MemberSetRole, authz.MemberRemove,
		authz.TaskApprove, authz.TaskDeny, authz.TaskWithdraw, authz.AttestationPolicySet, authz.CARotate, authz.CertRevoke}
	for _, a := range adminOnly {
		if !authz.Allows(authz.RoleAdmin, a) || authz.Allows(authz.RoleMember, a) || authz.Allows(authz.RoleAuditor, a) {
			t.Errorf("%s: want admins only", a)
		}
	}
	for _, a := range []authz.Action{authz.AppCreate, authz.ImageConvert, authz.NodeTokenCreate, authz.NodeDeregister, authz.RegistryPut} {
		if !authz.Allows(authz.RoleMember, a) || authz.Allows(authz.RoleAuditor, a) {
			t.Errorf("%s: want members and not auditors", a)
		}
	}
	if !authz.Allows(authz.RoleAuditor, authz.AuditList) || authz.Allows(authz.RoleMember, authz.AuditList) {
		t.Error("the audit log is for auditors and admins")
	}
	for _, role := range []string{"", "root", "Admin"} {
		if authz.ValidRole(role) || authz.Allows(role, authz.AccountGet) {
			t.Errorf("role %q is accepted", role)
		}
	}
}

// TestHashToken: the hex SHA-256 of the whole token, as sha256sum prints
// it for "cls_x".
func TestHashToken(t *testing.T) {
	if got, want := authz.HashToken("cls_x"), "ddc5d5d3c328d286043086c85b417e5b818fa553f79dc900f095ce127680edcd"; got != want {
		t.Fatalf("HashToken = %q, want %q", got, want)
	}
}
