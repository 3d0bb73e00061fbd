package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// What the demo creates.
const (
	email    = "demo@example.com"
	password = "a long demo passphrase"
	appName  = "hello"
	domain   = "hello.cloister.test"
	nodeName = "demo-node"
	// launcherTempFail is cloister-launcher's exit code when it could not
	// get its certificate (EX_TEMPFAIL): a restart may succeed.
	launcherTempFail = 75
	launchAttempts   = 5
	// agentDeregistered is cloister-node-agent's exit code once its node
	// is deregistered.
	agentDeregistered = 79
)

// demo is one run of the journey and what it learnt on the way.
type demo struct {
	cfg   config
	n     *narrator
	bin   string // absolute --bin
	home  string // the demo's directory ($DEMO)
	start time.Time
	env   []string // of every process the demo starts
	http  *http.Client

	api, nodeAddr, registry, agentAPI, helloAddr string
	serverLog, agentLog                          string

	server, agent, enclave *proc
	enclaveOut             *prefixWriter
	logFiles               []*os.File

	accountID, nodeID string
	roots             *x509.CertPool
}

func newDemo(cfg config, n *narrator) (*demo, error) {
	start := time.Now()
	bin, err := checkBinaries(cfg.bin)
	if err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "cloister-demo-")
	if err != nil {
		return nil, fmt.Errorf("creating the demo's directory: %w", err)
	}
	n.home = home
	n.clock = func() string { return time.Since(start).Round(100 * time.Millisecond).String() }
	d := &demo{cfg: cfg, n: n, bin: bin, home: home, start: start,
		serverLog: filepath.Join(home, "server.log"), agentLog: filepath.Join(home, "agent.log"),
		http: &http.Client{Timeout: 5 * time.Second}}
	for _, a := range []*string{&d.api, &d.nodeAddr, &d.registry, &d.helloAddr} {
		if *a, err = freeAddr(); err != nil {
			os.RemoveAll(home)
			return nil, err
		}
	}
	// The user's own Cloister settings must not leak into the demo.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "CLOISTER_") || k == "REDIS_URL" || k == "NATS_URL" || k == "NODE_AGENT_BASE_URL" {
			continue
		}
		d.env = append(d.env, kv)
	}
	d.env = append(d.env, "CLOISTER_ADDR=http://"+d.api, "CLOISTER_CONFIG="+filepath.Join(home, "config.json"))
	return d, nil
}

func (d *demo) elapsed() string { return time.Since(d.start).Round(100 * time.Millisecond).String() }

// journey is DESIGN §1, from sign-up to a running enclave.
func (d *demo) journey(ctx context.Context) error {
	d.n.println(d.n.paint(styleHeading, "Cloister demo: a container image becomes an attested enclave that serves HTTPS."))
	d.n.println(wrapped("Nothing is mocked: the real server, CLI, node agent and launcher run on this machine, in SGX "+
		"simulation mode (no SGX hardware is needed; simulated evidence is labelled everywhere). Commands are shown as "+
		"you would type them with "+d.cfg.bin+" on your PATH; $DEMO is the demo's directory:",
		""))
	d.n.println(textIndent + "DEMO=" + d.home)
	for _, s := range []func(context.Context) error{
		d.startServer, d.signUp, d.policy, d.createApp, d.convert, d.approve, d.enrolNode, d.runEnclave, d.connect, d.showNode,
	} {
		if err := s(ctx); err != nil {
			return err
		}
	}
	return nil
}

func wrapped(s, indent string) string {
	return indent + strings.Join(wrap(s, wrapAt-len(indent)), "\n"+indent)
}

// binPath is the binary as run, and as shown.
func (d *demo) binPath(name string) (run, shown string) {
	return filepath.Join(d.bin, name), filepath.Join(d.cfg.bin, name)
}

// cloister runs the CLI as the user would: it prints the command line,
// then the lines of its output that v keeps (nil: the first maxLines).
func (d *demo) cloister(ctx context.Context, v view, stdin string, args ...string) (result, error) {
	words := d.n.words(append([]string{"cloister"}, args...))
	if stdin != "" {
		words = append([]string{"echo", shellQuote(strings.TrimSuffix(stdin, "\n")), "|"}, words...)
	}
	d.n.command(words...)
	r, err := d.cloisterQuiet(ctx, stdin, args...)
	if err != nil {
		return r, err
	}
	if v == nil {
		v = head(maxLines)
	}
	d.n.output(v(screenLines(r.all)))
	return r, nil
}

