package gateway_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/events"
	eventsv1 "github.com/cloister-cc/cloister/libs/gen/cloister/events/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
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
	req, err := certificateRequest(is.t, is.qe, is.body, nonce.Nonce, is.appID, is.domain)
	if err != nil {
		is.t.Error(err)
		return a
	}
	status, body, err = is.call("POST", "/v1/node/certificate", req)
	var issued struct{ Certificate struct{ Serial string } }
	if err != nil || status != 201 || json.Unmarshal(body, &issued) != nil || issued.Certificate.Serial == "" {
		a.failure = fmt.Sprintf("certificate: %d %v %.200s", status, err, body)
		return a
	}
	a.serial = issued.Certificate.Serial
	return a
}

func (is *issuer) call(method, path string, in any) (int, []byte, error) {
	return callTolerant(is.c, method, is.srv.URL+path, "", in)
}

// certificateRequest is what an enclave of body (an image of app appID)
// sends for a certificate for domain: a CSR of a new key, and a quote by
// qe whose REPORTDATA binds that key and nonce.
func certificateRequest(t testing.TB, qe *sim.QE, body sgx.ReportBody, nonce []byte, appID, domain string) (map[string]any, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	binding := sha256.Sum256(spki)
	copy(body.ReportData[:32], binding[:])
	copy(body.ReportData[32:], nonce)
	quote, err := qe.Quote(body)
	if err != nil {
		return nil, err
	}
	return map[string]any{"app_id": appID, "csr": string(csrOf(t, key, domain)), "quote": quote}, nil
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

// announced counts the events on subject by the id of the image they are
// about, reading the EVENTS stream from its start.
func announced(t *testing.T, js jetstream.JetStream, subject string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, events.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil // the cluster is busy: the caller asks again
	}
	count := map[string]int{}
	for {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return count
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var env eventsv1.Envelope
			var ev imageconverterv1.ImageConverted
			if err := proto.Unmarshal(m.Data(), &env); err != nil || proto.Unmarshal(env.GetPayload(), &ev) != nil {
				t.Fatalf("an event on %s that does not decode: %v", subject, err)
			}
			count[ev.GetImage().GetId()]++
		}
		if n == 0 {
			return count
		}
	}
}

// postTolerant and getTolerant call the API as token without failing the
// test on a 5xx, which a fault may cause.
func postTolerant(url, token string, in any) (int, []byte, error) {
	return callTolerant(http.DefaultClient, "POST", url, token, in)
}

func getTolerant(url, token string) (int, []byte, error) {
	return callTolerant(http.DefaultClient, "GET", url, token, nil)
}

// callTolerant sends in (JSON, when not nil; keyed: with an
// Idempotency-Key) with c, as token when one is given, and returns the
// answer whatever its status.
func callTolerant(c *http.Client, method, url, token string, in any) (int, []byte, error) {
	k, isKeyed := in.(keyed)
	if isKeyed {
		in = k.body
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if isKeyed {
		req.Header.Set("Idempotency-Key", k.key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
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
		chaosReport(t, "%s: unavailable %d ms, %d requests failed (last: %.150s)", f.name, unavailable.Milliseconds(), failures, last)
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
	chaosReport(t, "%d certificates given, %d recorded: lost %d, duplicated %d, issued with no answer %d",
		len(given), len(certs.Items), lost, duplicated, len(recorded)-len(given))
	if lost != 0 || duplicated != 0 {
		t.Fatalf("lost %d, duplicated %d", lost, duplicated)
	}
}

// TestConversionsThroughANodeDeath converts images on a three-node
// cluster with two converting replicas, each on its own node: the node
// leading the converters' work queue (JOBS) is killed as the first
// conversion starts, and the others are asked for during its election.
// Each completes, and is announced once (one ImageConverted each; one
// whose publish failed in the election comes from the outbox's recovery).
func TestConversionsThroughANodeDeath(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	s := newStackOn(t, memory(t), c, 2)
	startImageWorker(t, s)
	startImageWorker(t, s)
	host := startImageRegistry(t)
	// Large enough that conversions take a while: the kill falls among them.
	img, err := random.Image(4<<20, 4)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/in:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	_, admin := s.user("ada@example.com")
	acct := s.account(admin, "A")
	base := "/v1/accounts/" + acct
	if r := do(t, s.srv, "POST", base+"/apps", admin, map[string]any{"name": "hello", "input_image": host + "/in:1", "output_image": host + "/out", "entrypoint": []string{"/bin/hello"}}); r.status != 201 {
		t.Fatalf("creating the app = %d %s", r.status, r.body)
	}
	const conversions = 6
	ids := map[string]bool{}
	convert := func(i int) string {
		var r response
		testkit.EventuallyMsg(t, 30*time.Second, func() bool { // the signing key comes with AccountCreated
			code, body, err := postTolerant(s.srv.URL+base+"/images", admin, map[string]string{"app": "hello", "tag": fmt.Sprint(i)})
			r = response{status: code, body: body}
			return err == nil && code == 202
		}, func() string { return fmt.Sprintf("converting never accepted: %d %s", r.status, r.body) })
		var img struct{ ID string }
		r.decode(t, &img)
		ids[img.ID] = true
		return img.ID
	}
	// The first conversion starts, the JOBS leader dies, the others are
	// asked for while a new one is elected.
	first := convert(0)
	killed := c.WaitForStreamLeader("JOBS", 10*time.Second)
	c.Kill(killed)
	underWay := 0
	if code, body, err := getTolerant(s.srv.URL+base+"/images/"+first, admin); err != nil || code != 200 || !strings.Contains(string(body), `"status":"converted"`) {
		underWay++
	}
	for i := 1; i < conversions; i++ {
		convert(i)
	}
	status := map[string]string{}
	testkit.EventuallyMsg(t, 90*time.Second, func() bool {
		done := 0
		for id := range ids {
			code, body, err := getTolerant(s.srv.URL+base+"/images/"+id, admin)
			var img struct{ Status string }
			if err == nil && code == 200 && json.Unmarshal(body, &img) == nil {
				status[id] = img.Status
			}
			if status[id] == "failed" {
				t.Fatalf("conversion %s failed: %s", id, body)
			}
			if status[id] == "converted" {
				done++
			}
		}
		return done == len(ids)
	}, func() string { return fmt.Sprintf("conversions not all converted: %v", status) })
	c.Restart(killed)

	// Once: one ImageConverted per image. An event whose publish failed
	// in the election is published by the outbox's recovery, later.
	js := s.st.JetStream()
	var converted map[string]int
	testkit.EventuallyMsg(t, 60*time.Second, func() bool {
		converted = announced(t, js, events.Subject("imageconverter", &imageconverterv1.ImageConverted{}))
		for id := range ids {
			if converted[id] == 0 {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("not every conversion was announced: %v", converted) })
	for id := range ids {
		if converted[id] != 1 {
			t.Errorf("image %s was announced converted %d times, want once", id, converted[id])
		}
	}
	chaosReport(t, "%d conversions, the first under way when the JOBS leader died (%v), the others asked for during its election: each announced once",
		len(ids), underWay == 1)
}

// chaosReport logs a line of a chaos test's report, and appends it to
// chaos.txt among the test's artifacts: make test keeps them in
// .artifacts/ and prints every chaos.txt at its end, as a passing test's
// log is not shown.
func chaosReport(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	f, err := os.OpenFile(filepath.Join(t.ArtifactDir(), "chaos.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("keeping the chaos report: %v", err)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s: %s\n", t.Name(), line); err != nil {
		t.Errorf("keeping the chaos report: %v", err)
	}
}
