package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"net/http/httptest"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/ocsp"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/cache"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/gateway"
)

func memory(t *testing.T) cache.Cache { return cacheKinds[0].make(t) }

func TestJourney(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("ada@example.com")
	bobID, _ := s.user("bob@example.com")

	r := do(t, s.srv, "GET", "/v1/users/me", admin, nil)
	var me struct{ Email, Credential string }
	r.decode(t, &me)
	if r.status != 200 || me.Email != "ada@example.com" || me.Credential != "session" {
		t.Fatalf("GET /v1/users/me = %d %s", r.status, r.body)
	}

	acct := s.account(admin, "Payments")
	s.addMember(admin, acct, "Bob@Example.com", "member")

	r = do(t, s.srv, "GET", "/v1/accounts/"+acct+"/members", admin, nil)
	var members struct {
		Items []struct {
			UserID string `json:"user_id"`
			Email  string `json:"email"`
			Role   string `json:"role"`
		} `json:"items"`
	}
	r.decode(t, &members)
	if r.status != 200 || len(members.Items) != 2 {
		t.Fatalf("listing members = %d %s, want 2 members", r.status, r.body)
	}
	found := false
	for _, m := range members.Items {
		found = found || m.UserID == bobID && m.Role == "member" && m.Email == "bob@example.com"
	}
	if !found {
		t.Fatalf("bob is not listed as a member: %s", r.body)
	}

	r = do(t, s.srv, "PATCH", "/v1/accounts/"+acct, admin, map[string]string{"description": "card processing"})
	if r.status != 200 || !strings.Contains(string(r.body), "card processing") {
		t.Fatalf("updating account = %d %s", r.status, r.body)
	}
	r = do(t, s.srv, "GET", "/v1/accounts", admin, nil)
	if r.status != 200 || !strings.Contains(string(r.body), acct) {
		t.Fatalf("listing accounts = %d %s", r.status, r.body)
	}

	// Every mutating call left an audit record, readable by the admin.
	r = do(t, s.srv, "GET", "/v1/accounts/"+acct+"/audit", admin, nil)
	var audit struct {
		Items []struct {
			Action, Outcome string
			Actor           struct{ Email string }
		} `json:"items"`
	}
	r.decode(t, &audit)
	var actions []string
	for _, e := range audit.Items {
		actions = append(actions, e.Action+":"+e.Outcome)
		if e.Actor.Email != "ada@example.com" {
			t.Errorf("audit entry %s has actor %q, want ada", e.Action, e.Actor.Email)
		}
	}
	if got, want := strings.Join(actions, ","), "account.create:success,member.add:success,account.update:success"; got != want {
		t.Fatalf("audit actions = %s, want %s", got, want)
	}

	// An API key's changes are audited with the key's id.
	keyID, key := s.apiKey(admin, acct)
	if r = do(t, s.srv, "PATCH", "/v1/accounts/"+acct, key, map[string]string{"name": "Payments EU"}); r.status != 200 {
		t.Fatalf("renaming with an API key = %d %s", r.status, r.body)
	}
	r = do(t, s.srv, "GET", "/v1/accounts/"+acct+"/audit?limit=200", admin, nil)
	if !strings.Contains(string(r.body), `"credential":"api_key","credential_id":"`+keyID+`"`) {
		t.Fatalf("audit lacks the API key's change: %s", r.body)
	}

	r = do(t, s.srv, "DELETE", "/v1/accounts/"+acct, admin, nil)
	if r.status != http.StatusNoContent {
		t.Fatalf("deleting account = %d %s", r.status, r.body)
	}
	if r = do(t, s.srv, "GET", "/v1/accounts/"+acct, admin, nil); r.status != 404 {
		t.Fatalf("GET deleted account = %d, want 404", r.status)
	}
}

