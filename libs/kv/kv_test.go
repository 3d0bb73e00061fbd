package kv_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/testkit"
)

type thing struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// openThings opens the store of the "things" bucket that most tests use.
func openThings(t *testing.T, js jetstream.JetStream, opts ...kv.Option) *kv.Store[thing] {
	t.Helper()
	s, err := kv.Open[thing](context.Background(), js, kv.Config{Bucket: "things"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func setup(t *testing.T) (*testkit.NATS, jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	n := testkit.StartNATS(t)
	_, js := n.JetStream(t)
	st, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "EVENTS", Subjects: []string{"events.>"}, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, js, st
}

func event(id string) *nats.Msg {
	m := nats.NewMsg("events.test.v1.ThingChanged")
	m.Header.Set(jetstream.MsgIDHeader, id)
	m.Data = []byte(id)
	return m
}

func streamMsgs(t *testing.T, st jetstream.Stream) uint64 {
	t.Helper()
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestCRUD runs the same writes and reads on a plain store and on one
// that keeps decoded entries (WithDecodedCache), which must read alike.
func TestCRUD(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testCRUD(t) })
	t.Run("decoded cache", func(t *testing.T) { testCRUD(t, kv.WithDecodedCache(8)) })
}

func testCRUD(t *testing.T, opts ...kv.Option) {
	ctx := context.Background()
	_, js, _ := setup(t)
	s := openThings(t, js, opts...)
	if _, err := s.Get(ctx, "a.thing.1"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get(absent) = %v, want ErrNotFound", err)
	}
	e, err := s.Create(ctx, "a.thing.1", thing{Name: "one"})
	if err != nil || e.Version == 0 {
		t.Fatalf("Create = %+v, %v; want a version", e, err)
	}
	v1 := e.Version
	if _, err := s.Create(ctx, "a.thing.1", thing{Name: "again"}); !errors.Is(err, kv.ErrExists) {
		t.Fatalf("Create(existing) = %v, want ErrExists", err)
	}
	e, err = s.Update(ctx, "a.thing.1", thing{Name: "one", Count: 2}, v1)
	if err != nil || e.Version == v1 || e.Value.Count != 2 {
		t.Fatalf("Update = %+v, %v; want a new version", e, err)
	}
	v2 := e.Version
	if _, err := s.Update(ctx, "a.thing.1", thing{Name: "stale"}, v1); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("Update(stale version) = %v, want ErrConflict", err)
	}
	got, err := s.Get(ctx, "a.thing.1")
	if err != nil || got.Value != (thing{Name: "one", Count: 2}) {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if err := s.Delete(ctx, "a.thing.1", v1); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("Delete(stale version) = %v, want ErrConflict", err)
	}
	if err := s.Delete(ctx, "a.thing.1", v2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a.thing.1"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get(deleted) = %v, want ErrNotFound", err)
	}
	reborn, err := s.Create(ctx, "a.thing.1", thing{Name: "reborn"})
	if err != nil {
		t.Fatalf("Create after delete = %v", err)
	}
	// A version from before the deletion does not fit the new entry.
	for _, stale := range []uint64{v1, v2} {
		if stale == reborn.Version {
			continue // one chance in 2^63
		}
		if _, err := s.Update(ctx, "a.thing.1", thing{Name: "stale"}, stale); !errors.Is(err, kv.ErrConflict) {
			t.Fatalf("Update of the re-created entry with a version from before = %v, want ErrConflict", err)
		}
	}
	if _, err := s.Get(ctx, "bad key!"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get(invalid key) = %v, want ErrNotFound", err)
	}
}

