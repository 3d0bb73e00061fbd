package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/events"
	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type countingStore struct{ n atomic.Int32 }

func (c *countingStore) Recover(context.Context) error { c.n.Add(1); return nil }

// TestRunner: registered stores are recovered periodically once started,
// background loops see the runner's context end at Stop, and Stop waits
// for them and may be called twice.
func TestRunner(t *testing.T) {
	n := testkit.StartNATS(t)
	r, err := service.New(context.Background(), "svc", service.Options{NATS: n.Connect(t), RecoverEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := &countingStore{}
	r.Register("bucket", s)
	var loopEnded atomic.Bool
	r.Go(func(ctx context.Context) {
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond) // Stop must wait for this
		loopEnded.Store(true)
	})
	if s.n.Load() != 0 {
		t.Fatal("recovery ran before Start")
	}
	r.Start()
	testkit.Eventually(t, 10*time.Second, func() bool { return s.n.Load() >= 2 }, "the store was not recovered periodically")
	r.Stop()
	if !loopEnded.Load() {
		t.Fatal("Stop returned before the background loop ended")
	}
	after := s.n.Load()
	r.Stop()
	time.Sleep(50 * time.Millisecond)
	if s.n.Load() != after {
		t.Fatal("recovery went on after Stop")
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := service.New(context.Background(), "svc", service.Options{}); err == nil {
		t.Fatal("New without NATS = nil error")
	}
	n := testkit.StartNATS(t)
	if _, err := service.New(context.Background(), "", service.Options{NATS: n.Connect(t)}); err == nil {
		t.Fatal("New without a name = nil error")
	}
}

// TestLogKeysOnce: a service's log lines, from the process's JSON logger,
// name the process and the service under different keys, each once.
func TestLogKeysOnce(t *testing.T) {
	var buf bytes.Buffer
	n := testkit.StartNATS(t)
	r, err := service.New(context.Background(), "ca", service.Options{NATS: n.Connect(t), Logger: obs.NewLogger(&buf, slog.LevelInfo, "cloister")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	r.Logger().Info("hello", obs.KeyAccount, "a1")
	var pairs [][2]string
	dec := json.NewDecoder(&buf)
	tok, _ := dec.Token() // {
	for dec.More() && tok != nil {
		k, _ := dec.Token()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, [2]string{k.(string), fmt.Sprint(v)})
	}
	seen := map[string]string{}
	for _, p := range pairs {
		if _, dup := seen[p[0]]; dup {
			t.Errorf("key %q appears twice in %s", p[0], buf.String())
		}
		seen[p[0]] = p[1]
	}
	if seen[obs.KeyService] != "cloister" || seen[obs.KeyComponent] != "ca" {
		t.Errorf("log line %v, want service cloister and component ca", seen)
	}
}

// TestRunStopsWhatBuildStarted: when a service's build fails after it
// started a loop, Run returns the error and the loop has been stopped.
func TestRunStopsWhatBuildStarted(t *testing.T) {
	n := testkit.StartNATS(t)
	var ended atomic.Bool
	boom := errors.New("boom")
	r, err := service.Run(context.Background(), "svc", service.Options{NATS: n.Connect(t)}, func(r *service.Runner) error {
		r.Go(func(ctx context.Context) { <-ctx.Done(); ended.Store(true) })
		return boom
	})
	if !errors.Is(err, boom) || r != nil {
		t.Fatalf("Run = %v, %v; want nil, boom", r, err)
	}
	if !ended.Load() {
		t.Fatal("the loop build started is still running")
	}
}

// TestConsumeAndWatch: the runner's consumers get the events published
// on their subjects, and stop with it.
func TestConsumeAndWatch(t *testing.T) {
	n := testkit.StartNATS(t)
	nc := n.Connect(t)
	consumed, watched := make(chan string, 4), make(chan string, 4)
	subject := events.Subject("svc", &timestamppb.Timestamp{})
	r, err := service.Run(context.Background(), "svc", service.Options{NATS: nc}, func(r *service.Runner) error {
		if err := r.Consume(events.ConsumerConfig{Stream: events.StreamEvents, Durable: "svc-test", FilterSubjects: []string{subject}},
			func(_ context.Context, ev events.Event) error { consumed <- ev.Envelope.Type; return nil }); err != nil {
			return err
		}
		return r.Watch(events.StreamEvents, []string{subject}, func(_ context.Context, ev events.Event) error { watched <- ev.Envelope.Type; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	msg, _, err := events.NewMessage(context.Background(), subject, "svc", "a1", &timestamppb.Timestamp{Seconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Publish(context.Background(), r.JetStream(), msg); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan string{"consumer": consumed, "watcher": watched} {
		select {
		case got := <-ch:
			if got != "google.protobuf.Timestamp" {
				t.Errorf("%s got an event of type %q", name, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the %s got no event", name)
		}
	}
}