// cloisterQuiet runs the CLI without showing it (polling).
func (d *demo) cloisterQuiet(ctx context.Context, stdin string, args ...string) (result, error) {
	exe, _ := d.binPath("cloister")
	r, err := runCmd(ctx, d.env, stdin, append([]string{exe}, args...))
	var se *stepError
	if errors.As(err, &se) {
		se.what = "$ " + d.n.shown(append([]string{"cloister"}, args...))
	}
	return r, err
}

// cloisterJSON runs the CLI quietly with -o json and decodes its answer.
func (d *demo) cloisterJSON(ctx context.Context, v any, args ...string) error {
	r, err := d.cloisterQuiet(ctx, "", append(args, "-o", "json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		return fmt.Errorf("reading the JSON of cloister %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// background starts a long-running process, shown as a shell would run it
// in the background with its output in logPath.
func (d *demo) background(name string, shownArgv, argv []string, logPath string) (*proc, error) {
	d.n.command(append(d.n.words(shownArgv), ">", d.n.word(logPath), "2>&1", "&")...)
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating %s's log: %w", name, err)
	}
	d.logFiles = append(d.logFiles, f)
	return startProc(name, d.home, d.env, f, argv)
}

// alive fails a poll at once when p exited.
func alive(p *proc, logPath string) error {
	if done, err := p.exited(); done {
		return fatalError{&stepError{what: p.name + " stopped", err: fmt.Errorf("%s", describeExit(err)), detail: tail(logPath, 20)}}
	}
	return nil
}

// get is a GET that wants a 200, and the body.
func (d *demo) get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// 1.
func (d *demo) startServer(ctx context.Context) error {
	d.n.step("Start Cloister",
		"`cloister server -dev` runs every service in one process: an embedded NATS JetStream, the REST API, the node "+
			"agents' mTLS listener, and a built-in OCI registry to which it publishes the sample application, hello-https "+
			"(a static HTTPS server). It packs cloister-launcher into every image it converts.")
	exe, _ := d.binPath("cloister")
	launcher, launcherShown := d.binPath("cloister-launcher")
	sample, sampleShown := d.binPath("hello-https")
	args := func(launcher, sample string) []string {
		return []string{"server", "-dev", "--data-dir", filepath.Join(d.home, "server"), "--http", d.api,
			"--node-http", d.nodeAddr, "--registry", d.registry, "--launcher", launcher, "--sample", sample}
	}
	var err error
	d.server, err = d.background("the server", append([]string{"cloister"}, args(launcherShown, sampleShown)...),
		append([]string{exe}, args(launcher, sample)...), d.serverLog)
	if err != nil {
		return err
	}
	began := time.Now()
	if err := poll(ctx, 60*time.Second, "the server's GET /readyz to answer 200", func() (bool, error) {
		if err := alive(d.server, d.serverLog); err != nil {
			return false, err
		}
		code, _, err := d.get(ctx, "http://"+d.api+"/readyz")
		return code == http.StatusOK, err
	}); err != nil {
		return err
	}
	d.n.note("ready in %s (GET http://%s/readyz answered 200); the sample image is %s/samples/hello-https:1",
		time.Since(began).Round(10*time.Millisecond), d.api, d.registry)
	return nil
}

// 2.
func (d *demo) signUp(ctx context.Context) error {
	d.n.step("Sign up, log in, create an account and select it",
		"Everything belongs to an account (a tenant). The CLI keeps its session in $CLOISTER_CONFIG, inside $DEMO so "+
			"that your own configuration is untouched. A new account gets its own CA hierarchy from the ca service, "+
			"in the background: `cloister ca show` answers once it exists.")
	d.n.command("export", "CLOISTER_ADDR=http://"+d.api, "CLOISTER_CONFIG="+d.n.word(filepath.Join(d.home, "config.json")))
	if _, err := d.cloister(ctx, nil, password+"\n", "signup", "--email", email, "--password-stdin"); err != nil {
		return err
	}
	if _, err := d.cloister(ctx, nil, password+"\n", "login", "--email", email, "--password-stdin"); err != nil {
		return err
	}
	r, err := d.cloister(ctx, nil, "", "account", "create", "Demo", "-o", "json")
	if err != nil {
		return err
	}
	var acct struct{ ID string }
	if err := json.Unmarshal([]byte(r.stdout), &acct); err != nil || acct.ID == "" {
		return fmt.Errorf("cloister account create -o json gave no account id: %v\n%s", err, r.stdout)
	}
	d.accountID = acct.ID
	if _, err := d.cloister(ctx, nil, "", "account", "select", acct.ID); err != nil {
		return err
	}
	if err := poll(ctx, 20*time.Second, "the account's CA", func() (bool, error) {
		_, err := d.cloisterQuiet(ctx, "", "ca", "show")
		return err == nil, err
	}); err != nil {
		return err
	}
	r, err = d.cloister(ctx, pemView, "", "ca", "show")
	if err != nil {
		return err
	}
	chain, err := parseChain(r.stdout)
	if err != nil {
		return fmt.Errorf("reading the chain of cloister ca show: %w", err)
	}
	root := chain[len(chain)-1]
	d.roots = x509.NewCertPool()
	d.roots.AddCert(root)
	var names []string
	for _, c := range chain {
		names = append(names, c.Subject.CommonName)
	}
	d.n.note("the account's chain: %s; its root is all that clients of the account's applications need to trust",
		strings.Join(names, " → "))
	return nil
}

func parseChain(s string) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("no certificate")
	}
	return chain, nil
}