// TestCreateOverAnUnflushedDeletion: a key deleted while its messages
// are still unpublished (the publish failed) can be created again; the
// new record carries those messages forward, and every one is published.
func TestCreateOverAnUnflushedDeletion(t *testing.T) {
	ctx := context.Background()
	_, js, st := setup(t)
	var failing atomic.Bool
	s := openThings(t, js, kv.WithFailPublish(failing.Load))
	failing.Store(true)
	e, err := s.Create(ctx, "k", thing{Name: "one"}, event("created"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k", e.Version, event("deleted")); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, st); n != 0 {
		t.Fatalf("%d messages published while publishing fails", n)
	}
	failing.Store(false)
	if _, err := s.Create(ctx, "k", thing{Name: "again"}, event("recreated")); err != nil {
		t.Fatalf("Create over an unflushed deletion = %v", err)
	}
	if n := streamMsgs(t, st); n != 3 {
		t.Fatalf("%d messages published, want the deletion's two carried forward and the new one", n)
	}
	if got, err := s.Get(ctx, "k"); err != nil || got.Value.Name != "again" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
}

// counted decodes itself as a string and counts how often it is decoded.
type counted struct{ S string }

var decodes atomic.Int64

func (c *counted) UnmarshalJSON(b []byte) error {
	decodes.Add(1)
	return json.Unmarshal(b, &c.S)
}

func (c counted) MarshalJSON() ([]byte, error) { return json.Marshal(c.S) }

// TestDecodedCache: with WithDecodedCache, a value read again unchanged is
// not decoded again, and a change, even by another store on the bucket
// (another replica), is read at once.
func TestDecodedCache(t *testing.T) {
	ctx := context.Background()
	_, js, _ := setup(t)
	reader, err := kv.Open[counted](ctx, js, kv.Config{Bucket: "big"}, kv.WithDecodedCache(2))
	if err != nil {
		t.Fatal(err)
	}
	writer, err := kv.Open[counted](ctx, js, kv.Config{Bucket: "big"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := writer.Create(ctx, "k1", counted{"one"})
	if err != nil {
		t.Fatal(err)
	}
	decodes.Store(0)
	for range 5 {
		if got, err := reader.Get(ctx, "k1"); err != nil || got.Value.S != "one" || got.Version != e.Version {
			t.Fatalf("Get = %+v, %v", got, err)
		}
	}
	if n := decodes.Load(); n != 1 {
		t.Fatalf("five reads of one revision decoded it %d times, want once", n)
	}
	if _, err := writer.Update(ctx, "k1", counted{"two"}, e.Version); err != nil {
		t.Fatal(err)
	}
	if got, err := reader.Get(ctx, "k1"); err != nil || got.Value.S != "two" {
		t.Fatalf("Get after another store's update = %+v, %v; want two", got, err)
	}
	// Past its size the cache starts afresh rather than grow.
	for _, k := range []string{"k2", "k3"} {
		if _, err := writer.Create(ctx, k, counted{k}); err != nil {
			t.Fatal(err)
		}
		if got, err := reader.Get(ctx, k); err != nil || got.Value.S != k {
			t.Fatalf("Get(%s) = %+v, %v", k, got, err)
		}
	}
	cur, _ := reader.Get(ctx, "k1")
	if err := writer.Delete(ctx, "k1", cur.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Get(ctx, "k1"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get after another store's delete = %v, want ErrNotFound", err)
	}
}

// Requests creating one key at once: one wins, every other gets
// ErrExists, as if it had come second.
func TestCreateConcurrently(t *testing.T) {
	ctx := context.Background()
	_, js, _ := setup(t)
	s := openThings(t, js)
	const n = 8
	errc := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Create(ctx, "a.thing.1", thing{Name: fmt.Sprint(i)})
			errc <- err
		}()
	}
	wg.Wait()
	close(errc)
	won := 0
	for err := range errc {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, kv.ErrExists):
			t.Errorf("a losing Create = %v, want ErrExists", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent Creates of one key succeeded, want 1", won)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	_, js, _ := setup(t)
	s := openThings(t, js)
	versions := map[string]uint64{}
	for _, k := range []string{"b.thing.2", "a.thing.1", "a.thing.3", "a.other.1"} {
		e, err := s.Create(ctx, k, thing{Name: k})
		if err != nil {
			t.Fatal(err)
		}
		versions[k] = e.Version
	}
	if err := s.Delete(ctx, "a.thing.3", versions["a.thing.3"], event("del-3")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		filter string
		want   []string
	}{
		{"a.thing.*", []string{"a.thing.1"}},
		{"*.thing.*", []string{"a.thing.1", "b.thing.2"}},
		{">", []string{"a.other.1", "a.thing.1", "b.thing.2"}},
		{"c.>", nil},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			es, err := s.List(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, e := range es {
				keys = append(keys, e.Key)
			}
			if len(keys) != len(tt.want) {
				t.Fatalf("List(%q) = %v, want %v", tt.filter, keys, tt.want)
			}
			for i := range keys {
				if keys[i] != tt.want[i] {
					t.Fatalf("List(%q) = %v, want %v", tt.filter, keys, tt.want)
				}
			}
		})
	}
}

func TestWritesPublishTheirMessages(t *testing.T) {
	ctx := context.Background()
	_, js, st := setup(t)
	s := openThings(t, js)
	e, err := s.Create(ctx, "k", thing{}, event("e1"))
	if err != nil {
		t.Fatal(err)
	}
	if e, err = s.Update(ctx, "k", thing{Count: 1}, e.Version, event("e2"), event("e3")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k", e.Version, event("e4")); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, st); n != 4 {
		t.Fatalf("stream holds %d messages, want 4", n)
	}
	// A failed write publishes nothing.
	if _, err := s.Update(ctx, "k", thing{}, e.Version, event("e5")); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Update(deleted) = %v, want ErrNotFound", err)
	}
	if n := streamMsgs(t, st); n != 4 {
		t.Fatalf("stream holds %d messages after a failed write, want 4", n)
	}
	if _, err := s.Create(ctx, "k2", thing{}, nats.NewMsg("events.x")); err == nil {
		t.Fatal("Create with a message lacking Nats-Msg-Id succeeded, want an error")
	}
}

// published counts every publish on the events subjects, as a core
// subscriber sees them: a re-publish the stream de-duplicates counts too.
func published(t *testing.T, n *testkit.NATS) func() int64 {
	t.Helper()
	nc := n.Connect(t)
	var count atomic.Int64
	if _, err := nc.Subscribe("events.>", func(*nats.Msg) { count.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() int64 {
		_ = nc.Flush()
		return count.Load()
	}
}

// TestPublishedMessagesStayPublished: a record keeps the messages of its
// last write once they are published, and no later write or recovery
// publishes them again, which a stream past its duplicate window would
// store twice. Each write's hint is gone once its messages are out.
func TestPublishedMessagesStayPublished(t *testing.T) {
	ctx := context.Background()
	n, js, _ := setup(t)
	count := published(t, n)
	s := openThings(t, js)
	e, err := s.Create(ctx, "k", thing{}, event("p1"), event("p2"))
	if err != nil {
		t.Fatal(err)
	}
	if e, err = s.Update(ctx, "k", thing{Count: 1}, e.Version, event("p3")); err != nil {
		t.Fatal(err)
	}
	if e, err = s.Update(ctx, "k", thing{Count: 2}, e.Version); err != nil {
		t.Fatal(err)
	}
	if err := s.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k", e.Version); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return count() >= 3 }, "the three messages were not published")
	if got := count(); got != 3 {
		t.Fatalf("%d publishes, want 3: a published message went out again", got)
	}
	hints, err := js.KeyValue(ctx, kv.OutboxBucket("things"))
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := hints.ListKeys(ctx); err == nil {
		for k := range keys.Keys() {
			t.Errorf("hint %s is left after every message was published", k)
		}
	}
}

// concurrently runs n writes at once, each given its index.
func concurrently(t *testing.T, n int, write func(i int) error) {
	t.Helper()
	start := make(chan struct{})
	errc := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errc <- write(i)
		})
	}
	close(start)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentWritesShareHints: writes that need a hint while another
// is being written share the next one, so 50 writes at once write fewer
// than 50 hints; each message is published once, and no hint is left.
func TestConcurrentWritesShareHints(t *testing.T) {
	ctx := context.Background()
	n, js, st := setup(t)
	count := published(t, n)
	s := openThings(t, js)
	nc := n.Connect(t)
	var puts atomic.Int64
	if _, err := nc.Subscribe("$KV.things_outbox.>", func(m *nats.Msg) {
		if m.Header.Get("KV-Operation") == "" {
			puts.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const writes = 50
	concurrently(t, writes, func(i int) error {
		_, err := s.Create(ctx, fmt.Sprintf("k%d", i), thing{Count: i}, event(fmt.Sprintf("c%d", i)))
		return err
	})
	testkit.Eventually(t, 5*time.Second, func() bool { return count() >= writes }, "the messages were not published")
	if got, stored := count(), streamMsgs(t, st); got != writes || stored != writes {
		t.Fatalf("%d publishes, %d stored; want %d of each", got, stored, writes)
	}
	_ = nc.Flush()
	if p := puts.Load(); p == 0 || p >= writes {
		t.Fatalf("%d hints written for %d writes at once, want fewer", p, writes)
	}
	hints, err := js.KeyValue(ctx, kv.OutboxBucket("things"))
	if err != nil {
		t.Fatal(err)
	}
	if left := hintsLeft(t, hints); len(left) != 0 {
		t.Errorf("hints %v left after every message was published", left)
	}
}

// TestSharedHintOfAFailedPublish: when one of the writes sharing a hint
// cannot publish, the hint stays for recovery, which publishes what that
// write left, and the hint goes.
func TestSharedHintOfAFailedPublish(t *testing.T) {
	ctx := context.Background()
	_, js, st := setup(t)
	var failures atomic.Int32
	failOnce := func() bool { return failures.Add(1) == 1 }
	s := openThings(t, js, kv.WithFailPublish(failOnce), kv.WithRecoveryGrace(time.Hour))
	const writes = 10
	concurrently(t, writes, func(i int) error {
		_, err := s.Create(ctx, fmt.Sprintf("k%d", i), thing{Count: i}, event(fmt.Sprintf("f%d", i)))
		return err
	})
	if stored := streamMsgs(t, st); stored != writes-1 {
		t.Fatalf("%d messages stored before recovery, want %d", stored, writes-1)
	}
	hints, err := js.KeyValue(ctx, kv.OutboxBucket("things"))
	if err != nil {
		t.Fatal(err)
	}
	if left := hintsLeft(t, hints); len(left) == 0 {
		t.Fatal("no hint left for the write that could not publish")
	}
	// Recovery, with a grace of an hour: the hint goes because every write
	// it names was found committed, not because it is old.
	if err := s.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if stored := streamMsgs(t, st); stored != writes {
		t.Fatalf("%d messages stored after recovery, want %d", stored, writes)
	}
	if left := hintsLeft(t, hints); len(left) != 0 {
		t.Fatalf("hints %v left after recovery, want none", left)
	}
}

// hintsLeft lists the hints in a hint bucket.
func hintsLeft(t *testing.T, hints jetstream.KeyValue) []string {
	t.Helper()
	keys, err := hints.ListKeys(context.Background())
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range keys.Keys() {
		out = append(out, k)
	}
	return out
}

// TestRecordsOfBeforeNamedHints: a record written before messages named
// their hint keeps only unpublished messages, as then: the next write
// publishes them once and clears them.
func TestRecordsOfBeforeNamedHints(t *testing.T) {
	ctx := context.Background()
	n, js, st := setup(t)
	count := published(t, n)
	s := openThings(t, js)
	bucket, err := js.KeyValue(ctx, "things")
	if err != nil {
		t.Fatal(err)
	}
	old := `{"v":{"name":"old","count":0},"ver":7,"outbox":[{"id":"legacy","subject":"events.test.v1.ThingChanged","data":"bGVnYWN5"}]}`
	if _, err := bucket.Put(ctx, "k", []byte(old)); err != nil {
		t.Fatal(err)
	}
	e, err := s.Get(ctx, "k")
	if err != nil || e.Value.Name != "old" || e.Version != 7 {
		t.Fatalf("Get of the old record = %+v, %v", e, err)
	}
	if e, err = s.Update(ctx, "k", thing{Name: "new"}, e.Version, event("n1")); err != nil {
		t.Fatal(err)
	}
	if _, err = s.Update(ctx, "k", thing{Name: "newer"}, e.Version); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return count() >= 2 }, "the old and the new message were not published")
	if got, msgs := count(), streamMsgs(t, st); got != 2 || msgs != 2 {
		t.Fatalf("%d publishes, %d stored; want the old message and the new one, once each", got, msgs)
	}
}

func TestConcurrentUpdatesOneWins(t *testing.T) {
	ctx := context.Background()
	_, js, st := setup(t)
	s := openThings(t, js)
	created, err := s.Create(ctx, "k", thing{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Update(ctx, "k", thing{Count: i}, created.Version, event("c"+string(rune('a'+i))))
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, kv.ErrConflict) {
				t.Errorf("Update = %v, want nil or ErrConflict", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent updates of one version won, want 1", wins)
	}
	if n := streamMsgs(t, st); n != 1 {
		t.Fatalf("stream holds %d messages, want only the winner's", n)
	}
}

// TestCrashBetweenCommitAndPublish kills a real process after its write
// commits and before it publishes; opening the store again publishes the
// message exactly once.
func TestCrashBetweenCommitAndPublish(t *testing.T) {
	if os.Getenv("KV_CRASH_CHILD") == "1" {
		crashChild()
		return
	}
	ctx := context.Background()
	n, js, st := setup(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashBetweenCommitAndPublish$")
	cmd.Env = append(os.Environ(), "KV_CRASH_CHILD=1", "KV_CRASH_NATS="+n.URL, "KV_CRASH_SEED="+n.ProbeSeed())
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("child = %v, want exit status 3; output:\n%s", err, out)
	}
	if n := streamMsgs(t, st); n != 0 {
		t.Fatalf("stream holds %d messages before recovery, want 0 (the child died before publishing)", n)
	}
	s := openThings(t, js)
	e, err := s.Get(ctx, "k")
	if err != nil || e.Value.Name != "committed" {
		t.Fatalf("Get = %+v, %v; want the child's committed value", e, err)
	}
	if n := streamMsgs(t, st); n != 1 {
		t.Fatalf("stream holds %d messages after recovery, want 1", n)
	}
	// The outbox is now empty: a second recovery publishes nothing new, and
	// the version did not move.
	if err := s.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "k", thing{Name: "next"}, e.Version); err != nil {
		t.Fatalf("Update after recovery = %v", err)
	}
	if n := streamMsgs(t, st); n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
}

func crashChild() {
	ctx := context.Background()
	nc, err := testkit.ConnectSeed(os.Getenv("KV_CRASH_NATS"), os.Getenv("KV_CRASH_SEED"))
	if err != nil {
		os.Exit(1)
	}
	js, _ := jetstream.New(nc)
	s, err := kv.Open[thing](ctx, js, kv.Config{Bucket: "things"},
		kv.WithAfterCommit(func() { os.Exit(3) }))
	if err != nil {
		os.Exit(1)
	}
	_, _ = s.Create(ctx, "k", thing{Name: "committed"}, event("crash-1"))
	os.Exit(2) // not reached: the hook exits first
}

func TestTTLForgetsEntries(t *testing.T) {
	ctx := context.Background()
	_, js, _ := setup(t)
	s, err := kv.Open[thing](ctx, js, kv.Config{Bucket: "short", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "k", thing{Name: "fleeting"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "k"); err != nil {
		t.Fatalf("Get right after Create = %v", err)
	}
	testkit.Eventually(t, 15*time.Second, func() bool {
		_, err := s.Get(ctx, "k")
		return errors.Is(err, kv.ErrNotFound)
	}, "entry still there long after its TTL")
}

// TestRecoveryKeepsYoungHints: a hint with no committed record may belong
// to a write still under way, so recovery keeps it until it is older than
// the grace period.
func TestRecoveryKeepsYoungHints(t *testing.T) {
	ctx := context.Background()
	_, js, _ := setup(t)
	s := openThings(t, js)
	hints, err := js.KeyValue(ctx, "things_outbox")
	if err != nil {
		t.Fatal(err)
	}
	// A writer has put its hint and not yet committed its record.
	if _, err := hints.Put(ctx, "inflight", []byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := s.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := hints.Get(ctx, "inflight"); err != nil {
		t.Fatalf("a young hint was deleted by recovery: %v", err)
	}
	eager := openThings(t, js, kv.WithRecoveryGrace(0))
	if err := eager.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := hints.Get(ctx, "inflight"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("a hint past the grace period survived recovery: %v", err)
	}
}

// TestTake: of many racing takers of one key, exactly one gets its value;
// a key that is not there is ErrNotFound.
func TestTake(t *testing.T) {
	ctx := context.Background()
	_, js, _ := setup(t)
	s, err := kv.Open[string](ctx, js, kv.Config{Bucket: "take"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "nonce", "v"); err != nil {
		t.Fatal(err)
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			v, err := s.Take(ctx, "nonce")
			switch {
			case err == nil && v == "v":
				won.Add(1)
			case !errors.Is(err, kv.ErrNotFound):
				t.Errorf("Take = %q, %v; want the value or ErrNotFound", v, err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d takers got the value, want 1", won.Load())
	}
	if _, err := s.Take(ctx, "nonce"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Take of a taken key = %v, want ErrNotFound", err)
	}
}