func TestAuditPaging(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("ada@example.com")
	acct := s.account(admin, "A")
	for i := range 4 {
		do(t, s.srv, "PATCH", "/v1/accounts/"+acct, admin, map[string]string{"description": strings.Repeat("x", i)})
	}
	seen, cursor := 0, ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging did not end")
		}
		r := do(t, s.srv, "GET", "/v1/accounts/"+acct+"/audit?limit=2&cursor="+cursor, admin, nil)
		var page struct {
			Items      []any  `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		r.decode(t, &page)
		seen += len(page.Items)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if seen != 5 {
		t.Fatalf("paged through %d audit entries, want 5", seen)
	}
}

// TestAnotherAccountIsNotFound: a member of account A gets 404 on every
// route of account B, whatever the method, with a session or an API key.
func TestAnotherAccountIsNotFound(t *testing.T) {
	s := newStack(t, memory(t))
	_, alice := s.user("alice@example.com")
	bobID, bob := s.user("bob@example.com")
	accountA := s.account(alice, "A")
	accountB := s.account(bob, "B")
	bobKeyID, _ := s.apiKey(bob, accountB)
	_, aliceKey := s.apiKey(alice, accountA)

	bodies := map[string]any{
		"PATCH /v1/accounts/{account_id}":                             map[string]string{"name": "stolen"},
		"POST /v1/accounts/{account_id}/members":                      map[string]string{"email": "alice@example.com", "role": "admin"},
		"PATCH /v1/accounts/{account_id}/members/{user_id}":           map[string]string{"role": "admin"},
		"POST /v1/accounts/{account_id}/api-keys":                     map[string]string{"name": "x"},
		"PUT /v1/accounts/{account_id}/attestation/policy":            map[string]any{"accept_statuses": []string{"OutOfDate"}, "allow_debug": true},
		"POST /v1/accounts/{account_id}/attestation/verify":           map[string]any{"quote": []byte("x")},
		"POST /v1/accounts/{account_id}/certificates/{serial}/revoke": map[string]string{"reason": "x"},
	}
	checked := 0
	for _, rt := range s.gw.Routes() {
		if !strings.Contains(rt.Pattern, "{account_id}") {
			continue
		}
		path := strings.NewReplacer("{account_id}", accountB, "{user_id}", bobID, "{key_id}", bobKeyID).Replace(rt.Pattern)
		for name, token := range map[string]string{"session": alice, "api key": aliceKey} {
			t.Run(rt.Method+" "+rt.Pattern+" with "+name, func(t *testing.T) {
				r := do(t, s.srv, rt.Method, path, token, bodies[rt.Method+" "+rt.Pattern])
				if r.status != http.StatusNotFound {
					t.Fatalf("%s %s as a member of another account = %d %s, want 404", rt.Method, path, r.status, r.body)
				}
				r.problem(t)
			})
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("checked %d account routes; the route table lost some", checked)
	}
	// Account B is untouched, and strangers cannot write into its audit log.
	r := do(t, s.srv, "GET", "/v1/accounts/"+accountB, bob, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"name":"B"`) {
		t.Fatalf("account B after the attempts = %d %s", r.status, r.body)
	}
	r = do(t, s.srv, "GET", "/v1/accounts/"+accountB+"/audit?limit=200", bob, nil)
	if r.status != 200 || strings.Contains(string(r.body), "alice@example.com") {
		t.Fatalf("account B's audit log after alice's attempts = %d %s; want none of them", r.status, r.body)
	}
}

func TestRoles(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	memberID, member := s.user("member@example.com")
	_, auditor := s.user("auditor@example.com")
	acct := s.account(admin, "A")
	s.addMember(admin, acct, "member@example.com", "member")
	s.addMember(admin, acct, "auditor@example.com", "auditor")
	base := "/v1/accounts/" + acct

	tests := []struct {
		name, token, method, path string
		body                      any
		want                      int
	}{
		{"member reads account", member, "GET", base, nil, 200},
		{"member lists members", member, "GET", base + "/members", nil, 200},
		{"member cannot rename", member, "PATCH", base, map[string]string{"name": "x"}, 403},
		{"member cannot add members", member, "POST", base + "/members", map[string]string{"email": "auditor@example.com", "role": "admin"}, 403},
		{"member cannot read audit", member, "GET", base + "/audit", nil, 403},
		{"member cannot delete", member, "DELETE", base, nil, 403},
		{"auditor reads audit", auditor, "GET", base + "/audit", nil, 200},
		{"auditor cannot change roles", auditor, "PATCH", base + "/members/" + memberID, map[string]string{"role": "admin"}, 403},
		{"admin changes a role", admin, "PATCH", base + "/members/" + memberID, map[string]string{"role": "auditor"}, 200},
		{"unknown role", admin, "PATCH", base + "/members/" + memberID, map[string]string{"role": "owner"}, 400},
		{"no token", "", "GET", base, nil, 401},
		{"garbage token", "cls_nope", "GET", base, nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, s.srv, tt.method, tt.path, tt.token, tt.body)
			if r.status != tt.want {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, r.status, r.body, tt.want)
			}
			if tt.want >= 400 {
				r.problem(t)
			}
		})
	}

	// The last admin cannot leave or be demoted.
	r := do(t, s.srv, "GET", "/v1/users/me", admin, nil)
	var me struct{ ID string }
	r.decode(t, &me)
	if r := do(t, s.srv, "DELETE", base+"/members/"+me.ID, admin, nil); r.status != 409 {
		t.Fatalf("removing the last admin = %d %s, want 409", r.status, r.body)
	}
	if r := do(t, s.srv, "PATCH", base+"/members/"+me.ID, admin, map[string]string{"role": "member"}); r.status != 409 {
		t.Fatalf("demoting the last admin = %d %s, want 409", r.status, r.body)
	}
	// Refused attempts are audited too.
	r = do(t, s.srv, "GET", base+"/audit?limit=200", auditor, nil)
	if !strings.Contains(string(r.body), `"outcome":"failure"`) || !strings.Contains(string(r.body), "member@example.com") {
		t.Fatalf("audit log lacks the member's refused attempt: %s", r.body)
	}
}

