package deployments

// docker-compose.yml, really run. deploy_test.go parses the file;
// TestComposeStackUnderPodman starts it: each Cloister service of it as a
// container of its own, as compose would, from the image of
// deployments/Dockerfile.prebuilt (nothing can be pulled here, so the
// binaries are built first and copied onto scratch), with NATS and Redis
// as processes on the host configured from their compose services and the
// secrets `cloister bus init` makes. Bridges do not work on this machine,
// so every container shares the host's network: hostNet gives each
// listener a free loopback port and rewrites what containers dial. Then
// the user's journey runs through that stack with the real CLI, up to
// HTTPS from the converted image, itself run by podman.

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/cloister-cc/cloister/libs/testkit"
)

// podmanRunFlags is how this machine runs containers (as in
// cmd/cloister/podman_e2e_test.go): Debian's podman with runc (crun fails
// on its cgroups) and the host's network.
var podmanRunFlags = []string{"--runtime", "/usr/sbin/runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "host"}

// cliDefaultAddr is where the cloister CLI looks for the gateway unless
// told otherwise, and where compose publishes it.
const cliDefaultAddr = "127.0.0.1:8080"

// TestComposeStackUnderPodman starts docker-compose.yml's services under
// podman, waits for each with its own compose healthcheck run inside its
// container (so none needs a shell), and walks the journey through them:
// sign-up, an account that accepts simulated evidence, the sample
// converted by the imageconverter into its built-in registry, the tasks
// approved, a join token for the `node` profile's agent, and the converted
// image, run by podman, serving HTTPS that only the account's CA vouches for.
func TestComposeStackUnderPodman(t *testing.T) {
	podman := needPodman(t)
	ctxDir := buildPrebuiltContext(t)
	cloister := filepath.Join(ctxDir, "cloister")
	busDir := filepath.Join(t.TempDir(), "secrets")
	if out, err := exec.Command(cloister, "bus", "init", "--compose", busDir).CombinedOutput(); err != nil {
		t.Fatalf("cloister bus init: %v\n%s", err, out)
	}

	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	env := []string{"CLOISTER_MASTER_KEY=" + base64.StdEncoding.EncodeToString(key)}
	all, err := loadComposeWith(env, "*")
	if err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}
	up, err := loadComposeWith(env) // what `docker compose up` starts
	if err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}

	st := newComposeStack(t, podman, all, busDir)
	st.buildImage(ctxDir)
	st.startBackends()
	st.up(up, deploySortedKeys(up.Services))

	// The journey, with the CLI as the README gives it.
	cli := composeCLI{t: t, bin: cloister, cfg: filepath.Join(t.TempDir(), "config.json"), addr: "http://" + st.net.mustFromHost(t, cliDefaultAddr)}
	cli.run("a long passphrase\n", "signup", "--email", "ada@example.com", "--password-stdin")
	cli.run("a long passphrase\n", "login", "--email", "ada@example.com", "--password-stdin")
	var acct struct{ ID string }
	cli.json(&acct, "account", "create", "Demo")
	cli.run("", "account", "select", acct.ID)
	var chain string
	composeEventually(t, 60*time.Second, func() (bool, string) {
		out, err := cli.try("ca", "show")
		chain = out
		return err == nil, fmt.Sprintf("the account's CA never appeared: %v", err)
	})
	composeEventually(t, 60*time.Second, func() (bool, string) {
		_, err := cli.try("signing-key")
		return err == nil, fmt.Sprintf("the account's enclave signing key never appeared: %v", err)
	})
	cli.run("", "attest", "policy", "set", "--accept", "UpToDate", "--allow-simulation")

	registry := st.registry()
	cli.run("", "app", "create", "hello", "--input-image", registry+"/samples/hello-https:1",
		"--output-image", registry+"/samples/hello-https-sgx", "--domain", "hello.cloister.test",
		// Containers share the host's network here: the sample listens where it is told.
		"--passthrough-env", "HELLO_ADDR", "--memory", "64M", "--threads", "4")
	var conv struct{ Status, MRENCLAVE string }
	cli.json(&conv, "image", "convert", "--app", "hello", "--tag", "1", "--wait")
	if conv.Status != "converted" || len(conv.MRENCLAVE) != 64 {
		t.Fatalf("image convert = %+v, want converted with an MRENCLAVE", conv)
	}
	var tasks []string
	composeEventually(t, 30*time.Second, func() (bool, string) {
		var l struct{ Items []struct{ ID string } }
		cli.json(&l, "task", "list", "--status", "pending")
		tasks = tasks[:0]
		for _, it := range l.Items {
			tasks = append(tasks, it.ID)
		}
		return len(tasks) == 2, fmt.Sprintf("pending tasks %q, want two: the domain and the image", tasks)
	})
	for _, id := range tasks {
		cli.run("", "task", "approve", id)
	}

	// `CLOISTER_JOIN_TOKEN=... docker compose --profile node up -d node-agent`:
	// the services no profile starts, with the token in the environment.
	token := strings.TrimSpace(cli.run("", "node", "token", "create", "compose", "--max-uses", "1"))
	withToken, err := loadComposeWith(append(env, "CLOISTER_JOIN_TOKEN="+token), "*")
	if err != nil {
		t.Fatalf("loading docker-compose.yml with $CLOISTER_JOIN_TOKEN: %v", err)
	}
	var nodes []string
	for _, name := range deploySortedKeys(withToken.Services) {
		if _, ok := up.Services[name]; !ok {
			nodes = append(nodes, name)
		}
	}
	st.up(withToken, nodes)
	agentAPI := st.agentAPI(nodes)

	// The converted image on that node: its launcher attests through the
	// agent, gets the certificate, and starts the sample.
	helloAddr := testkit.FreeAddr(t)
	hello := st.project + "-hello"
	image := registry + "/samples/hello-https-sgx:1"
	st.images = append(st.images, image)
	st.run(hello, append(append([]string{"run", "-d", "--name", hello}, podmanRunFlags...),
		"--tls-verify=false", "-e", "NODE_AGENT_BASE_URL="+agentAPI, "-e", "HELLO_ADDR="+helloAddr, image)...)
	client := testkit.TrustingOnly(t, chain, "hello.cloister.test")
	var page string
	composeEventually(t, 90*time.Second, func() (bool, string) {
		if state := st.state(hello); state != "running" {
			t.Fatalf("the converted image's container is %s", state)
		}
		resp, err := client.Get("https://" + helloAddr + "/")
		if err != nil {
			return false, fmt.Sprintf("the converted image never answered over HTTPS: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		page = string(b)
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("the converted image answered %s: %s", resp.Status, page)
	})
	if !strings.Contains(page, "Hello from an attested enclave") {
		t.Fatalf("the converted image answered %q", page)
	}
	var nl struct {
		Items []struct{ Name, Status string }
	}
	cli.json(&nl, "node", "list")
	if len(nl.Items) != 1 || nl.Items[0].Status != "active" {
		t.Errorf("node list = %+v, want the compose node, active", nl.Items)
	}
}

// needPodman returns podman's path. Without podman and runc the test is
// skipped on a developer's machine, and fails in CI, which installs them.
func needPodman(t *testing.T) string {
	t.Helper()
	podman, err := exec.LookPath("podman")
	if err == nil {
		_, err = os.Stat("/usr/sbin/runc")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("podman and runc are needed (.ci/run installs them): %v", err)
		}
		t.Skipf("podman and runc are needed (apt-get install podman runc): %v", err)
	}
	return podman
}

