package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// TestSecretsJourney: an application's secrets reach its attested enclave
// and nothing else. The sample is converted with a secrets directory, a
// secret given as an environment variable and an encrypted volume; an
// admin sets two secrets with the CLI (one from standard input, one from
// a file of random bytes); a real node agent in simulation mode enrols,
// and the converted image's own launcher, started behind a proxy that
// records every byte between it and the agent, attests and starts the
// sample, which serves both secrets back over HTTPS through its test-only
// routes (turned on by a measured variable). The recorded traffic, the
// server's output and the launcher's hold neither value; the volume's key
// is written to the stand-in of Gramine's /dev/attestation/keys, is the
// one an admin exports, and is in no file of the image's filesystem.
func TestSecretsJourney(t *testing.T) {
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("starts the server, a node agent and an enclave")
	}
	dataDir, cfgDir, addr, nodeAddr, registry := t.TempDir(), t.TempDir(), testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	t.Setenv("CLOISTER_ADDR", "http://"+addr)
	_, serverLogs := startServerLogged(t, addr, "-dev", "--data-dir", dataDir, "--launcher", launcherBinary(t), "--node-http", nodeAddr,
		"--registry", registry, "--sample", helloBinary(t), "--public-url", "http://"+addr)
	_, chain := journeyAccount(t, cfgDir)

	const domain = "vault.cloister.test"
	vault := createAndConvert(t, cfgDir, registry, "vault", domain,
		"--env", "HELLO_ECHO_SECRETS=1", "--env", "HELLO_SECRETS_DIR=run/secrets", "--env", "HELLO_ECHO_ENV=DB_PASSWORD",
		"--secrets-dir", "/run/secrets", "--secret-env", "DB_PASSWORD=db-password", "--volume", "/srv/vault=vault-data")
	for _, task := range pendingTasks(t, cfgDir, vault.AppID, 2) {
		run(t, cfgDir, "", "task", "approve", task.ID)
	}

	// The secrets, set with the CLI: values never on its command line.
	dbPassword := "pw-" + hex.EncodeToString(randomBytes(t, 12))
	apiKey := randomBytes(t, 48)
	keyFile := filepath.Join(t.TempDir(), "api.key")
	if err := os.WriteFile(keyFile, apiKey, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, cfgDir, dbPassword, "secret", "set", "vault", "db-password", "--value-stdin")
	run(t, cfgDir, "", "secret", "set", "vault", "api.key", "--from-file", keyFile)
	if out, err := cloisterCmd(t, cfgDir, "secret", "set", "vault", "x").CombinedOutput(); err == nil || !strings.Contains(string(out), "--value-stdin") {
		t.Fatalf("secret set without a value = %v %s, want a refusal saying how to give one", err, out)
	}
	if out := run(t, cfgDir, "", "secret", "list", "vault"); !strings.Contains(out, "db-password") || !strings.Contains(out, "api.key") ||
		strings.Contains(out, dbPassword) {
		t.Fatalf("secret list = %s", out)
	}

	secret := strings.TrimSpace(run(t, cfgDir, "", "node", "token", "create", "rack-1", "--max-uses", "1"))
	agentAPI := startAgent(t, addr, nodeAddr, dataDir, secret)
	tap := recordTraffic(t, agentAPI)

	root := unpackImage(t, cfgDir, registry+"/samples/vault-sgx:1")
	// The Gramine manifest mounts the volume encrypted, with its key's
	// name, and the secrets directory as an in-enclave tmpfs.
	gm, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(enclave.GramineManifestPath)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`{ path = "/srv/vault", type = "encrypted", uri = "file:/srv/vault", key_name = "vault-data" }`,
		`{ path = "/run/secrets", type = "tmpfs" }`} {
		if !strings.Contains(string(gm), want) {
			t.Fatalf("the Gramine manifest lacks %s:\n%s", want, gm)
		}
	}
	keysDir := t.TempDir()
	helloAddr := testkit.FreeAddr(t)
	cmd := exec.Command(filepath.Join(root, filepath.FromSlash(enclave.LauncherPath)), "--root", root, "--volume-keys-dir", keysDir, "--")
	cmd.Env = []string{"NODE_AGENT_BASE_URL=" + tap.url, "HELLO_ADDR=" + helloAddr}
	l := startLaunched(t, cmd)
	client := testkit.TrustingOnly(t, chain, domain)
	waitForHTTPS(t, client, helloAddr, l)

	for path, want := range map[string][]byte{
		"/test/secret-file/api.key":     apiKey,
		"/test/secret-file/db-password": []byte(dbPassword),
		"/test/secret-env/DB_PASSWORD":  []byte(dbPassword),
	} {
		resp, err := client.Get("https://" + helloAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, want) {
			t.Fatalf("GET %s = %d %q, want the secret", path, resp.StatusCode, got)
		}
	}
	if info, err := os.Stat(filepath.Join(root, "run", "secrets", "api.key")); err != nil || info.Mode().Perm() != 0o400 {
		t.Fatalf("the secret file = %v, %v; want mode 0400", info, err)
	}

	// The volume's key: in the stand-in of /dev/attestation/keys, the one
	// an admin exports, and nowhere under the image's root.
	volumeKey, err := os.ReadFile(filepath.Join(keysDir, "vault-data"))
	if err != nil || len(volumeKey) != enclave.VolumeKeySize {
		t.Fatalf("the volume key file = %x, %v; want %d bytes", volumeKey, err, enclave.VolumeKeySize)
	}
	exportFile := filepath.Join(t.TempDir(), "vault-data.key")
	run(t, cfgDir, "", "secret", "export-volume-key", "vault", "vault-data", "--key-file", exportFile)
	exported, err := os.ReadFile(exportFile)
	if err != nil || strings.TrimSpace(string(exported)) != base64.StdEncoding.EncodeToString(volumeKey) {
		t.Fatalf("the exported key = %q, %v; want the enclave's %x", exported, err, volumeKey)
	}
	if err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, volumeKey) {
			t.Errorf("%s holds the volume key", p)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// What the node agent saw, what the server and the launcher printed:
	// the sealed bundle went through, the values did not.
	traffic := []byte(tap.String())
	if !bytes.Contains(traffic, []byte(`"recipient_key":"`)) || !bytes.Contains(traffic, []byte(`"secrets":"`)) {
		t.Fatalf("the recorded traffic (%d bytes) holds no recipient key or sealed secrets: is the proxy in the path?", len(traffic))
	}
	forms := func(v []byte) [][]byte {
		return [][]byte{v, []byte(base64.StdEncoding.EncodeToString(v)), []byte(hex.EncodeToString(v))}
	}
	for what, data := range map[string][]byte{"the node agent's traffic": traffic, "the server's output": []byte(serverLogs.String()),
		"the launcher's output": []byte(l.output())} {
		for name, v := range map[string][]byte{"db-password": []byte(dbPassword), "api.key": apiKey, "the volume key": volumeKey} {
			for _, f := range forms(v) {
				if bytes.Contains(data, f) {
					t.Errorf("%s holds %s (as %q)", what, name, f)
				}
			}
		}
	}
	t.Logf("recorded %d bytes between the launcher and the node agent", len(traffic))

	// Deleting the application loses its volumes' data with their keys:
	// the CLI asks for --yes.
	if out, err := cloisterCmd(t, cfgDir, "app", "delete", "vault").CombinedOutput(); err == nil || !strings.Contains(string(out), "--yes") {
		t.Fatalf("app delete without --yes = %v %s, want a refusal naming --yes", err, out)
	}
	run(t, cfgDir, "", "app", "delete", "vault", "--yes")
	if out, err := cloisterCmd(t, cfgDir, "secret", "list", "vault").CombinedOutput(); err == nil || !strings.Contains(string(out), "not found") {
		t.Fatalf("secret list after the app's deletion = %v %s, want not found", err, out)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// tap is a TCP proxy in front of a node agent's local API that keeps
// every byte it carries, both ways.
type tap struct {
	url string
	testkit.Logs
}

// recordTraffic starts a tap in front of the agent at agentAPI
// (http://host:port/v1/) and returns it; its url is the agent's base URL
// through it.
func recordTraffic(t *testing.T, agentAPI string) *tap {
	t.Helper()
	u, err := url.Parse(agentAPI)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tap{url: "http://" + ln.Addr().String() + u.Path}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", u.Host)
			if err != nil {
				in.Close()
				continue
			}
			conns.Store(in, true)
			conns.Store(out, true)
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(io.MultiWriter(out, p), in); out.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(io.MultiWriter(in, p), out); in.Close() }()
		}
	}()
	// The agent answers through the tap before the launcher uses it.
	resp, err := http.Get(p.url + "health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return p
}
