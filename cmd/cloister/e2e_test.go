package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// The test binary doubles as the cloister binary: run with
// CLOISTER_TEST_MAIN=1 it is `cloister` with the given arguments.
func TestMain(m *testing.M) {
	if os.Getenv("CLOISTER_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// cloisterCmd returns the binary run with args, its config in dir.
func cloisterCmd(t testing.TB, cfgDir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CLOISTER_TEST_MAIN=1", "CLOISTER_CONFIG="+filepath.Join(cfgDir, "config.json"))
	return cmd
}

// run runs the CLI and returns its standard output.
func run(t testing.TB, cfgDir, stdin string, args ...string) string {
	t.Helper()
	cmd := cloisterCmd(t, cfgDir, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("cloister %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// standInRuntimeRef serves, once per test binary, an in-process registry
// with Cloister's stand-in Gramine runtime image, and names that image:
// the runtime a server without a built-in registry converts with.
func standInRuntimeRef(t *testing.T) string {
	t.Helper()
	runtimeOnce.Do(func() {
		srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		runtimeRef = strings.TrimPrefix(srv.URL, "http://") + "/" + serverconfig.StandInRuntimeRepository + ":1"
		img, err := enclave.StandInRuntimeImage()
		if err == nil {
			var ref name.Reference
			if ref, err = name.ParseReference(runtimeRef); err == nil {
				err = remote.Write(ref, img)
			}
		}
		runtimeErr = err
	})
	if runtimeErr != nil {
		t.Fatal(runtimeErr)
	}
	return runtimeRef
}

var (
	runtimeOnce sync.Once
	runtimeRef  string
	runtimeErr  error
)

// launcherBinary builds cmd/cloister-launcher once per test binary, as
// `make run` does, for the server to pack into converted images.
var launcherBinary = buildOnce("cloister-launcher", "-trimpath")

// buildOnce returns a function that builds the package ../<name> (static)
// the first time a test asks for it, and its path.
func buildOnce(name string, flags ...string) func(t testing.TB) string {
	var once sync.Once
	var path string
	var err error
	return func(t testing.TB) string {
		t.Helper()
		once.Do(func() {
			dir, derr := os.MkdirTemp("", filepath.Base(name))
			if derr != nil {
				err = derr
				return
			}
			path = filepath.Join(dir, filepath.Base(name))
			cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", path, "../"+name)...)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, berr := cmd.CombinedOutput(); berr != nil {
				err = fmt.Errorf("building %s: %v\n%s", name, berr, out)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
}

// testRegistry serves go-containerregistry's in-process registry with a
// random image at <host>/samples/in:1, and returns the host.
func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/samples/in:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return host
}

// TestDevServerJourneyAndCrash drives `cloister server -dev` with the CLI
// and with plain HTTP, kills it with SIGKILL, restarts it on the same data
// directory and finds everything still there.
func TestDevServerJourneyAndCrash(t *testing.T) {
	if testing.Short() && os.Getenv("CI") == "" { // CI always runs it
		t.Skip("starts the server twice")
	}
	dataDir, cfgDir, addr, builtIn := t.TempDir(), t.TempDir(), testkit.FreeAddr(t), testkit.FreeAddr(t)
	t.Setenv("CLOISTER_ADDR", "http://"+addr)
	// With its built-in registry, which -dev keeps in the data directory.
	start := func() *exec.Cmd {
		return startServerArgs(t, addr, "-dev", "--data-dir", dataDir, "--launcher", launcherBinary(t), "--registry", builtIn,
			"--gramine-image", standInRuntimeRef(t), "--registry-deny=169.254.0.0/16,fe80::/10")
	}
	srv := start()

	// A second server on the same data directory stops at once, before
	// it opens the JetStream store (the restart below, after SIGKILL,
	// shows that the lock goes with its process).
	second := cloisterCmd(t, t.TempDir(), "server", "--http", testkit.FreeAddr(t), "-dev", "--data-dir", dataDir, "--registry=")
	stop := time.AfterFunc(60*time.Second, func() { _ = second.Process.Kill() })
	out, err := second.CombinedOutput()
	stop.Stop()
	if err == nil || !strings.Contains(string(out), "is in use by another cloister server") {
		t.Fatalf("a second server on the data directory = %v, %s; want a refusal naming the lock", err, out)
	}

	run(t, cfgDir, "a long passphrase\n", "signup", "--email", "ada@example.com", "--password-stdin")
	run(t, cfgDir, "a long passphrase\n", "signup", "--email", "bob@example.com", "--password-stdin")
	run(t, cfgDir, "a long passphrase\n", "login", "--email", "ada@example.com", "--password-stdin")
	if info, err := os.Stat(filepath.Join(cfgDir, "config.json")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("config file = %v, %v; want mode 0600", info, err)
	}
	var acct struct{ ID string }
	if err := json.Unmarshal([]byte(run(t, cfgDir, "", "account", "create", "Payments", "-o", "json")), &acct); err != nil || acct.ID == "" {
		t.Fatalf("account create -o json: %v", err)
	}
	// A command run again with its idempotency key (its answer was lost,
	// say) answers what the first run made.
	var keyed [2]struct{ ID string }
	for i := range keyed {
		out := run(t, cfgDir, "", "account", "create", "Ledger", "--idempotency-key", "ledger-1", "-o", "json")
		if err := json.Unmarshal([]byte(out), &keyed[i]); err != nil || keyed[i].ID == "" {
			t.Fatalf("account create --idempotency-key: %q, %v", out, err)
		}
	}
	if keyed[0] != keyed[1] || keyed[0].ID == acct.ID {
		t.Fatalf("account create twice with one key = %v, want one new account", keyed)
	}
	if out, err := cloisterCmd(t, cfgDir, "account", "create", "Other", "--idempotency-key", "ledger-1").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "idempotency_key_reused") {
		t.Fatalf("a key sent with another request = %q, %v; want idempotency_key_reused", out, err)
	}
	run(t, cfgDir, "", "account", "select", "Payments") // by name, as other commands take names
	if out := run(t, cfgDir, "", "node", "list"); !strings.Contains(out, "(none)") {
		t.Fatalf("an empty node list = %q, want it to say (none)", out)
	}
	run(t, cfgDir, "", "member", "add", "bob@example.com", "--role", "auditor")

	// The same API with plain HTTP, as curl would use it.
	post := func(path, token, body string) *http.Response {
		req, _ := http.NewRequest("POST", "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := post("/v1/users", "", `{"email":"carol@example.com","password":"another long one"}`)
	resp.Body.Close()
	resp = post("/v1/sessions", "", `{"email":"bob@example.com","password":"a long passphrase"}`)
	var sess struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	if sess.Token == "" {
		t.Fatal("HTTP login returned no token")
	}

	// Attestation through the server: policy, collateral, evaluation.
	if got := run(t, cfgDir, "", "attest", "policy", "set", "--accept", "UpToDate", "--require-node-attestation"); !regexp.MustCompile(`require node attestation\s+true`).MatchString(got) {
		t.Fatalf("attest policy set --require-node-attestation = %s", got)
	}
	if got := run(t, cfgDir, "", "attest", "policy", "get", "-o", "json"); !strings.Contains(got, `"require_node_attestation": true`) {
		t.Fatalf("attest policy get = %s", got)
	}
	// Set again without it (the node below enrols without evidence), with
	// rules for TDX and SEV-SNP nodes.
	mrtd := strings.Repeat("ab", 48)
	run(t, cfgDir, "", "attest", "policy", "set", "--accept", "UpToDate", "--min-isvsvn", "3", "--tdx-accept", "UpToDate",
		"--tdx-mrtd", mrtd, "--tdx-rtmr", "", "--tdx-rtmr", mrtd, "--snp-min-tcb", "0x7308000000000003", "--snp-allow-debug")
	var pol api.AttestationPolicy
	if got := run(t, cfgDir, "", "attest", "policy", "get", "-o", "json"); json.Unmarshal([]byte(got), &pol) != nil || pol.MinISVSVN != 3 || pol.RequireNodeAttestation ||
		pol.TDX == nil || strings.Join(pol.TDX.AcceptStatuses, ",") != "UpToDate" || strings.Join(pol.TDX.MRTDs, ",") != mrtd ||
		strings.Join(pol.TDX.RTMRs, ",") != ","+mrtd+",," || pol.SNP == nil || pol.SNP.MinTCB != "0x7308000000000003" || !pol.SNP.AllowDebug {
		t.Fatalf("attest policy get = %s", got)
	}
	if out, err := cloisterCmd(t, cfgDir, "attest", "policy", "set", "--accept", "UpToDate", "--tdx-mrtd", "abcd").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "tdx.mrtds[0]: 2 bytes") {
		t.Fatalf("a short MRTD = %v, %s; want a refusal naming it", err, out)
	}
	const vectors = "../../libs/sgx/testdata/"
	// The shared vector's collateral expired in 2025: the server refuses it.
	if out, err := cloisterCmd(t, cfgDir, "attest", "collateral", "upload", "--collateral-json", vectors+"phala_sgx_quote_v3_collateral.json").CombinedOutput(); err == nil || !strings.Contains(string(out), "expired") {
		t.Fatalf("uploading expired collateral = %v, %s; want a refusal saying it expired", err, out)
	}
	out, err = cloisterCmd(t, cfgDir, "attest", "evaluate", vectors+"phala_sgx_quote_v3.bin", "-o", "json").Output()
	if err == nil || !strings.Contains(string(out), `"reason": "no_collateral"`) {
		t.Fatalf("attest evaluate without collateral = %v, %s; want exit 1 and reason no_collateral", err, out)
	}
	// An SEV-SNP report needs only its VCEK (valid until 2030), under the
	// account's SEV-SNP rules set above: given with it, or uploaded before.
	const snpVectors = "../../libs/snp/testdata/"
	if got := run(t, cfgDir, "", "attest", "vcek", "upload", snpVectors+"vcek_milan.der"); !strings.Contains(got, "Milan") || !strings.Contains(got, "0x7308000000000003") {
		t.Fatalf("attest vcek upload = %s", got)
	}
	if got := run(t, cfgDir, "", "attest", "evaluate", snpVectors+"report_milan.hex", "--tee", "sev-snp", "-o", "json"); !strings.Contains(got, `"ok": true`) {
		t.Fatalf("attest evaluate of the SEV-SNP vector with its uploaded VCEK = %s", got)
	}
	var snpVerdict api.Verdict
	if got := run(t, cfgDir, "", "attest", "evaluate", snpVectors+"report_milan.hex", "--tee", "sev-snp", "--vcek", snpVectors+"vcek_milan.der", "-o", "json"); json.Unmarshal([]byte(got), &snpVerdict) != nil ||
		!snpVerdict.OK || snpVerdict.TEE != "sev-snp" || !strings.HasPrefix(snpVerdict.Measurement, "7a1e5c266c0108db") {
		t.Fatalf("attest evaluate of the SEV-SNP vector = %s", got)
	}

	// The account's CA appears once the ca service has seen AccountCreated.
	testkit.Eventually(t, 10*time.Second, func() bool {
		out, err := cloisterCmd(t, cfgDir, "ca", "show").Output()
		return err == nil && strings.Count(string(out), "BEGIN CERTIFICATE") == 2
	}, "cloister ca show never printed the account's chain")
	if out := run(t, cfgDir, "", "cert", "list", "--revoked", "-o", "json"); !strings.Contains(out, `"items": []`) {
		t.Fatalf("cert list on a fresh account = %s", out)
	}
	if out, err := cloisterCmd(t, cfgDir, "cert", "revoke", "abc").CombinedOutput(); err == nil || !strings.Contains(string(out), "404") {
		t.Fatalf("cert revoke of an unknown serial = %v, %s; want a 404 error", err, out)
	}
	if out := run(t, cfgDir, "", "ca", "rotate"); !strings.Contains(out, "retired") || !strings.Contains(out, "current") {
		t.Fatalf("ca rotate = %s; want the current and the retired issuer", out)
	}

	// Applications, every field through flags.
	got := run(t, cfgDir, "", "app", "create", "hello", "--input-image", "registry.example.com/samples/hello:1",
		"--output-image", "registry.example.com/samples/hello-sgx", "--memory", "512M", "--threads", "8", "--isvprodid", "3",
		"--entrypoint", "/hello", "--arg", "--port", "--arg", "8443", "--env", "MODE=prod", "--passthrough-env", "TZ",
		"--rw-dir", "/tmp", "--domain", "hello.cloister.test", "--key-type", "ec-p384", "--validity-days", "7")
	if !strings.Contains(got, "hello.cloister.test") || !strings.Contains(got, "512M") {
		t.Fatalf("app create = %s", got)
	}
	if out, err := cloisterCmd(t, cfgDir, "app", "create", "bad", "--input-image", "nope", "--output-image", "registry.example.com/x").CombinedOutput(); err == nil || !strings.Contains(string(out), "input_image") {
		t.Fatalf("app create with a bad image = %v, %s; want an error naming input_image", err, out)
	}
	got = run(t, cfgDir, "", "app", "update", "hello", "--memory", "1G", "--key-type", "rsa-3072")
	for _, want := range []string{"1G", "rsa-3072", "hello.cloister.test", "MODE=prod", "--port 8443"} {
		if !strings.Contains(got, want) {
			t.Fatalf("app update = %s; want %s (changed or kept)", got, want)
		}
	}
	if out := run(t, cfgDir, "", "app", "list"); !strings.Contains(out, "hello") {
		t.Fatalf("app list = %s", out)
	}
	testkit.Eventually(t, 30*time.Second, func() bool {
		out, err := cloisterCmd(t, cfgDir, "signing-key").Output()
		return err == nil && strings.Contains(string(out), "MRSIGNER") && strings.Contains(string(out), "BEGIN PUBLIC KEY")
	}, "cloister signing-key never showed the account's key")

	// Convert an image from a registry into the built-in one, and measure
	// the result ourselves.
	host := testRegistry(t)
	run(t, cfgDir, "", "app", "create", "conv", "--input-image", host+"/samples/in:1", "--output-image", builtIn+"/samples/out",
		"--entrypoint", "/bin/app", "--memory", "64M", "--threads", "2")
	var converted struct {
		ID, Status, MRENCLAVE, MRSIGNER, Ref string
	}
	if err := json.Unmarshal([]byte(run(t, cfgDir, "", "image", "convert", "--app", "conv", "--tag", "1", "--wait", "-o", "json")), &converted); err != nil ||
		converted.Status != "converted" || len(converted.MRENCLAVE) != 64 {
		t.Fatalf("image convert --wait = %+v, %v", converted, err)
	}
	var measured struct {
		MRENCLAVE, MRSIGNER string
		Match               bool
	}
	if err := json.Unmarshal([]byte(run(t, cfgDir, "", "image", "measure", builtIn+"/samples/out:1", "-o", "json")), &measured); err != nil ||
		!measured.Match || measured.MRENCLAVE != converted.MRENCLAVE || measured.MRSIGNER != converted.MRSIGNER {
		t.Fatalf("image measure = %+v, %v; want a match with %+v", measured, err, converted)
	}
	if out := run(t, cfgDir, "", "image", "list", "--app", "conv"); !strings.Contains(out, "converted") {
		t.Fatalf("image list = %s", out)
	}
	if out := run(t, cfgDir, "", "image", "show", converted.ID); !regexp.MustCompile(`in its registry\s+present`).MatchString(out) {
		t.Fatalf("image show = %s, want its registry to have it", out)
	}

	// The conversion and the app's domain opened tasks; one admin approves.
	var pending struct {
		Items []struct{ ID, Kind string }
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		_ = json.Unmarshal([]byte(run(t, cfgDir, "", "task", "list", "--status", "pending", "-o", "json")), &pending)
		return len(pending.Items) == 2
	}, "task list never showed the domain and image tasks")
	for _, task := range pending.Items {
		if out := run(t, cfgDir, "", "task", "approve", task.ID); !strings.Contains(out, "approved") {
			t.Fatalf("task approve %s = %s", task.Kind, out)
		}
	}
	if out, err := cloisterCmd(t, cfgDir, "task", "deny", pending.Items[0].ID).CombinedOutput(); err == nil || !strings.Contains(string(out), "409") {
		t.Fatalf("denying an approved task = %v, %s; want a 409", err, out)
	}
	run(t, cfgDir, "", "task", "withdraw", pending.Items[0].ID)

	// A join token, shown once; a node enrols with it over the public route.
	secret := strings.TrimSpace(run(t, cfgDir, "", "node", "token", "create", "rack-1", "--max-uses", "1"))
	if !strings.HasPrefix(secret, "cjt_") {
		t.Fatalf("node token create printed %q, want the secret", secret)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	enrol, _ := json.Marshal(map[string]string{"join_token": secret, "node_name": "node-1",
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))})
	if resp := post("/v1/agent/enroll", "", string(enrol)); resp.StatusCode != 201 {
		t.Fatalf("enrolling = %d", resp.StatusCode)
	}
	if resp := post("/v1/agent/enroll", "", string(enrol)); resp.StatusCode != 401 {
		t.Fatalf("enrolling again with a one-use token = %d, want 401", resp.StatusCode)
	}
	var nodes struct{ Items []struct{ ID, Status string } }
	if err := json.Unmarshal([]byte(run(t, cfgDir, "", "node", "list", "-o", "json")), &nodes); err != nil || len(nodes.Items) != 1 || nodes.Items[0].Status != "active" {
		t.Fatalf("node list = %+v, %v", nodes, err)
	}
	if out := run(t, cfgDir, "", "node", "deregister", nodes.Items[0].ID); !strings.Contains(out, "deregistered") {
		t.Fatalf("node deregister = %s", out)
	}
	if out := run(t, cfgDir, "", "node", "token", "list"); !strings.Contains(out, "used up") {
		t.Fatalf("node token list = %s", out)
	}
	if out := run(t, cfgDir, "", "task", "show", pending.Items[0].ID); !strings.Contains(out, "withdrawn") {
		t.Fatalf("task show after withdraw = %s", out)
	}

	table := run(t, cfgDir, "", "member", "list")
	if !strings.Contains(table, "bob@example.com") || !strings.Contains(table, "auditor") {
		t.Fatalf("member list:\n%s", table)
	}

	// kill -9, then start again on the same data.
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = srv.Wait()
	start()

	// The built-in registry still has the image converted before: it
	// unpacks, and measures as it did.
	run(t, cfgDir, "", "image", "unpack", builtIn+"/samples/out:1", filepath.Join(t.TempDir(), "out"))
	if err := json.Unmarshal([]byte(run(t, cfgDir, "", "image", "measure", builtIn+"/samples/out:1", "-o", "json")), &measured); err != nil ||
		!measured.Match || measured.MRENCLAVE != converted.MRENCLAVE {
		t.Fatalf("image measure after restart = %+v, %v; want a match with %+v", measured, err, converted)
	}

	if out := run(t, cfgDir, "", "app", "show", "hello", "-o", "json"); !strings.Contains(out, `"memory_size": 1073741824`) {
		t.Fatalf("app after restart = %s", out)
	}
	run(t, cfgDir, "", "app", "delete", "hello")
	after := run(t, cfgDir, "", "member", "list", "-o", "json")
	var members struct {
		Items []struct{ Email, Role string }
	}
	if err := json.Unmarshal([]byte(after), &members); err != nil || len(members.Items) != 2 {
		t.Fatalf("members after restart = %s (%v), want ada and bob", after, err)
	}
	audit := run(t, cfgDir, "", "audit", "list")
	if newest := run(t, cfgDir, "", "audit", "list", "--newest", "--limit", "1"); !strings.Contains(newest, "app.delete") {
		t.Fatalf("audit list --newest --limit 1 = %s, want the app's deletion just made", newest)
	}
	for _, want := range []string{"account.create", "member.add", "ca.rotate", "cert.revoke", "app.create", "app.update"} {
		if !strings.Contains(audit, want) {
			t.Fatalf("audit after restart lacks %s:\n%s", want, audit)
		}
	}
	// Bob's HTTP session and carol's account survive too.
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+addr+"/v1/accounts/"+acct.ID, nil)
	req.Header.Set("Authorization", "Bearer "+sess.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("bob reading the account after restart = %d, want 200", resp.StatusCode)
	}
	run(t, cfgDir, "another long one\n", "login", "--email", "carol@example.com", "--password-stdin")
	run(t, cfgDir, "", "logout")
	if out, err := cloisterCmd(t, cfgDir, "whoami").CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Fatalf("whoami after logout = %v %s, want a 401 error", err, out)
	}
}

// startServerArgs starts `cloister server` with args and waits for /readyz.
func startServerArgs(t testing.TB, addr string, args ...string) *exec.Cmd {
	t.Helper()
	cmd, _ := startServerLogged(t, addr, args...)
	return cmd
}

// startServerLogged is startServerArgs, and what the server prints.
func startServerLogged(t testing.TB, addr string, args ...string) (*exec.Cmd, *testkit.Logs) {
	t.Helper()
	cmd := cloisterCmd(t, t.TempDir(), append([]string{"server", "--http", addr}, args...)...)
	logs := &testkit.Logs{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, logs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %v not ready within 60s; logs:\n%s", args, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServicesInSeparateProcesses runs the account service and the gateway
// as two processes on one external NATS server and Redis, as compose and
// Kubernetes do, and serves a login through them.
func TestServicesInSeparateProcesses(t *testing.T) {
	n := testkit.StartNATS(t)
	testkit.StartRedis(t) // fails in CI, skips elsewhere, when Redis is absent
	cfgDir, gwAddr, accountAddr := t.TempDir(), testkit.FreeAddr(t), testkit.FreeAddr(t)
	creds := n.CredentialsDir(t)
	startServerArgs(t, accountAddr, "--services=account", "--nats-url", n.URL, "--nats-credentials", creds)
	startServerArgs(t, gwAddr, "--services", "gateway", "--nats-url", n.URL, "--nats-credentials", creds, "--redis-url", testkit.RedisURL())
	t.Setenv("CLOISTER_ADDR", "http://"+gwAddr)

	run(t, cfgDir, "a long passphrase\n", "signup", "--email", "ada@example.com", "--password-stdin")
	run(t, cfgDir, "a long passphrase\n", "login", "--email", "ada@example.com", "--password-stdin")
	who := run(t, cfgDir, "", "whoami", "-o", "json")
	if !strings.Contains(who, `"ada@example.com"`) {
		t.Fatalf("whoami through the split services = %s", who)
	}
	// The account process counts the requests it served.
	resp, err := http.Get("http://" + accountAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `rpc_method="cloister.account.v1.Login"`) {
		t.Fatalf("account /metrics lacks the Login requests it served:\n%.2000s", metrics)
	}
}

// TestServerEnvironment: variables fill in flags, and flags win over them.
func TestServerEnvironment(t *testing.T) {
	cmd := cloisterCmd(t, t.TempDir(), "server", "--replicas=2", "--services=account")
	cmd.Env = append(cmd.Env, "CLOISTER_SERVICES=gateway,billing", "CLOISTER_REPLICAS=7", "CLOISTER_LOG_LEVEL=loud")
	out, err := cmd.CombinedOutput()
	// The flags override the bad services and replicas; the log level
	// comes from the environment and is what is refused.
	if err == nil || !strings.Contains(string(out), "loud") || strings.Contains(string(out), "billing") {
		t.Fatalf("cloister server with flags over env = %v, %s; want only the log level refused", err, out)
	}
	cmd = cloisterCmd(t, t.TempDir(), "server")
	cmd.Env = append(cmd.Env, "CLOISTER_REPLICAS=abc")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "$CLOISTER_REPLICAS") {
		t.Fatalf("bad $CLOISTER_REPLICAS = %v, %s; want an error naming it", err, out)
	}
	// A bad server variable does not break other commands.
	cmd = cloisterCmd(t, t.TempDir(), "healthcheck", "--url", "http://127.0.0.1:1/readyz")
	cmd.Env = append(cmd.Env, "CLOISTER_REPLICAS=abc")
	if out, _ := cmd.CombinedOutput(); strings.Contains(string(out), "CLOISTER_REPLICAS") {
		t.Fatalf("healthcheck complained about a server variable: %s", out)
	}
}

func TestReadyzURL(t *testing.T) {
	for in, want := range map[string]string{
		"":              "http://127.0.0.1:8080/readyz",
		"0.0.0.0:9000":  "http://127.0.0.1:9000/readyz",
		":8081":         "http://127.0.0.1:8081/readyz",
		"10.1.2.3:8080": "http://10.1.2.3:8080/readyz",
		"[::]:8080":     "http://127.0.0.1:8080/readyz",
	} {
		if got := serverconfig.ReadyzURL(in); got != want {
			t.Errorf("serverconfig.ReadyzURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServerRejectsBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"server", "--services=account,billing"}, `unknown service "billing"`},
		{[]string{"server", "--replicas=9"}, "--replicas must be 1 to 5"},
		{[]string{"server", "--http=nope"}, "is not host:port"},
		{[]string{"server", "--log-level=loud"}, "loud"},
		{[]string{"server", "--services=account,account"}, "names a service twice"},
		{[]string{"server", "-dev=maybe"}, "invalid argument"},
		{[]string{"server", "--registry-deny=10.0.0.0/33"}, `--registry-deny: "10.0.0.0/33" is not a network`},
		{[]string{"server", "--public-url=cloister.example.com"}, `--public-url "cloister.example.com" is not an http(s) URL`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := cloisterCmd(t, t.TempDir(), tt.args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tt.want) {
				t.Fatalf("cloister %v = %v, %s; want an error saying %q", tt.args, err, out, tt.want)
			}
		})
	}
}
