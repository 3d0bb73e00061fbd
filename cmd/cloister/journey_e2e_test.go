package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// helloBinary builds samples/hello-https once per test binary, as `make
// run` does, for -dev to publish.
var helloBinary = buildOnce("../samples/hello-https", "-trimpath")

// Exit codes of cloister-launcher (cmd/cloister-launcher/main.go).
const (
	launcherExitAttest = 75
	launcherExitConfig = 78
)

// TestEnclaveJourney walks DESIGN §1 from sign-up to a running enclave
// with nothing mocked: `cloister server -dev` publishes the sample to its
// registry, the CLI converts and approves it, a real node agent enrols in
// simulation mode, and the converted image's own launcher, run from its
// unpacked filesystem, obtains the certificate that an HTTPS client
// trusting only the account CA then accepts. The negative paths each end
// with no certificate and a reason: an altered file, an image or a domain
// nobody approved, simulated evidence the account does not allow.
func TestEnclaveJourney(t *testing.T) {
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("starts the server, a node agent and an enclave")
	}
	dataDir, cfgDir, addr, nodeAddr, registry := t.TempDir(), t.TempDir(), testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	t.Setenv("CLOISTER_ADDR", "http://"+addr)
	startServerArgs(t, addr, "-dev", "--data-dir", dataDir, "--launcher", launcherBinary(t), "--node-http", nodeAddr,
		"--registry", registry, "--sample", helloBinary(t), "--public-url", "http://"+addr)

	// An account that accepts simulated evidence.
	acctID, chain := journeyAccount(t, cfgDir)

	// The sample, converted and approved.
	hello := createAndConvert(t, cfgDir, registry, "hello", "hello.cloister.test")
	for _, task := range pendingTasks(t, cfgDir, hello.AppID, 2) {
		run(t, cfgDir, "", "task", "approve", task.ID)
	}

	// A node agent in simulation mode, enrolled with a join token.
	secret := strings.TrimSpace(run(t, cfgDir, "", "node", "token", "create", "rack-1", "--max-uses", "1"))
	agentAPI := startAgent(t, addr, nodeAddr, dataDir, secret)

	// The converted image's launcher, against the agent.
	root := unpackImage(t, cfgDir, registry+"/samples/hello-sgx:1")
	if out, err := cloisterCmd(t, cfgDir, "image", "unpack", registry+"/samples/hello-sgx:1", root).CombinedOutput(); err == nil || !strings.Contains(string(out), "not empty") {
		t.Fatalf("unpacking into a full directory = %v, %s; want a refusal", err, out)
	}
	checkGramineImage(t, cfgDir, registry, root, hello)
	helloAddr := testkit.FreeAddr(t)
	enclave := startLauncher(t, root, agentAPI, helloAddr)
	page := waitForHTTPS(t, testkit.TrustingOnly(t, chain, "hello.cloister.test"), helloAddr, enclave)
	if !strings.Contains(page, "Hello from an attested enclave") {
		t.Fatalf("the sample answered %q", page)
	}
	if info, err := os.Stat(filepath.Join(root, "run", "cloister", "key.pem")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the enclave's key = %v, %v; want mode 0600", info, err)
	}

	// The instance shows on its node.
	var node struct {
		ID        string
		Instances []struct {
			ID, Status string
			AppID      string `json:"app_id"`
			ImageID    string `json:"image_id"`
			MRENCLAVE  string `json:"mrenclave"`
		}
	}
	testkit.Eventually(t, 20*time.Second, func() bool {
		var l struct{ Items []struct{ ID string } }
		if json.Unmarshal([]byte(run(t, cfgDir, "", "node", "list", "-o", "json")), &l) != nil || len(l.Items) != 1 {
			return false
		}
		_ = json.Unmarshal([]byte(run(t, cfgDir, "", "node", "show", l.Items[0].ID, "-o", "json")), &node)
		return len(node.Instances) == 1
	}, "the node never reported the enclave's instance")
	if in := node.Instances[0]; in.Status != "running" || in.AppID != hello.AppID || in.ImageID != hello.ID || in.MRENCLAVE != hello.MRENCLAVE {
		t.Fatalf("instance = %+v, want running app %s image %s MRENCLAVE %s", in, hello.AppID, hello.ID, hello.MRENCLAVE)
	}
	// In a table, the instances are a table of their own, apps by name.
	if out := run(t, cfgDir, "", "node", "show", node.ID); !regexp.MustCompile(`(?m)^INSTANCE\s+APP\s+IMAGE\s+STATUS\s+STARTED\s+CERTIFICATE SERIAL\s*\n` +
		regexp.QuoteMeta(node.Instances[0].ID) + `\s+hello\s+` + hello.ID + `\s+running\s`).MatchString(out) {
		t.Fatalf("node show = %s, want the instance in its own table, its app by name", out)
	}
	// The account at a glance: the node, the instance on it, the
	// certificates issued for both and the attestations behind them
	// (counted every 2 s).
	var summary string
	testkit.EventuallyMsg(t, 20*time.Second, func() bool {
		summary = run(t, cfgDir, "", "account", "summary")
		return regexp.MustCompile(`(?m)^attestations passed\s+[1-9]`).MatchString(summary)
	}, func() string { return "account summary never counted the attestations:\n" + summary })
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^NODES: 1 active, 0 unreachable`),
		regexp.MustCompile(`(?m)^RUNNING INSTANCES\n` + `ID\s+APP\s+NODE\s+STARTED\s+CERTIFICATE\s*\n` + regexp.QuoteMeta(node.Instances[0].ID) + `\s+hello\s+\S+\s`),
		regexp.MustCompile(`(?m)^certificates issued\s+[2-9]\s+[·▁▂▃▄▅▆▇█]{24}$`),
		regexp.MustCompile(`(?m)^PENDING TASKS\nID.*\n\(none\)`),
	} {
		if !want.MatchString(summary) {
			t.Fatalf("account summary does not match %s:\n%s", want, summary)
		}
	}
	t.Logf("account summary:\n%s", summary)
	serial := issuedSerial(t, cfgDir, "hello.cloister.test")
	// The certificate says where to check its revocation: the gateway's
	// CRL of its issuer, and its OCSP responder.
	leaf, issuer := enclaveChain(t, root)
	if len(leaf.CRLDistributionPoints) != 1 || !strings.HasPrefix(leaf.CRLDistributionPoints[0], "http://"+addr+"/v1/crl/"+acctID+".crl?issuer=") ||
		len(leaf.OCSPServer) != 1 || leaf.OCSPServer[0] != "http://"+addr+"/v1/ocsp/"+acctID {
		t.Fatalf("the enclave's certificate names CRL %q and OCSP %q", leaf.CRLDistributionPoints, leaf.OCSPServer)
	}
	if status := ocspStatus(t, leaf, issuer); status != ocsp.Good {
		t.Fatalf("OCSP for the running enclave's certificate = %d, want good", status)
	}

	// The enclave's process killed (kill -9: it says nothing), its
	// instance leaves the node's list: the application held the live
	// connection the launcher left it, and the kernel closed it.
	if out := enclave.output(); !strings.Contains(out, "certificate for hello.cloister.test obtained (instance inst-") {
		t.Fatalf("the launcher did not say it had its certificate and started the application:\n%s", out)
	}
	if n := agentInstancesLater(t, agentAPI); n != 1 {
		t.Fatalf("the agent reports %d instances two heartbeats after the enclave started, want 1: its process holds its live connection", n)
	}
	if err := enclave.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, func() bool {
		var now struct{ Instances []json.RawMessage }
		return json.Unmarshal([]byte(run(t, cfgDir, "", "node", "show", node.ID, "-o", "json")), &now) == nil && len(now.Instances) == 0
	}, "the killed enclave's instance is still listed on its node")

	// An altered file: the launcher refuses to start, naming it.
	altered := unpackImage(t, cfgDir, registry+"/samples/hello-sgx:1")
	f, err := os.OpenFile(filepath.Join(altered, "hello-https"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("tampered")
	f.Close()
	refused(t, "an altered file", altered, agentAPI, launcherExitConfig, "/hello-https")

	// Another app: its domain approved, its image not.
	other := createAndConvert(t, cfgDir, registry, "other", "other.cloister.test", "--env", "GREETING=other")
	if other.MRENCLAVE == hello.MRENCLAVE {
		t.Fatal("another manifest gave the same MRENCLAVE")
	}
	tasks := pendingTasks(t, cfgDir, other.AppID, 2)
	taskOf := func(kind string) string {
		for _, task := range tasks {
			if strings.Contains(task.Kind, kind) {
				return task.ID
			}
		}
		t.Fatalf("no %s task among %+v", kind, tasks)
		return ""
	}
	run(t, cfgDir, "", "task", "approve", taskOf("domain"))
	otherRoot := unpackImage(t, cfgDir, registry+"/samples/other-sgx:1")
	refused(t, "an unapproved image", otherRoot, agentAPI, launcherExitAttest, "approved")

	// Its image approved and its domain's approval withdrawn.
	run(t, cfgDir, "", "task", "approve", taskOf("image"))
	run(t, cfgDir, "", "task", "withdraw", taskOf("domain"))
	refused(t, "an unapproved domain", otherRoot, agentAPI, launcherExitAttest, "other.cloister.test")

	// The approved image, once the account no longer allows simulation.
	run(t, cfgDir, "", "attest", "policy", "set", "--accept", "UpToDate")
	refused(t, "simulation not allowed", unpackImage(t, cfgDir, registry+"/samples/hello-sgx:1"), agentAPI, launcherExitAttest, "simulat")

	// Deregistered, the node's enclave certificate is revoked.
	run(t, cfgDir, "", "node", "deregister", node.ID)
	testkit.Eventually(t, 20*time.Second, func() bool {
		return strings.Contains(run(t, cfgDir, "", "cert", "list", "--revoked", "-o", "json"), serial)
	}, "the enclave's certificate was not revoked with its node")
	// A relying party that follows the certificate's own pointers learns it.
	if status := ocspStatus(t, leaf, issuer); status != ocsp.Revoked {
		t.Fatalf("OCSP for the deregistered node's enclave = %d, want revoked", status)
	}
	if !crlLists(t, leaf.CRLDistributionPoints[0], issuer, leaf.SerialNumber) {
		t.Fatal("the CRL the certificate names does not list it after its node was deregistered")
	}

	// The account deleted: its objects are gone, and its final CRL still
	// tells relying parties that the enclave's certificate is revoked.
	run(t, cfgDir, "", "account", "delete", acctID, "--yes")
	testkit.Eventually(t, 20*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/v1/crl/" + acctID + ".crl")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		der, _ := io.ReadAll(resp.Body)
		crl, err := x509.ParseRevocationList(der)
		if resp.StatusCode != 200 || err != nil {
			return false
		}
		for _, e := range crl.RevokedCertificateEntries {
			if strings.EqualFold(e.SerialNumber.Text(16), strings.TrimLeft(serial, "0")) {
				return true
			}
		}
		return false
	}, "the deleted account's CRL does not list the enclave's certificate")
	for _, args := range [][]string{{"account", "get", acctID}, {"app", "list", "--account", acctID}, {"node", "list", "--account", acctID}} {
		if out, err := cloisterCmd(t, cfgDir, args...).CombinedOutput(); err == nil || !strings.Contains(string(out), "404") {
			t.Fatalf("cloister %s after deleting the account = %v, %s; want a 404", strings.Join(args, " "), err, out)
		}
	}
}

// enclaveChain reads the certificate chain the launcher wrote under root:
// the enclave's certificate and its issuer.
func enclaveChain(t *testing.T, root string) (leaf, issuer *x509.Certificate) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "run", "cloister", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("the chain the launcher wrote has %d certificates, want the leaf and its issuer", len(certs))
	}
	return certs[0], certs[1]
}

// ocspStatus asks the OCSP responder the certificate names about it.
func ocspStatus(t *testing.T, leaf, issuer *x509.Certificate) int {
	t.Helper()
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(leaf.OCSPServer[0], "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r, err := ocsp.ParseResponseForCert(body, leaf, issuer)
	if err != nil {
		t.Fatalf("OCSP answer from %s (%d): %v", leaf.OCSPServer[0], resp.StatusCode, err)
	}
	return r.Status
}

// crlLists fetches a CRL, checks its issuer's signature and tells whether
// it lists serial.
func crlLists(t *testing.T, url string, issuer *x509.Certificate, serial *big.Int) bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	der, _ := io.ReadAll(resp.Body)
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("GET %s = %d: %v", url, resp.StatusCode, err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("the CRL at %s is not signed by the certificate's issuer: %v", url, err)
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// journeyAccount signs up, creates and selects an account that accepts
// simulated evidence, waits for its CA and enclave signing key, and
// returns its id and the CA's chain.
func journeyAccount(t testing.TB, cfgDir string) (string, string) {
	t.Helper()
	run(t, cfgDir, "a long passphrase\n", "signup", "--email", "sec@example.com", "--password-stdin")
	run(t, cfgDir, "a long passphrase\n", "login", "--email", "sec@example.com", "--password-stdin")
	var acct struct{ ID string }
	if err := json.Unmarshal([]byte(run(t, cfgDir, "", "account", "create", "Enclaves", "-o", "json")), &acct); err != nil {
		t.Fatal(err)
	}
	acctID := acct.ID
	run(t, cfgDir, "", "account", "select", acctID)
	var chain string
	testkit.Eventually(t, 10*time.Second, func() bool {
		out, err := cloisterCmd(t, cfgDir, "ca", "show").Output()
		chain = string(out)
		return err == nil
	}, "the account's CA never appeared")
	testkit.Eventually(t, 30*time.Second, func() bool {
		return cloisterCmd(t, cfgDir, "signing-key").Run() == nil
	}, "the account's enclave signing key never appeared")
	run(t, cfgDir, "", "attest", "policy", "set", "--accept", "UpToDate", "--allow-simulation")
	return acctID, chain
}

// converted is the part of `image convert -o json` the journey uses.
type converted struct {
	ID, Status, MRENCLAVE, MRSIGNER string
	AppID                           string `json:"app_id"`
	GramineRuntime                  string `json:"gramine_runtime"`
	GramineRuntimeStandIn           bool   `json:"gramine_runtime_stand_in"`
}

// checkGramineImage holds a converted image, unpacked at root, to what
// Gramine would build: its Gramine manifest and libpal.so measure to the
// recorded MRENCLAVE, its .sig verifies, `image measure` agrees, and the
// record says it carries the built-in registry's stand-in runtime.
func checkGramineImage(t *testing.T, cfgDir, registry, root string, c converted) {
	t.Helper()
	if !c.GramineRuntimeStandIn || !strings.HasPrefix(c.GramineRuntime, registry+"/"+serverconfig.StandInRuntimeRepository+"@sha256:") {
		t.Errorf("image record: runtime %q, stand-in %v; want the built-in registry's stand-in, said so", c.GramineRuntime, c.GramineRuntimeStandIn)
	}
	var m enclaveMeasurement
	out := run(t, cfgDir, "", "enclave", "measure", "--manifest", filepath.Join(root, "opt/cloister/app.manifest.sgx"),
		"--libpal", filepath.Join(root, "opt/cloister/gramine/sgx/libpal.so"), "-o", "json")
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.MRENCLAVE != c.MRENCLAVE {
		t.Errorf("enclave measure of the image's manifest and libpal = %s (%v); want MRENCLAVE %s", out, err, c.MRENCLAVE)
	}
	var s sigstructOut
	out = run(t, cfgDir, "", "sgx", "sigstruct", "inspect", filepath.Join(root, "opt/cloister/app.sig"), "-o", "json")
	if err := json.Unmarshal([]byte(out), &s); err != nil || !s.SignatureValid || s.MRENCLAVE != c.MRENCLAVE || s.MRSIGNER != c.MRSIGNER {
		t.Errorf("sigstruct inspect of the image's .sig = %s (%v); want a valid signature of %s by %s", out, err, c.MRENCLAVE, c.MRSIGNER)
	}
	var meas measurement
	out = run(t, cfgDir, "", "image", "measure", registry+"/samples/hello-sgx:1", "-o", "json")
	if err := json.Unmarshal([]byte(out), &meas); err != nil || !meas.Match || meas.MRENCLAVE != c.MRENCLAVE || meas.Labels["cc.cloister.gramine-runtime.stand-in"] != "true" {
		t.Errorf("image measure = %s (%v); want a match with %s, labelled stand-in", out, err, c.MRENCLAVE)
	}
}

// createAndConvert creates an app from the sample image with its domain
// and converts it as <registry>/samples/<name>-sgx:1.
func createAndConvert(t *testing.T, cfgDir, registry, appName, domain string, extra ...string) converted {
	t.Helper()
	args := append([]string{"app", "create", appName, "--input-image", registry + "/samples/hello-https:1",
		"--output-image", registry + "/samples/" + appName + "-sgx", "--domain", domain,
		"--passthrough-env", "HELLO_ADDR", "--memory", "64M", "--threads", "4"}, extra...)
	run(t, cfgDir, "", args...)
	var c converted
	out := run(t, cfgDir, "", "image", "convert", "--app", appName, "--tag", "1", "--wait", "-o", "json")
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Status != "converted" || len(c.MRENCLAVE) != 64 {
		t.Fatalf("image convert %s = %s (%v)", appName, out, err)
	}
	return c
}

type task struct{ ID, Kind, Status, Subject string }

// pendingTasks waits for n pending tasks about the app (its domain, its
// image) and returns them.
func pendingTasks(t *testing.T, cfgDir, appID string, n int) []task {
	t.Helper()
	var mine []task
	testkit.Eventually(t, 20*time.Second, func() bool {
		var l struct{ Items []json.RawMessage }
		if json.Unmarshal([]byte(run(t, cfgDir, "", "task", "list", "--status", "pending", "-o", "json")), &l) != nil {
			return false
		}
		mine = mine[:0]
		for _, raw := range l.Items {
			var tk task
			if json.Unmarshal(raw, &tk) == nil && strings.Contains(string(raw), appID) {
				mine = append(mine, tk)
			}
		}
		return len(mine) == n
	}, "the app never had %d pending tasks", n)
	return mine
}

// startAgent starts cloister-node-agent in simulation mode with the join
// token and waits until it can quote; it returns its local API's base URL.
// agentHeartbeat is how often the agents of the tests send heartbeats.
const agentHeartbeat = 200 * time.Millisecond

func startAgent(t *testing.T, addr, nodeAddr, dataDir, secret string) string {
	t.Helper()
	listen := testkit.FreeAddr(t)
	cmd := exec.Command(agentBinary(t), "--server", "http://"+addr, "--node-server", "https://"+nodeAddr,
		"--server-ca", filepath.Join(dataDir, "node-tls.crt"), "--data-dir", t.TempDir(), "--name", "node-1",
		"--listen", listen, "--heartbeat-every", agentHeartbeat.String(), "--simulation", "--join-token", secret)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + listen + "/v1/"
	testkit.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(base + "health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var h struct{ Ready bool }
		return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&h) == nil && h.Ready
	}, "the node agent never enrolled with its simulated quoting enclave")
	return base
}

// agentInstancesLater is the number of instances the agent (started by
// startAgent) reports two heartbeats from now.
func agentInstancesLater(t *testing.T, agentAPI string) int {
	t.Helper()
	since := time.Now().Add(2 * agentHeartbeat)
	var h struct {
		Instances     int
		LastHeartbeat time.Time `json:"last_heartbeat"`
	}
	testkit.Eventually(t, 20*time.Second, func() bool {
		resp, err := http.Get(agentAPI + "health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&h) == nil && h.LastHeartbeat.After(since)
	}, "the agent sent no heartbeat")
	return h.Instances
}

// unpackImage writes the filesystem of the image at ref into a new
// directory with `cloister image unpack`, as a container runtime would.
func unpackImage(t *testing.T, cfgDir, ref string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "root")
	run(t, cfgDir, "", "image", "unpack", ref, dir)
	return dir
}

// launched is a launcher process and what it printed.
type launched struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (l *launched) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out.Write(p)
}

func (l *launched) output() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out.String()
}

func (l *launched) exited() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// startLauncher runs the image's own launcher on its unpacked filesystem,
// the way the image's entrypoint would, with the environment a container
// would get.
func startLauncher(t *testing.T, root, agentAPI, helloAddr string) *launched {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, filepath.FromSlash(enclave.LauncherPath)), "--root", root, "--")
	cmd.Env = []string{"NODE_AGENT_BASE_URL=" + agentAPI, "HELLO_ADDR=" + helloAddr}
	return startLaunched(t, cmd)
}

// startLaunched starts cmd, keeping what it prints, and kills it when the
// test ends.
func startLaunched(t *testing.T, cmd *exec.Cmd) *launched {
	t.Helper()
	l := &launched{done: make(chan struct{}), cmd: cmd}
	l.cmd.Stdout, l.cmd.Stderr = l, l
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { l.err = l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() {
		_ = l.cmd.Process.Kill()
		<-l.done
	})
	return l
}

// refused runs the launcher on root and wants it to exit with code, saying
// want, and to leave no certificate behind.
func refused(t *testing.T, what, root, agentAPI string, code int, want string) {
	t.Helper()
	l := startLauncher(t, root, agentAPI, testkit.FreeAddr(t))
	select {
	case <-l.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: the launcher is still running: %s", what, l.output())
	}
	var exit *exec.ExitError
	if !errors.As(l.err, &exit) || exit.ExitCode() != code || !strings.Contains(l.output(), want) {
		t.Fatalf("%s: the launcher ended with %v: %s\nwant exit code %d and a message with %q", what, l.err, l.output(), code, want)
	}
	if _, err := os.Stat(filepath.Join(root, "run", "cloister", "cert.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: a certificate was written (%v)", what, err)
	}
	t.Logf("%s: %s", what, strings.TrimSpace(l.output()))
}

// waitForHTTPS waits until the enclave's sample answers the client over
// HTTPS, failing the test if the launcher exits first, and returns the page.
func waitForHTTPS(t *testing.T, client *http.Client, addr string, enclave *launched) string {
	t.Helper()
	var page string
	testkit.Eventually(t, 60*time.Second, func() bool {
		if enclave.exited() {
			t.Fatalf("the launcher exited: %s", enclave.output())
		}
		resp, err := client.Get("https://" + addr + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		page = string(b)
		return resp.StatusCode == 200
	}, "the sample never answered over HTTPS")
	return page
}

// issuedSerial is the serial of the one unrevoked certificate for domain.
func issuedSerial(t *testing.T, cfgDir, domain string) string {
	t.Helper()
	var l struct {
		Items []struct {
			Serial   string
			DNSNames []string `json:"dns_names"`
		}
	}
	out := run(t, cfgDir, "", "cert", "list", "-o", "json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	for _, c := range l.Items {
		for _, d := range c.DNSNames {
			if d == domain {
				return c.Serial
			}
		}
	}
	t.Fatalf("cert list has no certificate for %s: %s", domain, out)
	return ""
}