// 3.
func (d *demo) policy(ctx context.Context) error {
	d.n.step("Accept simulated evidence",
		"Each account has an attestation policy: which TCB statuses, debug enclaves and minimum ISVSVN it accepts. "+
			"This machine has no SGX, so the account must also allow evidence from the node agent's simulated quoting "+
			"enclave; certificates issued on it say so.")
	_, err := d.cloister(ctx, nil, "", "attest", "policy", "set", "--accept", "UpToDate", "--allow-simulation")
	return err
}

// 4.
func (d *demo) createApp(ctx context.Context) error {
	d.n.step("Add the application",
		"An application names its input image (the sample, in the built-in registry), where converted images go, the "+
			"enclave's size, the environment the host may pass (HELLO_ADDR, the address to serve on), and the domain "+
			"its certificate is for. Naming a domain opens an approval task.")
	_, err := d.cloister(ctx, nil, "", "app", "create", appName,
		"--input-image", d.registry+"/samples/hello-https:1", "--output-image", d.registry+"/samples/hello-https-sgx",
		"--domain", domain, "--passthrough-env", "HELLO_ADDR", "--memory", "64M", "--threads", "4")
	return err
}

// converted is the part of `cloister image convert -o json` the demo uses.
type converted struct {
	Status, Output, MRENCLAVE, MRSIGNER string
}

// 5.
func (d *demo) convert(ctx context.Context) error {
	d.n.step("Convert the image",
		"The converter pulls the input image, hashes every file into a Gramine manifest, computes MRENCLAVE (the "+
			"enclave's measurement) exactly as Gramine's signer would, signs it with the account's enclave signing key "+
			"(MRSIGNER), and pushes the result reusing the input's layers, with Gramine's runtime (here Cloister's "+
			"stand-in, which only simulates) and the launcher in one shared layer. The signing key is made in the "+
			"background when the account is: wait for it first.")
	if err := poll(ctx, 30*time.Second, "the account's enclave signing key", func() (bool, error) {
		_, err := d.cloisterQuiet(ctx, "", "signing-key")
		return err == nil, err
	}); err != nil {
		return err
	}
	if _, err := d.cloister(ctx, fields("MRSIGNER"), "", "signing-key"); err != nil {
		return err
	}
	r, err := d.cloister(ctx, fields("status", "output", "digest", "mrenclave", "mrsigner"), "",
		"image", "convert", "--app", appName, "--tag", "1", "--wait", "-o", "json")
	if err != nil {
		return err
	}
	var c converted
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || c.Status != "converted" || len(c.MRENCLAVE) != 64 {
		return fmt.Errorf("cloister image convert -o json = %s (%v); want a converted image with its MRENCLAVE", r.stdout, err)
	}
	d.n.note("MRENCLAVE %s…, MRSIGNER %s…: only an enclave with exactly these files and settings can claim them",
		c.MRENCLAVE[:16], c.MRSIGNER[:16])
	return nil
}

