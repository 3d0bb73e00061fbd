package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/events"
	eventsv1 "github.com/cloister-cc/cloister/libs/gen/cloister/events/v1"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// apiCall is one call a journey made, as its client saw it.
type apiCall struct {
	op       string
	at, done time.Time
	status   int    // 0: no answer
	failure  string // "" when it was the answer wanted
}

// failed tells whether the call failed as a fault makes calls fail: no
// answer, or a 5xx.
func (c apiCall) failed() bool { return c.failure != "" && (c.status == 0 || c.status >= 500) }

// callLog is every call of every journey.
type callLog struct {
	mu  sync.Mutex
	all []apiCall
}

func (l *callLog) add(c apiCall) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, c)
}

// window says what the calls between from and to came to: the longest
// time in which no call got the answer it wanted, the calls that failed
// as faults make them fail, of how many, and the last such failure.
func (l *callLog) window(from, to time.Time) (unavailable time.Duration, failed, total int, last string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ok []time.Time
	for _, c := range l.all {
		if c.done.Before(from) || c.at.After(to) {
			continue
		}
		total++
		if c.failed() {
			failed++
			last = c.failure
		}
		if c.failure == "" {
			ok = append(ok, c.done)
		}
	}
	slices.SortFunc(ok, func(a, b time.Time) int { return a.Compare(b) })
	prev := from
	for _, at := range append(ok, to) {
		unavailable = max(unavailable, at.Sub(prev))
		prev = at
	}
	return unavailable, failed, total, last
}

// journeyer walks the journey of a new customer, again and again: sign
// up, an account, an application converted from an image, its approvals,
// a node enrolled, an enclave's certificate issued, a heartbeat that
// reports the enclave, the certificate revoked. Each step is retried as
// a careful client retries: the same request, until the answer it wants
// (or, where the first attempt's answer was lost, the answer that says
// it landed).
type journeyer struct {
	t        testing.TB
	s        *stack
	node     *httptest.Server // the gateway's node listener
	registry string
	within   time.Duration // for one step
	// untilIssued ends each journey at its certificate: no heartbeat,
	// no revocation.
	untilIssued bool
	log         callLog
	numbered    atomic.Int64 // the journeys begun, which numbers the next
}

// journey is what one journey made: what the checks afterwards look for.
type journey struct {
	k                                    int
	email, userID, token                 string
	account, app, image, tokenID, nodeID string
	serial                               string
	approvals                            int
	body                                 sgx.ReportBody
	domain                               string
	// nodeAPI calls the node listener as the journey's node.
	nodeAPI func(method, path string, in any) func() (int, []byte, error)
}

var errStep = errors.New("a step never got its answer")

