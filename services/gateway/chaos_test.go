package gateway_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// issuer is an enclave of an approved application asking the CA for its
// certificate through its node, over and over, as fast as answers come:
// each attempt with a fresh nonce and key, and a failed one tried again.
type issuer struct {
	t      *testing.T
	c      *http.Client
	srv    *httptest.Server
	qe     *sim.QE
	body   sgx.ReportBody
	appID  string
	domain string

	mu       sync.Mutex
	attempts []attempt
}

// attempt is one certificate request as the enclave saw it.
type attempt struct {
	at, done time.Time
	serial   string // issued; "" when it failed
	failure  string
}

// once asks for one certificate: a nonce, a quote binding a new key to
// it, the request.
func (is *issuer) once() (a attempt) {
	a.at = time.Now()
	defer func() { a.done = time.Now() }()
	var nonce struct{ Nonce []byte }
	status, body, err := is.call("POST", "/v1/node/nonce", nil)
	if err != nil || status != 201 || json.Unmarshal(body, &nonce) != nil {
		a.failure = fmt.Sprintf("nonce: %d %v %.200s", status, err, body)
		return a
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	binding := sha256.Sum256(spki)
	rb := is.body
	copy(rb.ReportData[:32], binding[:])
	copy(rb.ReportData[32:], nonce.Nonce)
	quote, err := is.qe.Quote(rb)
	if err != nil {
		is.t.Error(err)
		return a
	}
	status, body, err = is.call("POST", "/v1/node/certificate", map[string]any{"app_id": is.appID, "csr": string(csrOf(is.t, key, is.domain)), "quote": quote})
	var issued struct{ Certificate struct{ Serial string } }
	if err != nil || status != 201 || json.Unmarshal(body, &issued) != nil || issued.Certificate.Serial == "" {
		a.failure = fmt.Sprintf("certificate: %d %v %.200s", status, err, body)
		return a
	}
	a.serial = issued.Certificate.Serial
	return a
}

func (is *issuer) call(method, path string, in any) (int, []byte, error) {
	var rd io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, is.srv.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := is.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// run asks until stop is closed.
func (is *issuer) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		default:
		}
		a := is.once()
		is.mu.Lock()
		is.attempts = append(is.attempts, a)
		is.mu.Unlock()
		if a.serial == "" {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// since returns the attempts that ended after t.
func (is *issuer) since(t time.Time) []attempt {
	is.mu.Lock()
	defer is.mu.Unlock()
	var out []attempt
	for _, a := range is.attempts {
		if a.done.After(t) {
			out = append(out, a)
		}
	}
	return out
}

// waitForSuccess waits until an attempt that began after t succeeds.
func (is *issuer) waitForSuccess(t time.Time, within time.Duration) {
	is.t.Helper()
	testkit.EventuallyMsg(is.t, within, func() bool {
		for _, a := range is.since(t) {
			if a.serial != "" && a.at.After(t) {
				return true
			}
		}
		return false
	}, func() string {
		return fmt.Sprintf("no certificate issued within %v of %s (%d attempts since); the last failure: %s",
			within, t.Format(time.StampMilli), len(is.since(t)), is.lastFailure())
	})
}

func (is *issuer) lastFailure() string {
	is.mu.Lock()
	defer is.mu.Unlock()
	for i := len(is.attempts) - 1; i >= 0; i-- {
		if a := is.attempts[i]; a.serial == "" {
			return a.failure
		}
	}
	return "none"
}

// report says what the attempts between from and to came to: the longest
// time without an answer that issued a certificate, and the failures.
func report(attempts []attempt, from, to time.Time) (unavailable time.Duration, failures int, last string) {
	lastOK := from
	for _, a := range attempts {
		if a.done.Before(from) || a.at.After(to) {
			continue
		}
		if a.serial == "" {
			failures++
			last = a.failure
			continue
		}
		unavailable = max(unavailable, a.done.Sub(lastOK))
		lastOK = a.done
	}
	return unavailable, failures, last
}

// getTolerant is a GET of the API that does not fail the test on a 5xx.
func getTolerant(url, token string) (int, []byte, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestIssuanceThroughFaults runs Cloister on a three-node cluster (every
// stream and bucket on all three, two replicas of every service each on
// its own node) while an enclave asks for certificates without pause, and
// injects one fault after another: the JetStream meta leader killed, the
// leader of the CA's certificates killed, a node partitioned for 10 s.
// Issuance resumes after each; afterwards every certificate the enclave
// was given is recorded once, and none more than it asked for. For each
// fault it prints the longest time without an issued certificate and the
// requests that failed.
func TestIssuanceThroughFaults(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	s := newStackOn(t, memory(t), c, 2)
	adminID, token := s.user("ada@example.com")
	acct := s.account(token, "Payments")
	s.waitCA(t, token, acct)
	srv := s.nodeServer(t)
	node := s.enrolNode(t, token, acct, "n1")
	domain := "pay.example.com"
	app, body := s.approvedHello(t, token, adminID, acct, domain)
	base := "/v1/accounts/" + acct
	qe, err := s.att.SimulatedQE(acct)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{t: t, c: nodeClient(t, srv, node.tlsCert()), srv: srv, qe: qe, body: body, appID: app.ID, domain: domain}
	start := time.Now()
	stop, done := make(chan struct{}), make(chan struct{})
	go is.run(stop, done)
	is.waitForSuccess(start, 20*time.Second) // the approvals reached the CA and the attestation service
	// A fault's inject returns what ends it. Issuance must resume while a
	// node is dead (the others have a quorum); through a partitioned node
	// it cannot, when the gateway is on it, so that ends first.
	faults := []struct {
		name        string
		inject      func() (heal func())
		healToServe bool
	}{
		{"meta leader killed", func() func() {
			i := c.WaitForMetaLeader(20 * time.Second)
			c.Kill(i)
			return func() { c.Restart(i) }
		}, false},
		{"leader of KV_ca_certificates killed", func() func() {
			i := c.WaitForStreamLeader("KV_ca_certificates", 20*time.Second)
			c.Kill(i)
			return func() { c.Restart(i) }
		}, false},
		{"a node partitioned for 10 s", func() func() {
			i := (c.WaitForMetaLeader(20*time.Second) + 1) % len(c.Nodes)
			c.Partition(i)
			time.Sleep(10 * time.Second)
			return func() { c.Heal(i) }
		}, true},
	}
	for _, f := range faults {
		from := time.Now()
		is.waitForSuccess(from, 30*time.Second) // issuing before the fault
		at := time.Now()
		heal := f.inject()
		if !f.healToServe {
			is.waitForSuccess(at, 60*time.Second)
		}
		heal()
		is.waitForSuccess(time.Now(), 60*time.Second)
		unavailable, failures, last := report(is.since(from), at, time.Now())
		t.Logf("%s: unavailable %d ms, %d requests failed (last: %.150s)", f.name, unavailable.Milliseconds(), failures, last)
	}
	close(stop)
	<-done

	// Every certificate the enclave was given is the CA's, once; the CA
	// issued no certificate of the app that nobody was given.
	given := map[string]bool{}
	for _, a := range is.since(start) {
		if a.serial != "" {
			if given[a.serial] {
				t.Fatalf("certificate %s given twice", a.serial)
			}
			given[a.serial] = true
		}
	}
	var certs struct {
		Items []struct {
			Serial, Kind string
		}
	}
	// The services converge after the last fault: the list may take a
	// moment to answer.
	var r response
	testkit.EventuallyMsg(t, 30*time.Second, func() bool {
		status, body, err := getTolerant(s.srv.URL+base+"/certificates?kind=app", token)
		r = response{status: status, body: body}
		return err == nil && status == 200
	}, func() string { return fmt.Sprintf("listing the certificates = %d %.300s", r.status, r.body) })
	r.decode(t, &certs)
	recorded := map[string]int{}
	for _, cert := range certs.Items {
		recorded[cert.Serial]++
	}
	lost, duplicated := 0, 0
	for serial := range given {
		if recorded[serial] == 0 {
			lost++
		}
	}
	for _, n := range recorded {
		duplicated += n - 1
	}
	// The first attempts, before the approvals reached the CA, are not
	// counted: they issued nothing.
	t.Logf("%d certificates given, %d recorded: lost %d, duplicated %d, issued with no answer %d",
		len(given), len(certs.Items), lost, duplicated, len(recorded)-len(given))
	if lost != 0 || duplicated != 0 {
		t.Fatalf("lost %d, duplicated %d", lost, duplicated)
	}
}
