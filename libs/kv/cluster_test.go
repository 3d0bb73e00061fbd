package kv_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// On a cluster, what one process wrote (and was told was stored) is what
// another reads at once, through another node: not absent, not its
// previous value, and a deletion is seen as one; and through a node cut
// off from the others, a read fails rather than answer what that node's
// replica last had.
func TestReadsSeeTheLatestWriteOnACluster(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	ctx := context.Background()
	writer := openThingsOn(t, c, 0)
	// The readers are on the nodes that do not lead the bucket's stream:
	// one of them is cut off, and later killed, below.
	leader := c.WaitForStreamLeader("KV_things", 10*time.Second)
	var readers []*kv.Store[thing]
	var others []int
	for i := range c.Nodes {
		if i != leader {
			readers, others = append(readers, openThingsOn(t, c, i)), append(others, i)
		}
	}
	cut := others[1]
	// Writers at once, so that a follower can fall behind the quorum.
	errc := make(chan error, 8)
	for w := range 8 {
		go func() { errc <- roundTrips(ctx, writer, readers, w, 50) }()
	}
	for range 8 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}

	e, err := writer.Create(ctx, "cut", thing{Name: "before"})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		got, err := readers[1].Get(ctx, "cut")
		return err == nil && got.Value.Name == "before"
	}, "the value never reached the node to be cut off")
	c.Partition(cut)
	if _, err := writer.Update(ctx, "cut", thing{Name: "after"}, e.Version); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if got, err := readers[1].Get(short, "cut"); err == nil {
		t.Fatalf("a read through a partitioned node = %+v, want an error (the latest value is %q)", got.Value, "after")
	}
	c.Heal(cut)
}

// openThingsOn opens the "things" store, replicated on every node of c,
// through node, retrying while the node is too busy catching up to answer
// JetStream's API in time.
func openThingsOn(t *testing.T, c *testkit.Cluster, node int) *kv.Store[thing] {
	t.Helper()
	ctx := context.Background()
	_, js := c.JetStream(t, node)
	var s *kv.Store[thing]
	var err error
	testkit.EventuallyMsg(t, 30*time.Second, func() bool {
		if _, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Replicas: 3}); err != nil {
			return false
		}
		s, err = kv.Open[thing](ctx, js, kv.Config{Bucket: "things", Replicas: 3})
		return err == nil
	}, func() string { return fmt.Sprintf("opening the store through %s: %v", c.Nodes[node].Name, err) })
	return s
}

// A process that asks for fewer replicas than a bucket has (started
// without the deployment's --replicas) leaves it as it is.
func TestOpenNeverScalesABucketDown(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	ctx := context.Background()
	_, js := c.JetStream(t, 0)
	for _, step := range []struct{ ask, want int }{{3, 3}, {1, 3}} {
		if _, err := kv.Open[thing](ctx, js, kv.Config{Bucket: "things", Replicas: step.ask}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"KV_things", "KV_" + kv.OutboxBucket("things")} {
			st, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if r := st.CachedInfo().Config.Replicas; r != step.want {
				t.Fatalf("after Open with %d replicas, %s has %d, want %d", step.ask, name, r, step.want)
			}
		}
	}
}

func roundTrips(ctx context.Context, writer *kv.Store[thing], readers []*kv.Store[thing], w, rounds int) error {
	for i := range rounds {
		key := fmt.Sprintf("w%d-k%d", w, i)
		e, err := writer.Create(ctx, key, thing{Name: "first"})
		if err != nil {
			return err
		}
		for _, r := range readers {
			if got, err := r.Get(ctx, key); err != nil || got.Value.Name != "first" {
				return fmt.Errorf("%s: a read through another node right after the create = %+v, %v", key, got.Value, err)
			}
		}
		if e, err = writer.Update(ctx, key, thing{Name: "second"}, e.Version); err != nil {
			return err
		}
		for _, r := range readers {
			if got, err := r.Get(ctx, key); err != nil || got.Value.Name != "second" {
				return fmt.Errorf("%s: a read through another node right after the update = %+v, %v", key, got.Value, err)
			}
		}
		if err := writer.Delete(ctx, key, e.Version); err != nil {
			return err
		}
		for _, r := range readers {
			if got, err := r.Get(ctx, key); !errors.Is(err, kv.ErrNotFound) {
				return fmt.Errorf("%s: a read through another node right after the delete = %+v, %v", key, got.Value, err)
			}
		}
	}
	return nil
}