// step sends until accept takes the answer, logging every attempt.
// accept is told whether an earlier attempt got no answer or a 5xx,
// whose effect may have landed all the same.
func (j *journeyer) step(op string, send func() (int, []byte, error), accept func(status int, body []byte, retried bool) bool) ([]byte, error) {
	deadline := time.Now().Add(j.within)
	retried := false
	for {
		c := apiCall{op: op, at: time.Now()}
		status, body, err := send()
		c.done, c.status = time.Now(), status
		if err != nil || !accept(status, body, retried) {
			c.failure = fmt.Sprintf("%s: %d %v %.200s", op, status, err, body)
		}
		j.log.add(c)
		if c.failure == "" {
			return body, nil
		}
		retried = retried || c.failed()
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w in %v: the last %s", errStep, j.within, c.failure)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// api sends in to the API as token.
func (j *journeyer) api(method, path, token string, in any) func() (int, []byte, error) {
	return func() (int, []byte, error) {
		return callTolerant(http.DefaultClient, method, j.s.srv.URL+path, token, in)
	}
}

// apiKeyed is api with an Idempotency-Key, the same at every sending.
func (j *journeyer) apiKeyed(method, path, token string, in any) func() (int, []byte, error) {
	return j.api(method, path, token, keyed{uuid.NewString(), in})
}

func created(status int, _ []byte, _ bool) bool { return status == 201 }
func okay(status int, _ []byte, _ bool) bool    { return status == 200 }

// createdOrLanded takes a 201, or a 409 after an attempt whose answer
// was lost: that attempt made it.
func createdOrLanded(status int, _ []byte, retried bool) bool {
	return status == 201 || status == 202 || retried && status == 409
}

// run walks journey k.
func (j *journeyer) run(k int) (*journey, error) {
	jr := &journey{k: k, email: fmt.Sprintf("j%d@example.com", k)}
	password := "correct horse battery"
	if _, err := j.step("sign up", j.api("POST", "/v1/users", "", map[string]string{"email": jr.email, "password": password}), createdOrLanded); err != nil {
		return jr, err
	}
	body, err := j.step("log in", j.api("POST", "/v1/sessions", "", map[string]string{"email": jr.email, "password": password}), created)
	if err != nil {
		return jr, err
	}
	var sess struct{ Token string }
	if err := json.Unmarshal(body, &sess); err != nil {
		return jr, err
	}
	jr.token = sess.Token
	if body, err = j.step("who am I", j.api("GET", "/v1/users/me", jr.token, nil), okay); err != nil {
		return jr, err
	}
	var me struct{ ID string }
	if err := json.Unmarshal(body, &me); err != nil {
		return jr, err
	}
	jr.userID = me.ID
	if body, err = j.step("create an account", j.apiKeyed("POST", "/v1/accounts", jr.token, map[string]string{"name": fmt.Sprintf("J%d", k)}), created); err != nil {
		return jr, err
	}
	var acct struct{ ID string }
	if err := json.Unmarshal(body, &acct); err != nil {
		return jr, err
	}
	jr.account = acct.ID
	base := "/v1/accounts/" + jr.account
	if _, err := j.step("set the policy", j.api("PUT", base+"/attestation/policy", jr.token, map[string]any{"accept_statuses": []string{"UpToDate"}, "allow_simulation": true}), okay); err != nil {
		return jr, err
	}
	domain := fmt.Sprintf("j%d.example.com", k)
	if _, err := j.step("create an app", j.api("POST", base+"/apps", jr.token, map[string]any{"name": "hello", "input_image": j.registry + "/in:1",
		"output_image": fmt.Sprintf("%s/out%d", j.registry, k), "entrypoint": []string{"/bin/hello"}, "certificate": map[string]any{"domain": domain}}), createdOrLanded); err != nil {
		return jr, err
	}
	var app struct{ ID string }
	if body, err = j.step("read the app", j.api("GET", base+"/apps/hello", jr.token, nil), okay); err != nil || json.Unmarshal(body, &app) != nil {
		return jr, fmt.Errorf("reading the app: %v %s", err, body)
	}
	jr.app = app.ID
	convert := j.api("POST", base+"/images", jr.token, map[string]string{"app": "hello", "tag": "1"})
	accepted := false
	if _, err := j.step("convert", convert, func(status int, body []byte, retried bool) bool {
		accepted = status == 202
		return createdOrLanded(status, body, retried)
	}); err != nil {
		return jr, err
	}
	var img struct {
		ID, Status, Mrenclave, Mrsigner string
		Isvprodid, Isvsvn               uint16
	}
	// A 409 after a lost answer says the tag is taken, by an image that
	// may still be on its way, or never come (its write failed after
	// the tag's claim): while none shows, ask again, until it does or
	// the claim lapses.
	listed := j.api("GET", base+"/images?app=hello", jr.token, nil)
	asked := time.Now()
	if _, err := j.step("wait for the conversion", func() (int, []byte, error) {
		status, body, err := listed()
		if err == nil && status == 200 && !accepted && strings.Contains(string(body), `"items":[]`) && time.Since(asked) > 5*time.Second {
			asked = time.Now()
			if status, _, err := convert(); err == nil && status == 202 {
				accepted = true
			}
		}
		return status, body, err
	}, func(status int, body []byte, _ bool) bool {
		var list struct{ Items []json.RawMessage }
		if status != 200 || json.Unmarshal(body, &list) != nil || len(list.Items) != 1 {
			return false
		}
		return json.Unmarshal(list.Items[0], &img) == nil && img.Status == "converted"
	}); err != nil {
		return jr, err
	}
	jr.image = img.ID
	mre, err1 := hex.DecodeString(img.Mrenclave)
	mrs, err2 := hex.DecodeString(img.Mrsigner)
	if err := errors.Join(err1, err2); err != nil || len(mre) != 32 || len(mrs) != 32 {
		return jr, fmt.Errorf("the image's measurements %q %q: %v", img.Mrenclave, img.Mrsigner, err)
	}
	copy(jr.body.MRENCLAVE[:], mre)
	copy(jr.body.MRSIGNER[:], mrs)
	jr.body.ISVProdID, jr.body.ISVSVN = img.Isvprodid, img.Isvsvn

	var tasks struct{ Items []struct{ ID string } }
	if _, err := j.step("wait for the tasks", j.api("GET", base+"/tasks?status=pending", jr.token, nil), func(status int, body []byte, _ bool) bool {
		return status == 200 && json.Unmarshal(body, &tasks) == nil && len(tasks.Items) == 2
	}); err != nil {
		return jr, err
	}
	for _, task := range tasks.Items {
		if _, err := j.step("approve", j.api("POST", base+"/tasks/"+task.ID+"/approve", jr.token, nil), func(status int, _ []byte, retried bool) bool {
			return status == 200 || retried && status == 409
		}); err != nil {
			return jr, err
		}
		jr.approvals++
	}

	if body, err = j.step("create a join token", j.apiKeyed("POST", base+"/join-tokens", jr.token, map[string]any{"name": "n"}), created); err != nil {
		return jr, err
	}
	var tok struct{ ID, Secret string }
	if err := json.Unmarshal(body, &tok); err != nil {
		return jr, err
	}
	jr.tokenID = tok.ID
	nodeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if body, err = j.step("enrol", j.api("POST", "/v1/agent/enroll", "", map[string]any{"join_token": tok.Secret, "node_name": "n", "csr": string(csrOf(j.t, nodeKey))}), created); err != nil {
		return jr, err
	}
	var enrolled struct {
		Node     struct{ ID string }
		ChainPEM string `json:"chain_pem"`
	}
	if err := json.Unmarshal(body, &enrolled); err != nil {
		return jr, err
	}
	jr.nodeID = enrolled.Node.ID
	n := enrolledNode{ID: enrolled.Node.ID, Key: nodeKey, Chain: pemChain(j.t, enrolled.ChainPEM)}
	nc := nodeClient(j.t, j.node, n.tlsCert())
	nodeAPI := func(method, path string, in any) func() (int, []byte, error) {
		return func() (int, []byte, error) { return callTolerant(nc, method, j.node.URL+path, "", in) }
	}

	jr.nodeAPI, jr.domain = nodeAPI, domain
	if err := j.issue(jr); err != nil {
		return jr, err
	}
	if j.untilIssued {
		return jr, nil
	}
	if _, err := j.step("heartbeat", nodeAPI("POST", "/v1/node/heartbeat", map[string]any{"instances": []map[string]any{{"id": "e1", "certificate_serial": jr.serial, "app_id": jr.app}}}), okay); err != nil {
		return jr, err
	}
	if _, err := j.step("revoke", j.api("POST", base+"/certificates/"+jr.serial+"/revoke", jr.token, map[string]any{"reason": "superseded"}), okay); err != nil {
		return jr, err
	}
	return jr, nil
}

// issue has the CA issue the enclave's certificate through its node: a
// nonce, a quote binding a new key to it, the request, sent again as it
// was while its answer is lost, and with a new nonce when the approvals
// have not yet reached the CA.
func (j *journeyer) issue(jr *journey) error {
	nodeAPI, domain := jr.nodeAPI, jr.domain
	qe, err := j.s.att.SimulatedQE(jr.account)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(j.within)
	for time.Now().Before(deadline) {
		body, err := j.step("a nonce", nodeAPI("POST", "/v1/node/nonce", nil), created)
		if err != nil {
			return err
		}
		var nonce struct{ Nonce []byte }
		if err := json.Unmarshal(body, &nonce); err != nil {
			return err
		}
		req, err := certificateRequest(j.t, qe, jr.body, nonce.Nonce, jr.app, domain)
		if err != nil {
			return err
		}
		var refused bool
		body, err = j.step("issue", nodeAPI("POST", "/v1/node/certificate", req), func(status int, _ []byte, _ bool) bool {
			// Refused (the approvals on their way): a new nonce.
			refused = status >= 400 && status < 500
			return status == 201 || refused
		})
		if err != nil {
			return err
		}
		if refused {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		var issued struct{ Certificate struct{ Serial string } }
		if err := json.Unmarshal(body, &issued); err != nil || issued.Certificate.Serial == "" {
			return fmt.Errorf("an issued certificate without a serial: %s", body)
		}
		jr.serial = issued.Certificate.Serial
		return nil
	}
	return fmt.Errorf("%w: no certificate issued in %v", errStep, j.within)
}

// walk runs the next journeys (numbered on from the last one begun),
// workers at a time, as long as more says to begin the next; wait
// returns those that finished and the errors of those that did not.
func (j *journeyer) walk(workers int, more func(k int) bool) (wait func() ([]*journey, []error)) {
	var (
		mu    sync.Mutex
		done  []*journey
		fails []error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for k := int(j.numbered.Add(1)); more(k); k = int(j.numbered.Add(1)) {
				jr, err := j.run(k)
				mu.Lock()
				if err != nil {
					fails = append(fails, fmt.Errorf("journey %d: %w", k, err))
				} else {
					done = append(done, jr)
				}
				mu.Unlock()
			}
		})
	}
	return func() ([]*journey, []error) {
		wg.Wait()
		return done, fails
	}
}

// journeys walks journeys until stop closes.
func (j *journeyer) journeys(workers int, stop <-chan struct{}) (wait func() ([]*journey, []error)) {
	return j.walk(workers, func(int) bool {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	})
}

// exactly walks the next n journeys.
func (j *journeyer) exactly(n, workers int) ([]*journey, error) {
	last := int(j.numbered.Load()) + n
	done, fails := j.walk(workers, func(k int) bool { return k <= last })()
	return done, errors.Join(fails...)
}

// finished counts the journeys that finished after t.
func (j *journeyer) finishedSince(t time.Time) int {
	j.log.mu.Lock()
	defer j.log.mu.Unlock()
	n := 0
	for _, c := range j.log.all {
		if c.op == "revoke" && c.failure == "" && c.at.After(t) {
			n++
		}
	}
	return n
}

// TestJourneyThroughFaults runs the whole journey, several customers at
// a time, on a three-node cluster (every stream and bucket on all three,
// two replicas of every service in this process, each on its own node,
// and a third of the account service as a process of its own) while one
// fault follows another: the JetStream meta leader killed, the leader of
// the busiest stream killed, a node partitioned for 10 s, the account
// process killed (SIGKILL) as one replica of every in-process service is
// cut dead. After each, journeys begin and finish again; for each it
// prints the longest time no call got its answer, the calls that failed
// and the redeliveries. Afterwards every journey's writes are there once,
// every account's audit log records them, every event was handled by
// every consumer, none twice, and nothing went to the dead letters.
func TestJourneyThroughFaults(t *testing.T) {
	redeliveries, reconnects := testkit.MetricSum(t, "cloister.events.redeliveries"), testkit.MetricSum(t, "cloister.nats.reconnects")
	c := testkit.StartCluster(t, 3)
	s := newStackOn(t, memory(t), c, 2)
	for i := range 2 {
		s.replicaConns[i] = append(s.replicaConns[i], startImageWorker(t, s))
	}
	// A third replica of the account service runs as a process of its
	// own, as a deployment runs it: the last fault kills it with SIGKILL.
	accounts := startServerProcess(t, c, "account")
	j := &journeyer{t: t, s: s, node: s.nodeServer(t), registry: startImageRegistry(t), within: 90 * time.Second}
	pushRandomImage(t, j.registry+"/in:1")

	stop := make(chan struct{})
	wait := j.journeys(3, stop)
	start := time.Now()
	testkit.EventuallyMsg(t, 60*time.Second, func() bool { return j.finishedSince(start) >= 2 }, func() string {
		_, failed, total, last := j.log.window(start, time.Now())
		return fmt.Sprintf("no journeys finished before the faults: %d of %d calls failed, the last: %s", failed, total, last)
	})

	faults := []struct {
		name   string
		inject func() (heal func())
	}{
		{"meta leader killed", func() func() {
			i := c.WaitForMetaLeader(20 * time.Second)
			c.Kill(i)
			return func() { c.Restart(i) }
		}},
		{"leader of the busiest stream killed", func() func() {
			stream := busiestStream(t, s.st.JetStream())
			i := c.WaitForStreamLeader(stream, 20*time.Second)
			t.Logf("the busiest stream: %s, led by node %d", stream, i)
			c.Kill(i)
			return func() { c.Restart(i) }
		}},
		{"a node partitioned for 10 s", func() func() {
			// Not the gateway's: a gateway cut off from the others can
			// serve nothing until its readiness takes it out of service.
			// The services on the node are cut off with it.
			i := (c.NodeOf(s.gwConns[0]) + 1) % len(c.Nodes)
			c.Partition(i)
			time.Sleep(10 * time.Second)
			return func() { c.Heal(i) }
		}},
		{"an account process killed (kill -9), a replica of every service cut dead", func() func() {
			accounts.kill(t)
			s.crash(1)
			return func() {}
		}},
	}
	for _, f := range faults {
		at := time.Now()
		redeliveredBefore := testkit.MetricSum(t, "cloister.events.redeliveries")
		heal := f.inject()
		// The cluster or the surviving replicas carry on: journeys
		// finish while the fault lasts.
		testkit.EventuallyMsg(t, 90*time.Second, func() bool { return j.finishedSince(at) >= 1 }, func() string {
			return fmt.Sprintf("no journey finished after %s", f.name)
		})
		heal()
		healed := time.Now()
		testkit.EventuallyMsg(t, 90*time.Second, func() bool { return j.finishedSince(healed) >= 1 }, func() string {
			return fmt.Sprintf("no journey finished after %s ended", f.name)
		})
		unavailable, failed, total, last := j.log.window(at, time.Now())
		chaosReport(t, "%s: unavailable %d ms, %d of %d calls failed, %d redeliveries (last failure: %.150s)", f.name, unavailable.Milliseconds(), failed, total,
			testkit.MetricSum(t, "cloister.events.redeliveries")-redeliveredBefore, last)
	}
	close(stop)
	done, fails := wait()
	for _, err := range fails {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	n := checkJourneys(t, s, done)
	checkConsumers(t, s.st.JetStream())
	_, failed, total, _ := j.log.window(start, time.Now())
	chaosReport(t, "%d journeys, %d calls, %d failed (%.2f%%), %d redeliveries, %d reconnections; writes that landed unanswered %d, audit entries recorded late %d: lost %d, duplicated %d",
		len(done), total, failed, 100*float64(failed)/float64(max(total, 1)),
		testkit.MetricSum(t, "cloister.events.redeliveries")-redeliveries, testkit.MetricSum(t, "cloister.nats.reconnects")-reconnects,
		n.unanswered, n.lateAudit, n.lost, n.duplicated)
	if n.lost != 0 || n.duplicated != 0 {
		t.Fatalf("lost %d, duplicated %d", n.lost, n.duplicated)
	}
}

// busiestStream is the stream with the most messages.
func busiestStream(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	busiest, most := events.StreamEvents, uint64(0)
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			continue
		}
		if n := s.CachedInfo().State.Msgs; n > most {
			busiest, most = name, n
		}
	}
	return busiest
}

