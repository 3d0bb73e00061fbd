package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/events"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
)

// envHoldLive makes the test binary a process that holds an instance's
// live connection (the URL given) until it is killed.
const envHoldLive = "CLOISTER_TEST_HOLD_LIVE"

// TestHoldLiveHelper is not a test: run with envHoldLive set, it is the
// enclave's process of TestInstanceStopsWhenItsProcessEnds.
func TestHoldLiveHelper(t *testing.T) {
	u := os.Getenv(envHoldLive)
	if u == "" {
		return // run as a test: nothing to do
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", req.URL.Host)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("holding %s: %v, %v", u, resp, err)
	}
	// What the holder writes changes nothing: the agent reads it away.
	if _, err := conn.Write([]byte("still here\n")); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("holding\n")
	select {} // until killed
}

// TestInstanceStopsWhenItsProcessEnds: the process of an instance holds its
// live connection; when it is killed (kill -9: nothing of it runs to say
// goodbye), the agent stops reporting the instance at once, the gateway
// no longer lists it, and the node registry publishes InstanceStopped.
func TestInstanceStopsWhenItsProcessEnds(t *testing.T) {
	g := newTestGateway(t)
	hello := g.approvedHello()
	dir := t.TempDir()
	r := start(t, testConfig(t, g, dir))
	r.enrolled(t)
	nodeID := readRecord(t, dir).ID
	_, answer := g.issue(r, hello)
	id, _ := answer["instance_id"].(string)
	eventually(t, "the gateway lists the instance", func() bool {
		n := g.GetNode(g.admin, g.account, nodeID)
		return len(n.Instances) == 1 && n.Instances[0].ID == id
	})

	// Only a running instance can be held, and only once.
	if resp := get(t, r.url+"/instances/inst-0000/live"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("holding an unknown instance = %d, want 404", resp.StatusCode)
	}
	holder := exec.Command(os.Args[0], "-test.run=^TestHoldLiveHelper$")
	holder.Env = append(os.Environ(), envHoldLive+"="+r.url+"/instances/"+id+"/live")
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "holding\n" {
		t.Fatalf("the holding process said %q, %v", line, err)
	}
	if resp := get(t, r.url+"/instances/"+id+"/live"); resp.StatusCode != http.StatusConflict {
		t.Fatalf("holding an instance held already = %d, want 409", resp.StatusCode)
	}

	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gateway no longer lists the instance", func() bool {
		return len(g.GetNode(g.admin, g.account, nodeID).Instances) == 0
	})
	js, err := jetstream.New(g.NATS.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "InstanceStopped published", func() bool { return stoppedPublished(t, js, id) })
	if !strings.Contains(r.logs.String(), "instance stopped: its process closed its live connection") {
		t.Errorf("the agent's log does not say the instance stopped:\n%s", r.logs)
	}
}

// get answers a GET with its body left unread (a live answer never ends).
func get(t *testing.T, u string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// stoppedPublished reports whether InstanceStopped of instance id is on
// the events stream.
func stoppedPublished(t *testing.T, js jetstream.JetStream, id string) bool {
	t.Helper()
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, events.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"events.noderegistry.v1.InstanceStopped"}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil || info.NumPending == 0 {
		return false
	}
	batch, err := cons.Fetch(int(info.NumPending), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for msg := range batch.Messages() {
		ev, err := events.DecodeMessage(msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		var e noderegistryv1.InstanceStopped
		if err := proto.Unmarshal(ev.Envelope.GetPayload(), &e); err != nil {
			t.Fatal(err)
		}
		found = found || e.GetInstance().GetId() == id
	}
	return found
}
