package noderegistry_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	eventsv1 "github.com/cloister-cc/cloister/libs/gen/cloister/events/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/libs/testkit/servicetest"
	"github.com/cloister-cc/cloister/services/attestation"
	"github.com/cloister-cc/cloister/services/ca"
	"github.com/cloister-cc/cloister/services/noderegistry"
)

// clock is a time the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// stack runs the node registry with the real attestation service (in
// simulation) and the real CA on an embedded NATS server.
type stack struct {
	t     testing.TB
	n     *testkit.NATS
	js    jetstream.JetStream
	clock *clock
	svc   *noderegistry.Service
	// replicas are every node registry started, svc first.
	replicas []*noderegistry.Service
	nr       *noderegistryv1.NodeRegistryClient
	ca       *cav1.CAClient
	att      *attestationv1.AttestationClient
	attSvc   *attestation.Service
	cfg      noderegistry.Config
	// stopAttestation stops the attestation service (once).
	stopAttestation func()
}

// newStack starts the services; c is the node registry's cache (nil: the
// in-process one), timeout its heartbeat timeout (0: the default); opts
// change the rest of its configuration.
func newStack(t testing.TB, c cache.Cache, timeout time.Duration, opts ...func(*noderegistry.Config)) *stack {
	t.Helper()
	ctx := context.Background()
	st := servicetest.New(t)
	n := st.NATS
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{7}, pki.KEKSize))
	asvc, err := attestation.Start(ctx, attestation.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("attestation")}, Simulation: true, KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	stopAttestation := sync.OnceFunc(asvc.Stop)
	t.Cleanup(stopAttestation)
	servicetest.Start(st, "ca", func(ctx context.Context, o service.Options) (*ca.Service, error) {
		return ca.Start(ctx, ca.Config{Options: o, KEK: kek})
	})
	_, js := n.JetStream(t)
	s := &stack{t: t, n: n, js: js, clock: &clock{now: time.Now().UTC()}, ca: cav1.NewCAClient(n.Connect(t), n.Vouching(t)),
		att: attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t)), nr: noderegistryv1.NewNodeRegistryClient(n.Connect(t), n.Vouching(t)), attSvc: asvc, stopAttestation: stopAttestation}
	s.cfg = noderegistry.Config{Cache: c, Clock: s.clock.Now, HeartbeatTimeout: timeout}
	for _, o := range opts {
		o(&s.cfg)
	}
	s.svc = s.replica(c)
	return s
}

