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
)

// NATS is a running embedded nats-server with JetStream.
type NATS struct {
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
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("starting nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not become ready")
	}
	n := &NATS{Server: s, URL: s.ClientURL(), dir: dir}
	t.Cleanup(n.Shutdown)
	return n
}

// Shutdown stops the server and waits for it; calling it twice is harmless.
func (n *NATS) Shutdown() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}

// Connect returns a client connection that is closed when the test ends.
func (n *NATS) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connecting to nats: %v", err)
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
