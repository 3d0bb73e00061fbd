// Package testkit starts the real dependencies that tests need: an embedded
// NATS JetStream server and a Redis connection isolated per test.
package testkit

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cloister-cc/cloister/libs/busauth"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
)

// Identities are a test deployment's bus identities: one per role
// (busauth.Roles) with its permissions, the secret of the gateway's
// assertions, and a probe for the test itself, allowed everything, which
// no deployment has.
type Identities struct {
	// Bus is an identity for every role (busauth.Roles).
	Bus busauth.Set
	// Assertion is the secret of the gateway's assertions of callers: a
	// stack's gateway vouches with it (Signer), its services check with
	// their keys (Verifier).
	Assertion busauth.AssertionSecret
	probe     nkeys.KeyPair
}

// newIdentities makes fresh identities, and the users a server accepts
// for them (each role's with its permissions, the probe's with none).
func newIdentities(t testing.TB) (Identities, []*server.NkeyUser) {
	t.Helper()
	creds, err := busauth.NewCredentials()
	if err != nil {
		t.Fatal(err)
	}
	probe, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	users, err := busauth.Users(creds.Identities.PublicKeys())
	if err != nil {
		t.Fatal(err)
	}
	probePub, _ := probe.PublicKey()
	// No permissions: the probe may do anything.
	users = append(users, &server.NkeyUser{Nkey: probePub})
	return Identities{Bus: creds.Identities, Assertion: creds.Assertion, probe: probe}, users
}

// NATS is a running embedded nats-server with JetStream. It accepts what
// a deployment's accepts: the identities of Bus, each with its role's
// permissions, and no anonymous client; and, for the test itself, one
// probe identity allowed everything (Connect), which no deployment has.
type NATS struct {
	Identities
	Server *server.Server
	URL    string
	dir    string
}

// StartNATS starts nats-server on a random loopback port with JetStream
// storing in a temporary directory. It is shut down when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	return StartNATSInDir(t, t.TempDir())
}

// StartNATSInDir is StartNATS with the JetStream store in dir, so a test can
// stop the server and start another on the same data.
func StartNATSInDir(t testing.TB, dir string) *NATS {
	t.Helper()
	ids, users := newIdentities(t)
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
		Nkeys:     users,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("starting nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not become ready")
	}
	n := &NATS{Identities: ids, Server: s, URL: s.ClientURL(), dir: dir}
	t.Cleanup(n.Shutdown)
	return n
}

// ProbeSeed is the probe identity's seed, for a child process of the
// test to connect with (ConnectSeed).
func (n *Identities) ProbeSeed() string {
	s, _ := n.probe.Seed()
	return string(s)
}

// ConnectSeed connects to url as the NKey whose seed is given: what a
// test's child process does with ProbeSeed.
func ConnectSeed(url, seed string, opts ...nats.Option) (*nats.Conn, error) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	return nats.Connect(url, append([]nats.Option{nats.Nkey(pub, kp.Sign)}, opts...)...)
}

// CredentialsDir writes Bus and Assertion into a temporary directory as a
// deployment keeps them (busauth.Credentials.Write), for `cloister server
// --nats-credentials`.
func (n *Identities) CredentialsDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir() + "/bus"
	if err := (busauth.Credentials{Identities: n.Bus, Assertion: n.Assertion}).Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Shutdown stops the server and waits for it; calling it twice is harmless.
func (n *NATS) Shutdown() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}

// Connect returns a connection of the test's probe, allowed everything,
// that is closed when the test ends.
func (n *NATS) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := ConnectSeed(n.URL, n.ProbeSeed(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connecting to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// ConnectAs returns a connection as role's identity, with its
// permissions, closed when the test ends.
func (n *NATS) ConnectAs(t testing.TB, role string) *nats.Conn {
	t.Helper()
	id, ok := n.Bus[role]
	if !ok {
		t.Fatalf("no bus identity %q", role)
	}
	nc, err := nats.Connect(n.URL, append(id.Options(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))...)
	if err != nil {
		t.Fatalf("connecting to nats as %s: %v", role, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a connection and its JetStream context.
func (n *NATS) JetStream(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := n.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Eventually polls cond until it is true or the deadline passes, then
// fails with the message. Its arguments are evaluated when Eventually is
// called: for what cond saw last, use EventuallyMsg.
func Eventually(t testing.TB, within time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	EventuallyMsg(t, within, cond, func() string { return fmt.Sprintf(format, args...) })
}

// EventuallyMsg polls cond until it is true or the deadline passes, then
// fails with msg(), called then: it can report the last error or value
// cond saw.
func EventuallyMsg(t testing.TB, within time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// StartOpenNATS starts a nats-server (with JetStream) that lets any client
// in, as none of Cloister's deployments does: for the tests that show
// Cloister refusing one, and for benchmark floors. It is shut down when
// the test ends.
func StartOpenNATS(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("starting nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not become ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// Verifier checks assertions as the stack's service does.
func (n *Identities) Verifier(service string) *busauth.Verifier {
	return busauth.NewVerifier(service, n.Assertion.ServiceKey(service), nil)
}

// Signer signs assertions as the stack's gateway does.
func (n *Identities) Signer(t testing.TB) *busauth.Signer {
	t.Helper()
	s, err := busauth.NewSigner(n.Assertion, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Vouching makes a generated client's calls carry an assertion of the
// actor and account each request names: a test calling a service
// directly stands in for the gateway, which asserts only callers it
// authenticated.
func (n *Identities) Vouching(t testing.TB) natsrpc.CallOption {
	return natsrpc.Asserting(requestAsserter{n.Signer(t)})
}

type requestAsserter struct{ s *busauth.Signer }

func (a requestAsserter) Assert(subject string, request any) (string, error) {
	r, actor := natsrpc.ActorField(request)
	var p *accountv1.Principal
	account := ""
	if r != nil {
		if actor != nil && r.Has(actor) {
			p, _ = r.Get(actor).Message().Interface().(*accountv1.Principal)
		}
		if f := r.Descriptor().Fields().ByName("account_id"); f != nil && f.Kind() == protoreflect.StringKind {
			account = r.Get(f).String()
		}
	}
	return a.s.For(p, account).Assert(subject, request)
}