// tally is what the checks after the faults found.
type tally struct {
	lost, duplicated int
	// unanswered are writes that landed though their client was told
	// they failed (a 5xx, no answer): the client, trying again, made
	// another. Only an idempotency key would tell the two apart.
	unanswered int
	// lateAudit are audit entries recorded after a later one: their
	// publish failed in the fault, and the outbox's recovery made it.
	lateAudit int
}

// checkJourneys checks that what each finished journey wrote is there,
// once, as the services now see it, and that its account's audit log
// records it.
func checkJourneys(t *testing.T, s *stack, done []*journey) (n tally) {
	t.Helper()
	// list reads path as jr, waiting out a view that is still catching up
	// with the faults.
	list := func(jr *journey, path string, want func(items []map[string]any) bool) []map[string]any {
		var items []map[string]any
		var r response
		testkit.EventuallyMsg(t, 30*time.Second, func() bool {
			status, body, err := getTolerant(s.srv.URL+path, jr.token)
			r = response{status: status, body: body}
			var page struct{ Items []map[string]any }
			if err != nil || status != 200 || json.Unmarshal(body, &page) != nil {
				return false
			}
			items = page.Items
			return want(items)
		}, func() string { return fmt.Sprintf("journey %d: GET %s = %d %.300s", jr.k, path, r.status, r.body) })
		return items
	}
	count := func(items []map[string]any, key, value string) int {
		c := 0
		for _, it := range items {
			if it[key] == value {
				c++
			}
		}
		return c
	}
	// once checks that the write acknowledged as id is there once.
	once := func(jr *journey, what string, items []map[string]any, key, id string) {
		switch c := count(items, key, id); {
		case c == 0:
			n.lost++
			t.Errorf("journey %d: its %s %s is missing", jr.k, what, id)
		case c > 1:
			n.duplicated += c - 1
			t.Errorf("journey %d: its %s %s is there %d times", jr.k, what, id, c)
		}
	}
	always := func([]map[string]any) bool { return true }
	for _, jr := range done {
		base := "/v1/accounts/" + jr.account
		accounts := list(jr, "/v1/accounts", always)
		once(jr, "account", accounts, "id", jr.account)
		n.unanswered += count(accounts, "name", fmt.Sprintf("J%d", jr.k)) - 1
		once(jr, "app", list(jr, base+"/apps", always), "id", jr.app)
		once(jr, "image", list(jr, base+"/images", always), "id", jr.image)
		tasks := list(jr, base+"/tasks", func(items []map[string]any) bool { return count(items, "status", "approved") == jr.approvals })
		if c := len(tasks); c != jr.approvals {
			t.Errorf("journey %d: %d tasks, want %d", jr.k, c, jr.approvals)
		}
		tokens := list(jr, base+"/join-tokens", always)
		once(jr, "join token", tokens, "id", jr.tokenID)
		n.unanswered += len(tokens) - 1
		nodes := list(jr, base+"/nodes", func(items []map[string]any) bool {
			// The heartbeat reached the registry: the node runs the enclave.
			for _, it := range items {
				if it["id"] == jr.nodeID {
					return strings.Contains(fmt.Sprint(it["instances"]), jr.serial)
				}
			}
			return false
		})
		once(jr, "node", nodes, "id", jr.nodeID)
		n.unanswered += len(nodes) - 1
		certs := list(jr, base+"/certificates?kind=app&include_revoked=true", func(items []map[string]any) bool {
			for _, c := range items {
				if c["serial"] == jr.serial {
					return c["revoked"] == true
				}
			}
			return false
		})
		once(jr, "certificate", certs, "serial", jr.serial)
		n.unanswered += len(certs) - 1
		l, d, late := checkAudit(t, s, jr)
		n.lost, n.duplicated, n.lateAudit = n.lost+l, n.duplicated+d, n.lateAudit+late
	}
	return n
}

