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
