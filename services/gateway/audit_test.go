package gateway_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/events"
	eventsv1 "github.com/cloister-cc/cloister/libs/gen/cloister/events/v1"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// auditLine is one entry of an account's audit log as the API gives it.
type auditLine struct {
	Actor struct {
		UserID       string `json:"user_id"`
		Credential   string `json:"credential"`
		CredentialID string `json:"credential_id"`
	} `json:"actor"`
	Action, Target, Outcome, Cause string
}

// TestAuditCoversEveryChange: a node's enrolment (by its join token), the
// node certificate issued for it (by the node), the revocation that
// cascades from its deregistration (by the system, with the cause), and,
// under no account, sign-up, login (and a failed one), logout and a
// collateral upload, are all in the audit log.
func TestAuditCoversEveryChange(t *testing.T) {
	s := newStack(t, memory(t))
	adminID, admin := s.user("admin@example.com")
	acct := s.account(admin, "A")
	s.waitCA(t, admin, acct)
	n := s.enrolNode(t, admin, acct, "rack-1")
	if r := do(t, s.srv, "POST", "/v1/accounts/"+acct+"/nodes/"+n.ID+"/deregister", admin, nil); r.status != 200 {
		t.Fatalf("deregistering = %d %s", r.status, r.body)
	}

	var log struct{ Items []auditLine }
	has := func(want func(auditLine) bool) bool { return slices.ContainsFunc(log.Items, want) }
	testkit.EventuallyMsg(t, 10*time.Second, func() bool {
		log.Items = nil
		do(t, s.srv, "GET", "/v1/accounts/"+acct+"/audit?limit=200", admin, nil).decode(t, &log)
		return has(func(e auditLine) bool {
			return e.Action == "node.enroll" && e.Target == n.ID && e.Actor.Credential == "join_token" && e.Actor.CredentialID != ""
		}) && has(func(e auditLine) bool {
			return e.Action == "cert.issue" && e.Target == n.Serial && e.Actor.Credential == "node" && e.Actor.CredentialID == n.ID
		}) && has(func(e auditLine) bool {
			return e.Action == "node.deregister" && e.Actor.UserID == adminID
		}) && has(func(e auditLine) bool {
			return e.Action == "cert.revoke" && e.Target == n.Serial && e.Actor.Credential == "system" && strings.Contains(e.Cause, "deregistered")
		})
	}, func() string { return fmt.Sprintf("the account's audit log lacks the node's changes: %+v", log.Items) })

	// Under no account: a user's own credentials, and collateral.
	if r := do(t, s.srv, "POST", "/v1/sessions", "", map[string]string{"email": "admin@example.com", "password": "wrong horse battery"}); r.status != 401 {
		t.Fatalf("a wrong password = %d", r.status)
	}
	if r := do(t, s.srv, "DELETE", "/v1/sessions/current", admin, nil); r.status != 204 {
		t.Fatalf("logout = %d %s", r.status, r.body)
	}
	_, other := s.user("other@example.com")
	col, err := os.ReadFile(filepath.Join("..", "..", "libs", "sgx", "testdata", "phala_sgx_quote_v3_collateral.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, s.srv, "POST", "/v1/attestation/collateral", other, map[string]any{"collateral_json": col}); r.status >= 500 {
		t.Fatalf("uploading collateral = %d %s", r.status, r.body)
	}
	js := s.st.JetStream()
	want := []string{"user.signup success", "session.create success", "session.create failure", "session.revoke success", "collateral.put"}
	testkit.EventuallyMsg(t, 10*time.Second, func() bool {
		got := accountlessAudit(t, js)
		for _, w := range want {
			if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
				return false
			}
		}
		return true
	}, func() string {
		return "the audit records under no account lack some of " + strings.Join(want, ", ") + ": " + strings.Join(accountlessAudit(t, js), "; ")
	})
}

// accountlessAudit lists the records on audit._.*, as "action outcome
// target".
func accountlessAudit(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, events.StreamAudit, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.AuditSubject("", "*")}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		batch, err := c.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var rec eventsv1.AuditRecord
			if ev, err := events.DecodeMessage(m.Subject(), m.Headers(), m.Data()); err == nil && ev.Decode(&rec) == nil {
				out = append(out, rec.GetAction()+" "+rec.GetOutcome()+" "+rec.GetTarget())
			}
		}
		if n == 0 {
			return out
		}
	}
}