// buildPrebuiltContext builds, static as `make build` does, the binaries
// of deployments/Dockerfile.prebuilt (imageBinaries), and lays them out
// with its empty directories as its build context.
func buildPrebuiltContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-trimpath", "-o", dir + string(filepath.Separator)}
	for _, b := range imageBinaries {
		if path.Base(b.pkg) != path.Base(b.path) {
			t.Fatalf("%s builds %s, not %s", b.pkg, path.Base(b.pkg), b.path)
		}
		args = append(args, b.pkg)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = deployRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, d := range []string{"data", "node-tls"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// composeStack is docker-compose.yml's project run by podman on the host's
// network.
type composeStack struct {
	t       *testing.T
	podman  string
	p       *types.Project // every profile's services
	project string         // prefix of the containers' and volumes' names
	image   string         // built from deployments/Dockerfile.prebuilt
	busDir  string         // what `cloister bus init` made, in place of the compose secrets' directory
	net     *hostNet
	started []string // containers, in the order they started
	volumes []string
	images  []string
	stops   []func() // of the host's processes
	healthy map[string]bool
	// secretsDir is the directory of the compose file's secrets, the one
	// `cloister bus init` writes (busDir stands in for it).
	secretsDir string
}

func newComposeStack(t *testing.T, podman string, p *types.Project, busDir string) *composeStack {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	st := &composeStack{t: t, podman: podman, p: p, busDir: busDir, healthy: map[string]bool{},
		project: "cloister-composetest-" + hex.EncodeToString(b), net: newHostNet(t, p)}
	for _, name := range deploySortedKeys(p.Secrets) {
		f := p.Secrets[name].File
		if f == "" {
			t.Fatalf("compose secret %s is not a file, which `cloister bus init` would make", name)
		}
		if st.secretsDir == "" {
			st.secretsDir = filepath.Dir(f)
		} else if filepath.Dir(f) != st.secretsDir {
			t.Fatalf("compose secret %s is %s, outside %s, the directory of the others that `cloister bus init` makes", name, f, st.secretsDir)
		}
	}
	// Listeners first, so that a service dials one that starts after it;
	// and what the test cannot run stops it before anything starts.
	for _, name := range deploySortedKeys(p.Services) {
		if !st.ours(p.Services[name]) {
			continue
		}
		if _, err := composeHealthcheck(p.Services[name]); err != nil {
			t.Fatalf("compose service %s: %v", name, err)
		}
		for _, k := range deploySortedKeys(p.Services[name].Environment) {
			if _, known := composeRunEnv[k]; !known {
				t.Fatalf("compose service %s: $%s: compose_run_test.go does not know how to run it on the host's network; add it to composeRunEnv", name, k)
			}
			if v := p.Services[name].Environment[k]; v != nil && composeRunEnv[k] == envListen {
				if _, err := st.net.listen(name, k, *v); err != nil {
					t.Fatalf("compose service %s: $%s=%q: %v", name, k, *v, err)
				}
			}
		}
	}
	t.Cleanup(st.down)
	return st
}

// ours reports whether s runs the image of deployments/Dockerfile, as
// composeProblems tells it.
func (st *composeStack) ours(s types.ServiceConfig) bool {
	if deployImageName(s.Image) == deployImage {
		return true
	}
	if s.Build == nil {
		return false
	}
	df := s.Build.Dockerfile
	if !filepath.IsAbs(df) {
		df = filepath.Join(s.Build.Context, df)
	}
	root, _ := filepath.Abs(deployRoot)
	return filepath.Clean(df) == filepath.Join(root, "deployments", "Dockerfile")
}

// buildImage builds deployments/Dockerfile.prebuilt from ctxDir.
func (st *composeStack) buildImage(ctxDir string) {
	st.t.Helper()
	st.image = "localhost/" + st.project + ":dev"
	st.images = append(st.images, st.image)
	cmd := exec.Command(st.podman, "build", "--format", "docker", "-f", filepath.Join(deployRoot, "deployments", "Dockerfile.prebuilt"), "-t", st.image, ctxDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		st.t.Fatalf("podman build: %v\n%s", err, out)
	}
}

// startBackends runs the services not built from deployments/Dockerfile,
// NATS and Redis, as processes on the host, configured from their compose
// services.
func (st *composeStack) startBackends() {
	st.t.Helper()
	for _, name := range deploySortedKeys(st.p.Services) {
		s := st.p.Services[name]
		if st.ours(s) {
			continue
		}
		switch prog := firstOr(s.Command, ""); prog {
		case "nats-server":
			st.startNATS(s)
		case "redis-server":
			st.startRedis(s)
		default:
			st.t.Fatalf("compose service %s runs %q from image %s, which this test cannot pull; run it from the host as NATS and Redis are", name, s.Command, s.Image)
		}
	}
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// hostFile returns where the file a compose service mounts at target is
// on the host: a bind mount's source, or a secret, made by `cloister bus
// init`.
func (st *composeStack) hostFile(s types.ServiceConfig, target string) (string, bool) {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source, true
		}
	}
	for _, sec := range s.Secrets {
		if composeSecretTarget(sec) == target {
			return st.secretFile(sec.Source), true
		}
	}
	return "", false
}

func composeSecretTarget(sec types.ServiceSecretConfig) string {
	t := cmp.Or(sec.Target, sec.Source)
	if !path.IsAbs(t) {
		t = path.Join("/run/secrets", t) // compose's default
	}
	return t
}

// secretFile is the file of the compose secret name, from `cloister bus init`.
func (st *composeStack) secretFile(name string) string {
	st.t.Helper()
	rel, err := filepath.Rel(st.secretsDir, st.p.Secrets[name].File)
	if err != nil {
		st.t.Fatal(err)
	}
	f := filepath.Join(st.busDir, rel)
	if _, err := os.Stat(f); err != nil {
		st.t.Fatalf("compose secret %s: `cloister bus init` made no %s: %v", name, rel, err)
	}
	return f
}

// startNATS runs nats-server (embedded) with the compose service's
// configuration file and what it includes laid out as in its container,
// listening on a free loopback port with JetStream in a temporary directory.
func (st *composeStack) startNATS(s types.ServiceConfig) {
	t := st.t
	t.Helper()
	cmd := []string(s.Command)
	i := slices.IndexFunc(cmd, func(a string) bool { return a == "-c" || a == "--config" })
	if i < 0 || i+1 >= len(cmd) {
		t.Fatalf("compose service %s: command %q names no configuration file", s.Name, cmd)
	}
	root := t.TempDir() // the container's filesystem, as far as nats-server reads it
	var mounts []string
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind {
			mounts = append(mounts, v.Target)
		}
	}
	for _, sec := range s.Secrets {
		mounts = append(mounts, composeSecretTarget(sec))
	}
	for _, target := range mounts {
		src, _ := st.hostFile(s, target)
		b, err := os.ReadFile(src)
		if err == nil {
			err = os.MkdirAll(filepath.Join(root, path.Dir(target)), 0o700)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(root, target), b, 0o600)
		}
		if err != nil {
			t.Fatalf("compose service %s: %v", s.Name, err)
		}
	}
	opts, err := natsserver.ProcessConfigFile(filepath.Join(root, cmd[i+1]))
	if err != nil {
		t.Fatalf("compose service %s: nats-server rejects its configuration: %v", s.Name, err)
	}
	if !opts.JetStream {
		t.Fatalf("compose service %s: no JetStream", s.Name)
	}
	port := opts.Port
	opts.Host, opts.Port, opts.HTTPPort, opts.StoreDir = "127.0.0.1", -1, 0, t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatalf("starting nats-server: %v", err)
	}
	go ns.Start()
	st.stops = append(st.stops, ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not become ready")
	}
	st.net.ports[s.Name+":"+strconv.Itoa(port)] = ns.Addr().(*net.TCPAddr).Port
}

