package gateway_test

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// isChecked tells whether the page's checkbox name (and value) is checked.
func isChecked(body, name, value string) bool {
	attr := `name="` + name + `"`
	if value != "" {
		attr += ` value="` + value + `"`
	}
	m := regexp.MustCompile(`<input type="checkbox" ` + regexp.QuoteMeta(attr) + `[^>]*>`).FindString(body)
	return strings.Contains(m, " checked")
}

func TestConsolePolicy(t *testing.T) {
	s, srv := newConsoleStack(t)
	ada := newConsoleClient(t, srv)
	ada.signUp("ada@example.com")
	acct := ada.createAccount("Payments")
	path := "/a/" + acct + "/policy"
	// apiPolicy is the account's policy, as the API has it.
	apiPolicy := func() api.AttestationPolicy {
		t.Helper()
		var got api.AttestationPolicy
		apiGet(t, s, "/v1/accounts/"+acct+"/attestation/policy", ada.session(), &got)
		return got
	}
	// withDefaults is p with the TDX and SEV-SNP rules an unset one has.
	withDefaults := func(p api.AttestationPolicy) api.AttestationPolicy {
		if p.TDX == nil {
			p.TDX = &api.TDXPolicy{AcceptStatuses: []string{"UpToDate", "SWHardeningNeeded"}, MRTDs: []string{}, RTMRs: []string{}}
		}
		if p.SNP == nil {
			p.SNP = &api.SNPPolicy{Measurements: []string{}}
		}
		return p
	}
	narrow := jsonOf(t, withDefaults(api.AttestationPolicy{AcceptStatuses: []string{"UpToDate"}}))

	// The default policy, with a labelled checkbox for every status the
	// API knows.
	p := ada.open(path)
	if p.status != 200 || !strings.Contains(p.body, `aria-current="page">Attestation policy`) {
		t.Fatalf("GET %s = %d %s", path, p.status, p.body)
	}
	for _, st := range sgx.AllStatuses {
		want := st == sgx.StatusUpToDate || st == sgx.StatusSWHardeningNeeded
		if !strings.Contains(p.body, `value="`+string(st)+`"`) || isChecked(p.body, "accept_statuses", string(st)) != want {
			t.Errorf("status %s: shown %v, checked %v, want checked %v", st, strings.Contains(p.body, `value="`+string(st)+`"`),
				isChecked(p.body, "accept_statuses", string(st)), want)
		}
	}
	for _, box := range []string{"allow_debug", "allow_simulation", "require_node_attestation"} {
		if !strings.Contains(p.body, `name="`+box+`"`) || isChecked(p.body, box, "") {
			t.Errorf("the default policy's %s box is missing or checked", box)
		}
	}
	if !strings.Contains(p.body, `name="min_isvsvn" inputmode="numeric" value="0"`) || !strings.Contains(p.body, "proves nothing about the hardware") ||
		strings.Contains(p.body, "Only the account") {
		t.Fatalf("the policy page lacks the ISVSVN, the simulation warning, or thinks ada is no admin: %s", p.body)
	}

	// Setting every field through the form.
	mrtd, measurement := strings.Repeat("ab", 48), strings.Repeat("cd", 48)
	form := url.Values{"accept_statuses": {"UpToDate", "ConfigurationNeeded", "OutOfDate"}, "allow_debug": {"on"},
		"allow_simulation": {"on"}, "min_isvsvn": {"5"}, "require_node_attestation": {"on"},
		"tdx_accept_statuses": {"UpToDate"}, "tdx_mrtds": {" " + mrtd + "\r\n\r\n"}, "tdx_rtmr2": {mrtd},
		"snp_allow_debug": {"on"}, "snp_measurements": {measurement}, "snp_min_tcb": {"0x7308000000000003"}}
	p = ada.post(path, form)
	if p.status != http.StatusSeeOther || p.location != path {
		t.Fatalf("saving the policy = %d to %q: %s", p.status, p.location, p.body)
	}
	p = ada.follow(p)
	if !strings.Contains(p.body, "Attestation policy saved") || !strings.Contains(p.body, "Simulated evidence is accepted") {
		t.Fatalf("after saving the policy: %s", p.body)
	}
	want := api.AttestationPolicy{AcceptStatuses: []string{"UpToDate", "ConfigurationNeeded", "OutOfDate"}, AllowDebug: true,
		AllowSimulation: true, MinISVSVN: 5, RequireNodeAttestation: true,
		TDX: &api.TDXPolicy{AcceptStatuses: []string{"UpToDate"}, MRTDs: []string{mrtd}, RTMRs: []string{"", "", mrtd, ""}},
		SNP: &api.SNPPolicy{AllowDebug: true, Measurements: []string{measurement}, MinTCB: "0x7308000000000003"}}
	if got := apiPolicy(); jsonOf(t, got) != jsonOf(t, want) {
		t.Fatalf("the API has the policy %+v, want %+v", got, want)
	}
	for _, st := range sgx.AllStatuses {
		if w := st == "UpToDate" || st == "ConfigurationNeeded" || st == "OutOfDate"; isChecked(p.body, "accept_statuses", string(st)) != w {
			t.Errorf("after saving, status %s checked = %v, want %v", st, !w, w)
		}
	}
	if !isChecked(p.body, "allow_debug", "") || !isChecked(p.body, "allow_simulation", "") || !isChecked(p.body, "require_node_attestation", "") ||
		!strings.Contains(p.body, `name="min_isvsvn" inputmode="numeric" value="5"`) || !isChecked(p.body, "tdx_accept_statuses", "UpToDate") ||
		isChecked(p.body, "tdx_accept_statuses", "SWHardeningNeeded") || !isChecked(p.body, "snp_allow_debug", "") || isChecked(p.body, "tdx_allow_debug", "") ||
		!strings.Contains(p.body, `name="tdx_rtmr2" value="`+mrtd+`"`) || !strings.Contains(p.body, `>`+measurement+`</textarea>`) ||
		!strings.Contains(p.body, `value="0x7308000000000003"`) {
		t.Fatalf("the saved policy is not what the page shows: %s", p.body)
	}

	// Unchecking is saved too.
	p = ada.post(path, url.Values{"accept_statuses": {"UpToDate"}, "min_isvsvn": {""}})
	if got := apiPolicy(); p.status != http.StatusSeeOther || jsonOf(t, got) != narrow {
		t.Fatalf("saving a narrower policy = %d; the API has %+v", p.status, got)
	}

	// Errors, the console's or the API's, keep what was submitted.
	for _, tc := range []struct {
		name string
		form url.Values
		says string
	}{
		{"no status", url.Values{"allow_debug": {"on"}, "min_isvsvn": {"7"}}, "accept_statuses must name at least one TCB status"},
		{"ISVSVN too large", url.Values{"accept_statuses": {"OutOfDate"}, "allow_debug": {"on"}, "min_isvsvn": {"70000"}},
			"Minimum ISVSVN must be a whole number from 0 to 65535, not &#34;70000&#34;"},
		{"unknown status", url.Values{"accept_statuses": {"Sideways"}, "allow_debug": {"on"}, "min_isvsvn": {"7"}}, `unknown TCB status &#34;Sideways&#34;`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ada.post(path, tc.form)
			if p.status != http.StatusBadRequest || !strings.Contains(p.body, `role="alert"`) || !strings.Contains(p.body, tc.says) {
				t.Fatalf("POST %s (%s) = %d, want 400 saying %q: %s", path, tc.name, p.status, tc.says, p.body)
			}
			if !isChecked(p.body, "allow_debug", "") || !strings.Contains(p.body, `value="`+tc.form.Get("min_isvsvn")+`"`) ||
				isChecked(p.body, "accept_statuses", "UpToDate") || isChecked(p.body, "accept_statuses", "OutOfDate") != (tc.form.Get("accept_statuses") == "OutOfDate") {
				t.Fatalf("the refused form lost what was submitted: %s", p.body)
			}
		})
	}
	for field, tc := range map[string]struct{ value, says string }{
		"tdx_mrtds":   {"abcd", "tdx.mrtds[0]: 2 bytes; a measurement is 48"},
		"snp_min_tcb": {"soon", "sev_snp.min_tcb: &#34;soon&#34; is not a TCB_VERSION in hex"},
		"tdx_rtmr1":   {"zz", "tdx.rtmrs[1]: not hex"},
	} {
		p := ada.post(path, url.Values{"accept_statuses": {"UpToDate"}, field: {tc.value}})
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, tc.says) || !strings.Contains(p.body, tc.value) {
			t.Fatalf("POST %s with %s=%q = %d, want 400 saying %q with the value kept: %s", path, field, tc.value, p.status, tc.says, p.body)
		}
	}
	if got := apiPolicy(); jsonOf(t, got) != narrow {
		t.Fatalf("refused forms changed the policy: %+v", got)
	}

	// A member reads the policy but cannot change it.
	bob := newConsoleClient(t, srv)
	bob.signUp("bob@example.com")
	s.addMember(ada.session(), acct, "bob@example.com", "member")
	p = bob.open(path)
	if p.status != 200 || !strings.Contains(p.body, "Only the account's admins can change the policy") || !isChecked(p.body, "accept_statuses", "UpToDate") {
		t.Fatalf("a member's policy page = %d %s", p.status, p.body)
	}
	p = bob.post(path, url.Values{"accept_statuses": {"OutOfDate", "Revoked"}, "allow_simulation": {"on"}, "min_isvsvn": {"9"}})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "your role in this account does not allow this") {
		t.Fatalf("a member saving the policy = %d, want 403 with the API's message: %s", p.status, p.body)
	}
	if !isChecked(p.body, "accept_statuses", "Revoked") || isChecked(p.body, "accept_statuses", "UpToDate") || !isChecked(p.body, "allow_simulation", "") ||
		!strings.Contains(p.body, `value="9"`) {
		t.Fatalf("the member's refused form lost what was submitted: %s", p.body)
	}
	if got := apiPolicy(); jsonOf(t, got) != narrow {
		t.Fatalf("a member changed the policy: %+v", got)
	}

	// Another user's account does not exist, as far as eve can tell.
	eve := newConsoleClient(t, srv)
	eve.signUp("eve@example.com")
	eve.open("/accounts")
	if p := eve.open(path); p.status != http.StatusNotFound || strings.Contains(p.body, "Payments") {
		t.Fatalf("eve GET %s = %d, want 404: %s", path, p.status, p.body)
	}
	if p := eve.post(path, url.Values{"accept_statuses": {"Revoked"}}); p.status != http.StatusNotFound {
		t.Fatalf("eve POST %s = %d, want 404", path, p.status)
	}
	if p := eve.open("/a/" + acct + "/audit"); p.status != http.StatusNotFound || strings.Contains(p.body, "ada@example.com") {
		t.Fatalf("eve GET the audit log = %d, want 404: %s", p.status, p.body)
	}
}

