package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/events"
	"github.com/cloister-cc/cloister/libs/kv"
)

// FailFirstPublish returns a kv option that makes the first publish after
// a commit fail, as a lost connection would, and a function that tells
// whether that has happened: the write's events are then left to outbox
// recovery.
func FailFirstPublish() (kv.Option, func() bool) {
	armed := make(chan struct{}, 1)
	armed <- struct{}{}
	fired := make(chan struct{})
	return kv.WithFailPublish(func() bool {
			select {
			case <-armed:
				close(fired)
				return true
			default:
				return false
			}
		}), func() bool {
			select {
			case <-fired:
				return true
			default:
				return false
			}
		}
}

// WaitForEvent waits until the EVENTS stream holds an event of m's type
// from producer.
func WaitForEvent(t testing.TB, js jetstream.JetStream, producer string, m proto.Message, within time.Duration) {
	t.Helper()
	subject := events.Subject(producer, m)
	ctx := context.Background()
	Eventually(t, within, func() bool {
		st, err := js.Stream(ctx, events.StreamEvents)
		if err != nil {
			return false
		}
		_, err = st.GetLastMsgForSubject(ctx, subject)
		return err == nil
	}, "no %s event on %s", proto.MessageName(m), subject)
}

// OutboxRecovery is what CheckOutboxRecovery needs of a service.
type OutboxRecovery struct {
	// Start runs the service with recovery every interval and opts on
	// every store, on n; it returns when the service is up.
	Start func(t *testing.T, n *NATS, every time.Duration, opts []kv.Option)
	// Write makes one write whose events include Event, from Producer.
	Write    func(t *testing.T, n *NATS)
	Producer string
	Event    proto.Message
}

// CheckOutboxRecovery checks that a service publishes an event whose
// publish failed right after its write committed, while it runs on: with
// the first publish failing, the write's event still reaches the stream,
// which only the service's periodic outbox recovery can do.
func CheckOutboxRecovery(t *testing.T, c OutboxRecovery) {
	t.Helper()
	n := StartNATS(t)
	_, js := n.JetStream(t)
	fail, failed := FailFirstPublish()
	c.Start(t, n, 100*time.Millisecond, []kv.Option{fail})
	c.Write(t, n)
	Eventually(t, 20*time.Second, failed, "the write never committed with its publish failing")
	WaitForEvent(t, js, c.Producer, c.Event, 20*time.Second)
}
