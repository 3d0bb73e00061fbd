package authz_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cloister-cc/cloister/libs/authz"
)

// TestRolesTableIsAuthz holds the roles table of docs/architecture.md to
// authz: every action but account creation has one row, and each cell
// says what Allows says.
func TestRolesTableIsAuthz(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- roles table: checked by libs/authz TestRolesTableIsAuthz -->")
	table, _, ok2 := strings.Cut(rest, "<!-- end of roles table -->")
	if !ok || !ok2 {
		t.Fatal("docs/architecture.md has no marked roles table")
	}
	header := regexp.MustCompile(`(?m)^\| action \| admin \| member \| auditor \|$`)
	if !header.MatchString(table) {
		t.Fatalf("the roles table's columns are not action, admin, member, auditor:\n%s", table)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z.]+)` \\| (yes|no) \\| (yes|no) \\| (yes|no) \\|$")
	seen := map[authz.Action]bool{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		a := authz.Action(m[1])
		if seen[a] {
			t.Errorf("%s has two rows", a)
		}
		seen[a] = true
		for i, role := range []string{authz.RoleAdmin, authz.RoleMember, authz.RoleAuditor} {
			if doc, code := m[2+i] == "yes", authz.Allows(role, a); doc != code {
				t.Errorf("%s by %s: the table says %s, authz allows: %v", a, role, m[2+i], code)
			}
		}
	}
	for _, a := range authz.Actions {
		if !seen[a] && a != authz.AccountCreate {
			t.Errorf("%s has no row in the roles table", a)
		}
		delete(seen, a)
	}
	for a := range seen {
		t.Errorf("the roles table names %s, which is no action", a)
	}
}
