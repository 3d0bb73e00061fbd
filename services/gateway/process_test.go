package gateway_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit"
)

// cloisterBinary builds cmd/cloister once per test binary.
var cloisterBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "cloister-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "cloister")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/cloister-cc/cloister/cmd/cloister").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building cloister: %v: %s", err, out)
	}
	return bin, nil
})

// serverProcess is `cloister server --services=<services>` run as a
// process of its own on a cluster, as a deployment runs one replica.
type serverProcess struct {
	cmd  *exec.Cmd
	logs *testkit.Logs
}

// startServerProcess runs services in a process of its own on c, with
// the cluster's identities and every stream replicated as the stack's
// are, and waits until it is ready. It is killed when the test ends.
func startServerProcess(t *testing.T, c *testkit.Cluster, services string) *serverProcess {
	t.Helper()
	bin, err := cloisterBinary()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &serverProcess{logs: &testkit.Logs{}}
	p.cmd = exec.Command(bin, "server", "--services="+services, "--nats-url="+c.URLs(), "--nats-credentials="+c.CredentialsDir(t),
		fmt.Sprintf("--replicas=%d", min(len(c.Nodes), 3)), "--http="+addr, "--log-level=warn")
	p.cmd.Env = append(os.Environ(), "OTEL_SDK_DISABLED=true")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("cloister server --services=%s said:\n%s", services, p.logs.String())
		}
	})
	testkit.EventuallyMsg(t, 60*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("cloister server --services=%s exited: %s", services, p.logs.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, func() string { return "cloister server --services=" + services + " never ready: " + p.logs.String() })
	return p
}

// kill kills the process at once (SIGKILL): no shutdown, no drain.
func (p *serverProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
}