// Right after a partition heals, a listing through any node lists every
// entry, those written during the partition included, with their latest
// values. JetStream may make no consumer for a moment then ("temporarily
// unavailable": 15 of 45 listings in an experiment), which List waits out;
// and it may place a listing's consumer on the replica that was cut off
// and still catches up, which List avoids by listing from the leader
// while a replica lags.
func TestListAfterAPartitionHeals(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	ctx := context.Background()
	var stores []*kv.Store[thing]
	for node := range c.Nodes {
		stores = append(stores, openThingsOn(t, c, node))
	}
	for i := range 100 {
		if _, err := stores[0].Create(ctx, fmt.Sprintf("a.before-%d", i), thing{Name: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	cut := (c.WaitForMetaLeader(10*time.Second) + 1) % 3
	c.Partition(cut)
	for i := range 100 {
		// Updated beside the cut-off node: its replica holds the old values.
		key := fmt.Sprintf("a.before-%d", i)
		testkit.EventuallyMsg(t, 30*time.Second, func() bool {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			e, err := stores[(cut+1)%3].Get(wctx, key)
			if err == nil && e.Value.Name == "x" {
				_, err = stores[(cut+1)%3].Update(wctx, key, thing{Name: "x2"}, e.Version)
			}
			return err == nil || errors.Is(err, kv.ErrConflict)
		}, func() string { return "updating " + key + " beside the partitioned node" })
	}
	for i := range 20 {
		// A write may find the bucket's stream electing a leader: it is
		// told to try again, as a client would; one that was stored
		// after all is then a conflict.
		key := fmt.Sprintf("a.during-%d", i)
		var err error
		testkit.EventuallyMsg(t, 30*time.Second, func() bool {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err = stores[(cut+1)%3].Create(wctx, key, thing{Name: "y"})
			return err == nil || errors.Is(err, kv.ErrConflict)
		}, func() string { return fmt.Sprintf("a write beside the partitioned node: %v", err) })
	}
	time.Sleep(3 * time.Second) // long enough for the cut-off node to call elections of its own
	c.Heal(cut)
	for _, n := range []int{cut, (cut + 1) % 3, (cut + 2) % 3, cut} {
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		es, err := stores[n].List(lctx, "a.*")
		cancel()
		if err != nil || len(es) != 120 {
			t.Fatalf("listing through node %d (%d was cut off) right after the heal = %d entries, %v; want 120", n, cut, len(es), err)
		}
		for _, e := range es {
			if want := map[bool]string{true: "x2", false: "y"}[e.Key < "a.c"]; e.Value.Name != want {
				t.Fatalf("listing through node %d (%d was cut off): %s = %q, want %q", n, cut, e.Key, e.Value.Name, want)
			}
		}
	}
}

// Listing from the leader, as List does while a replica lags, gives what
// a watcher gives: the live entries with their latest values, sorted.
func TestListFromTheLeader(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	ctx := context.Background()
	s := openThingsOn(t, c, 1)
	for i := range 30 {
		key := fmt.Sprintf("b.%02d", i)
		e, err := s.Create(ctx, key, thing{Name: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 1:
			_, err = s.Update(ctx, key, thing{Name: "v2"}, e.Version)
		case 2:
			err = s.Delete(ctx, key, e.Version)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, "other.1", thing{Name: "v1"}); err != nil {
		t.Fatal(err)
	}
	watched, err := s.List(ctx, "b.*")
	if err != nil {
		t.Fatal(err)
	}
	led, err := s.ListFromLeader(ctx, "b.*")
	if err != nil {
		t.Fatal(err)
	}
	if len(watched) != 20 || fmt.Sprint(watched) != fmt.Sprint(led) {
		t.Fatalf("listing from the leader = %v\nthrough a watcher = %v; want the same 20", led, watched)
	}
	if none, err := s.ListFromLeader(ctx, "nothing.*"); err != nil || len(none) != 0 {
		t.Fatalf("an empty listing from the leader = %v, %v", none, err)
	}
	// What List checks a watcher's listing against: the last write or
	// deletion under the filter, wildcards and all.
	last, err := s.LeaderLast(ctx, "b.*")
	if err != nil {
		t.Fatal(err)
	}
	b29, err := s.Get(ctx, "b.29") // deleted last (29 % 3 == 2): its marker is the last message
	if !errors.Is(err, kv.ErrNotFound) || last == 0 {
		t.Fatalf("LeaderLast(b.*) = %d; b.29 = %+v, %v", last, b29, err)
	}
	if none, err := s.LeaderLast(ctx, "nothing.*"); err != nil || none != 0 {
		t.Fatalf("LeaderLast(nothing.*) = %d, %v; want 0", none, err)
	}
}