// startRedis runs redis-server with the compose service's command, its
// secret files from `cloister bus init`, on a free loopback port.
func (st *composeStack) startRedis(s types.ServiceConfig) {
	t := st.t
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is needed: %v", err)
		}
		t.Skipf("redis-server is needed: %v", err)
	}
	args := slices.Clone([]string(s.Command[1:]))
	for i, a := range args {
		if a == "--port" || a == "--bind" {
			t.Fatalf("compose service %s: its command sets %s, which this test sets itself", s.Name, a)
		}
		if f, ok := st.hostFile(s, a); ok {
			args[i] = f
		}
	}
	const containerPort = 6379 // redis-server's default; the command sets none
	port := testkit.FreePort(t)
	args = append(args, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", t.TempDir())
	cmd := exec.Command(bin, args...)
	logs, err := os.Create(filepath.Join(t.TempDir(), "redis.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	st.stops = append(st.stops, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	password, err := os.ReadFile(st.secretFile("redis.password"))
	if err != nil {
		t.Fatal(err)
	}
	composeEventually(t, 10*time.Second, func() (bool, string) {
		err := redisPing(port, strings.TrimSpace(string(password)))
		out, _ := os.ReadFile(logs.Name())
		return err == nil, fmt.Sprintf("redis-server %q does not answer: %v\n%s", args, err, out)
	})
	st.net.ports[s.Name+":"+strconv.Itoa(containerPort)] = port
}

// redisPing logs in to the Redis on port with password and pings it.
func redisPing(port int, password string) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n", len(password), password)
	r := bufio.NewReader(c)
	for _, want := range []string{"+OK", "+PONG"} {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimSpace(line) != want {
			return fmt.Errorf("answered %q, want %s", strings.TrimSpace(line), want)
		}
	}
	return nil
}

// up starts the named services of p (loaded as docker compose would for
// this run: with its environment) in the order of their depends_on, each
// once the services it depends on are healthy, then waits until all are.
func (st *composeStack) up(p *types.Project, names []string) {
	t := st.t
	t.Helper()
	// NATS and Redis run on the host (startBackends).
	names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return !st.ours(p.Services[n]) })
	todo := slices.Clone(names)
	for len(todo) > 0 {
		next := -1
		for i, name := range todo {
			if !slices.ContainsFunc(deploySortedKeys(p.Services[name].DependsOn), func(d string) bool { return slices.Contains(todo, d) }) {
				next = i
				break
			}
		}
		if next < 0 {
			t.Fatalf("compose services %q depend on each other", todo)
		}
		name := todo[next]
		todo = slices.Delete(todo, next, next+1)
		s := p.Services[name]
		for _, dep := range deploySortedKeys(s.DependsOn) {
			if s.DependsOn[dep].Condition == types.ServiceConditionHealthy && st.ours(st.p.Services[dep]) {
				st.waitHealthy(p.Services[dep])
			}
		}
		st.start(s)
	}
	for _, name := range names {
		st.waitHealthy(p.Services[name])
	}
}