// 6.
func (d *demo) approve(ctx context.Context) error {
	d.n.step("Approve the domain and the image",
		"The app's domain and the new image each opened a task. Once an admin approves them, the image's measurement "+
			"and the domain join the allowlists that attestation and the CA enforce: no approval, no certificate.")
	type task struct{ ID, Kind string }
	var pending struct{ Items []task }
	if err := poll(ctx, 20*time.Second, "the domain and image tasks", func() (bool, error) {
		err := d.cloisterJSON(ctx, &pending, "task", "list", "--status", "pending")
		return len(pending.Items) >= 2, err
	}); err != nil {
		return err
	}
	if _, err := d.cloister(ctx, nil, "", "task", "list", "--status", "pending"); err != nil {
		return err
	}
	for _, t := range pending.Items {
		if _, err := d.cloister(ctx, fields("kind", "status", "domain", "mrenclave"), "", "task", "approve", t.ID); err != nil {
			return err
		}
	}
	return nil
}

// health is the part of the node agent's GET /v1/health the demo uses.
type health struct {
	Status   string `json:"status"`
	NodeID   string `json:"node_id"`
	Enrolled bool   `json:"enrolled"`
	Ready    bool   `json:"ready"` // the simulated QE has arrived
}

// 7.
func (d *demo) enrolNode(ctx context.Context) error {
	d.n.step("Enrol a compute node",
		"A join token, shown once, lets one node agent enrol: it gets a client certificate from the account's CA, "+
			"then sends heartbeats over mTLS and serves enclaves on this machine at /v1/ (what Fortanix's node agent "+
			"serves on :9092). In simulation mode it also fetches a simulated quoting enclave from the server.")
	r, err := d.cloister(ctx, nil, "", "node", "token", "create", nodeName, "--max-uses", "1")
	if err != nil {
		return err
	}
	secret := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(secret, "cjt_") {
		return fmt.Errorf("cloister node token create printed %q, want the secret (cjt_...)", secret)
	}
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	exe, shown := d.binPath("cloister-node-agent")
	args := []string{"--server", "http://" + d.api, "--node-server", "https://" + d.nodeAddr,
		"--server-ca", filepath.Join(d.home, "server", "node-tls.crt"), "--data-dir", filepath.Join(d.home, "agent"),
		"--name", nodeName, "--listen", listen, "--heartbeat-every", "1s", "--simulation", "--join-token", secret}
	if d.agent, err = d.background("the node agent", append([]string{filepath.Base(shown)}, args...),
		append([]string{exe}, args...), d.agentLog); err != nil {
		return err
	}
	d.agentAPI = "http://" + listen + "/v1/"
	var h health
	var body []byte
	if err := poll(ctx, 30*time.Second, "the node agent to enrol and get its simulated QE (GET /v1/health = 200, ready)", func() (bool, error) {
		if err := alive(d.agent, d.agentLog); err != nil {
			return false, err
		}
		code, b, err := d.get(ctx, d.agentAPI+"health")
		if err != nil || code != http.StatusOK {
			return false, err
		}
		body = b
		if err := json.Unmarshal(b, &h); err != nil {
			return false, err
		}
		return h.Ready, nil
	}); err != nil {
		return err
	}
	if !h.Enrolled || h.NodeID == "" {
		return fmt.Errorf("the node agent's health = %s; want enrolled with a node id", body)
	}
	d.nodeID = h.NodeID
	d.n.note("GET %shealth answered 200:", d.agentAPI)
	d.n.output([]string{strings.TrimSpace(string(body))})
	_, err = d.cloister(ctx, nil, "", "node", "list")
	return err
}