// TestRevocationTakesEffectAtOnce: logout and API-key revocation stop the
// credential on the very next request, with either cache; a second gateway
// replica with its own cache learns of it through the revocation event.
func TestRevocationTakesEffectAtOnce(t *testing.T) {
	for _, ck := range cacheKinds {
		t.Run(ck.name, func(t *testing.T) {
			s := newStack(t, ck.make(t))
			_, replica := s.addGateway(ck.make(t))
			_, token := s.user("ada@example.com")
			acct := s.account(token, "A")
			keyID, key := s.apiKey(token, acct)

			for _, srv := range []*httptestServer{s.srv, replica} {
				for _, tok := range []string{token, key} {
					if r := do(t, srv, "GET", "/v1/users/me", tok, nil); r.status != 200 {
						t.Fatalf("warming the cache: %d %s", r.status, r.body)
					}
				}
			}

			if r := do(t, s.srv, "DELETE", "/v1/accounts/"+acct+"/api-keys/"+keyID, token, nil); r.status != 204 {
				t.Fatalf("revoking key = %d %s", r.status, r.body)
			}
			if r := do(t, s.srv, "GET", "/v1/users/me", key, nil); r.status != 401 {
				t.Fatalf("revoked API key on the next request = %d, want 401", r.status)
			}
			if r := do(t, s.srv, "DELETE", "/v1/sessions/current", token, nil); r.status != 204 {
				t.Fatalf("logout = %d %s", r.status, r.body)
			}
			if r := do(t, s.srv, "GET", "/v1/users/me", token, nil); r.status != 401 {
				t.Fatalf("logged-out token on the next request = %d, want 401", r.status)
			}
			// The replica drops its entries when the events arrive.
			testkit.Eventually(t, 5*time.Second, func() bool {
				return do(t, replica, "GET", "/v1/users/me", token, nil).status == 401 &&
					do(t, replica, "GET", "/v1/users/me", key, nil).status == 401
			}, "the replica still accepts revoked credentials")
		})
	}
}

// TestMissedRevocationIsBounded: gateways sharing one Redis keep the
// principals they read decoded for a moment (localauth.go). A revocation
// whose event a gateway never receives (written straight into the shared
// cache here) still stops the credential there once that moment is over.
func TestMissedRevocationIsBounded(t *testing.T) {
	r := testkit.StartRedis(t)
	shared := cache.NewRedis(r.Client, r.Prefix)
	s := newStack(t, shared)
	_, replica := s.addGateway(shared)
	_, token := s.user("ada@example.com")
	if got := do(t, replica, "GET", "/v1/users/me", token, nil); got.status != 200 {
		t.Fatalf("GET /v1/users/me = %d", got.status)
	}
	if err := shared.Set(context.Background(), gateway.SessionCacheKey(authz.HashToken(token)), []byte("revoked"), time.Minute); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		return do(t, replica, "GET", "/v1/users/me", token, nil).status == 401
	}, "the replica still accepts a credential revoked in the shared cache")
}