// auditRows are the audit table's rows, as text without tags.
func auditRows(body string) []string {
	tbody := regexp.MustCompile(`(?s)<table class="audit">.*?<tbody>(.*?)</tbody>`).FindStringSubmatch(body)
	if tbody == nil {
		return nil
	}
	var rows []string
	for _, tr := range regexp.MustCompile(`(?s)<tr>(.*?)</tr>`).FindAllStringSubmatch(tbody[1], -1) {
		cells := regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`).FindAllStringSubmatch(tr[1], -1)
		var text []string
		for _, c := range cells {
			text = append(text, strings.TrimSpace(regexp.MustCompile(`<[^>]+>`).ReplaceAllString(c[1], " ")))
		}
		rows = append(rows, strings.Join(text, " | "))
	}
	return rows
}

func TestConsoleAudit(t *testing.T) {
	s, srv := newConsoleStack(t)
	ada := newConsoleClient(t, srv)
	ada.signUp("ada@example.com")
	acct := ada.createAccount("Payments")
	path := "/a/" + acct + "/audit"

	p := ada.open(path)
	rows := auditRows(p.body)
	if p.status != 200 || len(rows) != 1 || !strings.Contains(rows[0], "ada@example.com") || !strings.Contains(rows[0], "account.create") ||
		!strings.Contains(rows[0], "success") || !strings.Contains(p.body, `aria-current="page">Audit log`) {
		t.Fatalf("the audit log of a new account = %d, rows %q: %s", p.status, rows, p.body)
	}
	if strings.Contains(p.body, `rel="next"`) || strings.Contains(p.body, "Newest entries") {
		t.Fatalf("one page of entries has paging links: %s", p.body)
	}

	// A policy change and a refused one, through the console.
	ada.open("/a/" + acct + "/policy")
	ada.post("/a/"+acct+"/policy", url.Values{"accept_statuses": {"UpToDate", "OutOfDate"}})
	ada.post("/a/"+acct+"/policy", url.Values{"accept_statuses": {"Sideways"}})
	p = ada.open(path)
	rows = auditRows(p.body)
	if len(rows) != 3 {
		t.Fatalf("audit rows = %q, want account.create and two policy changes", rows)
	}
	for i, want := range [][]string{ // newest first
		{"ada@example.com", "session", "attestation.policy.set", acct, "failure", "unknown TCB status &#34;Sideways&#34;"},
		{"ada@example.com", "session", "attestation.policy.set", acct, "success", "—"},
		{"ada@example.com", "session", "account.create", acct, "success", "—"},
	} {
		for _, w := range want {
			if !strings.Contains(rows[i], w) {
				t.Errorf("audit row %d = %q, want it to contain %q", i, rows[i], w)
			}
		}
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \|`).MatchString(rows[i]) {
			t.Errorf("audit row %d = %q, want it to start with the time", i, rows[i])
		}
	}

	// An API key's change names the key.
	keyID, key := s.apiKey(ada.session(), acct)
	if r := do(t, s.srv, "PUT", "/v1/accounts/"+acct+"/attestation/policy", key, map[string]any{"accept_statuses": []string{"UpToDate"}}); r.status != 200 {
		t.Fatalf("setting the policy with an API key = %d %s", r.status, r.body)
	}
	p = ada.open(path)
	if !strings.Contains(p.body, `API key <code title="`+keyID+`">`) {
		t.Fatalf("the audit log does not name the API key %s: %s", keyID, p.body)
	}

	// Paging: the console shows 50 entries a page and links to the next.
	for range 50 {
		if r := do(t, s.srv, "PATCH", "/v1/accounts/"+acct, ada.session(), map[string]string{"description": "x"}); r.status != 200 {
			t.Fatalf("updating the account = %d %s", r.status, r.body)
		}
	}
	var first api.List[api.AuditEntry]
	apiGet(t, s, "/v1/accounts/"+acct+"/audit?limit=50&order=newest", ada.session(), &first)
	if first.NextCursor == "" {
		t.Fatal("the API gives no next cursor after 50 of 55 entries")
	}
	// Through the API, newest first page by page is oldest first reversed,
	// each entry once; an unknown order is a 400.
	// every pages through the log with query, and returns the entries' ids.
	every := func(query string) (ids []string) {
		for cursor := ""; ; {
			var l api.List[api.AuditEntry]
			apiGet(t, s, "/v1/accounts/"+acct+"/audit?"+query+"&cursor="+url.QueryEscape(cursor), ada.session(), &l)
			for _, e := range l.Items {
				ids = append(ids, e.ID)
			}
			if cursor = l.NextCursor; cursor == "" {
				return ids
			}
		}
	}
	oldest, newest := every("limit=200"), every("limit=7&order=newest")
	slices.Reverse(newest)
	if len(oldest) < 55 || !slices.Equal(oldest, newest) {
		t.Fatalf("newest first, reversed (%d entries) differs from oldest first (%d entries)", len(newest), len(oldest))
	}
	if r := do(t, s.srv, "GET", "/v1/accounts/"+acct+"/audit?order=sideways", ada.session(), nil); r.status != 400 || !strings.Contains(string(r.body), "oldest, newest") {
		t.Fatalf("an unknown order = %d %s, want 400", r.status, r.body)
	}
	p = ada.open(path)
	next := regexp.MustCompile(`href="(/a/[^"]+/audit\?cursor=[^"]+)" rel="next">Older entries`).FindStringSubmatch(p.body)
	if rows := auditRows(p.body); len(rows) != 50 || next == nil || next[1] != path+"?cursor="+url.QueryEscape(first.NextCursor) ||
		!strings.Contains(rows[0], "account.update") {
		t.Fatalf("first audit page: %d rows, next link %q, want 50 and cursor %s", len(rows), next, first.NextCursor)
	}
	p = ada.open(next[1])
	if rows := auditRows(p.body); p.status != 200 || len(rows) != 5 || !strings.Contains(rows[4], "account.create") ||
		strings.Contains(p.body, `rel="next"`) || !strings.Contains(p.body, `href="`+path+`">Newest entries`) {
		t.Fatalf("second audit page = %d, rows %q: %s", p.status, rows, p.body)
	}

	// Past the end, the page says so; a made-up cursor is the API's 400.
	if p := ada.open(path + "?cursor=n1"); p.status != 200 || !strings.Contains(p.body, "No older entries.") || auditRows(p.body) != nil {
		t.Fatalf("an audit page past the end = %d %s", p.status, p.body)
	}
	if p := ada.open(path + "?cursor=bogus"); p.status != http.StatusBadRequest || !strings.Contains(p.body, "cursor is not one this API returned") ||
		!strings.Contains(p.body, `aria-current="page">Audit log`) {
		t.Fatalf("an audit page with a bad cursor = %d %s", p.status, p.body)
	}

	// Members may not read the audit log; auditors may.
	bob, carol := newConsoleClient(t, srv), newConsoleClient(t, srv)
	bob.signUp("bob@example.com")
	carol.signUp("carol@example.com")
	s.addMember(ada.session(), acct, "bob@example.com", "member")
	s.addMember(ada.session(), acct, "carol@example.com", "auditor")
	if p := bob.open(path); p.status != http.StatusForbidden || !strings.Contains(p.body, "your role in this account does not allow this") ||
		auditRows(p.body) != nil || strings.Contains(p.body, "No entries yet") || !strings.Contains(p.body, `aria-current="page">Audit log`) {
		t.Fatalf("a member's audit page = %d %s", p.status, p.body)
	}
	if p := carol.open(path); p.status != 200 || len(auditRows(p.body)) != 50 {
		t.Fatalf("an auditor's audit page = %d with %d rows", p.status, len(auditRows(p.body)))
	}
}