// journeyActions are the audit entries (of success) every journey leaves
// in its account's log, as many of each. The CA's cert.issue entries are
// left out: a node's certificate comes with its enrolment, and an
// enclave may be issued one whose answer a fault lost.
var journeyActions = []string{"account.create", "attestation.policy.set", "app.create", "image.convert", "task.approve", "task.approve",
	"node.token.create", "node.enroll", "cert.revoke"}

// checkAudit checks that jr's account's audit log holds no entry twice
// and records each of the journey's writes. The log is in the order its
// records reached it: it returns, besides what is missing and what is
// there twice, how many came after a later one.
func checkAudit(t *testing.T, s *stack, jr *journey) (lost, duplicated, late int) {
	t.Helper()
	type entry struct {
		ID         string
		OccurredAt time.Time `json:"occurred_at"`
		Action     string
		Outcome    string
	}
	var entries []entry
	// missing are the journey's writes the log does not record (yet).
	missing := func() []string {
		left := slices.Clone(journeyActions)
		for _, e := range entries {
			if i := slices.Index(left, e.Action); i >= 0 && e.Outcome == "success" {
				left = slices.Delete(left, i, i+1)
			}
		}
		return left
	}
	path := "/v1/accounts/" + jr.account + "/audit?order=oldest&limit=200"
	var last string
	testkit.EventuallyMsg(t, 30*time.Second, func() bool {
		status, body, err := getTolerant(s.srv.URL+path, jr.token)
		last = fmt.Sprintf("%d %v %.300s", status, err, body)
		var page struct{ Items []entry }
		if err != nil || status != 200 || json.Unmarshal(body, &page) != nil {
			return false
		}
		entries = page.Items
		return len(missing()) == 0
	}, func() string {
		return fmt.Sprintf("journey %d: the audit log does not record %v (%s)", jr.k, missing(), last)
	})
	ids := map[string]bool{}
	for i, e := range entries {
		if ids[e.ID] {
			t.Errorf("journey %d: audit entry %s twice", jr.k, e.ID)
			duplicated++
		}
		ids[e.ID] = true
		if i > 0 && e.OccurredAt.Before(entries[i-1].OccurredAt) {
			late++
		}
	}
	return len(missing()), duplicated, late
}

