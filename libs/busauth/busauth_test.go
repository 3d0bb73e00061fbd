package busauth_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/cloister-cc/cloister/libs/busauth"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// violations records the permission violations the server reports to a
// connection.
type violations struct {
	mu   sync.Mutex
	seen []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		v.mu.Lock()
		v.seen = append(v.seen, err.Error())
		v.mu.Unlock()
	}
}

func (v *violations) has(subject string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.ContainsFunc(v.seen, func(s string) bool { return strings.Contains(s, `"`+subject+`"`) })
}

func connectAs(t *testing.T, n *testkit.NATS, role string, v *violations) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.URL, append(n.Bus[role].Options(), nats.ErrorHandler(v.handler))...)
	if err != nil {
		t.Fatalf("connecting as %s: %v", role, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestNobodyWithoutAnIdentity: the bus refuses a client without
// credentials, and one whose key it does not know.
func TestNobodyWithoutAnIdentity(t *testing.T) {
	n := testkit.StartNATS(t)
	if nc, err := nats.Connect(n.URL); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous connect: %v, want an authorization violation", err)
	}
	stranger, err := busauth.NewIdentity("account")
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(n.URL, stranger.Options()...); err == nil {
		nc.Close()
		t.Fatal("an unknown key connected")
	}
}

// TestLeastPrivilege: each role is refused what belongs to another, and
// allowed what it needs (so the test fails both ways).
func TestLeastPrivilege(t *testing.T) {
	n := testkit.StartNATS(t)
	refused := []struct {
		role, what, subject string
		subscribe           bool
	}{
		{"imageconverter", "call account.CreateAPIKey", "cloister.account.v1.CreateAPIKey", false},
		{"imageconverter", "call ca.IssueNodeCertificate", "cloister.ca.v1.IssueNodeCertificate", false},
		{"noderegistry", "call ca.RotateIssuer", "cloister.ca.v1.RotateIssuer", false},
		{"imageconverter", "publish the account service's events", "events.account.v1.APIKeyCreated", false},
		{"imageconverter", "write the account service's audit", "audit.acc.account", false},
		{"imageconverter", "write another's KV bucket", "$KV.account_users.u1", false},
		{"imageconverter", "read another's KV bucket", "$JS.API.DIRECT.GET.KV_account_apikeys", false},
		{"imageconverter", "delete another's KV bucket", "$JS.API.STREAM.DELETE.KV_ca_authorities", false},
		{"gateway", "write a KV bucket", "$KV.account_sessions.s1", false},
		{"ca", "serve account's requests", "cloister.account.v1.>", true},
		{"imageconverter", "read the gateway's replies", busauth.InboxPrefix("gateway") + ".>", true},
		{"account", "read every reply", "_INBOX.>", true},
	}
	for _, c := range refused {
		t.Run(c.role+" may not "+c.what, func(t *testing.T) {
			v := &violations{}
			nc := connectAs(t, n, c.role, v)
			if c.subscribe {
				if _, err := nc.SubscribeSync(c.subject); err != nil {
					t.Fatal(err)
				}
			} else if err := nc.Publish(c.subject, []byte("x")); err != nil {
				t.Fatal(err)
			}
			_ = nc.Flush()
			testkit.Eventually(t, 5*time.Second, func() bool { return v.has(c.subject) }, "%s was not refused", c.subject)
		})
	}
	allowed := []struct{ role, subject string }{
		{"noderegistry", "cloister.ca.v1.IssueNodeCertificate"},
		{"gateway", "cloister.account.v1.CreateAPIKey"},
		{"account", "events.account.v1.APIKeyCreated"},
		{"account", "$KV.account_users.u1"},
	}
	for _, c := range allowed {
		t.Run(c.role+" may publish "+c.subject, func(t *testing.T) {
			v := &violations{}
			nc := connectAs(t, n, c.role, v)
			if err := nc.Publish(c.subject, []byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			// A refusal would have arrived before the flush's pong.
			if v.has(c.subject) {
				t.Fatalf("%s was refused", c.subject)
			}
		})
	}
}

// TestConfigIsThePermissions: the nats-server configuration a deployment
// runs with grants each role exactly Role.Permissions, and no one else.
func TestConfigIsThePermissions(t *testing.T) {
	set, err := busauth.NewSet()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := set.Write(dir); err != nil {
		t.Fatal(err)
	}
	if err := set.Write(dir); err == nil {
		t.Fatal("writing identities over existing ones succeeded")
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("listen: 127.0.0.1:-1\ninclude ./"+busauth.AuthFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server does not read the configuration: %v", err)
	}
	if opts.NoAuthUser != "" || len(opts.Users) != 0 {
		t.Fatalf("the configuration lets in more than the roles: %+v %q", opts.Users, opts.NoAuthUser)
	}
	if len(opts.Nkeys) != len(busauth.Roles) {
		t.Fatalf("%d users, want one per role (%d)", len(opts.Nkeys), len(busauth.Roles))
	}
	for _, u := range opts.Nkeys {
		var role busauth.Role
		for name, id := range set {
			if id.Public() == u.Nkey {
				role, _ = busauth.RoleOf(name)
			}
		}
		want := role.Permissions()
		if role.Name == "" || !slices.Equal(u.Permissions.Publish.Allow, want.Publish.Allow) ||
			!slices.Equal(u.Permissions.Subscribe.Allow, want.Subscribe.Allow) || u.Permissions.Response == nil ||
			u.Permissions.Response.MaxMsgs != want.Response.MaxMsgs {
			t.Errorf("user %s (%s): permissions %+v, want %+v", u.Nkey, role.Name, u.Permissions, want)
		}
	}
	info, err := os.Stat(filepath.Join(dir, busauth.SeedFile("gateway")))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("a seed file: %v, mode %v; want 0600", err, info.Mode())
	}
	back, err := busauth.Load(dir, busauth.RoleNames())
	if err != nil || back["ca"].Public() != set["ca"].Public() {
		t.Fatalf("loading the identities back: %v", err)
	}
}