func (st *composeStack) container(service string) string { return st.project + "-" + service }

// start runs s's container as compose would, but on the host's network.
func (st *composeStack) start(s types.ServiceConfig) {
	t := st.t
	t.Helper()
	env, err := st.net.env(s)
	if err != nil {
		t.Fatalf("compose service %s: %v", s.Name, err)
	}
	for _, a := range s.Command {
		if composeAddrRE.MatchString(a) || st.net.namesService(a) {
			t.Fatalf("compose service %s: its command's argument %q is an address, which this test does not know how to move to the host's network", s.Name, a)
		}
	}
	name := st.container(s.Name)
	// Compose's healthcheck replaces the image's; waitHealthy runs it.
	// Its restart policy is left out: a container that exits fails the
	// test instead of starting again.
	args := append(append([]string{"run", "-d", "--name", name}, podmanRunFlags...), "--no-healthcheck")
	if len(s.Entrypoint) > 0 {
		b, _ := json.Marshal([]string(s.Entrypoint))
		args = append(args, "--entrypoint", string(b))
	}
	if s.User != "" {
		args = append(args, "--user", s.User)
	}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	for _, sec := range s.Secrets {
		args = append(args, "-v", st.secretFile(sec.Source)+":"+composeSecretTarget(sec)+":ro")
	}
	for _, v := range s.Volumes {
		src := v.Source
		switch v.Type {
		case types.VolumeTypeVolume:
			src = st.project + "_" + v.Source // podman creates it, from the image's directory
			if !slices.Contains(st.volumes, src) {
				st.volumes = append(st.volumes, src)
			}
		case types.VolumeTypeBind:
		default:
			t.Fatalf("compose service %s: a %s volume, which this test does not know how to mount", s.Name, v.Type)
		}
		spec := src + ":" + v.Target
		if v.ReadOnly {
			spec += ":ro"
		}
		args = append(args, "-v", spec)
	}
	args = append(append(args, st.image), s.Command...)
	st.run(name, args...)
}