// TestLoginWithRedisDown: with Redis stopped, the gateway falls through to
// the account service and everything still works, revocation included.
func TestLoginWithRedisDown(t *testing.T) {
	srv := testkit.StartRedisServer(t)
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	opt.DialTimeout, opt.DialerRetries, opt.MaxRetries = 100*time.Millisecond, 1, 1
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	s := newStack(t, cache.Tolerant(cache.NewRedis(client, "t:"), nil))
	_, early := s.user("early@example.com")
	if r := do(t, s.srv, "GET", "/v1/users/me", early, nil); r.status != 200 {
		t.Fatalf("GET /v1/users/me with Redis up = %d %s", r.status, r.body)
	}
	if n, err := client.Keys(context.Background(), "t:auth:*").Result(); err != nil || len(n) == 0 {
		t.Fatalf("nothing cached in Redis while it was up: %v, %v", n, err)
	}

	srv.Stop()
	_, token := s.user("ada@example.com") // sign-up and login with Redis down
	for _, tok := range []string{token, early} {
		if r := do(t, s.srv, "GET", "/v1/users/me", tok, nil); r.status != 200 {
			t.Fatalf("GET /v1/users/me with Redis down = %d %s", r.status, r.body)
		}
	}
	if r := do(t, s.srv, "DELETE", "/v1/sessions/current", token, nil); r.status != 204 {
		t.Fatalf("logout with Redis down = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", "/v1/users/me", token, nil); r.status != 401 {
		t.Fatalf("logged-out token with Redis down = %d, want 401", r.status)
	}
}

func TestAccountDeletionRevokesItsAPIKeys(t *testing.T) {
	s := newStack(t, memory(t))
	_, token := s.user("ada@example.com")
	acct := s.account(token, "A")
	_, key := s.apiKey(token, acct)
	if r := do(t, s.srv, "GET", "/v1/accounts/"+acct, key, nil); r.status != 200 {
		t.Fatalf("API key before deletion = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "DELETE", "/v1/accounts/"+acct, token, nil); r.status != 204 {
		t.Fatalf("deleting account = %d %s", r.status, r.body)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		return do(t, s.srv, "GET", "/v1/users/me", key, nil).status == 401
	}, "the deleted account's API key still authenticates")
	if r := do(t, s.srv, "GET", "/v1/accounts", token, nil); strings.Contains(string(r.body), acct) {
		t.Fatalf("deleted account still listed: %s", r.body)
	}
}

func TestBadInput(t *testing.T) {
	s := newStack(t, memory(t))
	s.user("taken@example.com")
	huge := `{"email":"a@example.com","password":"` + strings.Repeat("x", gateway.MaxBodyBytes) + `"}`
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		detail string
	}{
		{"malformed JSON", "POST", "/v1/users", rawBody{data: `{"email": "a@example.com",`}, 400, "not complete JSON"},
		{"syntax error", "POST", "/v1/users", rawBody{data: `{"email" "a"}`}, 400, "not valid JSON at byte"},
		{"not an object", "POST", "/v1/users", rawBody{data: `[1,2]`}, 400, "must be a JSON object"},
		{"wrong field type", "POST", "/v1/users", rawBody{data: `{"email": 5, "password": "x"}`}, 400, `field "email" must be a string`},
		{"unknown field", "POST", "/v1/users", rawBody{data: `{"email":"a@example.com","password":"long enough pass","admin":true}`}, 400, `unknown field "admin"`},
		{"trailing data", "POST", "/v1/users", rawBody{data: `{"email":"a@example.com","password":"long enough pass"} {}`}, 400, "single JSON object"},
		{"empty body", "POST", "/v1/users", rawBody{data: ``}, 400, "body is empty"},
		{"null body", "POST", "/v1/users", rawBody{data: `null`}, 400, "must be a JSON object, not null"},
		{"invalid UTF-8", "POST", "/v1/users", rawBody{data: "{\"email\":\"a\xff@example.com\",\"password\":\"long enough pass\"}"}, 400, "not valid UTF-8"},
		{"duplicate field", "POST", "/v1/users", rawBody{data: `{"email":"a@example.com","password":"long enough pass","email":"b@example.com"}`}, 400, `field "email" appears twice`},
		{"over 1 MiB", "POST", "/v1/users", rawBody{data: huge}, 413, "larger than"},
		{"wrong content type", "POST", "/v1/users", rawBody{data: `email=a`, contentType: "application/x-www-form-urlencoded"}, 400, "Content-Type must be application/json"},
		{"no content type", "POST", "/v1/sessions", rawBody{data: `{}`, contentType: "-"}, 400, "Content-Type must be application/json"},
		{"bad email", "POST", "/v1/users", map[string]string{"email": "not-an-email", "password": "long enough pass"}, 400, "not a valid address"},
		{"email with name", "POST", "/v1/users", map[string]string{"email": "Ada <ada@example.com>", "password": "long enough pass"}, 400, "not a valid address"},
		{"missing email", "POST", "/v1/users", map[string]string{"password": "long enough pass"}, 400, "email is required"},
		{"weak password", "POST", "/v1/users", map[string]string{"email": "a@example.com", "password": "short"}, 400, "at least 12 characters"},
		{"blank password", "POST", "/v1/users", map[string]string{"email": "a@example.com", "password": strings.Repeat(" ", 12)}, 400, "only spaces"},
		{"email taken", "POST", "/v1/users", map[string]string{"email": "TAKEN@example.com", "password": "long enough pass"}, 409, "already exists"},
		{"wrong password", "POST", "/v1/sessions", map[string]string{"email": "taken@example.com", "password": "wrong password!"}, 401, "email or password is wrong"},
		{"unknown user", "POST", "/v1/sessions", map[string]string{"email": "nobody@example.com", "password": "wrong password!"}, 401, "email or password is wrong"},
		{"unknown path", "GET", "/v1/nothing-here", nil, 404, "no such resource"},
		{"wrong method", "PUT", "/v1/users", map[string]string{}, 405, "PUT is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, s.srv, tt.method, tt.path, "", tt.body)
			if r.status != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, r.status, r.body, tt.status)
			}
			if p := r.problem(t); !strings.Contains(p.Detail, tt.detail) {
				t.Fatalf("detail = %q, want it to say %q", p.Detail, tt.detail)
			}
		})
	}

	// A named refusal of a service carries its reason to programs; a
	// refusal without a name carries none.
	for _, c := range []struct {
		path         string
		body         map[string]string
		code, reason string
	}{
		{"/v1/users", map[string]string{"email": "TAKEN@example.com", "password": "long enough pass"}, "conflict", "email_taken"},
		{"/v1/sessions", map[string]string{"email": "nobody@example.com", "password": "wrong password!"}, "unauthenticated", "bad_credentials"},
		{"/v1/users", map[string]string{"email": "not-an-email", "password": "long enough pass"}, "invalid", ""},
	} {
		if p := do(t, s.srv, "POST", c.path, "", c.body).problem(t); p.Code != c.code || p.Reason != c.reason {
			t.Errorf("POST %s %v: problem code %q reason %q, want %q %q", c.path, c.body, p.Code, p.Reason, c.code, c.reason)
		}
	}

	// Authenticated routes check their bodies and queries too.
	_, token := s.user("ada@example.com")
	acct := s.account(token, "A")
	authed := []struct {
		name, method, path string
		body               any
		detail             string
	}{
		{"empty account name", "POST", "/v1/accounts", map[string]string{"name": "  "}, "name is required"},
		{"long account name", "POST", "/v1/accounts", map[string]string{"name": strings.Repeat("n", 101)}, "longer than 100"},
		{"empty update", "PATCH", "/v1/accounts/" + acct, map[string]string{}, "at least one of"},
		{"bad limit", "GET", "/v1/accounts?limit=0", nil, "limit must be"},
		{"huge limit", "GET", "/v1/accounts?limit=100000", nil, "limit must be"},
		{"bad ttl", "POST", "/v1/accounts/" + acct + "/api-keys", map[string]any{"name": "k", "ttl_seconds": 1}, "ttl must be"},
		{"bad audit cursor", "GET", "/v1/accounts/" + acct + "/audit?cursor=zzz", nil, "cursor"},
	}
	for _, tt := range authed {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, s.srv, tt.method, tt.path, token, tt.body)
			if r.status != 400 {
				t.Fatalf("%s %s = %d %s, want 400", tt.method, tt.path, r.status, r.body)
			}
			if p := r.problem(t); !strings.Contains(p.Detail, tt.detail) {
				t.Fatalf("detail = %q, want it to say %q", p.Detail, tt.detail)
			}
		})
	}
}