// 8.
func (d *demo) runEnclave(ctx context.Context) error {
	ref := d.registry + "/samples/hello-https-sgx:1"
	root := filepath.Join(d.home, "rootfs")
	d.n.step("Run the converted image",
		"Without a container runtime, the demo lays out the converted image's filesystem as one would and runs its "+
			"entrypoint, cloister-launcher, there (on an SGX host it would hand over to Gramine's loader and run again "+
			"inside the enclave). The launcher checks every file against the trusted-file list, gets a fresh nonce from "+
			"the node agent and a simulated quote over the MRENCLAVE Gramine would measure, sends a CSR for "+domain+
			" with the quote, writes the key and the certificate it gets to /run/cloister/, and only then execs the "+
			"original entrypoint, /hello-https.")
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("naming %s: %w", ref, err)
	}
	img, err := remote.Image(r, remote.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading the configuration of %s: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("reading the layers of %s: %w", ref, err)
	}
	if _, err := d.cloister(ctx, nil, "", "image", "unpack", ref, root); err != nil {
		return err
	}
	ep := cf.Config.Entrypoint
	if len(ep) == 0 || !path.IsAbs(ep[0]) {
		return fmt.Errorf("%s has entrypoint %q; want cloister-launcher's absolute path", ref, ep)
	}
	entries, err := os.ReadDir(filepath.Join(root, filepath.Dir(filepath.FromSlash(ep[0]))))
	if err != nil {
		return fmt.Errorf("listing the launcher's directory in %s: %w", ref, err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	d.n.note("unpacked %s (%d layers) into $DEMO/rootfs; its entrypoint is `%s`\n%s holds %s",
		ref, len(layers), strings.Join(ep, " "), path.Dir(ep[0]), strings.Join(files, ", "))

	// As a container would run it: the image's entrypoint and command,
	// the image's environment plus what the host passes.
	argv := append([]string{filepath.Join(root, filepath.FromSlash(ep[0])), "--root", root}, ep[1:]...)
	argv = append(argv, cf.Config.Cmd...)
	env := append(append([]string(nil), cf.Config.Env...), "NODE_AGENT_BASE_URL="+d.agentAPI, "HELLO_ADDR="+d.helloAddr)
	shownEnv := []string{"NODE_AGENT_BASE_URL=" + d.agentAPI, "HELLO_ADDR=" + d.helloAddr}
	d.n.command(append(d.n.words(append(shownEnv, argv...)), "&")...)
	d.enclaveOut = &prefixWriter{n: d.n, prefix: "enclave │ "}
	for attempt := 1; ; attempt++ {
		d.enclaveOut.reset()
		if d.enclave, err = startProc("the enclave (cloister-launcher, then hello-https)", d.home, env, d.enclaveOut, argv); err != nil {
			return err
		}
		err := poll(ctx, 30*time.Second, "hello-https to accept TLS connections on "+d.helloAddr, func() (bool, error) {
			if done, _ := d.enclave.exited(); done {
				return false, fatalError{errors.New("exited")}
			}
			conn, err := net.DialTimeout("tcp", d.helloAddr, time.Second)
			if err != nil {
				return false, nil
			}
			conn.Close()
			return true, nil
		})
		if err == nil {
			return nil
		}
		done, _ := d.enclave.exited()
		if !done {
			return err
		}
		<-d.enclave.done
		d.enclaveOut.flush()
		code := d.enclave.exitCode()
		if code != launcherTempFail || attempt == launchAttempts {
			return &stepError{what: "the launcher", err: errors.New(describeExit(d.enclave.err)), detail: d.enclaveOut.String()}
		}
		d.n.note("the launcher exited %d (EX_TEMPFAIL: it could not get its certificate yet); starting it again in 1s, "+
			"as a container's restart policy would (attempt %d of %d)", code, attempt+1, launchAttempts)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// 9.
func (d *demo) connect(ctx context.Context) error {
	d.n.step("Connect over HTTPS, trusting only the account's CA",
		"The client knows nothing about the enclave but the account's root certificate: the TLS handshake succeeds only "+
			"because Cloister issued the certificate, and it issued it only to an attested enclave with an approved "+
			"measurement, for an approved domain.")
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: d.roots, ServerName: domain, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, network, d.helloAddr)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	_, port, _ := net.SplitHostPort(d.helloAddr)
	url := "https://" + domain + ":" + port + "/"
	d.n.note("GET %s, resolved to %s, with the account's root as the only trusted CA", url, d.helloAddr)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return &stepError{what: "GET " + url, err: err, detail: d.enclaveOut.String()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", url, err)
	}
	lines := []string{resp.Proto + " " + resp.Status}
	if h1 := heading(string(body)); h1 != "" {
		lines = append(lines, "<h1> "+h1)
	}
	if st := resp.TLS; st != nil && len(st.VerifiedChains) > 0 {
		leaf := st.PeerCertificates[0]
		var path []string
		for _, c := range st.VerifiedChains[0] {
			path = append(path, c.Subject.CommonName)
		}
		lines = append(lines, fmt.Sprintf("certificate for %s, valid until %s", strings.Join(leaf.DNSNames, ", "),
			leaf.NotAfter.UTC().Format(time.RFC3339)),
			"verified chain: "+strings.Join(path, " → "))
	}
	d.n.output(lines)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s = %s, want 200 OK", url, resp.Status)
	}
	return nil
}

var h1 = regexp.MustCompile(`(?is)<h1[^>]*>(.*?)</h1>`)
var tags = regexp.MustCompile(`<[^>]*>`)

// heading is the text of a page's first <h1>.
func heading(page string) string {
	m := h1.FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return strings.Join(strings.Fields(html.UnescapeString(tags.ReplaceAllString(m[1], ""))), " ")
}

// 10.
func (d *demo) showNode(ctx context.Context) error {
	d.n.step("See the running instance on its node",
		"The node agent recorded the instance when it forwarded the certificate request, and reports it with its "+
			"heartbeats: the node shows what runs on it, with the measurement it attested.")
	if err := poll(ctx, 20*time.Second, "the node to report the running instance", func() (bool, error) {
		var n struct {
			Instances []struct{ Status string }
		}
		err := d.cloisterJSON(ctx, &n, "node", "show", d.nodeID)
		return len(n.Instances) > 0 && n.Instances[0].Status == "running", err
	}); err != nil {
		return err
	}
	_, err := d.cloister(ctx, nil, "", "node", "show", d.nodeID)
	return err
}

// 11. cleanup stops what the demo started, newest first, and removes its
// directory unless --keep; after a success it also deregisters the node
// and deletes the account, the journey's last step.
func (d *demo) cleanup(ok bool) {
	if ok {
		d.n.step("Clean up",
			"Deregistering the node revokes its certificate and its enclaves'; deleting the account removes "+
				"everything under it. Then the demo stops what it started.")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if d.enclave != nil {
			d.n.note("stopping hello-https (SIGTERM): %s", d.enclave.stop(5*time.Second))
			d.enclaveOut.flush()
		}
		for _, args := range [][]string{{"node", "deregister", d.nodeID}, {"account", "delete", d.accountID, "--yes"}} {
			if _, err := d.cloister(ctx, nil, "", args...); err != nil {
				d.n.fail("cleaning up: "+err.Error(), detailOf(err))
			}
		}
	} else {
		d.n.println("")
		d.n.note("stopping what the demo started")
	}
	if d.enclave != nil && !ok {
		d.n.note("stopping the enclave (SIGTERM): %s", d.enclave.stop(5*time.Second))
		d.enclaveOut.flush()
	}
	if d.agent != nil {
		if done, _ := d.agent.exited(); done && ok && d.agent.exitCode() == agentDeregistered {
			d.n.note("the node agent had stopped by itself with exit code %d, as it should once its node is deregistered", agentDeregistered)
		} else {
			d.n.note("stopping the node agent (SIGTERM): %s", d.agent.stop(5*time.Second))
		}
	}
	if d.server != nil {
		d.n.note("stopping the server (SIGTERM): %s", d.server.stop(10*time.Second))
	}
	for _, f := range d.logFiles {
		f.Close()
	}
	if d.cfg.keep {
		d.n.note("kept %s (--keep): server.log, agent.log, the server's data, the unpacked image", d.home)
		return
	}
	if err := os.RemoveAll(d.home); err != nil {
		d.n.fail("removing "+d.home, err.Error())
		return
	}
	d.n.note("removed $DEMO")
}

func detailOf(err error) string {
	var se *stepError
	if errors.As(err, &se) {
		return se.detail
	}
	return ""
}
