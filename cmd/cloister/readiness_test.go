package main

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cloister-cc/cloister/libs/events"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// TestReadinessNeedsTheStreams: a process is ready only while its NATS
// server reaches the streams every write needs; one on a server cut off
// from the cluster is not, until the partition heals.
func TestReadinessNeedsTheStreams(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	b := &bus{conns: map[string]*nats.Conn{"account": c.Connect(t, 0)}}
	reachable := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return b.streamsReachable(ctx)
	}
	if err := reachable(); err == nil {
		t.Fatal("ready before the streams exist")
	}
	_, js := c.JetStream(t, 1)
	if err := events.EnsureStreams(context.Background(), js, 3); err != nil {
		t.Fatal(err)
	}
	var err error
	testkit.EventuallyMsg(t, 20*time.Second, func() bool { err = reachable(); return err == nil },
		func() string { return "not ready with the streams there: " + err.Error() })
	c.Partition(0)
	testkit.Eventually(t, 20*time.Second, func() bool { return reachable() != nil }, "ready on a server cut off from the cluster")
	c.Heal(0)
	testkit.EventuallyMsg(t, 30*time.Second, func() bool { err = reachable(); return err == nil },
		func() string { return "not ready after the partition healed: " + err.Error() })
}