func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	doc, err := gateway.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, memory(t))
	inRoutes := map[string]bool{}
	// The node-facing operations are in the document too, though served
	// on the node listener (NodeHandler) rather than the API's.
	for _, rt := range append(s.gw.Routes(), s.gw.NodeRoutes()...) {
		key := rt.Method + " " + rt.Pattern
		inRoutes[key] = true
		item := doc.Paths.Find(rt.Pattern)
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("route %s is not in the OpenAPI document", key)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !inRoutes[method+" "+path] {
				t.Errorf("the OpenAPI document has %s %s, which the gateway does not serve", method, path)
			}
		}
	}
	r := do(t, s.srv, "GET", "/v1/openapi.json", "", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"openapi":"3.0.3"`) {
		t.Fatalf("GET /v1/openapi.json = %d %.200s", r.status, r.body)
	}
}

// httptestServer shortens a signature above.
type httptestServer = httptest.Server

// TestConcurrentDemotionsKeepAnAdmin: two admins demoting each other at
// the same moment cannot leave the account without an admin.
func TestConcurrentDemotionsKeepAnAdmin(t *testing.T) {
	s := newStack(t, memory(t))
	aID, a := s.user("a@example.com")
	bID, b := s.user("b@example.com")
	for round := range 5 {
		acct := s.account(a, "A")
		s.addMember(a, acct, "b@example.com", "admin")
		statuses := make(chan int, 2)
		go func() {
			statuses <- do(t, s.srv, "PATCH", "/v1/accounts/"+acct+"/members/"+bID, a, map[string]string{"role": "member"}).status
		}()
		go func() {
			statuses <- do(t, s.srv, "PATCH", "/v1/accounts/"+acct+"/members/"+aID, b, map[string]string{"role": "member"}).status
		}()
		ok := 0
		for range 2 {
			if <-statuses == 200 {
				ok++
			}
		}
		r := do(t, s.srv, "GET", "/v1/accounts/"+acct+"/members", a, nil)
		if r.status == 404 {
			r = do(t, s.srv, "GET", "/v1/accounts/"+acct+"/members", b, nil)
		}
		if !strings.Contains(string(r.body), `"role":"admin"`) {
			t.Fatalf("round %d: %d demotions succeeded and the account has no admin left: %s", round, ok, r.body)
		}
		if ok != 1 {
			t.Fatalf("round %d: %d of the two crossed demotions succeeded, want exactly 1", round, ok)
		}
	}
}

// TestRemovedMemberLosesAPIKeys: removing a member revokes their keys in the
// account, and adding them back does not revive the keys.
func TestRemovedMemberLosesAPIKeys(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	bobID, bob := s.user("bob@example.com")
	acct := s.account(admin, "A")
	s.addMember(admin, acct, "bob@example.com", "member")
	_, key := s.apiKey(bob, acct)
	if r := do(t, s.srv, "GET", "/v1/accounts/"+acct, key, nil); r.status != 200 {
		t.Fatalf("bob's key before removal = %d", r.status)
	}
	if r := do(t, s.srv, "DELETE", "/v1/accounts/"+acct+"/members/"+bobID, admin, nil); r.status != 204 {
		t.Fatalf("removing bob = %d %s", r.status, r.body)
	}
	s.addMember(admin, acct, "bob@example.com", "auditor")
	testkit.Eventually(t, 5*time.Second, func() bool {
		return do(t, s.srv, "GET", "/v1/accounts/"+acct, key, nil).status == 401
	}, "bob's key works again after he was removed and re-added")
	if r := do(t, s.srv, "GET", "/v1/accounts/"+acct+"/api-keys", admin, nil); strings.Contains(string(r.body), bobID) {
		t.Fatalf("bob's key is still listed: %s", r.body)
	}
	if r := do(t, s.srv, "GET", "/v1/users/me", "clk_01a21bf3-e490-766a-8e88-b6b30f4db069_guess", nil); r.status != 401 {
		t.Fatalf("an API key that was never issued = %d, want 401", r.status)
	}
}

// revokingCache is a real cache that runs revoke just before the first
// time a principal is written for a session: the revocation lands between
// the gateway's lookup at the account service and its refill of the
// cache, the race a refill must not win.
type revokingCache struct {
	cache.Cache
	fired  atomic.Bool
	revoke func()
}

func (c *revokingCache) before(key string) {
	// Not sync.Once: revoke's own request comes back through here.
	if strings.HasPrefix(key, "auth:session:") && c.fired.CompareAndSwap(false, true) {
		c.revoke()
	}
}

func (c *revokingCache) Add(ctx context.Context, key string, v []byte, ttl time.Duration) (bool, error) {
	if string(v) != "revoked" {
		c.before(key)
	}
	return c.Cache.Add(ctx, key, v, ttl)
}

func (c *revokingCache) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if string(v) != "revoked" {
		c.before(key)
	}
	return c.Cache.Set(ctx, key, v, ttl)
}

func TestRefillCannotUndoARevocation(t *testing.T) {
	rc := &revokingCache{Cache: memory(t)}
	s := newStack(t, rc)
	_, token := s.user("ada@example.com")
	rc.revoke = func() {
		// Another gateway logs the session out while this one is asking
		// the account service about it.
		req, _ := http.NewRequest("DELETE", s.srv.URL+"/v1/sessions/current", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Errorf("concurrent logout = %v, %v", resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	if r := do(t, s.srv, "GET", "/v1/users/me", token, nil); r.status != 200 {
		t.Fatalf("the request that was valid when asked = %d, want 200", r.status)
	}
	if r := do(t, s.srv, "GET", "/v1/users/me", token, nil); r.status != 401 {
		t.Fatalf("the logged-out token after a racing refill = %d, want 401", r.status)
	}
}

func TestAttestationRoutes(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	_, member := s.user("member@example.com")
	acct := s.account(admin, "A")
	s.addMember(admin, acct, "member@example.com", "member")
	base := "/v1/accounts/" + acct + "/attestation"
	quote, err := os.ReadFile("../../libs/sgx/testdata/phala_sgx_quote_v3.bin")
	if err != nil {
		t.Fatal(err)
	}
	collateral, err := os.ReadFile("../../libs/sgx/testdata/phala_sgx_quote_v3_collateral.json")
	if err != nil {
		t.Fatal(err)
	}

	r := do(t, s.srv, "GET", base+"/policy", member, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"accept_statuses":["UpToDate","SWHardeningNeeded"]`) ||
		!strings.Contains(string(r.body), `"require_node_attestation":false`) {
		t.Fatalf("default policy = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "PUT", base+"/policy", member, map[string]any{"accept_statuses": []string{"OutOfDate"}}); r.status != 403 {
		t.Fatalf("member setting the policy = %d %s, want 403", r.status, r.body)
	}
	if r := do(t, s.srv, "PUT", base+"/policy", admin, map[string]any{"accept_statuses": []string{"Fine"}}); r.status != 400 {
		t.Fatalf("unknown status = %d %s, want 400", r.status, r.body)
	}

	if r := do(t, s.srv, "POST", base+"/verify", member, map[string]any{"quote": quote}); r.status != 200 || !strings.Contains(string(r.body), `"reason":"no_collateral"`) {
		t.Fatalf("verify without collateral = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", "/v1/attestation/collateral", member, map[string]any{"collateral_json": collateral}); r.status != 200 || !strings.Contains(string(r.body), `"fmspc":"00a067110000"`) {
		t.Fatalf("uploading collateral = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", "/v1/attestation/collateral", member, map[string]any{"collateral_json": []byte("{}")}); r.status != 400 {
		t.Fatalf("uploading bad collateral = %d %s, want 400", r.status, r.body)
	}
	// An AMD VCEK, kept for the reports that come without it; then an
	// SEV-SNP report verifies with none.
	vcek, err := os.ReadFile("../../libs/snp/testdata/vcek_milan.der")
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, s.srv, "POST", "/v1/attestation/vcek", member, map[string]any{"vcek": vcek}); r.status != 200 ||
		!strings.Contains(string(r.body), `"product":"Milan"`) || !strings.Contains(string(r.body), `"tcb":"0x7308000000000003"`) {
		t.Fatalf("uploading a VCEK = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", "/v1/attestation/vcek", member, map[string]any{"vcek": []byte("nonsense")}); r.status != 400 || !strings.Contains(string(r.body), "VCEK refused") {
		t.Fatalf("uploading a bad VCEK = %d %s, want 400", r.status, r.body)
	}
	report, err := os.ReadFile("../../libs/snp/testdata/report_milan.hex")
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, s.srv, "POST", base+"/verify", member, map[string]any{"quote": report, "tee": "sev-snp"}); r.status != 200 ||
		!strings.Contains(string(r.body), `"ok":true`) || !strings.Contains(string(r.body), `"tee":"sev-snp"`) {
		t.Fatalf("verifying an SEV-SNP report with its uploaded VCEK = %d %s", r.status, r.body)
	}
	r = do(t, s.srv, "POST", base+"/verify", member, map[string]any{"quote": quote})
	if r.status != 200 || !strings.Contains(string(r.body), `"ok":false`) || !strings.Contains(string(r.body), `"tcb_status":"ConfigurationAndSWHardeningNeeded"`) {
		t.Fatalf("verify under the default policy = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "PUT", base+"/policy", admin, map[string]any{"accept_statuses": []string{"ConfigurationAndSWHardeningNeeded"},
		"require_node_attestation": true}); r.status != 200 || !strings.Contains(string(r.body), `"require_node_attestation":true`) {
		t.Fatalf("admin setting the policy = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", base+"/policy", member, nil); r.status != 200 || !strings.Contains(string(r.body), `"require_node_attestation":true`) {
		t.Fatalf("policy after setting it = %d %s, want require_node_attestation", r.status, r.body)
	}
	if r := do(t, s.srv, "PUT", base+"/policy", admin, map[string]any{"accept_statuses": []string{"Sideways"}}); r.status != 400 {
		t.Fatalf("admin setting a bad policy = %d %s, want 400", r.status, r.body)
	}
	audit := do(t, s.srv, "GET", "/v1/accounts/"+acct+"/audit", admin, nil)
	// Two refusals (this one and "Fine" above) and one success.
	if n := strings.Count(string(audit.body), `"action":"attestation.policy.set"`); n != 3 || !strings.Contains(string(audit.body), `unknown TCB status \"Sideways\"`) {
		t.Fatalf("audit log has %d policy changes, want two failures and a success: %s", n, audit.body)
	}
	r = do(t, s.srv, "POST", base+"/verify", member, map[string]any{"quote": quote})
	if r.status != 200 || !strings.Contains(string(r.body), `"ok":true`) ||
		!strings.Contains(string(r.body), `"mrenclave":"33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"`) {
		t.Fatalf("verify under an accepting policy = %d %s", r.status, r.body)
	}
}

func TestAccountCA(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	acct := s.account(admin, "A")
	var r response
	testkit.Eventually(t, 10*time.Second, func() bool {
		r = do(t, s.srv, "GET", "/v1/accounts/"+acct+"/ca", admin, nil)
		return r.status == 200
	}, "the account's CA did not appear")
	var got struct {
		ChainPEM   string `json:"chain_pem"`
		RootSHA256 string `json:"root_sha256"`
	}
	r.decode(t, &got)
	if strings.Count(got.ChainPEM, "BEGIN CERTIFICATE") != 2 || len(got.RootSHA256) != 64 {
		t.Fatalf("GET ca = %s", r.body)
	}
	r = do(t, s.srv, "GET", "/v1/crl/"+acct+".crl", "", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET crl = %d %s", r.status, r.header.Get("Content-Type"))
	}
	if _, err := x509.ParseRevocationList(r.body); err != nil {
		t.Fatalf("the CRL does not parse: %v", err)
	}
	for _, path := range []string{"/v1/crl/" + acct, "/v1/crl/01a21bf3-e490-766a-8e88-b6b30f4db069.crl", "/v1/crl/..%2f.crl"} {
		if r := do(t, s.srv, "GET", path, "", nil); r.status != 404 {
			t.Fatalf("GET %s = %d, want 404", path, r.status)
		}
	}
}

func TestCertificateRoutes(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	_, member := s.user("member@example.com")
	acct := s.account(admin, "A")
	s.addMember(admin, acct, "member@example.com", "member")
	testkit.Eventually(t, 10*time.Second, func() bool {
		return do(t, s.srv, "GET", "/v1/accounts/"+acct+"/ca", admin, nil).status == 200
	}, "the account's CA did not appear")

	// The node registry asks for node certificates over NATS.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	issued, err := cav1.NewCAClient(s.nc).IssueNodeCertificate(context.Background(), &cav1.IssueNodeCertificateRequest{
		AccountId: acct, NodeId: "01a21bf3-e490-766a-8e88-b6b30f4db069", Csr: csr})
	if err != nil {
		t.Fatal(err)
	}
	serial := issued.GetCertificate().GetSerial()
	base := "/v1/accounts/" + acct + "/certificates"

	if r := do(t, s.srv, "GET", base+"?kind=node", member, nil); r.status != 200 || !strings.Contains(string(r.body), serial) {
		t.Fatalf("listing certificates = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", base+"?kind=robot", member, nil); r.status != 400 {
		t.Fatalf("listing with a bad kind = %d, want 400", r.status)
	}
	if r := do(t, s.srv, "GET", base+"/"+serial, member, nil); r.status != 200 {
		t.Fatalf("getting the certificate = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", base+"/abc123", member, nil); r.status != 404 {
		t.Fatalf("getting an unknown serial = %d %s, want 404", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", base+"/"+serial+"/revoke", member, map[string]string{"reason": "x"}); r.status != 403 {
		t.Fatalf("member revoking = %d %s, want 403", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", base+"/abc/revoke", admin, map[string]string{}); r.status != 404 {
		t.Fatalf("revoking an unknown serial = %d %s, want 404", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", base+"/"+serial+"/revoke", admin, map[string]string{"reason": "node deregistered"}); r.status != 200 || !strings.Contains(string(r.body), `"revoked":true`) {
		t.Fatalf("admin revoking = %d %s", r.status, r.body)
	}

	// The CRL lists it and OCSP answers revoked.
	r := do(t, s.srv, "GET", "/v1/crl/"+acct+".crl", "", nil)
	crl, err := x509.ParseRevocationList(r.body)
	if err != nil || len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Text(16) != serial {
		t.Fatalf("CRL after revocation = %v, %v", crl, err)
	}
	leaf, _ := x509.ParseCertificate(issued.GetCertificate().GetDer())
	chain := []byte(issued.GetChainPem())
	block, _ := pem.Decode(chain)
	issuer, _ := x509.ParseCertificate(block.Bytes)
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	r = do(t, s.srv, "POST", "/v1/ocsp/"+acct, "", rawBody{data: string(req), contentType: "application/ocsp-request"})
	resp, err := ocsp.ParseResponseForCert(r.body, leaf, issuer)
	if err != nil || resp.Status != ocsp.Revoked {
		t.Fatalf("OCSP = %v, %v; want revoked", resp, err)
	}
	if r := do(t, s.srv, "POST", "/v1/ocsp/"+acct, "", rawBody{data: string(req), contentType: "text/plain"}); r.status != 400 {
		t.Fatalf("OCSP with a wrong content type = %d, want 400", r.status)
	}

	// Rotation: admins only; the retired issuer keeps answering for what it signed.
	if r := do(t, s.srv, "POST", "/v1/accounts/"+acct+"/ca/rotate", member, nil); r.status != 403 {
		t.Fatalf("member rotating = %d %s, want 403", r.status, r.body)
	}
	r = do(t, s.srv, "POST", "/v1/accounts/"+acct+"/ca/rotate", admin, nil)
	var rotated struct {
		IssuerKeyID    string `json:"issuer_key_id"`
		RetiredIssuers []struct {
			KeyID string `json:"key_id"`
		} `json:"retired_issuers"`
	}
	r.decode(t, &rotated)
	oldKeyID := hex.EncodeToString(issuer.SubjectKeyId)
	if r.status != 200 || len(rotated.RetiredIssuers) != 1 || rotated.RetiredIssuers[0].KeyID != oldKeyID || rotated.IssuerKeyID == oldKeyID {
		t.Fatalf("admin rotating = %d %s", r.status, r.body)
	}
	r = do(t, s.srv, "GET", "/v1/crl/"+acct+".crl?issuer="+oldKeyID, "", nil)
	crl, err = x509.ParseRevocationList(r.body)
	if err != nil || crl.CheckSignatureFrom(issuer) != nil || len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("the retired issuer's CRL = %d, %v; want it signed by that issuer, listing the revoked certificate", r.status, err)
	}
	r = do(t, s.srv, "GET", "/v1/crl/"+acct+".crl", "", nil)
	if crl, err := x509.ParseRevocationList(r.body); err != nil || len(crl.RevokedCertificateEntries) != 0 || crl.CheckSignatureFrom(issuer) == nil {
		t.Fatalf("the new issuer's CRL = %v, %v; want it empty and not signed by the retired issuer", crl, err)
	}
	if r := do(t, s.srv, "GET", "/v1/crl/"+acct+".crl?issuer=abcd", "", nil); r.status != 404 {
		t.Fatalf("the CRL of an unknown issuer = %d, want 404", r.status)
	}
	r = do(t, s.srv, "POST", "/v1/ocsp/"+acct, "", rawBody{data: string(req), contentType: "application/ocsp-request"})
	if resp, err := ocsp.ParseResponseForCert(r.body, leaf, issuer); err != nil || resp.Status != ocsp.Revoked {
		t.Fatalf("OCSP after rotation = %v, %v; want revoked, signed by the retired issuer", resp, err)
	}

	// Retiring the retired issuer early: members may not; admins may, and
	// its CRL is still served; the current issuer cannot be retired.
	retire := "/v1/accounts/" + acct + "/ca/issuers/" + oldKeyID + "/retire"
	if r := do(t, s.srv, "POST", retire, member, nil); r.status != 403 {
		t.Fatalf("member retiring = %d %s, want 403", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", "/v1/accounts/"+acct+"/ca/issuers/"+rotated.IssuerKeyID+"/retire", admin, nil); r.status != 409 {
		t.Fatalf("retiring the current issuer = %d %s, want 409", r.status, r.body)
	}
	r = do(t, s.srv, "POST", retire, admin, nil)
	var retired struct {
		RetiredIssuers []any `json:"retired_issuers"`
		Revoked        *int  `json:"revoked"`
	}
	r.decode(t, &retired)
	if r.status != 200 || len(retired.RetiredIssuers) != 0 || retired.Revoked == nil {
		t.Fatalf("admin retiring = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "GET", "/v1/crl/"+acct+".crl?issuer="+oldKeyID, "", nil); r.status != 200 {
		t.Fatalf("the CRL of an issuer retired early = %d, want 200", r.status)
	}
	// Rotating away from a compromised issuer: a body says so.
	r = do(t, s.srv, "POST", "/v1/accounts/"+acct+"/ca/rotate", admin, map[string]any{"revoke_previous": true})
	r.decode(t, &retired)
	if r.status != 200 || len(retired.RetiredIssuers) != 0 {
		t.Fatalf("rotating with revoke_previous = %d %s, want no retired issuer left", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", "/v1/accounts/"+acct+"/ca/rotate", admin, map[string]any{"revoke_previous": "yes"}); r.status != 400 {
		t.Fatalf("rotating with a malformed body = %d, want 400", r.status)
	}

	// The changes are in the audit log, with who made them.
	r = do(t, s.srv, "GET", "/v1/accounts/"+acct+"/audit", admin, nil)
	for _, want := range []string{`"action":"cert.revoke"`, `"target":"` + serial + `"`, `"action":"ca.rotate"`, `"outcome":"failure"`, `"target":"retire ` + oldKeyID + `"`} {
		if !strings.Contains(string(r.body), want) {
			t.Fatalf("audit log lacks %s: %s", want, r.body)
		}
	}
}

// TestLoginAttemptsAreLimited: past the burst, sign-ups and logins from one
// address get 429 with Retry-After, whether or not the password is right.
func TestLoginAttemptsAreLimited(t *testing.T) {
	s := newStack(t, memory(t))
	s.user("ada@example.com")
	gw, err := gateway.New(context.Background(), gateway.Config{NATS: s.st.ConnectAs("gateway"), Replicas: s.st.Replicas(), Assertions: s.st.Identities().Signer(t), Cache: memory(t),
		CredentialRate: gateway.CredentialRate{Every: time.Hour, Burst: 3}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	for i := range 3 {
		if r := do(t, srv, "POST", "/v1/sessions", "", map[string]string{"email": "ada@example.com", "password": "wrong password!"}); r.status != 401 {
			t.Fatalf("attempt %d = %d, want 401", i, r.status)
		}
	}
	for _, body := range []map[string]string{
		{"email": "ada@example.com", "password": "correct horse battery"},
		{"email": "new@example.com", "password": "long enough pass"},
	} {
		path := "/v1/sessions"
		if body["email"] == "new@example.com" {
			path = "/v1/users"
		}
		r := do(t, srv, "POST", path, "", body)
		if r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Fatalf("POST %s past the limit = %d (Retry-After %q), want 429", path, r.status, r.header.Get("Retry-After"))
		}
		if p := r.problem(t); p.Code != "rate_limited" {
			t.Fatalf("problem code = %q, want rate_limited", p.Code)
		}
	}
	// Other routes are not limited.
	if r := do(t, srv, "GET", "/v1/openapi.json", "", nil); r.status != 200 {
		t.Fatalf("GET /v1/openapi.json = %d", r.status)
	}
}
