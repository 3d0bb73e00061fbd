package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
)

type countingStore struct{ n atomic.Int32 }

func (c *countingStore) Recover(context.Context) error { c.n.Add(1); return nil }

// TestRunner: registered stores are recovered periodically once started,
// background loops see the runner's context end at Stop, and Stop waits
// for them and may be called twice.
func TestRunner(t *testing.T) {
	n := testkit.StartNATS(t)
	r, err := service.New(context.Background(), service.Config{Name: "svc", NATS: n.Connect(t), RecoverEvery: 20 * time.Millisecond})
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
	if _, err := service.New(context.Background(), service.Config{Name: "svc"}); err == nil {
		t.Fatal("New without NATS = nil error")
	}
	n := testkit.StartNATS(t)
	if _, err := service.New(context.Background(), service.Config{NATS: n.Connect(t)}); err == nil {
		t.Fatal("New without a name = nil error")
	}
}

// TestLogKeysOnce: a service's log lines, from the process's JSON logger,
// name the process and the service under different keys, each once.
func TestLogKeysOnce(t *testing.T) {
	var buf bytes.Buffer
	n := testkit.StartNATS(t)
	r, err := service.New(context.Background(), service.Config{Name: "ca", NATS: n.Connect(t), Logger: obs.NewLogger(&buf, slog.LevelInfo, "cloister")})
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