// replica starts one more node registry on the stack's NATS, with cache c.
func (s *stack) replica(c cache.Cache) *noderegistry.Service {
	s.t.Helper()
	cfg := s.cfg
	cfg.NATS, cfg.Assertions, cfg.Cache = s.n.ConnectAs(s.t, "noderegistry"), s.n.Verifier("noderegistry"), c
	svc, err := noderegistry.Start(context.Background(), cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(svc.Stop)
	s.replicas = append(s.replicas, svc)
	return svc
}

// sweep runs the sweep of every replica at once, as their loops would,
// and returns how many nodes they changed together.
func (s *stack) sweep() int {
	s.t.Helper()
	var wg sync.WaitGroup
	counts, errs := make([]int, len(s.replicas)), make([]error, len(s.replicas))
	for i, r := range s.replicas {
		wg.Go(func() { counts[i], errs[i] = r.Sweep(context.Background()) })
	}
	wg.Wait()
	total := 0
	for i := range counts {
		if errs[i] != nil {
			s.t.Fatalf("sweep of replica %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	return total
}

// actor is who the gateway says made a call.
var actor = &accountv1.Principal{UserId: uuid.NewString(), Email: "ada@example.com", Credential: "session", CredentialId: uuid.NewString()}

// account creates an account, as the account service would announce it,
// with a CA and a policy that accepts simulated evidence.
func (s *stack) account() string {
	s.t.Helper()
	acct := s.bareAccount()
	if _, err := s.att.SetPolicy(context.Background(), &attestationv1.SetPolicyRequest{AccountId: acct, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"UpToDate"}, AllowSimulation: true}}); err != nil {
		s.t.Fatal(err)
	}
	return acct
}

// bareAccount creates an account with a CA and the default policy.
func (s *stack) bareAccount() string {
	s.t.Helper()
	ctx := context.Background()
	acct := uuid.NewString()
	s.publish("account", acct, &accountv1.AccountCreated{Account: &accountv1.Account{Id: acct, Name: "test"}})
	testkit.Eventually(s.t, 10*time.Second, func() bool {
		_, err := s.ca.GetCA(ctx, &cav1.GetCARequest{AccountId: acct})
		return err == nil
	}, "no CA for the account")
	return acct
}

// publish publishes an event as its producer would.
func (s *stack) publish(producer, account string, payload proto.Message) {
	s.t.Helper()
	ctx := context.Background()
	msg, _, err := events.NewMessage(ctx, events.Subject(producer, payload), producer, account, payload)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := events.Publish(ctx, s.js, msg); err != nil {
		s.t.Fatal(err)
	}
}

// token creates a join token in acct.
func (s *stack) token(acct string, r *noderegistryv1.CreateJoinTokenRequest) *noderegistryv1.CreateJoinTokenResponse {
	s.t.Helper()
	r.Actor, r.AccountId = actor, acct
	if r.Name == "" {
		r.Name = "rack-1"
	}
	resp, err := s.nr.CreateJoinToken(context.Background(), r)
	if err != nil {
		s.t.Fatalf("CreateJoinToken(%v) = %v", r, err)
	}
	return resp
}

// node is a node agent: its key, and what it enrolled as.
type node struct {
	key  *ecdsa.PrivateKey
	csr  []byte
	resp *noderegistryv1.EnrollResponse
}

func newNode(t testing.TB) *node {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &node{key: key, csr: csr}
}

// enroll enrols a new node with secret, and evidence when given.
func (s *stack) enroll(secret string, evidence []byte) (*node, error) {
	s.t.Helper()
	n := newNode(s.t)
	var err error
	n.resp, err = s.nr.Enroll(context.Background(), &noderegistryv1.EnrollRequest{JoinToken: secret, NodeName: "node-" + uuid.NewString()[:8],
		Csr: n.csr, Evidence: evidence})
	return n, err
}

// mustEnroll enrols a node that must be accepted.
func (s *stack) mustEnroll(secret string, evidence []byte) *node {
	s.t.Helper()
	n, err := s.enroll(secret, evidence)
	if err != nil {
		s.t.Fatalf("Enroll = %v, want a node", err)
	}
	return n
}

// evidence is what a node of acct with a TEE presents in simulation: a
// quote of a QE bound to the account, whose REPORTDATA is SHA-256 of
// bindTo's public key, then nonce.
func (s *stack) evidence(acct string, bindTo *ecdsa.PrivateKey, nonce []byte) []byte {
	s.t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(&bindTo.PublicKey)
	if err != nil {
		s.t.Fatal(err)
	}
	var body sgx.ReportBody
	binding := sha256.Sum256(spki)
	copy(body.ReportData[:32], binding[:])
	copy(body.ReportData[32:], nonce)
	body.MRENCLAVE[0] = 0x11
	qe, err := s.attSvc.SimulatedQE(acct)
	if err != nil {
		s.t.Fatal(err)
	}
	quote, err := qe.Quote(body)
	if err != nil {
		s.t.Fatal(err)
	}
	return quote
}

// enrolmentNonce asks for a nonce for an enrolment with secret.
func (s *stack) enrolmentNonce(secret string) []byte {
	s.t.Helper()
	r, err := s.nr.CreateEnrolmentNonce(context.Background(), &noderegistryv1.CreateEnrolmentNonceRequest{JoinToken: secret})
	if err != nil {
		s.t.Fatalf("CreateEnrolmentNonce = %v", err)
	}
	return r.GetNonce().GetNonce()
}

// enrolWith is an enrolment request of n with secret and evidence of acct
// bound to bindTo and a fresh enrolment nonce.
func (s *stack) enrolWith(acct, secret, name string, n *node, bindTo *ecdsa.PrivateKey) *noderegistryv1.EnrollRequest {
	s.t.Helper()
	nonce := s.enrolmentNonce(secret)
	return &noderegistryv1.EnrollRequest{JoinToken: secret, NodeName: name, Csr: n.csr, Evidence: s.evidence(acct, bindTo, nonce), Nonce: nonce}
}

// beat sends a heartbeat of n in acct reporting instances ids running.
func (s *stack) beat(acct string, n *node, ids ...string) *noderegistryv1.Node {
	s.t.Helper()
	r := &noderegistryv1.HeartbeatRequest{AccountId: acct, NodeId: n.id(), CertificateSerial: n.serial()}
	for _, id := range ids {
		r.Instances = append(r.Instances, s.instance(acct, n, id))
	}
	resp, err := s.nr.Heartbeat(context.Background(), r)
	if err != nil {
		s.t.Fatalf("Heartbeat = %v", err)
	}
	return resp.GetNode()
}

// wantStopped checks that the node records each instance of ids, and only
// those, as stopped, and that InstanceStopped announced each for it once.
func (s *stack) wantStopped(got *noderegistryv1.Node, ids ...string) {
	s.t.Helper()
	var recorded []string
	for _, in := range got.GetInstances() {
		if in.GetStatus() != "stopped" {
			s.t.Errorf("instance %s of the %s node is %s, want stopped", in.GetId(), got.GetStatus(), in.GetStatus())
		}
		recorded = append(recorded, in.GetId())
	}
	if !slices.Equal(recorded, ids) {
		s.t.Errorf("the %s node records instances %v, want %v", got.GetStatus(), recorded, ids)
	}
	// The events leave the outbox just after the write that the caller
	// saw: wait for them, then check they came once each.
	var announced []string
	testkit.Eventually(s.t, 10*time.Second, func() bool {
		announced = nil
		for _, e := range eventsOf(s, func() *noderegistryv1.InstanceStopped { return &noderegistryv1.InstanceStopped{} }) {
			if e.GetNodeId() == got.GetId() {
				if e.GetAccountId() != got.GetAccountId() || e.GetInstance().GetStatus() != "stopped" {
					s.t.Errorf("InstanceStopped = %v", e)
				}
				announced = append(announced, e.GetInstance().GetId())
			}
		}
		return len(announced) >= len(ids)
	}, "InstanceStopped for %v, want %v", announced, ids)
	if !slices.Equal(announced, ids) {
		s.t.Errorf("InstanceStopped for %v, want %v once each", announced, ids)
	}
}

func (n *node) id() string     { return n.resp.GetNode().GetId() }
func (n *node) serial() string { return n.resp.GetNode().GetCertificateSerial() }

// published returns the payloads of the events on subject in stream so far.
func published[T proto.Message](t testing.TB, js jetstream.JetStream, stream, subject string, mk func() T) []T {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.DecodeMessage(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		v := mk()
		if err := ev.Decode(v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
		seq = m.Sequence + 1
	}
}

// eventsOf returns the node registry's events of one type so far.
func eventsOf[T proto.Message](s *stack, mk func() T) []T {
	return published(s.t, s.js, events.StreamEvents, events.Subject("noderegistry", mk()), mk)
}

// audits returns the node registry's audit records of an account so far.
func (s *stack) audits(acct string) []*eventsv1.AuditRecord {
	return published(s.t, s.js, events.StreamAudit, events.AuditSubject(acct, "noderegistry"), func() *eventsv1.AuditRecord { return &eventsv1.AuditRecord{} })
}

// wantRefused checks that err is of kind and says want.
func wantRefused(t testing.TB, what string, err error, kind errs.Kind, want string) {
	t.Helper()
	if errs.KindOf(err) != kind || !strings.Contains(errs.PublicMessage(err), want) {
		t.Fatalf("%s = %v (%v), want %v saying %q", what, err, errs.KindOf(err), kind, want)
	}
}

// redisCache is a cache on the shared test Redis.
func redisCache(t testing.TB) cache.Cache {
	r := testkit.StartRedis(t)
	return cache.NewRedis(r.Client, r.Prefix)
}

// stoppableRedis is a private redis-server behind cache.Tolerant, as a
// service runs it, with the client to look inside.
func stoppableRedis(t testing.TB) (*testkit.RedisServer, *redis.Client, cache.Cache) {
	srv := testkit.StartRedisServer(t)
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	opt.DialTimeout, opt.DialerRetries, opt.MaxRetries = 100*time.Millisecond, 1, 1
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return srv, c, cache.Tolerant(cache.NewRedis(c, "t:"), nil)
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// requireNodeEvidence sets the account's policy to accept simulated
// evidence and to require evidence of every node that enrols.
func (s *stack) requireNodeEvidence(acct string) {
	s.t.Helper()
	if _, err := s.att.SetPolicy(context.Background(), &attestationv1.SetPolicyRequest{AccountId: acct, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"UpToDate"}, AllowSimulation: true, RequireNodeAttestation: true}}); err != nil {
		s.t.Fatal(err)
	}
}

// uses is how many uses of the account's token tokenID were taken.
func (s *stack) uses(acct, tokenID string) uint32 {
	s.t.Helper()
	list, err := s.nr.ListJoinTokens(context.Background(), &noderegistryv1.ListJoinTokensRequest{Actor: actor, AccountId: acct})
	if err != nil {
		s.t.Fatal(err)
	}
	for _, x := range list.GetTokens() {
		if x.GetId() == tokenID {
			return x.GetUses()
		}
	}
	s.t.Fatalf("token %s not listed", tokenID)
	return 0
}
