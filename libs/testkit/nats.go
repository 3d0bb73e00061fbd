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

	"github.com/cloister-cc/cloister/libs/busauth"
)

// NATS is a running embedded nats-server with JetStream. It accepts what
// a deployment's accepts: the identities of Bus, each with its role's
// permissions, and no anonymous client; and, for the test itself, one
// probe identity allowed everything (Connect), which no deployment has.
type NATS struct {
	Server *server.Server
	URL    string
	// Bus is an identity for every role (busauth.Roles).
	Bus   busauth.Set
	probe nkeys.KeyPair
	dir   string
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
	bus, err := busauth.NewSet()
	if err != nil {
		t.Fatal(err)
	}
	probe, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	users, err := busauth.Users(bus.PublicKeys())
	if err != nil {
		t.Fatal(err)
	}
	probePub, _ := probe.PublicKey()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
		// No permissions: the probe may do anything.
		Nkeys: append(users, &server.NkeyUser{Nkey: probePub}),
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("starting nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not become ready")
	}
	n := &NATS{Server: s, URL: s.ClientURL(), Bus: bus, probe: probe, dir: dir}
	t.Cleanup(n.Shutdown)
	return n
}

// ProbeSeed is the probe identity's seed, for a child process of the
// test to connect with (ConnectSeed).
func (n *NATS) ProbeSeed() string {
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

// CredentialsDir writes the identities of Bus into a temporary directory
// as a deployment keeps them (busauth.Set.Write), for `cloister server
// --nats-credentials`.
func (n *NATS) CredentialsDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir() + "/bus"
	if err := n.Bus.Write(dir); err != nil {
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
