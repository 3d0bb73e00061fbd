package gateway_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/authz"
)

// TestEveryRouteForEveryRole holds every route of an account to authz's
// table: for each role, a route answers 403 exactly when the role does
// not allow the route's action, and a stranger gets 404 on every one.
// Every route under /v1/accounts/{account_id} must declare its action.
func TestEveryRouteForEveryRole(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	_, member := s.user("member@example.com")
	_, auditor := s.user("auditor@example.com")
	_, stranger := s.user("stranger@example.com")
	acct := s.account(admin, "A")
	s.account(stranger, "B")
	s.addMember(admin, acct, "member@example.com", authz.RoleMember)
	s.addMember(admin, acct, "auditor@example.com", authz.RoleAuditor)
	tokens := map[string]string{authz.RoleAdmin: admin, authz.RoleMember: member, authz.RoleAuditor: auditor}

	param := regexp.MustCompile(`\{[a-z_]+\}`)
	path := func(pattern string) string {
		return param.ReplaceAllStringFunc(pattern, func(p string) string {
			if p == "{account_id}" {
				return acct
			}
			return uuid.NewString() // a well-formed id of nothing
		})
	}
	var checked int
	var deleteAccount *struct{ method, path string }
	for _, rt := range s.gw.Routes() {
		scoped := strings.HasPrefix(rt.Pattern, "/v1/accounts/{account_id}")
		if scoped && rt.Action == "" {
			t.Errorf("%s %s is a route of an account without an action", rt.Method, rt.Pattern)
		}
		if rt.Action == "" {
			continue
		}
		var body any
		switch {
		case rt.Action == authz.AccountUpdate: // an empty update is refused before anything else
			body = map[string]any{"description": "checked"}
		case rt.Method != "GET" && rt.Method != "DELETE":
			body = map[string]any{}
		}
		p := path(rt.Pattern)
		if r := do(t, s.srv, rt.Method, p, stranger, body); r.status != http.StatusNotFound {
			t.Errorf("stranger: %s %s = %d %s, want 404", rt.Method, rt.Pattern, r.status, r.body)
		}
		for _, role := range []string{authz.RoleAuditor, authz.RoleMember, authz.RoleAdmin} {
			if role == authz.RoleAdmin && rt.Action == authz.AccountDelete {
				deleteAccount = &struct{ method, path string }{rt.Method, p} // last: it ends the account
				continue
			}
			r := do(t, s.srv, rt.Method, p, tokens[role], body)
			if forbidden, allowed := r.status == http.StatusForbidden, authz.Allows(role, rt.Action); forbidden == allowed {
				t.Errorf("%s: %s %s (%s) = %d %s; allowed by authz: %v", role, rt.Method, rt.Pattern, rt.Action, r.status, r.body, allowed)
			}
			checked++
		}
	}
	if deleteAccount == nil {
		t.Fatal("no route deletes an account")
	}
	if r := do(t, s.srv, deleteAccount.method, deleteAccount.path, admin, nil); r.status != http.StatusNoContent {
		t.Errorf("admin: deleting the account = %d %s", r.status, r.body)
	}
	if checked < 100 {
		t.Fatalf("checked %d route × role pairs; the route table lost its actions", checked)
	}
}
