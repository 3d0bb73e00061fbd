package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit"
)

// podmanRun is how this machine runs containers: Debian's podman with
// runc (crun fails on its cgroups), the host's network, and the plain-HTTP
// built-in registry.
var podmanRun = []string{"run", "--rm", "--runtime", "/usr/sbin/runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
	"--network", "host", "--tls-verify=false"}

// TestPodmanJourney runs the converted sample in a real container
// runtime, as a user would next to `make run`: podman pulls it from the
// built-in registry and starts it with NODE_AGENT_BASE_URL pointing at a
// node agent in simulation mode; the image's launcher gets the certificate
// and the sample serves HTTPS that a client trusting only the account CA
// accepts.
func TestPodmanJourney(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("podman is not installed; .ci/run installs it (apt-get install podman runc)")
		}
		t.Skip("podman is not installed (apt-get install podman runc)")
	}
	if _, err := os.Stat("/usr/sbin/runc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("runc is not installed; .ci/run installs it")
		}
		t.Skip("runc is not installed")
	}
	dataDir, cfgDir, addr, nodeAddr, registry := t.TempDir(), t.TempDir(), testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	t.Setenv("CLOISTER_ADDR", "http://"+addr)
	startServerArgs(t, addr, "-dev", "--data-dir", dataDir, "--launcher", launcherBinary(t), "--node-http", nodeAddr,
		"--registry", registry, "--sample", helloBinary(t))
	_, chain := journeyAccount(t, cfgDir)
	hello := createAndConvert(t, cfgDir, registry, "hello", "hello.cloister.test")
	for _, task := range pendingTasks(t, cfgDir, hello.AppID, 2) {
		run(t, cfgDir, "", "task", "approve", task.ID)
	}
	secret := strings.TrimSpace(run(t, cfgDir, "", "node", "token", "create", "rack-1", "--max-uses", "1"))
	agentAPI := startAgent(t, addr, nodeAddr, dataDir, secret)

	image := registry + "/samples/hello-sgx:1"
	name := "cloister-e2e-" + randomHex(t)
	helloAddr := testkit.FreeAddr(t)
	args := append(append([]string{}, podmanRun...), "--name", name,
		"-e", "NODE_AGENT_BASE_URL="+agentAPI, "-e", "HELLO_ADDR="+helloAddr, image)
	container := startLaunched(t, exec.Command(podman, args...))
	t.Cleanup(func() {
		_ = exec.Command(podman, "rm", "-f", "-t", "0", name).Run()
		_ = exec.Command(podman, "rmi", "-f", image).Run()
	})
	page := waitForHTTPS(t, testkit.TrustingOnly(t, chain, "hello.cloister.test"), helloAddr, container)
	if !strings.Contains(page, "Hello from an attested enclave") {
		t.Fatalf("the sample in the container answered %q", page)
	}
	t.Logf("the container's output: %s", container.output())

	// The container removed, its instance leaves the node's list.
	var nodes struct{ Items []struct{ ID string } }
	instances := func() int {
		if json.Unmarshal([]byte(run(t, cfgDir, "", "node", "list", "-o", "json")), &nodes) != nil || len(nodes.Items) != 1 {
			t.Fatalf("node list: want the one node")
		}
		var n struct{ Instances []json.RawMessage }
		if err := json.Unmarshal([]byte(run(t, cfgDir, "", "node", "show", nodes.Items[0].ID, "-o", "json")), &n); err != nil {
			t.Fatal(err)
		}
		return len(n.Instances)
	}
	testkit.Eventually(t, 20*time.Second, func() bool { return instances() == 1 }, "the container's instance never showed on its node")
	if n := agentInstancesLater(t, agentAPI); n != 1 {
		t.Fatalf("the agent reports %d instances two heartbeats after the container started, want 1: its process holds its live connection", n)
	}
	if out, err := exec.Command(podman, "rm", "-f", "-t", "0", name).CombinedOutput(); err != nil {
		t.Fatalf("podman rm: %v: %s", err, out)
	}
	testkit.Eventually(t, 20*time.Second, func() bool { return instances() == 0 }, "the removed container's instance is still listed on its node")
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
