package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit"
)

// agentBinary builds cmd/cloister-node-agent once per test binary.
var agentBinary = buildOnce("cloister-node-agent")

// TestNodeAgentJourney runs the real node agent against `cloister server
// -dev`: it enrols with a join token and shows up active; restarted on
// the same data dir it keeps its identity without a token; deregistered,
// it is refused over mTLS and stops with exit code 79.
func TestNodeAgentJourney(t *testing.T) {
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("starts the server and the agent")
	}
	dataDir, cfgDir, addr, nodeAddr := t.TempDir(), t.TempDir(), testkit.FreeAddr(t), testkit.FreeAddr(t)
	t.Setenv("CLOISTER_ADDR", "http://"+addr)
	startServerArgs(t, addr, "-dev", "--data-dir", dataDir, "--launcher", launcherBinary(t), "--node-http", nodeAddr, "--registry=")
	run(t, cfgDir, "a long passphrase\n", "signup", "--email", "ops@example.com", "--password-stdin")
	run(t, cfgDir, "a long passphrase\n", "login", "--email", "ops@example.com", "--password-stdin")
	var acct struct{ ID string }
	if err := json.Unmarshal([]byte(run(t, cfgDir, "", "account", "create", "Nodes", "-o", "json")), &acct); err != nil {
		t.Fatal(err)
	}
	run(t, cfgDir, "", "account", "select", acct.ID)
	testkit.Eventually(t, 10*time.Second, func() bool {
		return cloisterCmd(t, cfgDir, "ca", "show").Run() == nil
	}, "the account's CA never appeared")
	secret := strings.TrimSpace(run(t, cfgDir, "", "node", "token", "create", "rack", "--max-uses", "1"))

	agentDir := t.TempDir()
	agent := func(extra ...string) *exec.Cmd {
		args := append([]string{"--server", "http://" + addr, "--node-server", "https://" + nodeAddr,
			"--server-ca", filepath.Join(dataDir, "node-tls.crt"), "--data-dir", agentDir, "--name", "node-1",
			"--listen", testkit.FreeAddr(t), "--heartbeat-every", "200ms"}, extra...)
		cmd := exec.Command(agentBinary(t), args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		return cmd
	}
	type nodeList struct {
		Items []struct {
			ID, Status    string
			LastHeartbeat *time.Time `json:"last_heartbeat"`
		}
	}
	nodes := func() nodeList {
		var l nodeList
		_ = json.Unmarshal([]byte(run(t, cfgDir, "", "node", "list", "-o", "json")), &l)
		return l
	}

	first := agent("--join-token", secret)
	var id string
	testkit.Eventually(t, 20*time.Second, func() bool {
		l := nodes()
		if len(l.Items) == 1 && l.Items[0].Status == "active" && l.Items[0].LastHeartbeat != nil {
			id = l.Items[0].ID
			return true
		}
		return false
	}, "the agent never enrolled and sent a heartbeat")
	_ = first.Process.Kill()
	_ = first.Wait()

	// Restarted without a token (the one-use token is spent anyway).
	second := agent()
	beat := nodes().Items[0].LastHeartbeat
	testkit.Eventually(t, 20*time.Second, func() bool {
		l := nodes()
		return len(l.Items) == 1 && l.Items[0].ID == id && l.Items[0].LastHeartbeat != nil && l.Items[0].LastHeartbeat.After(*beat)
	}, "the restarted agent did not come back as the same node")

	run(t, cfgDir, "", "node", "deregister", id)
	exited := make(chan error, 1)
	go func() { exited <- second.Wait() }()
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 79 {
			t.Fatalf("the deregistered node's agent exited with %v, want code 79", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the deregistered node's agent kept running")
	}
}
