package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/testkit"
)

// storedOn returns how many messages node i holds of stream, as its own
// replica has them (-1 while it has none).
func storedOn(c *testkit.Cluster, i int, stream string) int {
	s := c.Nodes[i].Server()
	if s == nil {
		return -1
	}
	jsz, err := s.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return -1
	}
	for _, a := range jsz.AccountDetails {
		for _, st := range a.Streams {
			if st.Name == stream {
				return int(st.State.Msgs)
			}
		}
	}
	return -1
}

// publish stores n messages, retrying each (the same message id, so it is
// stored once) while the stream elects a leader, as a client must.
func publish(ctx context.Context, js jetstream.JetStream, n int, from int) error {
	for i := range n {
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.Publish(ctx, "chaos.x", fmt.Appendf(nil, "%d", from+i), jetstream.WithMsgID(fmt.Sprint(from+i)))
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// A three-node cluster keeps a replicated stream through the death of its
// meta leader and of the stream's leader, an upgrade's stop and start of a
// node, and a partition: writes go on with two nodes, a node that comes
// back catches up, and an isolated node takes no writes.
func TestClusterSurvivesLosingANode(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	ctx := context.Background()
	_, js := c.JetStream(t, 0)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CHAOS", Subjects: []string{"chaos.>"}, Replicas: 3, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if err := publish(ctx, js, 10, 0); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		testkit.Eventually(t, 10*time.Second, func() bool { return storedOn(c, i, "CHAOS") == 10 }, "%s holds %d of 10", c.Nodes[i].Name, storedOn(c, i, "CHAOS"))
	}

	// The meta leader dies: another is elected, writes go on.
	dead := c.WaitForMetaLeader(10 * time.Second)
	c.Kill(dead)
	if leader := c.WaitForMetaLeader(20 * time.Second); leader == dead {
		t.Fatalf("the killed node %d still leads", dead)
	}
	if err := publish(ctx, js, 10, 10); err != nil {
		t.Fatalf("publishing with the meta leader dead: %v", err)
	}
	c.Restart(dead)
	testkit.Eventually(t, 20*time.Second, func() bool { return storedOn(c, dead, "CHAOS") == 20 },
		"the restarted node holds %d of 20", storedOn(c, dead, "CHAOS"))

	// The stream's leader dies.
	dead = c.WaitForStreamLeader("CHAOS", 20*time.Second)
	c.Kill(dead)
	if err := publish(ctx, js, 10, 20); err != nil {
		t.Fatalf("publishing with the stream's leader dead: %v", err)
	}
	c.Restart(dead)
	testkit.Eventually(t, 20*time.Second, func() bool { return storedOn(c, dead, "CHAOS") == 30 },
		"the restarted node holds %d of 30", storedOn(c, dead, "CHAOS"))

	// An upgrade: a node stopped in lame duck mode, then started again.
	stopped := c.WaitForStreamLeader("CHAOS", 20*time.Second)
	c.Stop(stopped)
	if err := publish(ctx, js, 5, 30); err != nil {
		t.Fatalf("publishing with a node stopped: %v", err)
	}
	c.Restart(stopped)
	testkit.Eventually(t, 20*time.Second, func() bool { return storedOn(c, stopped, "CHAOS") == 35 },
		"the node stopped and started again holds %d of 35", storedOn(c, stopped, "CHAOS"))

	// A partitioned node takes no writes; its peers do; healed, it catches up.
	cut := (c.WaitForStreamLeader("CHAOS", 20*time.Second) + 1) % 3
	c.Partition(cut)
	isolated := c.Connect(t, cut)
	ijs, err := jetstream.New(isolated)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	_, err = ijs.Publish(short, "chaos.x", []byte("lost?"))
	cancel()
	if err == nil {
		t.Fatal("a publish through the partitioned node was acknowledged")
	}
	_, majority := c.JetStream(t, (cut+1)%3)
	if err := publish(ctx, majority, 5, 35); err != nil {
		t.Fatalf("publishing beside a partitioned node: %v", err)
	}
	c.Heal(cut)
	testkit.Eventually(t, 30*time.Second, func() bool { return storedOn(c, cut, "CHAOS") == 40 },
		"the healed node holds %d of 40", storedOn(c, cut, "CHAOS"))
}

// Nodes let in only the routes that know the cluster's password, and
// clients only as a deployment's identities, with their permissions.
func TestClusterAuthenticates(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	target := c.Nodes[0].Server()
	routes := target.NumRoutes()
	intruder, err := server.NewServer(&server.Options{ServerName: "intruder", Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "cloister", Host: "127.0.0.1", Port: -1},
		Routes:  []*url.URL{{Scheme: "nats-route", User: url.UserPassword("route", "guess"), Host: target.ClusterAddr().String()}}})
	if err != nil {
		t.Fatal(err)
	}
	go intruder.Start()
	t.Cleanup(intruder.Shutdown)
	time.Sleep(time.Second) // its route is tried at once, and retried
	if n := intruder.NumRoutes(); n != 0 || target.NumRoutes() != routes {
		t.Fatalf("a server with the wrong route password has %d routes; the node it dialled %d, was %d", n, target.NumRoutes(), routes)
	}

	if _, err := nats.Connect(c.URLs(), nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("an anonymous client = %v, want refused", err)
	}
	gw := c.ConnectAs(t, "gateway", 1)
	js, err := jetstream.New(gw)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "MINE", Subjects: []string{"mine.>"}}); err == nil {
		t.Fatal("the gateway's identity created a stream; its role may not")
	}
}
