package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// TestAccountSummary: the summary counts what the services hold: a node
// enrolled and running an attested enclave, the certificates issued for
// both, a failed attestation with its reason, and a pending task; another
// account's summary is its own.
func TestAccountSummary(t *testing.T) {
	s := newStack(t, memory(t))
	adminID, admin := s.user("admin@example.com")
	_, stranger := s.user("stranger@example.com")
	acct := s.account(admin, "A")
	other := s.account(stranger, "B")
	s.waitCA(t, admin, acct)
	base := "/v1/accounts/" + acct

	n := s.enrolNode(t, admin, acct, "node-1")
	nodeSrv := s.nodeServer(t)
	c := nodeClient(t, nodeSrv, n.tlsCert())
	appID, _, serial := s.enclaveOn(t, admin, adminID, acct, "hello.cloister.test", c, nodeSrv)
	if r := nodeDo(t, c, nodeSrv, "POST", "/v1/node/heartbeat", map[string]any{"instances": []map[string]any{{"id": "enclave-1",
		"certificate_serial": serial, "status": "running", "started_at": vectorTime.Add(-time.Minute)}}}); r.status != http.StatusOK {
		t.Fatalf("heartbeat = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", base+"/attestation/verify", admin, map[string]any{"quote": []byte("not a quote")}); r.status != http.StatusOK {
		t.Fatalf("verifying garbage = %d %s", r.status, r.body)
	}
	if r := do(t, s.srv, "POST", base+"/apps", admin, map[string]any{"name": "second", "input_image": "registry.example.com/samples/hello:1",
		"output_image": "registry.example.com/samples/second-sgx", "certificate": map[string]any{"domain": "second.cloister.test"}}); r.status != http.StatusCreated {
		t.Fatalf("creating a second app = %d %s", r.status, r.body)
	}

	var sum api.Summary
	get := func() api.Summary {
		r := do(t, s.srv, "GET", base+"/summary", admin, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET summary = %d %s", r.status, r.body)
		}
		var out api.Summary
		r.decode(t, &out)
		return out
	}
	// Attestations are written every 2 s: the counts catch up.
	testkit.Eventually(t, 30*time.Second, func() bool {
		sum = get()
		var ok, failed uint64
		for _, h := range sum.Hours {
			ok, failed = ok+h.AttestationsSucceeded, failed+h.AttestationsFailed
		}
		return ok >= 1 && failed >= 1
	}, "the summary never counted the attestations: %+v", &sum)

	if sum.AccountID != acct || len(sum.Hours) != 24 || !sum.Hours[23].Start.Equal(vectorTime.Truncate(time.Hour)) {
		t.Errorf("summary of %s with %d hours ending at %v, want %s's 24 hours to %v", sum.AccountID, len(sum.Hours), sum.Hours[len(sum.Hours)-1].Start, acct, vectorTime)
	}
	if sum.Nodes["active"] != 1 || sum.Nodes["unreachable"] != 0 {
		t.Errorf("nodes by status = %v, want 1 active", sum.Nodes)
	}
	if len(sum.Running) != 1 || sum.Running[0].ID != "enclave-1" || sum.Running[0].AppID != appID || sum.Running[0].NodeName != "node-1" {
		t.Errorf("running = %+v, want enclave-1 of the app on node-1", sum.Running)
	}
	if got := sum.Hours[23].CertificatesIssued; got != 2 {
		t.Errorf("certificates issued in the last hour = %d, want the node's and the enclave's", got)
	}
	if len(sum.AttestationFailures) == 0 || sum.AttestationFailures[0].Reason != "malformed" {
		t.Errorf("attestation failures = %+v, want the garbled quote's", sum.AttestationFailures)
	}
	if len(sum.PendingTasks) != 1 || sum.PendingTasks[0].Domain != "second.cloister.test" {
		t.Errorf("pending tasks = %+v, want the second app's domain", sum.PendingTasks)
	}
	if len(sum.ExpiringCertificates) != 0 {
		t.Errorf("expiring certificates = %+v, want none: they last 30 and 90 days", sum.ExpiringCertificates)
	}

	// The console opens the account on the same figures, the day drawn
	// as bars (SVG, no script), one per hour and kind with its words.
	b := newConsoleClient(t, consoleServer(t, s.gw))
	b.login("admin@example.com")
	hour := vectorTime.Truncate(time.Hour).Format("15:04")
	if p := b.get("/a/" + acct); p.status != http.StatusSeeOther || p.header.Get("Location") != "/a/"+acct+"/overview" {
		t.Fatalf("the account's page = %d to %q, want a redirect to its overview", p.status, p.header.Get("Location"))
	}
	p := b.get("/a/"+acct+"/overview").want(t, http.StatusOK, "<h1>Overview of A</h1>", `<strong>1</strong> pending task</a>`,
		`<strong>1</strong> active node</a>`, `<strong>1</strong> running instance</a>`, "<code>enclave-1</code>", ">node-1</a>",
		`class="bar-issued"><title>`+hour+` UTC: 2 certificates issued</title>`, `class="bar-failed"><title>`+hour+` UTC: `,
		"<code>second.cloister.test</code>", "<code>malformed</code>", "No certificate in use ends within 7 days.")
	if strings.Contains(p.body, "<script") && !strings.Contains(p.body, `<script src="/static/console.js"`) {
		t.Error("the overview carries a script of its own")
	}

	// The stranger's account has none of it; the account itself is a 404
	// to the stranger.
	var theirs api.Summary
	do(t, s.srv, "GET", "/v1/accounts/"+other+"/summary", stranger, nil).decode(t, &theirs)
	if theirs.Nodes["active"] != 0 || len(theirs.Running) != 0 || len(theirs.AttestationFailures) != 0 || theirs.Hours[23].CertificatesIssued != 0 {
		t.Errorf("another account's summary = %+v, want nothing of the first's", theirs)
	}
	if r := do(t, s.srv, "GET", base+"/summary", stranger, nil); r.status != http.StatusNotFound {
		t.Errorf("a stranger's GET summary = %d, want 404", r.status)
	}
}