// checkConsumers waits until every consumer of the EVENTS stream has
// handled every event, and checks that no event is in the stream twice
// and that none went to the dead letters.
func checkConsumers(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	var (
		behind []string
		err2   error
	)
	testkit.EventuallyMsg(t, 60*time.Second, func() bool {
		behind = nil
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lister := stream.ListConsumers(ctx)
		for info := range lister.Info() {
			if info.Config.Durable == "" {
				continue // a reader's (a watcher, a listing), not a service's
			}
			if info.NumPending != 0 || info.NumAckPending != 0 {
				behind = append(behind, fmt.Sprintf("%s: %d pending, %d unacknowledged", info.Name, info.NumPending, info.NumAckPending))
			}
		}
		err2 = lister.Err()
		return err2 == nil && len(behind) == 0
	}, func() string { return fmt.Sprintf("consumers still behind: %v (listing them: %v)", behind, err2) })

	// Each event once: the outbox publishes with the event's id as
	// Nats-Msg-Id, and the stream drops what it has seen.
	cons, err := js.OrderedConsumer(ctx, events.StreamEvents, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var env eventsv1.Envelope
			if err := proto.Unmarshal(m.Data(), &env); err != nil {
				t.Fatalf("an event on %s that does not decode: %v", m.Subject(), err)
			}
			seen[env.GetId()]++
		}
		if n == 0 {
			break
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s is in the stream %d times", id, n)
		}
	}
	dead, err := js.Stream(ctx, events.StreamDeadLetters)
	if err == nil && dead.CachedInfo().State.Msgs != 0 {
		t.Errorf("%d events went to the dead letters", dead.CachedInfo().State.Msgs)
	}
}