// run runs podman with args, which start the container name.
func (st *composeStack) run(name string, args ...string) {
	st.t.Helper()
	st.started = append(st.started, name)
	if out, err := exec.Command(st.podman, args...).CombinedOutput(); err != nil {
		st.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// state is the container's status: running, exited...
func (st *composeStack) state(name string) string {
	out, err := exec.Command(st.podman, "inspect", "-f", "{{.State.Status}}", name).Output()
	if err != nil {
		return fmt.Sprintf("not inspectable (%v)", err)
	}
	return strings.TrimSpace(string(out))
}

// waitHealthy runs s's compose healthcheck in its container until it passes.
func (st *composeStack) waitHealthy(s types.ServiceConfig) {
	t := st.t
	t.Helper()
	if st.healthy[s.Name] {
		return
	}
	test, err := composeHealthcheck(s)
	if err != nil {
		t.Fatalf("compose service %s: %v", s.Name, err)
	}
	args := []string{"exec", st.container(s.Name)}
	for _, a := range test {
		a, err := st.net.rewrite(a, func(hostport string) (string, error) { return st.net.fromContainer(s.Name, hostport) })
		if err != nil {
			t.Fatalf("compose service %s: healthcheck: %v", s.Name, err)
		}
		args = append(args, a)
	}
	composeEventually(t, 90*time.Second, func() (bool, string) {
		if state := st.state(st.container(s.Name)); state != "running" {
			t.Fatalf("compose service %s's container is %s", s.Name, state)
		}
		out, err := exec.Command(st.podman, args...).CombinedOutput()
		return err == nil, fmt.Sprintf("compose service %s never passed its healthcheck: podman %s: %v\n%s", s.Name, strings.Join(args, " "), err, out)
	})
	st.healthy[s.Name] = true
}

// composeHealthcheck is the command of s's healthcheck, which must run
// without a shell: the image has none.
func composeHealthcheck(s types.ServiceConfig) ([]string, error) {
	var test []string
	if s.HealthCheck != nil && !s.HealthCheck.Disable {
		test = s.HealthCheck.Test
	}
	if len(test) < 2 || test[0] != "CMD" {
		return nil, fmt.Errorf("healthcheck %q is not [\"CMD\", ...]: the image has no shell to run it with", test)
	}
	return test[1:], nil
}

// registry is the imageconverter's built-in registry, where the host reaches it.
func (st *composeStack) registry() string {
	st.t.Helper()
	var regs []string
	for _, name := range deploySortedKeys(st.net.listens) {
		if addr, ok := st.net.listens[name]["CLOISTER_REGISTRY"]; ok {
			regs = append(regs, addr)
		}
	}
	if len(regs) != 1 {
		st.t.Fatalf("compose services serve built-in registries at %q; want one", regs)
	}
	return regs[0]
}

// agentAPI is the local API of the one node agent among services.
func (st *composeStack) agentAPI(services []string) string {
	st.t.Helper()
	var apis []string
	for _, name := range services {
		if addr, ok := st.net.listens[name]["CLOISTER_AGENT_LISTEN"]; ok {
			apis = append(apis, "http://"+addr+"/v1/")
		}
	}
	if len(apis) != 1 {
		st.t.Fatalf("the services %q run node agents listening at %q; want one", services, apis)
	}
	return apis[0]
}

// down prints the containers' logs when the test failed, then removes
// them, their volumes and images, and stops the host's processes.
func (st *composeStack) down() {
	for _, name := range slices.Backward(st.started) {
		if st.t.Failed() {
			out, _ := exec.Command(st.podman, "logs", name).CombinedOutput()
			st.t.Logf("podman logs %s (%s):\n%s", name, st.state(name), out)
		}
		_ = exec.Command(st.podman, "rm", "-f", "-t", "0", name).Run()
	}
	for _, v := range st.volumes {
		_ = exec.Command(st.podman, "volume", "rm", "-f", v).Run()
	}
	for _, im := range st.images {
		_ = exec.Command(st.podman, "rmi", "-f", im).Run()
	}
	for _, stop := range slices.Backward(st.stops) {
		stop()
	}
}

// hostNet is compose's network folded onto the host's: under --network
// host every container shares one loopback, so each listener (a service
// and the port it listens on in its own container) gets a free port of
// it, and the addresses containers are given move there too.
type hostNet struct {
	t        testing.TB // for free ports
	services map[string]bool
	// ports: "service:port" (a port in the service's container) → its
	// port on the host's loopback.
	ports map[string]int
	// published: a port published on the host's loopback → "service:port".
	published map[string]string
	// listens: service → variable → the loopback address it listens on.
	listens map[string]map[string]string
}

func newHostNet(t testing.TB, p *types.Project) *hostNet {
	n := &hostNet{t: t, services: map[string]bool{}, ports: map[string]int{}, published: map[string]string{}, listens: map[string]map[string]string{}}
	for name, s := range p.Services {
		n.services[name] = true
		for _, pc := range s.Ports {
			if pc.HostIP == "" || pc.HostIP == "0.0.0.0" || deployLoopback(pc.HostIP) {
				n.published[pc.Published] = name + ":" + strconv.Itoa(int(pc.Target))
			}
		}
	}
	return n
}

// envKind is how a variable of a compose service moves to the host's network.
type envKind int

const (
	envAsIs     envKind = iota // no address: a file in the container, a level, a key...
	envListen                  // host:port the container listens on
	envDial                    // a URL or host:port the container dials on the compose network
	envHostURL                 // a URL of the host, reaching a published port
	envHostList                // host names others call the container by
	envSecret                  // a key or token: never read
)

// composeRunEnv is every variable that docker-compose.yml gives a
// Cloister container, and how it moves to the host's network. The test
// stops at one it does not know.
var composeRunEnv = map[string]envKind{
	"CLOISTER_HTTP":                 envListen,
	"CLOISTER_REGISTRY":             envListen,
	"CLOISTER_NODE_HTTP":            envListen,
	"CLOISTER_AGENT_LISTEN":         envListen,
	"NATS_URL":                      envDial,
	"REDIS_URL":                     envDial,
	"CLOISTER_AGENT_SERVER":         envDial,
	"CLOISTER_AGENT_NODE_SERVER":    envDial,
	"CLOISTER_PUBLIC_URL":           envHostURL,
	"CLOISTER_NODE_TLS_SELF_SIGNED": envHostList,
	"CLOISTER_AGENT_ALLOWED_HOSTS":  envHostList,
	"CLOISTER_NATS_CREDENTIALS":     envAsIs,
	"CLOISTER_REDIS_PASSWORD_FILE":  envAsIs,
	"CLOISTER_NODE_TLS_CERT":        envAsIs,
	"CLOISTER_NODE_TLS_KEY":         envAsIs,
	"CLOISTER_AGENT_SERVER_CA":      envAsIs,
	"CLOISTER_AGENT_DATA_DIR":       envAsIs,
	"CLOISTER_REPLICAS":             envAsIs,
	"CLOISTER_LOG_LEVEL":            envAsIs,
	"CLOISTER_AGENT_LOG_LEVEL":      envAsIs,
	"CLOISTER_SIMULATION":           envAsIs,
	"CLOISTER_AGENT_SIMULATION":     envAsIs,
	"CLOISTER_MASTER_KEY":           envSecret,
	"CLOISTER_AGENT_JOIN_TOKEN":     envSecret,
	"CLOISTER_AGENT_NAME":           envAsIs,
	"OTEL_SERVICE_NAME":             envAsIs,
	"OTEL_EXPORTER_OTLP_ENDPOINT":   envAsIs, // empty: the test passes none
}

// composeAddrRE finds host:port addresses in a value.
var composeAddrRE = regexp.MustCompile(`([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):([0-9]+)`)

// env is s's environment moved to the host's network, as NAME=value.
func (n *hostNet) env(s types.ServiceConfig) ([]string, error) {
	var out []string
	for _, k := range deploySortedKeys(s.Environment) {
		p := s.Environment[k]
		if p == nil {
			continue // unset in compose's environment: compose passes nothing
		}
		v, was := *p, *p
		kind, known := composeRunEnv[k]
		if !known {
			return nil, fmt.Errorf("$%s=%q: compose_run_test.go does not know how to run it on the host's network; add it to composeRunEnv", k, v)
		}
		var err error
		switch kind {
		case envListen:
			v, err = n.listen(s.Name, k, v)
		case envDial:
			if !composeAddrRE.MatchString(v) {
				err = fmt.Errorf("names no host:port to dial")
				break
			}
			v, err = n.rewrite(v, func(hp string) (string, error) { return n.fromContainer(s.Name, hp) })
		case envHostURL:
			v, err = n.rewrite(v, n.fromHost)
		case envHostList:
			var names []string
			for _, h := range strings.Split(v, ",") {
				if n.services[strings.TrimSpace(h)] {
					h = "127.0.0.1" // the name of a container is the host's loopback now
				}
				if !slices.Contains(names, h) {
					names = append(names, h)
				}
			}
			v = strings.Join(names, ",")
		case envAsIs:
			if composeAddrRE.MatchString(v) || n.namesService(v) {
				err = fmt.Errorf("holds an address, but composeRunEnv keeps it as it is")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("$%s=%q: %w", k, was, err)
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}

// listen gives the listener that service's variable k sets (host:port)
// a free loopback port, once.
func (n *hostNet) listen(service, k, addr string) (string, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	key := service + ":" + port
	if _, ok := n.ports[key]; !ok {
		n.ports[key] = testkit.FreePort(n.t)
	}
	a := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.ports[key]))
	if n.listens[service] == nil {
		n.listens[service] = map[string]string{}
	}
	n.listens[service][k] = a
	return a, nil
}

// fromContainer is where, on the host, the address hostport that a
// container of service self dials leads: another service's listener by
// its compose name, or its own on its loopback.
func (n *hostNet) fromContainer(self, hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	if host == "127.0.0.1" || host == "localhost" {
		host = self
	}
	if !n.services[host] {
		return "", fmt.Errorf("%s is neither a compose service nor the container's own loopback", hostport)
	}
	p, ok := n.ports[host+":"+port]
	if !ok {
		return "", fmt.Errorf("nothing of compose service %s listens on port %s", host, port)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// fromHost is where the address hostport of the host, a port some compose
// service publishes on loopback, leads.
func (n *hostNet) fromHost(hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	target, ok := n.published[port]
	if !ok || (host != "localhost" && !deployLoopback(host)) {
		return "", fmt.Errorf("no compose service publishes %s", hostport)
	}
	svc, _, _ := strings.Cut(target, ":")
	_, tport, _ := net.SplitHostPort(target)
	p, ok := n.ports[target]
	if !ok {
		return "", fmt.Errorf("compose service %s publishes %s from its port %s, where it listens on nothing", svc, hostport, tport)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

func (n *hostNet) mustFromHost(t *testing.T, hostport string) string {
	t.Helper()
	a, err := n.fromHost(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// rewrite moves every host:port of v with move.
func (n *hostNet) rewrite(v string, move func(string) (string, error)) (string, error) {
	var err error
	out := composeAddrRE.ReplaceAllStringFunc(v, func(hp string) string {
		a, e := move(hp)
		if e != nil && err == nil {
			err = e
		}
		return a
	})
	return out, err
}

// namesService reports whether a names a compose service as a URL's host.
func (n *hostNet) namesService(a string) bool {
	for s := range n.services {
		if strings.Contains(a, "//"+s) || strings.Contains(a, "="+s+":") {
			return true
		}
	}
	return false
}

// composeCLI runs the cloister CLI against the stack's gateway.
type composeCLI struct {
	t              *testing.T
	bin, cfg, addr string
}

func (c composeCLI) cmd(stdin string, args ...string) *exec.Cmd {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Dir(c.cfg), "CLOISTER_CONFIG=" + c.cfg, "CLOISTER_ADDR=" + c.addr}
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// try runs the CLI and returns its output, or the error with what it said.
func (c composeCLI) try(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := c.cmd("", args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("cloister %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

func (c composeCLI) run(stdin string, args ...string) string {
	c.t.Helper()
	var out, errOut bytes.Buffer
	cmd := c.cmd(stdin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("cloister %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// json runs the CLI with -o json and decodes what it prints into v.
func (c composeCLI) json(v any, args ...string) {
	c.t.Helper()
	out := c.run("", append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("cloister %s -o json printed %q: %v", strings.Join(args, " "), out, err)
	}
}

// composeEventually polls cond every half second until it holds, or fails
// with what it said last once within has passed.
func composeEventually(t *testing.T, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------
// deployments/Dockerfile.prebuilt

// prebuiltProblems checks that the prebuilt Dockerfile's one stage makes
// the image of the Dockerfile's final stage: every COPY --from=build of
// /out/X is a COPY of X from the context to the same place with the same
// owner, and every other instruction but FROM is the same.
func prebuiltProblems(dockerfile, prebuilt string) []string {
	var problems []string
	bad := func(format string, a ...any) {
		problems = append(problems, "deployments/Dockerfile.prebuilt: "+fmt.Sprintf(format, a...))
	}
	stages, pre := parseDockerfile(dockerfile), parseDockerfile(prebuilt)
	if len(stages) == 0 || len(pre) != 1 {
		bad("%d stage(s), want one (the Dockerfile has %d)", len(pre), len(stages))
		return problems
	}
	var want []dockerInstr
	for _, in := range stages[len(stages)-1][1:] { // its FROM aside
		if in.cmd == "COPY" {
			fields := strings.Fields(in.args)
			var kept []string
			for _, f := range fields {
				if !strings.HasPrefix(f, "--from=") {
					kept = append(kept, f)
				}
			}
			if len(kept) >= 2 {
				src := kept[len(kept)-2]
				if rel, ok := strings.CutPrefix(src, "/out/"); ok {
					kept[len(kept)-2] = rel
				}
			}
			in.args = strings.Join(kept, " ")
		}
		want = append(want, in)
	}
	got := pre[0]
	if got[0].args != "scratch" {
		bad("FROM %s: only scratch needs no pull", got[0].args)
	}
	got = got[1:]
	norm := func(in dockerInstr) string { return in.cmd + " " + strings.Join(strings.Fields(in.args), " ") }
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g dockerInstr) bool { return norm(g) == norm(w) }) {
			bad("lacks %q, which the Dockerfile's final stage has", norm(w))
		}
	}
	for _, g := range got {
		if !slices.ContainsFunc(want, func(w dockerInstr) bool { return norm(g) == norm(w) }) {
			bad("has %q, which the Dockerfile's final stage has not", norm(g))
		}
	}
	return problems
}

func TestDeployDockerfilePrebuilt(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(deployRoot, "deployments", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	pre, err := os.ReadFile(filepath.Join(deployRoot, "deployments", "Dockerfile.prebuilt"))
	if err != nil {
		t.Fatal(err)
	}
	reportDeployProblems(t, prebuiltProblems(string(df), string(pre)))
}

func TestDeployDockerfilePrebuiltCanFail(t *testing.T) {
	df := "FROM golang AS build\nRUN go build -o /out/cloister .\nFROM distroless\nCOPY --from=build /out/cloister /cloister\n" +
		"COPY --from=build --chown=65532:65532 /out/data /data\nUSER 65532:65532\nENTRYPOINT [\"/cloister\"]\n"
	problems := prebuiltProblems(df, "FROM alpine\nCOPY cloister /cloister\nCOPY data /data\nUSER 0\nENTRYPOINT [\"/cloister\"]\n")
	wantDeployProblem(t, problems, "FROM alpine")
	wantDeployProblem(t, problems, "lacks", "COPY --chown=65532:65532 data /data")
	wantDeployProblem(t, problems, "lacks", "USER 65532:65532")
	wantDeployProblem(t, problems, "has \"USER 0\"")
	if got := prebuiltProblems(df, "FROM scratch\nCOPY cloister /cloister\nCOPY --chown=65532:65532 data /data\nUSER 65532:65532\nENTRYPOINT [\"/cloister\"]\n"); len(got) != 0 {
		t.Errorf("a faithful prebuilt Dockerfile: %q", got)
	}
}
