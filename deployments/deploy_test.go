package deployments

// Tests that hold the deployment files to the binary they run:
// deployments/Dockerfile, docker-compose.yml, deployments/k8s and
// tilt/Tiltfile. Every flag and environment variable they give `cloister
// server` must exist (cmd/serverconfig's flags and Env are the reference), and
// so must those given to compose's node agent (the real cloister-node-agent
// reads them: its --help lists them, a run with --version parses them);
// every service in serverconfig.Services must run somewhere, containers must be
// health-checked and run as non-root, and compose's pieces must fit: the
// node agent simulates against an attestation service that accepts it and
// trusts the gateway's self-signed node certificate from a shared volume,
// the built-in registry is published under the name the converter uses;
// in Kubernetes, the gateway serves the node listener with a certificate
// from a Secret, on a port a Service exposes.
// Nothing here needs Docker or a cluster: the files are parsed, never run
// (the node agent binary is built and run only to read its flags).
// Each check reports what is wrong, naming the file, the
// container and the flag; the *CanFail tests feed the checks broken input
// to show that they complain.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v4"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
	"github.com/cloister-cc/cloister/libs/busauth"
	"github.com/cloister-cc/cloister/libs/netguard"
	"github.com/cloister-cc/cloister/libs/obs"
)

// deployRoot is the repository root, seen from deployments.
var deployRoot = ".."

const (
	// deployImage is the image name (without registry tag) that
	// deployments/Dockerfile builds and the deployments run.
	deployImage = "cloister"
	// deployGateway is the only service whose port is published.
	deployGateway = "gateway"
	// deployBusSecret is the Secret `cloister bus init`'s files go in.
	deployBusSecret = "cloister-bus"
)

// deployExtraEnvPrefixes are the environment variables a server container may
// set besides serverconfig.Env's: OpenTelemetry's, which libs/obs honours
// (OTEL_EXPORTER_OTLP_*, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
var deployExtraEnvPrefixes = []string{"OTEL_", "CLOISTER_MASTER_KEY"}

// ---------------------------------------------------------------------
// `cloister server` command lines

// serverRun is what `cloister server` would run with, given a container's
// arguments and environment.
type serverRun struct {
	cfg serverconfig.Config
	// set holds the flags given on the command line or by the environment.
	set map[string]bool
}

// checkServerRun reads args (starting with the "server" verb, as given to
// the image's /cloister entrypoint) and env (nil values: set at run time,
// e.g. from the host or a Kubernetes fieldRef) the way the binary does,
// and reports every unknown flag or variable, bad value and configuration
// that `cloister server` would refuse.
func checkServerRun(args []string, env map[string]*string) (serverRun, []string) {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	run := serverRun{set: map[string]bool{}}

	flagOfEnv := map[string]string{}
	for flag, name := range serverconfig.Env {
		flagOfEnv[name] = flag
	}
	f := pflag.NewFlagSet("server", pflag.ContinueOnError)
	f.SetOutput(io.Discard)
	serverconfig.AddFlags(f, &run.cfg)
	for _, name := range deploySortedKeys(env) {
		flag, ok := flagOfEnv[name]
		if !ok {
			if !slices.ContainsFunc(deployExtraEnvPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
				bad("unknown environment variable %s: cloister server reads only %s and %s*",
					name, strings.Join(deploySortedValues(serverconfig.Env), ", "), strings.Join(deployExtraEnvPrefixes, "*, "))
			}
			continue
		}
		run.set[flag] = true
	}

	if len(args) == 0 || args[0] != "server" {
		bad("command %q does not run `cloister server`", args)
		return run, problems
	}
	args = serverconfig.SingleDashLongFlags(args[1:])
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		known := false
		if strings.HasPrefix(a, "--") {
			known = f.Lookup(name) != nil
		} else if len(name) == 1 {
			known = f.ShorthandLookup(name) != nil
		}
		if !known {
			bad("unknown flag %s: cloister server has no such flag", strings.SplitN(a, "=", 2)[0])
		}
	}
	// Unknown flags are reported above; read the rest as the binary would.
	f.ParseErrorsAllowlist.UnknownFlags = true
	if err := f.Parse(args); err != nil {
		bad("cloister server %s: %v", strings.Join(args, " "), err)
		return run, problems
	}
	if f.NArg() > 0 {
		bad("cloister server takes no arguments, given %q", f.Args())
	}
	// The environment fills in what the command line left unset, as
	// serverconfig.ApplyEnv does in the binary.
	known := map[string]string{}
	for name, v := range env {
		if v != nil {
			known[name] = *v
		}
	}
	if err := serverconfig.ApplyEnv(f, &run.cfg, func(name string) (string, bool) { v, ok := known[name]; return v, ok }); err != nil {
		bad("%v", err)
	}
	for name := range serverconfig.Env {
		if f.Changed(name) {
			run.set[name] = true
		}
	}

	c := &run.cfg
	if err := c.Validate(); err != nil {
		bad("cloister server would refuse to start: %v", err)
	}
	if _, err := obs.ParseLevel(c.LogLevel); err != nil {
		bad("cloister server would refuse to start: %v", err)
	}
	keyFile, _ := f.GetString("master-key-file")
	_, keyInEnv := env["CLOISTER_MASTER_KEY"]
	for _, svc := range c.Services {
		if serverconfig.NeedsMasterKey(svc, c.Simulation) && !c.Dev && !keyInEnv && keyFile == "" {
			bad("runs %s, which seals secrets under the master key, but sets neither $CLOISTER_MASTER_KEY nor --master-key-file", svc)
		}
	}
	return run, problems
}

// checkServiceContainer applies the rules every service container shares,
// in compose and in Kubernetes: one named service, not -dev, listening
// beyond loopback, at most as many JetStream replicas as NATS servers.
func checkServiceContainer(run serverRun, natsServers int) []string {
	var problems []string
	c := run.cfg
	if c.Dev {
		problems = append(problems, "runs --dev (embedded NATS, in-process cache) instead of one service against the shared NATS")
	}
	if !run.set["services"] {
		problems = append(problems, fmt.Sprintf("sets neither --services nor $%s, so it runs every service (%s)",
			serverconfig.Env["services"], strings.Join(serverconfig.Services, ",")))
	} else if len(c.Services) != 1 {
		problems = append(problems, fmt.Sprintf("runs services %q; one container runs one service", c.Services))
	}
	if host, _, err := net.SplitHostPort(c.HTTP); err == nil {
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			problems = append(problems, fmt.Sprintf("listens on %s, which nothing outside the container (health checks, the gateway's port) can reach; use 0.0.0.0:PORT", c.HTTP))
		}
	}
	if c.Replicas > natsServers {
		problems = append(problems, fmt.Sprintf("asks for %d JetStream replicas with %d NATS server(s)", c.Replicas, natsServers))
	}
	if want := min(natsServers, 3); c.Replicas < want {
		problems = append(problems, fmt.Sprintf("asks for %d JetStream replicas with %d NATS servers: a stream on fewer loses what it holds "+
			"with its server; want %d (docs/operations.md)", max(c.Replicas, 1), natsServers, want))
	}
	if c.NATSURL == "" {
		problems = append(problems, "has no NATS URL")
	}
	return problems
}

func serverRunHTTPPort(run serverRun) int {
	_, p, err := net.SplitHostPort(run.cfg.HTTP)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// deployURLHostPort returns the host and port of a nats:// or redis:// URL,
// with the scheme's default port.
func deployURLHostPort(raw string, defaultPort int) (string, int, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", 0, err
	}
	if u.Hostname() == "" {
		return "", 0, fmt.Errorf("%q has no host", raw)
	}
	port := defaultPort
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return "", 0, err
		}
	}
	return u.Hostname(), port, nil
}

// deployImageName returns an image reference without its tag or digest.
func deployImageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// clearServerEnv unsets serverconfig.Env's variables for the test, so that
// the flags' defaults are the binary's, not the test runner's.
func clearServerEnv(t *testing.T) {
	t.Helper()
	for _, name := range serverconfig.Env {
		t.Setenv(name, "") // restores the old value after the test
		os.Unsetenv(name)
	}
}

func deploySortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func deploySortedValues(m map[string]string) []string {
	vs := make([]string, 0, len(m))
	for _, v := range m {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

func reportDeployProblems(t *testing.T, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Error(p)
	}
}

// wantDeployProblem fails unless one of problems contains every one of parts.
func wantDeployProblem(t *testing.T, problems []string, parts ...string) {
	t.Helper()
	for _, p := range problems {
		if !slices.ContainsFunc(parts, func(s string) bool { return !strings.Contains(p, s) }) {
			return
		}
	}
	t.Errorf("no problem mentions %q; got:\n  %s", parts, strings.Join(problems, "\n  "))
}

func deployStr(s string) *string { return &s }

func TestDeployServerRunAcceptsGoodCommandLine(t *testing.T) {
	clearServerEnv(t)
	run, problems := checkServerRun(
		[]string{"server", "--services=account", "--nats-url", "nats://nats:4222", "--nats-credentials=/etc/cloister/bus", "--http", "0.0.0.0:8080", "--dev=false"},
		map[string]*string{"REDIS_URL": deployStr("redis://redis:6379"), "CLOISTER_REPLICAS": deployStr("3"), "OTEL_SERVICE_NAME": deployStr("x"), "OTEL_EXPORTER_OTLP_ENDPOINT": nil})
	reportDeployProblems(t, problems)
	reportDeployProblems(t, checkServiceContainer(run, 3))
	if !slices.Equal(run.cfg.Services, []string{"account"}) || run.cfg.Replicas != 3 || run.cfg.RedisURL != "redis://redis:6379" || serverRunHTTPPort(run) != 8080 {
		t.Errorf("read %+v", run.cfg)
	}
}

func TestDeployServerRunRejectsBadCommandLines(t *testing.T) {
	clearServerEnv(t)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]*string
		want []string
	}{
		{"unknown long flag", []string{"server", "--services=account", "--nats-urls=nats://nats:4222"}, nil, []string{"unknown flag --nats-urls"}},
		{"unknown flag with value", []string{"server", "--bogus", "1", "--services=account"}, nil, []string{"unknown flag --bogus"}},
		{"single-dash long flag", []string{"server", "-services=account"}, nil, []string{"unknown flag -services"}},
		{"unknown variable", []string{"server", "--services=account"}, map[string]*string{"CLOISTER_NATS_URL": deployStr("nats://nats:4222")}, []string{"unknown environment variable CLOISTER_NATS_URL"}},
		{"bad variable value", []string{"server", "--services=account"}, map[string]*string{"CLOISTER_REPLICAS": deployStr("three")}, []string{"$CLOISTER_REPLICAS", "three"}},
		{"bad flag value", []string{"server", "--replicas=x"}, nil, []string{"--replicas"}},
		{"unknown service", []string{"server", "--services=acount"}, nil, []string{`unknown service "acount"`}},
		{"too many replicas", []string{"server", "--replicas=7"}, nil, []string{"--replicas must be 1 to 5"}},
		{"bad log level", []string{"server", "--log-level=loud"}, nil, []string{"would refuse to start", "loud"}},
		{"not the server verb", []string{"serve", "--services=account"}, nil, []string{"does not run `cloister server`"}},
		{"stray argument", []string{"server", "account"}, nil, []string{"takes no arguments"}},
		{"converter without master key", []string{"server", "--services=imageconverter"}, nil, []string{"imageconverter", "CLOISTER_MASTER_KEY"}},
		{"simulation without master key", []string{"server", "--services=attestation", "--simulation"}, nil, []string{"attestation", "master key"}},
		{"node listener without certificate", []string{"server", "--services=gateway", "--node-http=0.0.0.0:8443"}, nil, []string{"--node-tls-cert", "--node-tls-key"}},
		{"node certificate without key", []string{"server", "--services=gateway"}, map[string]*string{"CLOISTER_NODE_TLS_CERT": deployStr("/tls/node.crt")}, []string{"set both --node-tls-cert and --node-tls-key"}},
		{"bad node listener address", []string{"server", "--services=gateway", "--node-http=8443", "--node-tls-cert=/c", "--node-tls-key=/k"}, nil, []string{"--node-http", "not host:port"}},
		{"bad self-signed host", []string{"server", "--services=gateway", "--node-http=0.0.0.0:8443", "--node-tls-self-signed=gateway,node_1"}, nil, []string{"--node-tls-self-signed", `"node_1" is neither an IP address nor a host name`}},
		{"no NATS identities", []string{"server", "--services=account"}, nil, []string{"--nats-credentials", "cloister bus init"}},
		{"self-signed key without certificate", []string{"server", "--services=gateway", "--node-http=0.0.0.0:8443", "--node-tls-self-signed=gateway"}, map[string]*string{"CLOISTER_NODE_TLS_KEY": deployStr("/data/k")}, []string{"set both --node-tls-cert and --node-tls-key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, problems := checkServerRun(tc.args, tc.env)
			wantDeployProblem(t, problems, tc.want...)
		})
	}

	t.Run("self-signed node listener", func(t *testing.T) {
		run, problems := checkServerRun([]string{"server", "--services=gateway", "--node-http=0.0.0.0:8443", "--nats-credentials=/bus"},
			map[string]*string{"CLOISTER_NODE_TLS_SELF_SIGNED": deployStr("gateway,localhost,127.0.0.1,::1")})
		reportDeployProblems(t, problems)
		if want := []string{"gateway", "localhost", "127.0.0.1", "::1"}; !slices.Equal(run.cfg.NodeTLSSelfSigned, want) {
			t.Errorf("$CLOISTER_NODE_TLS_SELF_SIGNED read as %q, want %q", run.cfg.NodeTLSSelfSigned, want)
		}
	})

	t.Run("container rules", func(t *testing.T) {
		run, problems := checkServerRun([]string{"server", "--http=127.0.0.1:8080", "--replicas=3", "--master-key-file=/keys/master", "--nats-credentials=/bus"}, nil)
		reportDeployProblems(t, problems)
		got := checkServiceContainer(run, 1)
		wantDeployProblem(t, got, "neither --services nor $CLOISTER_SERVICES")
		wantDeployProblem(t, got, "listens on 127.0.0.1:8080")
		wantDeployProblem(t, got, "3 JetStream replicas with 1 NATS server")
		run, _ = checkServerRun([]string{"server", "-dev", "--services=account,gateway"}, nil)
		got = checkServiceContainer(run, 1)
		wantDeployProblem(t, got, "runs --dev")
		wantDeployProblem(t, got, "one container runs one service")
		// A flag wins over its variable, as in the binary.
		run, _ = checkServerRun([]string{"server", "--services=account", "--http=0.0.0.0:8080"}, map[string]*string{"CLOISTER_SERVICES": deployStr("gateway")})
		if got := checkServiceContainer(run, 1); len(got) != 0 || !slices.Equal(run.cfg.Services, []string{"account"}) {
			t.Fatalf("--services=account over $CLOISTER_SERVICES=gateway runs %q (%v), want account alone", run.cfg.Services, got)
		}
	})
}

// ---------------------------------------------------------------------
// docker-compose.yml

// composeEnv is what a user must set before `docker compose up`: the
// master key (a placeholder here), and, to start the node agent, a join
// token. Nothing else comes from the runner.
var composeEnv = []string{"CLOISTER_MASTER_KEY=cGxhY2Vob2xkZXIgZm9yIHRoZSBjb21wb3NlIHRlc3Q=", "CLOISTER_JOIN_TOKEN=" + composeAgentJoinToken}

// loadCompose loads docker-compose.yml with every profile's services.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadComposeWith(composeEnv, "*")
	if err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}
	return p
}

// loadComposeWith loads docker-compose.yml interpolated with env, with the
// services of the given profiles and of none.
func loadComposeWith(env []string, profiles ...string) (*types.Project, error) {
	root, err := filepath.Abs(deployRoot)
	if err != nil {
		return nil, err
	}
	opts, err := composecli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		composecli.WithName("cloister"),
		composecli.WithWorkingDirectory(root),
		composecli.WithResolvedPaths(true),
		composecli.WithEnv(env), // interpolate with the file's defaults and env, not the test runner's environment
		composecli.WithProfiles(profiles))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// TestDeployComposeNeedsMasterKey: compose refuses to start without the key
// that seals the CAs, rather than running with none.
func TestDeployComposeNeedsMasterKey(t *testing.T) {
	if _, err := loadComposeWith(nil); err == nil || !strings.Contains(err.Error(), "CLOISTER_MASTER_KEY") {
		t.Fatalf("loading docker-compose.yml without CLOISTER_MASTER_KEY = %v, want an error naming it", err)
	}
}

// composeProblems checks a loaded docker-compose.yml (every profile's
// services) against `cloister server`, the node agent (agent) and the
// image that deployments/Dockerfile builds.
func composeProblems(p *types.Project, agent agentCLI) []string {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	root, _ := filepath.Abs(deployRoot)
	dockerfile := filepath.Join(root, "deployments", "Dockerfile")
	df, err := os.ReadFile(dockerfile)
	if err != nil {
		bad("reading deployments/Dockerfile: %v", err)
	}
	ownedDirs := dockerOwnedDirs(string(df))

	// NATS and Redis.
	const natsServers = 1
	nats, ok := p.Services["nats"]
	if !ok {
		bad("compose: no nats service")
	} else {
		problems = append(problems, composeNATSProblems(nats)...)
	}
	if _, ok := p.Services["redis"]; !ok {
		bad("compose: no redis service")
	}
	for _, name := range deploySortedKeys(p.Services) {
		s := p.Services[name]
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			bad("compose service %s: no healthcheck", name)
		}
	}

	// Our containers: `cloister server` ones, and node agents (the same
	// image with /cloister-node-agent as entrypoint).
	servers := map[string]serverRun{}
	var agents []string
	runBy := map[string][]string{}
	for _, name := range deploySortedKeys(p.Services) {
		s := p.Services[name]
		ours := deployImageName(s.Image) == deployImage
		if s.Build != nil {
			df := s.Build.Dockerfile
			if !filepath.IsAbs(df) {
				df = filepath.Join(s.Build.Context, df)
			}
			if filepath.Clean(df) == dockerfile {
				ours = true
				if filepath.Clean(s.Build.Context) != root {
					bad("compose service %s: build context %s is not the repository root (go.work and the modules it replaces)", name, s.Build.Context)
				}
			}
		}
		if !ours {
			if len(s.Ports) > 0 {
				bad("compose service %s publishes ports %v; only the gateway's API, the built-in registry and node agents' local APIs (on loopback) are published", name, s.Ports)
			}
			continue
		}
		where := "compose service " + name
		// A named volume is created from the image's directory at its
		// mount point: one the image lacks, or that root owns, leaves the
		// non-root user unable to write there.
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && !ownedDirs[path.Clean(v.Target)] {
				bad("%s: volume %s is mounted on %s, which deployments/Dockerfile does not create owned by its non-root USER (COPY --chown)", where, v.Source, v.Target)
			}
		}
		if slices.Equal([]string(s.Entrypoint), []string{agentPath}) {
			agents = append(agents, name)
			continue
		}
		if len(s.Entrypoint) > 0 && !slices.Equal([]string(s.Entrypoint), []string{"/cloister"}) {
			bad("%s: entrypoint %q is neither the image's /cloister nor %s", where, s.Entrypoint, agentPath)
		}
		run, ps := checkServerRun(s.Command, s.Environment)
		ps = append(ps, checkServiceContainer(run, natsServers)...)
		for _, p := range ps {
			bad("%s: %s", where, p)
		}
		servers[name] = run
		for _, svc := range run.cfg.Services {
			runBy[svc] = append(runBy[svc], name)
		}
		var mounted []string
		for _, sec := range s.Secrets {
			t := cmp.Or(sec.Target, sec.Source)
			if !path.IsAbs(t) {
				t = path.Join("/run/secrets", t) // compose's default
			}
			mounted = append(mounted, t)
		}
		for _, p := range busSecretProblems(run, mounted) {
			bad("%s: %s", where, p)
		}

		// Health check: `cloister healthcheck` against this container's listener.
		if hc := s.HealthCheck; hc != nil && len(hc.Test) > 0 {
			test := []string(hc.Test)
			if !slices.Contains(test, "/cloister") || !slices.Contains(test, "healthcheck") {
				bad("%s: healthcheck %q does not run /cloister healthcheck", where, test)
			}
			target := serverconfig.ReadyzURL("") // `cloister healthcheck`'s default, $CLOISTER_HTTP being unset
			for i, a := range test {
				if a == "--url" && i+1 < len(test) {
					target = test[i+1]
				} else if v, ok := strings.CutPrefix(a, "--url="); ok {
					target = v
				}
			}
			if u, err := url.Parse(target); err != nil || u.Port() != strconv.Itoa(serverRunHTTPPort(run)) {
				bad("%s: healthcheck checks %s, not the server's --http %s", where, target, run.cfg.HTTP)
			}
		}

		// Dependencies: wait for the NATS (and Redis) it is given.
		for _, u := range []string{run.cfg.NATSURL, run.cfg.RedisURL} {
			if u == "" {
				continue
			}
			host, _, err := deployURLHostPort(u, 0)
			if err != nil {
				bad("%s: %v", where, err)
				continue
			}
			if _, ok := p.Services[host]; !ok {
				bad("%s: connects to %s, which is no compose service", where, u)
				continue
			}
			if dep, ok := s.DependsOn[host]; !ok || dep.Condition != types.ServiceConditionHealthy {
				bad("%s: does not depend on %s with condition service_healthy", where, host)
			}
		}

		// Published ports: the gateway's API, and the built-in registry on
		// the host's loopback under its own port number, so that the
		// converter in this container and the host's Docker give images
		// the same name (127.0.0.1:PORT/...), a registry both reach over
		// plain HTTP without configuration.
		_, regPort, _ := net.SplitHostPort(run.cfg.Registry)
		if run.cfg.Registry != "" {
			if !slices.Contains(run.cfg.Services, "imageconverter") {
				bad("%s: serves the built-in registry (--registry) without the imageconverter, which reaches it only as 127.0.0.1 in its own container", where)
			}
			if !slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool {
				return strconv.Itoa(int(pc.Target)) == regPort && pc.Published == regPort && deployLoopback(pc.HostIP)
			}) {
				bad("%s: does not publish its built-in registry (--registry %s) as 127.0.0.1:%s:%s", where, run.cfg.Registry, regPort, regPort)
			}
		}
		for _, pc := range s.Ports {
			target := strconv.Itoa(int(pc.Target))
			switch {
			case name == deployGateway && pc.Target == uint32(serverRunHTTPPort(run)):
			case run.cfg.Registry != "" && target == regPort && deployLoopback(pc.HostIP):
			default:
				bad("%s publishes port %s:%s:%d; only the gateway's API, the built-in registry and node agents' local APIs (on loopback) are published", where, pc.HostIP, pc.Published, pc.Target)
			}
		}
		if name == deployGateway {
			port := uint32(serverRunHTTPPort(run))
			if !slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == port && pc.Published != "" }) {
				bad("%s: does not publish its --http port %d", where, port)
			}
			// Its API is plain HTTP: other machines reach it through a
			// proxy that ends TLS, not straight from the network.
			for _, pc := range s.Ports {
				if pc.Target == port && !deployLoopback(pc.HostIP) {
					bad("%s: publishes its API (plain HTTP) as %s:%s:%d, on every interface of the host; publish it on 127.0.0.1 as the registry is", where, pc.HostIP, pc.Published, pc.Target)
				}
			}
		}
	}
	for _, svc := range serverconfig.Services {
		switch len(runBy[svc]) {
		case 0:
			bad("compose: no container runs cloister server --services=%s", svc)
		case 1:
		default:
			bad("compose: containers %q all run %s", runBy[svc], svc)
		}
	}
	if !slices.ContainsFunc(deploySortedKeys(servers), func(n string) bool { return servers[n].cfg.Registry != "" }) {
		bad("compose: no container serves the built-in registry with the sample application (--registry)")
	}

	// Node agents.
	if len(agents) == 0 {
		bad("compose: no node agent (entrypoint %s) runs", agentPath)
	}
	for _, name := range agents {
		problems = append(problems, composeAgentProblems(p, name, agent, servers, runBy)...)
	}
	return problems
}

// agentPath is where deployments/Dockerfile puts the node agent.
const agentPath = "/cloister-node-agent"

// composeAgentJoinToken is the join token the compose tests give as
// $CLOISTER_JOIN_TOKEN, for the node agent to enrol with.
const composeAgentJoinToken = "cjt_compose-test"

// composeAgentProblems checks the node agent service name: its flags and
// variables are the agent's, it simulates SGX against an attestation
// service that accepts simulation, it finds the gateway's API and node
// listener on the compose network and trusts the listener's certificate
// from a volume the gateway writes it to, and enclave images in other
// containers reach its local API.
func composeAgentProblems(p *types.Project, name string, agent agentCLI, servers map[string]serverRun, runBy map[string][]string) []string {
	var problems []string
	where := "compose service " + name
	bad := func(format string, a ...any) { problems = append(problems, where+": "+fmt.Sprintf(format, a...)) }
	s := p.Services[name]

	env, known := map[string]string{}, deploySortedValues(agent.flags)
	for _, k := range deploySortedKeys(s.Environment) {
		if !slices.Contains(known, k) {
			bad("unknown environment variable %s: cloister-node-agent reads only %s", k, strings.Join(known, ", "))
			continue
		}
		if v := s.Environment[k]; v != nil {
			env[k] = *v
		}
	}
	args := []string(s.Command)
	for _, a := range args {
		if n, ok := strings.CutPrefix(a, "--"); ok {
			n, _, _ = strings.Cut(n, "=")
			if _, known := agent.flags[n]; !known {
				bad("unknown flag --%s: cloister-node-agent has no such flag", n)
			}
		}
	}
	if err := agent.parse(args, env); err != nil {
		bad("cloister-node-agent would refuse to start: %v", err)
	}
	setting := func(flag string) string {
		for i, a := range args {
			if v, ok := strings.CutPrefix(a, "--"+flag+"="); ok {
				return v
			}
			if a == "--"+flag {
				if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && flag != "simulation" {
					return args[i+1]
				}
				return "true"
			}
		}
		return env[agent.flags[flag]]
	}

	if len(s.Profiles) == 0 {
		bad("runs without a profile, so `docker compose up` starts it before anyone could create its join token")
	}
	if got := setting("join-token"); got != composeAgentJoinToken {
		bad("its join token is %q, not $CLOISTER_JOIN_TOKEN (%q in this test)", got, composeAgentJoinToken)
	}
	if sim, _ := strconv.ParseBool(setting("simulation")); !sim {
		bad("does not run in simulation mode (--simulation): without SGX hardware it cannot attest enclaves")
	} else if !slices.ContainsFunc(runBy["attestation"], func(n string) bool { return servers[n].cfg.Simulation }) {
		bad("simulates SGX, but the attestation service does not accept simulated evidence (--simulation)")
	}

	// The gateway's public API, for enrolment.
	if len(runBy[deployGateway]) != 1 {
		return append(problems, where+": cannot check its gateway: no single container runs the gateway")
	}
	gwName := runBy[deployGateway][0]
	gw, gwSvc := servers[gwName].cfg, p.Services[gwName]
	if u, err := url.Parse(setting("server")); err != nil || u.Scheme != "http" || u.Hostname() != gwName || u.Port() != strconv.Itoa(serverRunHTTPPort(servers[gwName])) {
		bad("--server %q is not the gateway's API, http://%s:%d", setting("server"), gwName, serverRunHTTPPort(servers[gwName]))
	}
	if dep, ok := s.DependsOn[gwName]; !ok || dep.Condition != types.ServiceConditionHealthy {
		bad("does not depend on %s with condition service_healthy", gwName)
	}

	// The gateway's node listener, and the certificate to trust it with.
	_, nodePort, _ := net.SplitHostPort(gw.NodeHTTP)
	u, err := url.Parse(setting("node-server"))
	switch {
	case gw.NodeHTTP == "":
		bad("the gateway serves no node listener (--node-http)")
	case err != nil || u.Scheme != "https" || u.Hostname() != gwName || u.Port() != nodePort:
		bad("--node-server %q is not the gateway's node listener, https://%s:%s", setting("node-server"), gwName, nodePort)
	case len(gw.NodeTLSSelfSigned) > 0 && !slices.Contains(gw.NodeTLSSelfSigned, u.Hostname()):
		bad("dials the node listener as %s, which its self-signed certificate does not name (--node-tls-self-signed %s)", u.Hostname(), strings.Join(gw.NodeTLSSelfSigned, ","))
	}
	if len(gw.NodeTLSSelfSigned) > 0 {
		certPath, keyPath := gw.NodeTLSCert, gw.NodeTLSKey
		if certPath == "" {
			certPath, keyPath = path.Join(gw.DataDir, "node-tls.crt"), path.Join(gw.DataDir, "node-tls.key")
		}
		ca := setting("server-ca")
		agentMount, caRel, agentOK := deployVolumeAt(s, ca)
		gwMount, certRel, gwOK := deployVolumeAt(gwSvc, certPath)
		switch {
		case ca == "":
			bad("sets no --server-ca, so it trusts only the system roots, not the gateway's self-signed certificate")
		case !gwOK:
			bad("the gateway keeps its self-signed certificate %s on no named volume to share with node agents", certPath)
		case !agentOK || agentMount.Source != gwMount.Source || caRel != certRel:
			bad("--server-ca %s is not the gateway's certificate %s (volume %s)", ca, certPath, gwMount.Source)
		case !agentMount.ReadOnly:
			bad("mounts volume %s, which holds the gateway's certificate, read-write", agentMount.Source)
		}
		if keyMount, _, ok := deployVolumeAt(gwSvc, keyPath); !ok {
			bad("the gateway keeps its node listener's key %s on no named volume: a new container makes a new certificate, which node agents do not trust", keyPath)
		} else if slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Source == keyMount.Source }) {
			bad("mounts volume %s, which holds the gateway's private key %s", keyMount.Source, keyPath)
		}
	}

	// Its identity survives a new container; its local API is for
	// enclave containers on the compose network, and published on the
	// host only on loopback (it is unauthenticated).
	if _, _, ok := deployVolumeAt(s, setting("data-dir")); !ok {
		bad("keeps its identity (--data-dir %q) on no named volume: a new container would need a new join token", setting("data-dir"))
	}
	host, port, err := net.SplitHostPort(setting("listen"))
	if err != nil {
		bad("--listen %q is not host:port", setting("listen"))
	} else if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		bad("listens on %s, which enclave containers (NODE_AGENT_BASE_URL=http://%s:%s/v1/) cannot reach", setting("listen"), name, port)
	}
	for _, pc := range s.Ports {
		if strconv.Itoa(int(pc.Target)) != port || !deployLoopback(pc.HostIP) {
			bad("publishes port %s:%s:%d; only its local API, and only on loopback", pc.HostIP, pc.Published, pc.Target)
		}
	}
	if hc := s.HealthCheck; hc != nil && len(hc.Test) > 0 {
		test := strings.Join(hc.Test, " ")
		if !strings.Contains(test, ":"+port+"/v1/health") {
			bad("healthcheck %q does not check the local API's /v1/health on port %s", test, port)
		}
	}
	return problems
}

// deployVolumeAt returns the named volume of s mounted at or above file,
// and file's path inside it.
func deployVolumeAt(s types.ServiceConfig, file string) (types.ServiceVolumeConfig, string, bool) {
	if file == "" {
		return types.ServiceVolumeConfig{}, "", false
	}
	file = path.Clean(file)
	var best types.ServiceVolumeConfig
	rel, found := "", false
	for _, v := range s.Volumes {
		t := path.Clean(v.Target)
		r, ok := strings.CutPrefix(file, t)
		if v.Type != types.VolumeTypeVolume || !ok || r != "" && !strings.HasPrefix(r, "/") && t != "/" {
			continue
		}
		if !found || len(t) > len(path.Clean(best.Target)) {
			best, rel, found = v, strings.TrimPrefix(r, "/"), true
		}
	}
	return best, rel, found
}

// deployLoopback reports whether a published port's host IP is loopback.
func deployLoopback(hostIP string) bool {
	ip := net.ParseIP(hostIP)
	return hostIP == "localhost" || ip != nil && ip.IsLoopback()
}

// agentCLI is what the compose checks know of cloister-node-agent: its
// flags with their environment variables, read from its --help, and a run
// of the real binary that parses a command line and environment.
type agentCLI struct {
	flags map[string]string // flag → its variable
	// parse returns nil when the agent accepts args and env (it is run
	// with --version, so it stops once they are parsed).
	parse func(args []string, env map[string]string) error
}

// loadAgentCLI builds cmd/cloister-node-agent and reads its --help.
func loadAgentCLI(t *testing.T) agentCLI {
	t.Helper()
	bin := buildAgent(t)
	cmd := exec.Command(bin, "--help")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cloister-node-agent --help: %v", err)
	}
	a := agentCLI{flags: map[string]string{}}
	for _, m := range regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)\b.*\[\$([A-Z0-9_]+)\]`).FindAllStringSubmatch(string(out), -1) {
		a.flags[m[1]] = m[2]
	}
	if a.flags["join-token"] != "CLOISTER_AGENT_JOIN_TOKEN" || a.flags["simulation"] == "" {
		t.Fatalf("read the flags %v from cloister-node-agent --help; the parser missed some:\n%s", a.flags, out)
	}
	a.parse = func(args []string, env map[string]string) error {
		cmd := exec.Command(bin, append([]string{"--version"}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	return a
}

// kSecretFiles are the paths of the files container c of pod spec ps
// mounts from the Secret secret: those its volumes name, or each key
// when they name none (unknown then: the Secret is made at install time,
// so a mount of it all counts as holding every key).
func kSecretFiles(ps kPodSpec, c kContainer, secret string) []string {
	var files []string
	for _, vm := range c.VolumeMounts {
		for _, v := range ps.Volumes {
			if v.Name != vm.Name || v.Secret == nil || v.Secret.SecretName != secret {
				continue
			}
			if len(v.Secret.Items) == 0 {
				files = append(files, path.Join(vm.MountPath, "*.nk"), path.Join(vm.MountPath, "assertion*"))
			}
			for _, it := range v.Secret.Items {
				files = append(files, path.Join(vm.MountPath, it.Path))
			}
		}
	}
	return files
}

// busSecretProblems checks that a server container holds, in its
// --nats-credentials directory, the NATS identity and assertion key of
// each service it runs and nothing of another's (mounted: the paths of
// the files mounted into it).
func busSecretProblems(run serverRun, mounted []string) []string {
	var problems []string
	dir := run.cfg.NATSCredentials
	want := map[string]bool{}
	for _, svc := range run.cfg.Services {
		want[path.Join(dir, busauth.SeedFile(svc))] = true
		if svc == busauth.Gateway {
			want[path.Join(dir, busauth.AssertionSecretFile)] = true
		} else {
			want[path.Join(dir, busauth.AssertionKeyFile(svc))] = true
		}
	}
	for _, m := range mounted {
		if (strings.HasSuffix(m, ".nk") || strings.HasPrefix(path.Base(m), "assertion")) && !want[m] {
			problems = append(problems, fmt.Sprintf("holds %s, a bus credential of a service it does not run", m))
		}
		delete(want, m)
	}
	for _, m := range deploySortedKeys(want) {
		problems = append(problems, fmt.Sprintf("runs a service whose bus credential %s it does not hold (--nats-credentials %s)", m, dir))
	}
	return problems
}

// composeNATSProblems checks compose's NATS server: its configuration
// file, read as nats-server reads it with the authorization `cloister bus
// init` makes, enables JetStream on a named volume and lets in Cloister's
// identities alone.
func composeNATSProblems(nats types.ServiceConfig) []string {
	var problems []string
	bad := func(format string, a ...any) {
		problems = append(problems, "compose service nats: "+fmt.Sprintf(format, a...))
	}
	cmd := []string(nats.Command)
	confPath := ""
	for i, a := range cmd {
		if (a == "-c" || a == "--config") && i+1 < len(cmd) {
			confPath = cmd[i+1]
		}
	}
	if confPath == "" {
		bad("command %q names no configuration file (-c), which must include the NATS authorization", cmd)
		return problems
	}
	i := slices.IndexFunc(nats.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Type == types.VolumeTypeBind && v.Target == confPath })
	if i < 0 {
		bad("its configuration %s is not mounted from a file of this repository", confPath)
		return problems
	}
	conf, err := os.ReadFile(nats.Volumes[i].Source)
	if err != nil {
		bad("reading its configuration: %v", err)
		return problems
	}
	authTarget := path.Join(path.Dir(confPath), "auth", busauth.AuthFile)
	if !slices.ContainsFunc(nats.Secrets, func(s types.ServiceSecretConfig) bool { return s.Target == authTarget }) {
		bad("no secret is mounted at %s, where its configuration includes the authorization `cloister bus init` writes", authTarget)
	}
	dir, err := os.MkdirTemp("", "compose-nats")
	if err != nil {
		bad("%v", err)
		return problems
	}
	defer os.RemoveAll(dir)
	set, err := busauth.NewSet()
	if err == nil {
		err = set.Write(filepath.Join(dir, "auth"))
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "nats.conf"), conf, 0o600)
	}
	if err != nil {
		bad("%v", err)
		return problems
	}
	opts, err := natsserver.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		bad("nats-server rejects %s: %v", nats.Volumes[i].Source, err)
		return problems
	}
	if !opts.JetStream {
		bad("%s does not enable JetStream", confPath)
	}
	if !slices.ContainsFunc(nats.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == opts.StoreDir && v.Source != ""
	}) {
		bad("JetStream store %q is not on a named volume", opts.StoreDir)
	}
	if len(opts.Nkeys) != len(busauth.Roles) || len(opts.Users) != 0 || opts.NoAuthUser != "" {
		bad("%s lets in %d NKey users and %d others; want only Cloister's %d identities", confPath, len(opts.Nkeys), len(opts.Users), len(busauth.Roles))
	}
	return problems
}

func TestDeployCompose(t *testing.T) {
	clearServerEnv(t)
	reportDeployProblems(t, composeProblems(loadCompose(t), loadAgentCLI(t)))

	// `docker compose up` needs no join token, and starts no node agent
	// (it could not enrol before anyone created a token).
	p, err := loadComposeWith(composeEnv[:1])
	if err != nil {
		t.Fatalf("loading docker-compose.yml without $CLOISTER_JOIN_TOKEN: %v", err)
	}
	for name, s := range p.Services {
		if slices.Equal([]string(s.Entrypoint), []string{agentPath}) {
			t.Errorf("compose service %s, a node agent, starts with `docker compose up`; give it a profile", name)
		}
	}
}

func TestDeployComposeChecksCanFail(t *testing.T) {
	clearServerEnv(t)
	p := loadCompose(t)
	edit := func(name string, f func(*types.ServiceConfig)) {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("compose has no %s service", name)
		}
		f(&s)
		p.Services[name] = s
	}
	edit("account", func(s *types.ServiceConfig) {
		s.Command = append(s.Command, "--nats-uri=nats://nats:4222")
		s.Environment["CLOISTER_MASTERKEY"] = deployStr("x")
		s.HealthCheck = nil
		s.Ports = []types.ServicePortConfig{{Target: 8080, Published: "8081"}}
		delete(s.DependsOn, "nats")
	})
	edit("gateway", func(s *types.ServiceConfig) {
		s.Command = types.ShellCommand{"server"}
		s.Environment["CLOISTER_HTTP"] = deployStr("127.0.0.1:8080")
	})
	edit("nats", func(s *types.ServiceConfig) {
		s.Volumes = slices.DeleteFunc(slices.Clone(s.Volumes), func(v types.ServiceVolumeConfig) bool { return v.Type == types.VolumeTypeVolume })
		s.Secrets = nil
	})
	agent := loadAgentCLI(t)
	problems := composeProblems(p, agent)
	wantDeployProblem(t, problems, "compose service account", "unknown flag --nats-uri")
	wantDeployProblem(t, problems, "compose service account", "unknown environment variable CLOISTER_MASTERKEY")
	wantDeployProblem(t, problems, "compose service account: no healthcheck")
	wantDeployProblem(t, problems, "compose service account publishes port", ":8081:8080")
	wantDeployProblem(t, problems, "compose service account: does not depend on nats")
	wantDeployProblem(t, problems, "compose service gateway", "runs every service")
	wantDeployProblem(t, problems, "compose service gateway", "listens on 127.0.0.1:8080")
	wantDeployProblem(t, problems, "compose service nats", "no secret is mounted at /etc/nats/auth/"+busauth.AuthFile)
	wantDeployProblem(t, problems, "compose service nats", "not on a named volume")

	edit("gateway", func(s *types.ServiceConfig) { s.Command = types.ShellCommand{"server", "--services=account"} })
	problems = composeProblems(p, agent)
	wantDeployProblem(t, problems, "no container runs cloister server --services=gateway")

	// The registry, simulation and the node listener.
	p = loadCompose(t)
	edit("imageconverter", func(s *types.ServiceConfig) {
		s.Ports = []types.ServicePortConfig{{Target: 5000, Published: "5000"}}
	})
	edit("attestation", func(s *types.ServiceConfig) { delete(s.Environment, "CLOISTER_SIMULATION") })
	edit("gateway", func(s *types.ServiceConfig) {
		s.Environment["CLOISTER_NODE_TLS_SELF_SIGNED"] = deployStr("localhost")
		s.Environment["CLOISTER_NODE_TLS_KEY"] = deployStr("/node-tls/node-tls.key")
		s.Ports = []types.ServicePortConfig{{Target: 8080, Published: "8080"}}
	})
	problems = composeProblems(p, agent)
	wantDeployProblem(t, problems, "compose service gateway: publishes its API (plain HTTP) as :8080:8080, on every interface")
	wantDeployProblem(t, problems, "compose service imageconverter: does not publish its built-in registry", "127.0.0.1:5000:5000")
	wantDeployProblem(t, problems, "compose service imageconverter publishes port", ":5000:5000")
	wantDeployProblem(t, problems, "compose service node-agent: simulates SGX, but the attestation service does not accept simulated evidence")
	wantDeployProblem(t, problems, "compose service node-agent: dials the node listener as gateway, which its self-signed certificate does not name")
	wantDeployProblem(t, problems, "compose service node-agent: mounts volume", "which holds the gateway's private key /node-tls/node-tls.key")

	p = loadCompose(t)
	edit("imageconverter", func(s *types.ServiceConfig) { delete(s.Environment, "CLOISTER_REGISTRY") })
	edit("gateway", func(s *types.ServiceConfig) {
		s.Volumes = slices.DeleteFunc(slices.Clone(s.Volumes), func(v types.ServiceVolumeConfig) bool { return v.Target == "/data" })
		s.Volumes = append(s.Volumes, types.ServiceVolumeConfig{Type: types.VolumeTypeVolume, Source: "gateway-data", Target: "/var/lib/gateway"})
	})
	problems = composeProblems(p, agent)
	wantDeployProblem(t, problems, "compose: no container serves the built-in registry")
	wantDeployProblem(t, problems, "compose service node-agent: the gateway keeps its node listener's key /data/node-tls.key on no named volume")
	wantDeployProblem(t, problems, "compose service gateway: volume gateway-data is mounted on /var/lib/gateway, which deployments/Dockerfile does not create")

	// The node agent's own settings.
	p = loadCompose(t)
	edit("node-agent", func(s *types.ServiceConfig) {
		s.Profiles = nil
		s.Command = types.ShellCommand{"--heartbeat=10s"}
		s.Environment["CLOISTER_AGENT_SIMULATION"] = deployStr("yes")
		s.Environment["CLOISTER_AGENT_JOINTOKEN"] = deployStr("cjt_x")
		s.Environment["CLOISTER_AGENT_NODE_SERVER"] = deployStr("https://127.0.0.1:8443")
		s.Environment["CLOISTER_AGENT_LISTEN"] = deployStr("127.0.0.1:9092")
		s.Environment["CLOISTER_AGENT_DATA_DIR"] = deployStr("/home/nonroot/agent")
		delete(s.Environment, "CLOISTER_AGENT_JOIN_TOKEN")
		for i := range s.Volumes {
			s.Volumes[i].ReadOnly = false
		}
		s.Ports = []types.ServicePortConfig{{Target: 9092, Published: "9092"}}
	})
	problems = composeProblems(p, agent)
	wantDeployProblem(t, problems, "compose service node-agent: runs without a profile")
	wantDeployProblem(t, problems, "compose service node-agent: unknown flag --heartbeat")
	wantDeployProblem(t, problems, "compose service node-agent: unknown environment variable CLOISTER_AGENT_JOINTOKEN")
	wantDeployProblem(t, problems, "compose service node-agent: cloister-node-agent would refuse to start", "unknown flag: --heartbeat")
	wantDeployProblem(t, problems, "compose service node-agent: does not run in simulation mode")
	wantDeployProblem(t, problems, "compose service node-agent: its join token is \"\", not $CLOISTER_JOIN_TOKEN")
	wantDeployProblem(t, problems, "compose service node-agent: --node-server \"https://127.0.0.1:8443\" is not the gateway's node listener, https://gateway:8443")
	wantDeployProblem(t, problems, "compose service node-agent: listens on 127.0.0.1:9092, which enclave containers")
	wantDeployProblem(t, problems, "compose service node-agent: keeps its identity", "on no named volume")
	wantDeployProblem(t, problems, "compose service node-agent: mounts volume node-tls, which holds the gateway's certificate, read-write")
	wantDeployProblem(t, problems, "compose service node-agent: publishes port :9092:9092")

	p = loadCompose(t)
	edit("node-agent", func(s *types.ServiceConfig) {
		s.Environment["CLOISTER_AGENT_SERVER"] = deployStr("http://gateway:8443")
		s.Environment["CLOISTER_AGENT_SERVER_CA"] = deployStr("/data/ca.pem")
		s.Environment["CLOISTER_AGENT_HEARTBEAT_EVERY"] = deployStr("often")
		delete(s.DependsOn, "gateway")
	})
	problems = composeProblems(p, agent)
	wantDeployProblem(t, problems, "compose service node-agent: cloister-node-agent would refuse to start", "$CLOISTER_AGENT_HEARTBEAT_EVERY", "often")
	wantDeployProblem(t, problems, "compose service node-agent: --server \"http://gateway:8443\" is not the gateway's API, http://gateway:8080")
	wantDeployProblem(t, problems, "compose service node-agent: --server-ca /data/ca.pem is not the gateway's certificate /node-tls/node-tls.crt")
	wantDeployProblem(t, problems, "compose service node-agent: does not depend on gateway")
	edit("imageconverter", func(s *types.ServiceConfig) {
		s.Secrets = append(s.Secrets, types.ServiceSecretConfig{Source: busauth.AssertionSecretFile, Target: "/run/secrets/" + busauth.AssertionSecretFile})
	})
	wantDeployProblem(t, composeProblems(p, agent), "compose service imageconverter", "holds /run/secrets/assertion.key, a bus credential of a service it does not run")
	delete(p.Services, "node-agent")
	wantDeployProblem(t, composeProblems(p, agent), "compose: no node agent")
}

// ---------------------------------------------------------------------
// deployments/k8s

type kMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type kObject struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   kMeta             `yaml:"metadata"`
	Spec       kSpec             `yaml:"spec"`
	Data       map[string]string `yaml:"data"`
	file       string
}

type kSpec struct {
	// Deployment, StatefulSet
	Replicas    *int   `yaml:"replicas"`
	ServiceName string `yaml:"serviceName"`
	// Service: labels; Deployment, StatefulSet, PodDisruptionBudget: {matchLabels: labels}.
	Selector map[string]any `yaml:"selector"`
	Template struct {
		Metadata kMeta    `yaml:"metadata"`
		Spec     kPodSpec `yaml:"spec"`
	} `yaml:"template"`
	VolumeClaimTemplates []kClaimTemplate `yaml:"volumeClaimTemplates"`
	// Service
	ClusterIP string         `yaml:"clusterIP"`
	Ports     []kServicePort `yaml:"ports"`
}

type kClaimTemplate struct {
	Metadata kMeta `yaml:"metadata"`
}

type kContainerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
}

type kServicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort any    `yaml:"targetPort"`
}

type kPodSpec struct {
	TerminationGracePeriodSeconds *int              `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               *kSecurityContext `yaml:"securityContext"`
	Containers                    []kContainer      `yaml:"containers"`
	InitContainers                []kContainer      `yaml:"initContainers"`
	Volumes                       []kVolume         `yaml:"volumes"`
}

type kVolume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
		// Items maps the Secret's keys to file paths; without them,
		// each key is a file of its own name.
		Items []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"secret"`
}

type kSecurityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
}

type kContainer struct {
	Name    string    `yaml:"name"`
	Image   string    `yaml:"image"`
	Command []string  `yaml:"command"`
	Args    []string  `yaml:"args"`
	Env     []kEnvVar `yaml:"env"`
	EnvFrom []struct {
		Prefix       string `yaml:"prefix"`
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports     []kContainerPort `yaml:"ports"`
	Lifecycle *struct {
		PreStop *kProbe `yaml:"preStop"` // its exec
	} `yaml:"lifecycle"`
	ReadinessProbe  *kProbe           `yaml:"readinessProbe"`
	LivenessProbe   *kProbe           `yaml:"livenessProbe"`
	SecurityContext *kSecurityContext `yaml:"securityContext"`
	Resources       struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type kEnvVar struct {
	Name      string  `yaml:"name"`
	Value     *string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type kProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	TCPSocket *struct {
		Port any `yaml:"port"`
	} `yaml:"tcpSocket"`
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	GRPC *struct {
		Port int `yaml:"port"`
	} `yaml:"grpc"`
}

type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Namespace  string   `yaml:"namespace"`
	Resources  []string `yaml:"resources"`
	Images     []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

type kubeManifests struct {
	dir     string
	kust    kustomization
	files   []string // every YAML file of dir but kustomization.yaml
	objects []*kObject
}

func loadKube(t *testing.T) *kubeManifests {
	t.Helper()
	m := &kubeManifests{dir: filepath.Join(deployRoot, "deployments", "k8s")}
	b, err := os.ReadFile(filepath.Join(m.dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &m.kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || (!strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".yml")) || name == "kustomization.yaml" {
			continue
		}
		m.files = append(m.files, name)
		f, err := os.Open(filepath.Join(m.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(f)
		for i := 1; ; i++ {
			o := &kObject{file: name}
			err := dec.Decode(o)
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s, document %d: %v", name, i, err)
			}
			if o.Kind == "" && o.Metadata.Name == "" {
				continue // an empty document
			}
			m.objects = append(m.objects, o)
		}
		f.Close()
	}
	return m
}

func (m *kubeManifests) get(kind, name string) *kObject {
	for _, o := range m.objects {
		if o.Kind == kind && o.Metadata.Name == name {
			return o
		}
	}
	return nil
}

func (m *kubeManifests) workloads() []*kObject {
	var ws []*kObject
	for _, o := range m.objects {
		if o.Kind == "Deployment" || o.Kind == "StatefulSet" {
			ws = append(ws, o)
		}
	}
	return ws
}

// matchLabels returns a Service's selector, or the matchLabels of other kinds.
func (o *kObject) matchLabels() map[string]string {
	sel := o.Spec.Selector
	if o.Kind != "Service" {
		sel, _ = sel["matchLabels"].(map[string]any)
	}
	out := map[string]string{}
	for k, v := range sel {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func kLabelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (o *kObject) replicas() int {
	if o.Spec.Replicas == nil {
		return 1
	}
	return *o.Spec.Replicas
}

// deployImage reports whether ref is the image of deployments/Dockerfile,
// under its own name or the one the kustomization's images: gives it.
func (m *kubeManifests) isOurImage(ref string) bool {
	name := deployImageName(ref)
	if name == deployImage {
		return true
	}
	for _, im := range m.kust.Images {
		if im.Name == deployImage && im.NewName != "" && name == deployImageName(im.NewName) {
			return true
		}
	}
	return false
}

// containerPort resolves a probe's or Service's port (number or name).
func kContainerPortOf(c kContainer, port any) (int, bool) {
	switch p := port.(type) {
	case int:
		return p, true
	case string:
		for _, cp := range c.Ports {
			if cp.Name == p {
				return cp.ContainerPort, true
			}
		}
		if n, err := strconv.Atoi(p); err == nil {
			return n, true
		}
	}
	return 0, false
}

func kProbePort(c kContainer, p *kProbe) (int, bool) {
	switch {
	case p.HTTPGet != nil:
		return kContainerPortOf(c, p.HTTPGet.Port)
	case p.TCPSocket != nil:
		return kContainerPortOf(c, p.TCPSocket.Port)
	case p.GRPC != nil:
		return p.GRPC.Port, true
	}
	return 0, true // exec
}

// containerEnv is a container's environment: its envFrom ConfigMaps, then
// env. Values set at run time (fieldRef, Secrets) are nil.
func (m *kubeManifests) containerEnv(c kContainer) (map[string]*string, []string) {
	var problems []string
	env := map[string]*string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm := m.get("ConfigMap", ef.ConfigMapRef.Name)
			if cm == nil {
				problems = append(problems, fmt.Sprintf("envFrom names ConfigMap %s, which is not in the manifests", ef.ConfigMapRef.Name))
				continue
			}
			for k, v := range cm.Data {
				env[ef.Prefix+k] = deployStr(v)
			}
		case ef.SecretRef != nil:
			problems = append(problems, fmt.Sprintf("envFrom Secret %s: its variable names cannot be checked; list them under env", ef.SecretRef.Name))
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env, problems
}

// kubeProblems checks the manifests of deployments/k8s. natsServers is
// the size of the NATS cluster, found by natsProblems.
func kubeProblems(m *kubeManifests, natsServers int) []string {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	// kustomization.yaml lists every manifest, and only existing ones.
	if m.kust.Kind != "Kustomization" {
		bad("kustomization.yaml: kind %q is not Kustomization", m.kust.Kind)
	}
	for _, r := range m.kust.Resources {
		if _, err := os.Stat(filepath.Join(m.dir, r)); err != nil {
			bad("kustomization.yaml lists resource %s, which does not exist", r)
		}
	}
	for _, f := range m.files {
		if !slices.Contains(m.kust.Resources, f) {
			bad("kustomization.yaml does not list %s", f)
		}
	}
	for i, r := range m.kust.Resources {
		if slices.Contains(m.kust.Resources[:i], r) {
			bad("kustomization.yaml lists %s twice", r)
		}
	}
	if m.kust.Namespace == "" {
		bad("kustomization.yaml sets no namespace")
	} else if m.get("Namespace", m.kust.Namespace) == nil {
		bad("no Namespace %s in the manifests", m.kust.Namespace)
	}

	seen := map[string]string{}
	for _, o := range m.objects {
		where := fmt.Sprintf("%s: %s %s", o.file, o.Kind, o.Metadata.Name)
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			bad("%s: apiVersion, kind or metadata.name missing", where)
		}
		if ns := o.Metadata.Namespace; ns != "" && ns != m.kust.Namespace {
			bad("%s: namespace %s is not the kustomization's %s", where, ns, m.kust.Namespace)
		}
		key := o.Kind + "/" + o.Metadata.Name
		if f, dup := seen[key]; dup {
			bad("%s: also defined in %s", where, f)
		}
		seen[key] = o.file
	}

	// serverconfig.Services select a workload, on ports its containers have.
	for _, o := range m.objects {
		if o.Kind != "Service" {
			continue
		}
		where := fmt.Sprintf("%s: Service %s", o.file, o.Metadata.Name)
		var target *kObject
		for _, w := range m.workloads() {
			if kLabelsMatch(o.matchLabels(), w.Spec.Template.Metadata.Labels) {
				target = w
			}
		}
		if target == nil {
			bad("%s: selector %v matches no Deployment or StatefulSet", where, o.matchLabels())
			continue
		}
		for _, sp := range o.Spec.Ports {
			tp := sp.TargetPort
			if tp == nil {
				tp = sp.Port
			}
			if !slices.ContainsFunc(target.Spec.Template.Spec.Containers, func(c kContainer) bool {
				n, ok := kContainerPortOf(c, tp)
				return ok && slices.ContainsFunc(c.Ports, func(cp kContainerPort) bool { return cp.ContainerPort == n })
			}) {
				bad("%s: port %s targets %v, which no container of %s %s declares", where, sp.Name, tp, target.Kind, target.Metadata.Name)
			}
		}
	}

	// Every workload: selector, probes, security context, resources, references.
	runBy := map[string][]string{}
	for _, w := range m.workloads() {
		ps := w.Spec.Template.Spec
		if !kLabelsMatch(w.matchLabels(), w.Spec.Template.Metadata.Labels) {
			bad("%s: %s %s: selector %v does not match its pod labels %v", w.file, w.Kind, w.Metadata.Name, w.matchLabels(), w.Spec.Template.Metadata.Labels)
		}
		volumes := map[string]bool{}
		for _, v := range ps.Volumes {
			volumes[v.Name] = true
			if v.ConfigMap != nil && m.get("ConfigMap", v.ConfigMap.Name) == nil {
				bad("%s: %s %s: volume %s names ConfigMap %s, which is not in the manifests", w.file, w.Kind, w.Metadata.Name, v.Name, v.ConfigMap.Name)
			}
		}
		for _, vct := range w.Spec.VolumeClaimTemplates {
			volumes[vct.Metadata.Name] = true
		}
		if len(ps.Containers) == 0 {
			bad("%s: %s %s has no containers", w.file, w.Kind, w.Metadata.Name)
		}
		for i, c := range slices.Concat(ps.InitContainers, ps.Containers) {
			isInit := i < len(ps.InitContainers)
			where := fmt.Sprintf("%s: %s %s, container %s", w.file, w.Kind, w.Metadata.Name, c.Name)
			for _, vm := range c.VolumeMounts {
				if !volumes[vm.Name] {
					bad("%s: mounts volume %s, which the pod does not have", where, vm.Name)
				}
			}
			nonRoot := ps.SecurityContext != nil && ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot
			if sc := c.SecurityContext; sc != nil && sc.RunAsNonRoot != nil {
				nonRoot = *sc.RunAsNonRoot
			}
			if !nonRoot {
				bad("%s: runAsNonRoot is not true", where)
			}
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				bad("%s: allowPrivilegeEscalation is not false", where)
			}
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				bad("%s: readOnlyRootFilesystem is not true", where)
			}
			for _, r := range []string{"cpu", "memory"} {
				if c.Resources.Requests[r] == "" {
					bad("%s: no %s request", where, r)
				}
			}
			if c.Resources.Limits["memory"] == "" {
				bad("%s: no memory limit", where)
			}
			if isInit {
				continue // init containers have no probes
			}
			for _, p := range []struct {
				kind  string
				probe *kProbe
			}{{"readiness", c.ReadinessProbe}, {"liveness", c.LivenessProbe}} {
				if p.probe == nil {
					bad("%s: no %s probe", where, p.kind)
					continue
				}
				if _, ok := kProbePort(c, p.probe); !ok {
					bad("%s: %s probe's port is not one of the container's ports", where, p.kind)
				}
			}

			if !m.isOurImage(c.Image) {
				continue
			}
			// A Cloister service container.
			if len(c.Command) > 0 && !slices.Equal(c.Command, []string{"/cloister"}) {
				bad("%s: command %q replaces the image's /cloister entrypoint", where, c.Command)
			}
			env, eps := m.containerEnv(c)
			run, sps := checkServerRun(c.Args, env)
			for _, p := range slices.Concat(eps, sps, checkServiceContainer(run, natsServers), busSecretProblems(run, kSecretFiles(ps, c, deployBusSecret))) {
				bad("%s: %s", where, p)
			}
			for _, svc := range run.cfg.Services {
				runBy[svc] = append(runBy[svc], w.Metadata.Name)
			}
			if w.Kind != "Deployment" {
				bad("%s: a service runs as a %s, not a Deployment", where, w.Kind)
			}
			port := serverRunHTTPPort(run)
			for _, p := range []struct {
				kind, path string
				probe      *kProbe
			}{{"readiness", "/readyz", c.ReadinessProbe}, {"liveness", "/healthz", c.LivenessProbe}} {
				if p.probe == nil {
					continue
				}
				if p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path {
					bad("%s: %s probe is not GET %s", where, p.kind, p.path)
				} else if n, _ := kProbePort(c, p.probe); n != port {
					bad("%s: %s probe checks port %d, but the server listens on %s", where, p.kind, n, run.cfg.HTTP)
				}
			}
			// NATS_URL and REDIS_URL name serverconfig.Services with those ports.
			for _, d := range []struct {
				url  string
				port int
			}{{run.cfg.NATSURL, 4222}, {run.cfg.RedisURL, 6379}} {
				if d.url == "" {
					continue
				}
				host, port, err := deployURLHostPort(d.url, d.port)
				if err != nil {
					bad("%s: %v", where, err)
					continue
				}
				svcName, _, _ := strings.Cut(host, ".")
				s := m.get("Service", svcName)
				if s == nil {
					bad("%s: connects to %s, but there is no Service %s", where, d.url, svcName)
				} else if !slices.ContainsFunc(s.Spec.Ports, func(sp kServicePort) bool { return sp.Port == port }) {
					bad("%s: connects to %s, but Service %s has no port %d", where, d.url, svcName, port)
				}
			}
			if w.Metadata.Name == deployGateway && w.replicas() < 2 {
				bad("%s: the gateway runs %d replica(s); it needs at least 2", where, w.replicas())
			}
			if slices.Contains(run.cfg.Services, "gateway") {
				for _, p := range kubeNodeListenerProblems(m, w, c, run) {
					bad("%s: %s", where, p)
				}
			}
		}
	}
	for _, svc := range serverconfig.Services {
		switch ws := runBy[svc]; len(ws) {
		case 0:
			bad("k8s: no Deployment runs cloister server --services=%s", svc)
		case 1:
			if d := m.get("Deployment", svc); d == nil || ws[0] != svc {
				bad("k8s: service %s runs in Deployment %s; name it %s", svc, ws[0], svc)
			}
			if m.get("Service", svc) == nil {
				bad("k8s: no Service %s for the %s Deployment", svc, svc)
			}
		default:
			bad("k8s: Deployments %q all run %s", ws, svc)
		}
	}
	return problems
}

// kubeNodeListenerProblems checks the gateway's node listener, where node
// agents enrol and send heartbeats over mutual TLS: it listens beyond
// loopback, on a port the container declares and a Service exposes, with
// the server certificate and key of one kubernetes.io/tls Secret mounted
// read-only. Every replica must present the certificate the agents trust,
// so none makes its own (--node-tls-self-signed).
func kubeNodeListenerProblems(m *kubeManifests, w *kObject, c kContainer, run serverRun) []string {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	cfg := run.cfg
	if cfg.NodeHTTP == "" {
		return []string{fmt.Sprintf("serves no node listener (set $%s, e.g. 0.0.0.0:8443): node agents can neither enrol nor send heartbeats",
			serverconfig.Env["node-http"])}
	}
	host, portStr, err := net.SplitHostPort(cfg.NodeHTTP)
	if err != nil {
		return nil // checkServerRun reports it
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		bad("serves the node listener on %s, which node agents cannot reach; use 0.0.0.0:PORT", cfg.NodeHTTP)
	}
	if len(cfg.NodeTLSSelfSigned) > 0 {
		bad("makes the node listener's certificate itself ($%s), a different one in each replica; mount one from a Secret",
			serverconfig.Env["node-tls-self-signed"])
	}
	secrets := map[string]bool{}
	for _, f := range []struct{ flag, file, key string }{
		{"node-tls-cert", cfg.NodeTLSCert, "tls.crt"},
		{"node-tls-key", cfg.NodeTLSKey, "tls.key"},
	} {
		if f.file == "" {
			continue // checkServerRun reports it
		}
		secret, key, err := kSecretFile(w.Spec.Template.Spec, c, f.file)
		switch {
		case err != nil:
			bad("--%s ($%s) %s %v", f.flag, serverconfig.Env[f.flag], f.file, err)
		case key != f.key:
			bad("--%s ($%s) %s is key %s of Secret %s, not %s", f.flag, serverconfig.Env[f.flag], f.file, key, secret, f.key)
		default:
			secrets[secret] = true
		}
	}
	if len(secrets) > 1 {
		bad("the node listener's certificate and key come from different Secrets %q", deploySortedKeys(secrets))
	}

	port, _ := strconv.Atoi(portStr)
	if !slices.ContainsFunc(c.Ports, func(cp kContainerPort) bool { return cp.ContainerPort == port }) {
		bad("does not declare the node listener's port %d", port)
	}
	exposed := false
	for _, s := range m.objects {
		if s.Kind != "Service" || !kLabelsMatch(s.matchLabels(), w.Spec.Template.Metadata.Labels) {
			continue
		}
		for _, sp := range s.Spec.Ports {
			tp := sp.TargetPort
			if tp == nil {
				tp = sp.Port
			}
			if n, ok := kContainerPortOf(c, tp); ok && n == port {
				exposed = true
			}
		}
	}
	if !exposed {
		bad("no Service exposes the node listener's port %d: node agents cannot reach it", port)
	}
	return problems
}

// kSecretFile returns the Secret and key a container reads at file, or
// why file does not come from a Secret volume mounted read-only.
func kSecretFile(ps kPodSpec, c kContainer, file string) (secret, key string, err error) {
	file = path.Clean(file)
	mount := -1
	for i, vm := range c.VolumeMounts {
		dir := path.Clean(vm.MountPath)
		if strings.HasPrefix(file, dir+"/") && (mount < 0 || len(dir) > len(path.Clean(c.VolumeMounts[mount].MountPath))) {
			mount = i
		}
	}
	if mount < 0 {
		return "", "", errors.New("is on no volume mount: the image has no such file")
	}
	vm := c.VolumeMounts[mount]
	i := slices.IndexFunc(ps.Volumes, func(v kVolume) bool { return v.Name == vm.Name })
	if i < 0 || ps.Volumes[i].Secret == nil {
		return "", "", fmt.Errorf("is on volume %s, which is not a Secret", vm.Name)
	}
	if !vm.ReadOnly {
		return "", "", fmt.Errorf("is on volume %s, which is mounted writable; mount it readOnly", vm.Name)
	}
	vs := ps.Volumes[i].Secret
	key = strings.TrimPrefix(file, path.Clean(vm.MountPath)+"/")
	if len(vs.Items) > 0 {
		rel := key
		key = ""
		for _, it := range vs.Items {
			if path.Clean(it.Path) == rel {
				key = it.Key
			}
		}
		if key == "" {
			return "", "", fmt.Errorf("is not among the items of Secret %s that volume %s mounts", vs.SecretName, vm.Name)
		}
	}
	return vs.SecretName, key, nil
}

// natsProblems checks the NATS StatefulSet: a JetStream cluster of
// `replicas` servers whose config (parsed by nats-server itself) declares
// JetStream on the persistent volume and routes to every server by its
// stable DNS name. It returns the number of servers.
func natsProblems(t *testing.T, m *kubeManifests, replicas int) (int, []string) {
	t.Helper()
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	sts := m.get("StatefulSet", "nats")
	if sts == nil {
		return 0, []string{"k8s: no StatefulSet nats"}
	}
	where := fmt.Sprintf("%s: StatefulSet nats", sts.file)
	n := sts.replicas()
	if n != replicas {
		bad("%s: %d replicas, not %d", where, n, replicas)
	}
	headless := m.get("Service", sts.Spec.ServiceName)
	if headless == nil || headless.Spec.ClusterIP != "None" {
		bad("%s: serviceName %q is not a headless Service in the manifests", where, sts.Spec.ServiceName)
	}
	if len(sts.Spec.VolumeClaimTemplates) == 0 {
		bad("%s: no volumeClaimTemplates: JetStream data would not survive a restart", where)
	}
	if len(sts.Spec.Template.Spec.Containers) == 0 {
		return n, append(problems, where+": no containers")
	}
	c := sts.Spec.Template.Spec.Containers[0]

	// The config file: --config PATH, mounted from a ConfigMap.
	args := slices.Concat(c.Command, c.Args)
	confPath := ""
	for i, a := range args {
		if (a == "--config" || a == "-c") && i+1 < len(args) {
			confPath = args[i+1]
		}
	}
	if confPath == "" {
		return n, append(problems, fmt.Sprintf("%s: %q passes no --config", where, args))
	}
	var conf string
	var found bool
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != path.Dir(confPath) {
			continue
		}
		for _, v := range sts.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				if cm := m.get("ConfigMap", v.ConfigMap.Name); cm != nil {
					conf, found = cm.Data[path.Base(confPath)]
				}
			}
		}
	}
	if !found {
		return n, append(problems, fmt.Sprintf("%s: %s is not mounted from a ConfigMap in the manifests", where, confPath))
	}

	// nats-server expands $VARS from its environment: give it pod 0's,
	// with the route password of the cloister-bus Secret and the $(VAR)
	// references Kubernetes expands.
	pod0 := fmt.Sprintf("%s-0", sts.Metadata.Name)
	routePassword := "route-password-of-the-test"
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.Value != nil:
			env[e.Name] = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(*e.Value, func(ref string) string {
				if v, ok := env[ref[2:len(ref)-1]]; ok {
					return v
				}
				return ref // Kubernetes leaves an unknown reference as it is
			})
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = pod0
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			if r := e.ValueFrom.SecretKeyRef; r.Name != deployBusSecret || r.Key != busauth.RoutePasswordFile {
				bad("%s: env %s comes from %s/%s, which `cloister bus init` does not write (%s/%s)", where, e.Name, r.Name, r.Key, deployBusSecret, busauth.RoutePasswordFile)
				continue
			}
			env[e.Name] = routePassword
		}
		t.Setenv(e.Name, env[e.Name])
	}
	// The authorization it includes is what `cloister bus init` writes,
	// mounted from the cloister-bus Secret beside the configuration.
	dir := t.TempDir()
	authMounted := false
	for _, vm := range c.VolumeMounts {
		for _, v := range sts.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.Secret != nil && v.Secret.SecretName == deployBusSecret && vm.MountPath == path.Join(path.Dir(confPath), "auth") {
				authMounted = true
			}
		}
	}
	if !authMounted {
		bad("%s: Secret %s is not mounted at %s/auth, where %s includes the NATS authorization", where, deployBusSecret, path.Dir(confPath), confPath)
	}
	set, err := busauth.NewSet()
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Write(filepath.Join(dir, "auth")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, path.Base(confPath)), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := natsserver.ProcessConfigFile(filepath.Join(dir, path.Base(confPath)))
	if err != nil {
		return n, append(problems, fmt.Sprintf("%s: nats-server rejects %s: %v", where, confPath, err))
	}
	if len(opts.Nkeys) != len(busauth.Roles) || len(opts.Users) != 0 || opts.NoAuthUser != "" {
		bad("%s: %s lets in %d NKey users and %d others (no_auth_user %q); want only Cloister's %d identities (include ./auth/%s)",
			where, confPath, len(opts.Nkeys), len(opts.Users), opts.NoAuthUser, len(busauth.Roles), busauth.AuthFile)
	}
	if !opts.JetStream {
		bad("%s: %s does not enable JetStream", where, confPath)
	}
	onClaim := false
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == opts.StoreDir && slices.ContainsFunc(sts.Spec.VolumeClaimTemplates, func(v kClaimTemplate) bool {
			return v.Metadata.Name == vm.Name
		}) {
			onClaim = true
		}
	}
	if !onClaim {
		bad("%s: JetStream store_dir %q is not a volumeClaimTemplate mount", where, opts.StoreDir)
	}
	if opts.ServerName != pod0 {
		bad("%s: server_name is %q in pod %s; each server needs its own (server_name: $POD_NAME)", where, opts.ServerName, pod0)
	}
	if opts.Cluster.Name == "" || opts.Cluster.Port == 0 {
		bad("%s: %s declares no cluster name and port", where, confPath)
	}
	want := map[string]bool{}
	for i := range n {
		want[fmt.Sprintf("%s-%d.%s", sts.Metadata.Name, i, sts.Spec.ServiceName)] = true
	}
	for _, r := range opts.Routes {
		host := r.Hostname()
		for _, suffix := range []string{".svc.cluster.local", ".svc", "." + m.kust.Namespace} {
			host = strings.TrimSuffix(host, suffix)
		}
		if !want[host] || r.Port() != strconv.Itoa(opts.Cluster.Port) {
			bad("%s: route to %s is not a server of this StatefulSet on the cluster port %d", where, r.Host, opts.Cluster.Port)
		}
		delete(want, host)
	}
	for _, h := range deploySortedKeys(want) {
		bad("%s: no route to %s", where, h)
	}
	if headless != nil && !slices.ContainsFunc(headless.Spec.Ports, func(sp kServicePort) bool { return sp.Port == opts.Cluster.Port }) {
		bad("%s: headless Service %s lacks the cluster port %d", where, headless.Metadata.Name, opts.Cluster.Port)
	}
	problems = append(problems, natsRouteProblems(where, opts, routePassword)...)
	return n, append(problems, natsLameDuckProblems(where, opts, sts.Spec.Template.Spec, c)...)
}

// natsRouteProblems: the cluster's routes authenticate with the route
// password of the cloister-bus Secret (docs/operations.md), every route
// giving it.
func natsRouteProblems(where string, opts *natsserver.Options, password string) []string {
	var problems []string
	if opts.Cluster.Username == "" || opts.Cluster.Password != password {
		problems = append(problems, fmt.Sprintf("%s: the cluster's routes are not authenticated with the route password of Secret %s (%s): user %q",
			where, deployBusSecret, busauth.RoutePasswordFile, opts.Cluster.Username))
	}
	for _, r := range opts.Routes {
		if pw, _ := r.User.Password(); r.User.Username() != opts.Cluster.Username || pw != opts.Cluster.Password || pw == "" {
			problems = append(problems, fmt.Sprintf("%s: route to %s does not give the cluster's route credentials", where, r.Host))
		}
	}
	return problems
}

// natsLameDuckProblems: a server about to stop goes into lame duck mode
// first (a preStop signal to the pid file nats.conf names, on a writable
// mount), and its lame duck ends before Kubernetes kills it.
func natsLameDuckProblems(where string, opts *natsserver.Options, pod kPodSpec, c kContainer) []string {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil ||
		!slices.Equal(c.Lifecycle.PreStop.Exec.Command, []string{"nats-server", "--signal", "ldm=" + opts.PidFile}) || opts.PidFile == "" {
		bad("%s: no preStop hook puts the server in lame duck mode (nats-server --signal ldm=<pid_file>, pid_file %q)", where, opts.PidFile)
	}
	mounted := false
	for _, vm := range c.VolumeMounts {
		mounted = mounted || vm.MountPath == path.Dir(opts.PidFile)
	}
	if opts.PidFile != "" && !mounted {
		bad("%s: the pid file's directory %s is not a mount: the root filesystem is read-only", where, path.Dir(opts.PidFile))
	}
	grace := 30 // Kubernetes' default
	if pod.TerminationGracePeriodSeconds != nil {
		grace = *pod.TerminationGracePeriodSeconds
	}
	if lame := opts.LameDuckDuration + opts.LameDuckGracePeriod; lame >= time.Duration(grace)*time.Second {
		bad("%s: lame duck mode lasts %v, not within terminationGracePeriodSeconds %d", where, lame, grace)
	}
	return problems
}

func TestDeployKube(t *testing.T) {
	clearServerEnv(t)
	m := loadKube(t)
	n, problems := natsProblems(t, m, 3)
	reportDeployProblems(t, problems)
	reportDeployProblems(t, kubeProblems(m, n))
	if m.kust.Namespace != "cloister" {
		t.Errorf("kustomization namespace %q, want cloister", m.kust.Namespace)
	}
}

func TestDeployKubeChecksCanFail(t *testing.T) {
	clearServerEnv(t)
	m := loadKube(t)
	account := m.get("Deployment", "account")
	if account == nil {
		t.Fatal("no Deployment account")
	}
	c := &account.Spec.Template.Spec.Containers[0]
	c.Args = append(c.Args, "--jetstream-replicas=3")
	c.ReadinessProbe = nil
	c.LivenessProbe.HTTPGet.Path = "/live"
	c.SecurityContext = &kSecurityContext{RunAsNonRoot: new(bool)}
	c.Env = append(c.Env, c.Env[0])
	c.Env[len(c.Env)-1].Name = "NATS_SERVER"
	m.files = append(m.files, "forgotten.yaml")
	problems := kubeProblems(m, 3)
	wantDeployProblem(t, problems, "Deployment account, container cloister", "unknown flag --jetstream-replicas")
	wantDeployProblem(t, problems, "Deployment account, container cloister", "unknown environment variable NATS_SERVER")
	wantDeployProblem(t, problems, "Deployment account, container cloister: no readiness probe")
	wantDeployProblem(t, problems, "Deployment account, container cloister: liveness probe is not GET /healthz")
	wantDeployProblem(t, problems, "Deployment account, container cloister: runAsNonRoot is not true")
	wantDeployProblem(t, problems, "Deployment account, container cloister: allowPrivilegeEscalation is not false")
	wantDeployProblem(t, problems, "kustomization.yaml does not list forgotten.yaml")
	wantDeployProblem(t, kubeProblems(m, 1), "3 JetStream replicas with 1 NATS server")

	// The image converter given the gateway's assertion secret, and not
	// its own NATS identity.
	m = loadKube(t)
	ic := m.get("Deployment", "imageconverter").Spec.Template.Spec
	for i := range ic.Volumes {
		if sec := ic.Volumes[i].Secret; sec != nil && sec.SecretName == deployBusSecret {
			sec.Items[0].Key, sec.Items[0].Path = busauth.AssertionSecretFile, busauth.AssertionSecretFile
		}
	}
	problems = kubeProblems(m, 3)
	wantDeployProblem(t, problems, "Deployment imageconverter", "holds /etc/cloister/bus/assertion.key, a bus credential of a service it does not run")
	wantDeployProblem(t, problems, "Deployment imageconverter", "bus credential /etc/cloister/bus/imageconverter.nk it does not hold")

	m = loadKube(t)
	m.get("Deployment", "gateway").Spec.Template.Spec.Containers[0].Args = []string{"server", "--services=account"}
	m.kust.Resources = append(m.kust.Resources, "missing.yaml")
	problems = kubeProblems(m, 3)
	wantDeployProblem(t, problems, "no Deployment runs cloister server --services=gateway")
	wantDeployProblem(t, problems, "kustomization.yaml lists resource missing.yaml, which does not exist")

	m = loadKube(t)
	m.get("ConfigMap", "cloister").Data["CLOISTER_REPLICAS"] = "1"
	problems = kubeProblems(m, 3)
	wantDeployProblem(t, problems, "asks for 1 JetStream replicas with 3 NATS servers", "want 3")

	m = loadKube(t)
	one := 1
	m.get("StatefulSet", "nats").Spec.Replicas = &one
	_, problems = natsProblems(t, m, 3)
	wantDeployProblem(t, problems, "StatefulSet nats: 1 replicas, not 3")
	wantDeployProblem(t, problems, "route to nats-1.nats-headless", "is not a server of this StatefulSet")

	m = loadKube(t)
	cm := m.get("ConfigMap", "nats-config")
	sts := m.get("StatefulSet", "nats")
	for _, e := range sts.Spec.Template.Spec.Containers[0].Env {
		if e.Value != nil {
			*e.Value = strings.Replace(*e.Value, "nats-2.nats-headless", "nats-3.nats-headless", 1)
		}
	}
	cm.Data["nats.conf"] = strings.Replace(cm.Data["nats.conf"], "server_name: $POD_NAME", "server_name: nats", 1)
	_, problems = natsProblems(t, m, 3)
	wantDeployProblem(t, problems, "route to nats-3.nats-headless", "is not a server of this StatefulSet")
	wantDeployProblem(t, problems, "no route to nats-2.nats-headless")
	wantDeployProblem(t, problems, `server_name is "nats" in pod nats-0`)

	// Routes without the password, a route without credentials, no
	// lame duck before the pod stops, a lame duck longer than its grace.
	m = loadKube(t)
	cm = m.get("ConfigMap", "nats-config")
	cm.Data["nats.conf"] = regexp.MustCompile(`(?s)authorization \{.*?\}`).ReplaceAllString(cm.Data["nats.conf"], "")
	natsC := &m.get("StatefulSet", "nats").Spec.Template.Spec.Containers[0]
	for _, e := range natsC.Env {
		if e.Name == "NATS_ROUTE_1" {
			*e.Value = strings.Replace(*e.Value, "route:$(NATS_ROUTE_PASSWORD)@", "", 1)
		}
	}
	natsC.Lifecycle = nil
	cm.Data["nats.conf"] = strings.Replace(cm.Data["nats.conf"], `lame_duck_duration: "30s"`, `lame_duck_duration: "2m"`, 1)
	_, problems = natsProblems(t, m, 3)
	wantDeployProblem(t, problems, "the cluster's routes are not authenticated with the route password")
	wantDeployProblem(t, problems, "route to nats-1.nats-headless", "does not give the cluster's route credentials")
	wantDeployProblem(t, problems, "no preStop hook puts the server in lame duck mode")
	wantDeployProblem(t, problems, "lame duck mode lasts 2m5s, not within terminationGracePeriodSeconds 60")

	m = loadKube(t)
	cm = m.get("ConfigMap", "nats-config")
	cm.Data["nats.conf"] = regexp.MustCompile(`(?s)jetstream \{.*?\n\}`).ReplaceAllString(cm.Data["nats.conf"], "")
	_, problems = natsProblems(t, m, 3)
	wantDeployProblem(t, problems, "does not enable JetStream")
}

// kSetEnv sets a container's variable name to value, adding it if need
// be; a nil value removes it.
func kSetEnv(c *kContainer, name string, value *string) {
	i := slices.IndexFunc(c.Env, func(e kEnvVar) bool { return e.Name == name })
	switch {
	case value == nil && i >= 0:
		c.Env = slices.Delete(c.Env, i, i+1)
	case value == nil:
	case i >= 0:
		c.Env[i].Value, c.Env[i].ValueFrom = value, nil
	default:
		c.Env = append(c.Env, kEnvVar{Name: name, Value: value})
	}
}

func TestDeployKubeNodeListenerChecksCanFail(t *testing.T) {
	clearServerEnv(t)
	const where = "gateway.yaml: Deployment gateway, container cloister: "
	for _, tc := range []struct {
		name   string
		mutate func(m *kubeManifests, c *kContainer)
		want   []string
	}{
		{"no node listener", func(_ *kubeManifests, c *kContainer) {
			kSetEnv(c, "CLOISTER_NODE_HTTP", nil)
		}, []string{where + "serves no node listener (set $CLOISTER_NODE_HTTP"}},
		{"node listener on loopback", func(_ *kubeManifests, c *kContainer) {
			kSetEnv(c, "CLOISTER_NODE_HTTP", deployStr("127.0.0.1:8443"))
		}, []string{where + "serves the node listener on 127.0.0.1:8443"}},
		{"self-signed in each replica", func(_ *kubeManifests, c *kContainer) {
			kSetEnv(c, "CLOISTER_NODE_TLS_SELF_SIGNED", deployStr("gateway"))
		}, []string{where + "makes the node listener's certificate itself"}},
		{"key on the scratch volume", func(_ *kubeManifests, c *kContainer) {
			kSetEnv(c, "CLOISTER_NODE_TLS_KEY", deployStr("/tmp/tls.key"))
		}, []string{where + "--node-tls-key", "/tmp/tls.key is on volume tmp, which is not a Secret"}},
		{"certificate on no volume", func(_ *kubeManifests, c *kContainer) {
			kSetEnv(c, "CLOISTER_NODE_TLS_CERT", deployStr("/etc/tls.crt"))
		}, []string{where + "--node-tls-cert", "/etc/tls.crt is on no volume mount"}},
		{"certificate and key swapped", func(_ *kubeManifests, c *kContainer) {
			cert := *kEnvValue(c, "CLOISTER_NODE_TLS_CERT")
			kSetEnv(c, "CLOISTER_NODE_TLS_CERT", kEnvValue(c, "CLOISTER_NODE_TLS_KEY"))
			kSetEnv(c, "CLOISTER_NODE_TLS_KEY", &cert)
		}, []string{where + "--node-tls-cert", "is key tls.key of Secret cloister-node-tls, not tls.crt"}},
		{"Secret mounted writable", func(_ *kubeManifests, c *kContainer) {
			for i := range c.VolumeMounts {
				c.VolumeMounts[i].ReadOnly = false
			}
		}, []string{where + "--node-tls-key", "mounted writable"}},
		{"certificate from a ConfigMap", func(m *kubeManifests, _ *kContainer) {
			ps := &m.get("Deployment", deployGateway).Spec.Template.Spec
			for i, v := range ps.Volumes {
				if v.Secret != nil {
					ps.Volumes[i].Secret = nil
					ps.Volumes[i].ConfigMap = &struct {
						Name string `yaml:"name"`
					}{"cloister"}
				}
			}
		}, []string{where + "--node-tls-cert", "which is not a Secret"}},
		{"port not exposed", func(m *kubeManifests, _ *kContainer) {
			for _, s := range m.objects {
				if s.Kind == "Service" {
					s.Spec.Ports = slices.DeleteFunc(s.Spec.Ports, func(sp kServicePort) bool { return sp.Port == 8443 })
				}
			}
		}, []string{where + "no Service exposes the node listener's port 8443"}},
		{"port not declared", func(_ *kubeManifests, c *kContainer) {
			kSetEnv(c, "CLOISTER_NODE_HTTP", deployStr("0.0.0.0:9443"))
		}, []string{where + "does not declare the node listener's port 9443"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := loadKube(t)
			gw := m.get("Deployment", deployGateway)
			if gw == nil {
				t.Fatal("no Deployment gateway")
			}
			if p := kubeProblems(m, 3); len(p) > 0 {
				t.Fatalf("the manifests have problems before breaking them:\n  %s", strings.Join(p, "\n  "))
			}
			tc.mutate(m, &gw.Spec.Template.Spec.Containers[0])
			wantDeployProblem(t, kubeProblems(m, 3), tc.want...)
		})
	}
}

func kEnvValue(c *kContainer, name string) *string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return nil
}

// registryDenyExampleProblems checks the commented CLOISTER_REGISTRY_DENY
// of imageconverter.yaml (src), which shows how to reach a registry on a
// LAN (192.168.0.0/16): the server accepts it, and since the list replaces
// the default, it still denies the cluster's pod and service networks,
// loopback and every cloud metadata address, while the LAN and a public
// registry stay reachable.
func registryDenyExampleProblems(src string) []string {
	match := regexp.MustCompile(`(?m)^\s*#\s*- name: CLOISTER_REGISTRY_DENY\n\s*#\s*value: (\S+)\s*$`).FindStringSubmatch(src)
	if match == nil {
		return []string{"imageconverter.yaml: no commented example of CLOISTER_REGISTRY_DENY (# - name: ..., #   value: ...)"}
	}
	var problems []string
	bad := func(format string, a ...any) {
		problems = append(problems, "imageconverter.yaml: CLOISTER_REGISTRY_DENY example: "+fmt.Sprintf(format, a...))
	}
	run, sps := checkServerRun([]string{"server", "--services=imageconverter"},
		map[string]*string{"CLOISTER_REGISTRY_DENY": deployStr(match[1]), "CLOISTER_MASTER_KEY": nil, "CLOISTER_NATS_CREDENTIALS": deployStr("/etc/cloister/bus")})
	for _, p := range sps {
		bad("%s", p)
	}
	deny, err := netguard.ParsePrefixes(run.cfg.RegistryDeny)
	if err != nil {
		return problems // checkServerRun reports it
	}
	guard := netguard.New(deny)
	// kubeadm's service and API server addresses, flannel's and k3s's
	// pods, Docker's bridge, loopback, CGNAT, IPv6 ULA, cloud metadata.
	for _, a := range []string{"10.96.0.1", "10.244.0.5", "10.42.0.7", "172.17.0.1", "127.0.0.1", "100.64.0.1", "fd00::1", "::1",
		"169.254.169.254", "fd00:ec2::254", "100.100.100.200"} {
		if guard.Check(netip.MustParseAddr(a)) == nil {
			bad("allows %s, an address the converter must not reach in a cluster", a)
		}
	}
	for _, a := range []string{"192.168.1.10", "104.16.0.1", "2606:4700::1"} {
		if err := guard.Check(netip.MustParseAddr(a)); err != nil {
			bad("refuses %s, which it means to let through: %v", a, err)
		}
	}
	return problems
}

func TestDeployKubeRegistryDenyExample(t *testing.T) {
	clearServerEnv(t)
	b, err := os.ReadFile(filepath.Join(deployRoot, "deployments", "k8s", "imageconverter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	reportDeployProblems(t, registryDenyExampleProblems(string(b)))
}

func TestDeployKubeRegistryDenyExampleCanFail(t *testing.T) {
	clearServerEnv(t)
	example := func(v string) string {
		return "          env:\n            # - name: CLOISTER_REGISTRY_DENY\n            #   value: " + v + "\n"
	}
	wantDeployProblem(t, registryDenyExampleProblems("env: []\n"), "no commented example")
	wantDeployProblem(t, registryDenyExampleProblems(example("10.0.0.0/8,nonsense")), "would refuse to start", "nonsense")
	problems := registryDenyExampleProblems(example("10.0.0.0/8,0.0.0.0/0"))
	wantDeployProblem(t, problems, "allows fd00::1")
	wantDeployProblem(t, problems, "refuses 104.16.0.1")
	wantDeployProblem(t, registryDenyExampleProblems(example("10.0.0.0/8")), "allows 169.254.169.254")
}

// ---------------------------------------------------------------------
// deployments/Dockerfile and .dockerignore

type dockerInstr struct {
	cmd  string // upper case
	args string
}

// parseDockerfile returns the instructions of each stage, with
// continuation lines joined and comments dropped.
func parseDockerfile(src string) [][]dockerInstr {
	var stages [][]dockerInstr
	var logical []string
	cur := ""
	for line := range strings.Lines(src) {
		line = strings.TrimRight(line, "\r\n")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur += s + " "
			continue
		}
		logical = append(logical, cur+trimmed)
		cur = ""
	}
	if cur != "" {
		logical = append(logical, cur)
	}
	for _, l := range logical {
		cmd, args, _ := strings.Cut(strings.TrimSpace(l), " ")
		in := dockerInstr{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			continue // ARG before the first FROM
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	return stages
}

// goWorkModules returns the directories that go.work uses.
func goWorkModules(src string) []string {
	var mods []string
	inUse := false
	for line := range strings.Lines(src) {
		line = strings.TrimSpace(line)
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "use (":
			inUse = true
		case inUse && line == ")":
			inUse = false
		case inUse && line != "":
			mods = append(mods, path.Clean(strings.Trim(line, `"`)))
		case strings.HasPrefix(line, "use "):
			mods = append(mods, path.Clean(strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, "use ")), `"`)))
		}
	}
	return mods
}

// imageBinaries are the programs the image carries, each a static build of
// a package: the server and CLI, the node agent (compose runs it), and
// what the server finds beside itself: the launcher it packs into
// converted images and the sample it publishes to its built-in registry.
var imageBinaries = []struct{ path, pkg, why string }{
	{"/cloister", "./cmd/cloister", "the entrypoint"},
	{agentPath, "./cmd/cloister-node-agent", "docker-compose.yml runs it as a node"},
	{"/cloister-launcher", "./cmd/cloister-launcher", "the imageconverter packs it into converted images"},
	{"/hello-https", "./samples/hello-https", "--registry publishes it as the sample"},
}

// dockerfileProblems checks the Dockerfile against what the binary needs:
// every go.work module in the context, static builds of imageBinaries in
// the final stage, which runs as non-root with /cloister as entrypoint and
// a health check.
func dockerfileProblems(src string, modules []string) []string {
	var problems []string
	bad := func(format string, a ...any) {
		problems = append(problems, "deployments/Dockerfile: "+fmt.Sprintf(format, a...))
	}
	stages := parseDockerfile(src)
	if len(stages) < 2 {
		bad("%d stage(s); build in one stage and ship the binary in a minimal one", len(stages))
		if len(stages) == 0 {
			return problems
		}
	}

	built := map[string]bool{}
	var copied []string
	for _, st := range stages[:max(1, len(stages)-1)] {
		cgoOff := false
		for _, in := range st {
			switch in.cmd {
			case "ENV":
				if regexp.MustCompile(`\bCGO_ENABLED=0\b`).MatchString(in.args) {
					cgoOff = true
				}
			case "COPY", "ADD":
				fields := strings.Fields(in.args)
				var srcs []string
				for _, f := range fields {
					if !strings.HasPrefix(f, "--") {
						srcs = append(srcs, f)
					}
				}
				if len(srcs) > 1 {
					copied = append(copied, srcs[:len(srcs)-1]...)
				}
			case "RUN":
				// One RUN may chain several builds with &&.
				for _, step := range strings.Split(in.args, "&&") {
					for _, b := range imageBinaries {
						if !regexp.MustCompile(`\bgo build\b.*` + regexp.QuoteMeta(b.pkg) + `(\s|$)`).MatchString(step) {
							continue
						}
						built[b.pkg] = true
						if !cgoOff && !regexp.MustCompile(`\bCGO_ENABLED=0\b`).MatchString(step) {
							bad("go build %s without CGO_ENABLED=0: the binary would not be static", b.pkg)
						}
					}
				}
			}
		}
	}
	for _, b := range imageBinaries {
		if !built[b.pkg] {
			bad("no build stage runs `go build ... %s`, for %s (%s)", b.pkg, b.path, b.why)
		}
	}
	for _, mod := range append([]string{"go.work"}, modules...) {
		if !slices.ContainsFunc(copied, func(src string) bool {
			src = path.Clean(strings.TrimSuffix(src, "/"))
			return src == "." || src == mod || strings.HasPrefix(mod, src+"/")
		}) {
			bad("the build stage does not copy %s, which go.work needs", mod)
		}
	}

	final := stages[len(stages)-1]
	var user, entrypoint, healthcheck string
	exposes := false
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "HEALTHCHECK":
			healthcheck = in.args
		case "EXPOSE":
			exposes = exposes || slices.Contains(strings.Fields(in.args), "8080")
		}
	}
	u, _, _ := strings.Cut(user, ":")
	switch u {
	case "":
		bad("the final stage sets no USER; it would run as root")
	case "0", "root":
		bad("the final stage runs as USER %s", user)
	}
	if entrypoint != `["/cloister"]` {
		bad("ENTRYPOINT %s is not [\"/cloister\"]", entrypoint)
	}
	for _, b := range imageBinaries {
		if !slices.ContainsFunc(final, func(in dockerInstr) bool {
			return in.cmd == "COPY" && strings.Contains(in.args, "--from=") && strings.HasSuffix(in.args, " "+b.path)
		}) {
			bad("the final stage lacks %s (%s)", b.path, b.why)
		}
	}
	if !strings.Contains(healthcheck, "/cloister") || !strings.Contains(healthcheck, "healthcheck") {
		bad("HEALTHCHECK %q does not run `/cloister healthcheck`", healthcheck)
	}
	if !exposes {
		bad("does not EXPOSE 8080")
	}
	return problems
}

// dockerOwnedDirs returns the paths that the final stage copies in owned
// by its USER (COPY --chown=UID...), where a named volume may be mounted
// for that user to write.
func dockerOwnedDirs(src string) map[string]bool {
	stages := parseDockerfile(src)
	if len(stages) == 0 {
		return nil
	}
	final := stages[len(stages)-1]
	user := ""
	for _, in := range final {
		if in.cmd == "USER" {
			user, _, _ = strings.Cut(in.args, ":")
		}
	}
	owned := map[string]bool{}
	for _, in := range final {
		fields := strings.Fields(in.args)
		if in.cmd != "COPY" || len(fields) < 2 || user == "" {
			continue
		}
		for _, f := range fields {
			if v, ok := strings.CutPrefix(f, "--chown="); ok {
				if owner, _, _ := strings.Cut(v, ":"); owner == user {
					owned[path.Clean(fields[len(fields)-1])] = true
				}
			}
		}
	}
	return owned
}

// dockerignoreExcludes reports whether .dockerignore keeps the top-level
// path name out of the build context (enough for the top-level paths the
// build copies; later patterns win, ! re-includes).
func dockerignoreExcludes(src, name string) bool {
	excluded := false
	for line := range strings.Lines(src) {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		neg := strings.HasPrefix(p, "!")
		p = path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"))
		if ok, _ := path.Match(p, name); ok {
			excluded = !neg
		}
	}
	return excluded
}

func TestDeployDockerfile(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(deployRoot, "deployments", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	work, err := os.ReadFile(filepath.Join(deployRoot, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	modules := goWorkModules(string(work))
	if !slices.Contains(modules, "cmd") || !slices.Contains(modules, "libs") {
		t.Fatalf("go.work modules %q: the parser missed some", modules)
	}
	reportDeployProblems(t, dockerfileProblems(string(df), modules))

	ignore, err := os.ReadFile(filepath.Join(deployRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]string{"go.work", "go.work.sum"}, modules...) {
		top, _, _ := strings.Cut(p, "/")
		if dockerignoreExcludes(string(ignore), top) {
			t.Errorf(".dockerignore keeps %s out of the build context", top)
		}
	}
	if !dockerignoreExcludes(string(ignore), ".git") {
		t.Errorf(".dockerignore sends .git to the build context")
	}
}

func TestDeployDockerfileChecksCanFail(t *testing.T) {
	modules := []string{"cmd", "libs", "services/account"}
	problems := dockerfileProblems(`FROM golang:1.26
WORKDIR /src
COPY go.work ./
COPY cmd/ cmd/
RUN go build -o /cloister ./cmd/cloister
ENTRYPOINT ["/cloister"]
`, modules)
	wantDeployProblem(t, problems, "1 stage(s)")
	wantDeployProblem(t, problems, "without CGO_ENABLED=0")
	wantDeployProblem(t, problems, "does not copy libs")
	wantDeployProblem(t, problems, "does not copy services/account")
	wantDeployProblem(t, problems, "sets no USER")
	wantDeployProblem(t, problems, "HEALTHCHECK")

	problems = dockerfileProblems(`FROM golang:1.26 AS build
COPY . .
RUN CGO_ENABLED=0 \
    go build -o /out/cloister ./cmd/cloister
FROM scratch
COPY --from=build /out/cloister /cloister
USER root
ENTRYPOINT ["/cloister"]
`, modules)
	wantDeployProblem(t, problems, "runs as USER root")
	wantDeployProblem(t, problems, "no build stage runs `go build ... ./cmd/cloister-node-agent`", "docker-compose.yml runs it")
	wantDeployProblem(t, problems, "the final stage lacks /cloister-launcher")
	if slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "go build ... ./cmd/cloister`") }) {
		t.Errorf("the build of ./cmd/cloister was missed: %q", problems)
	}
	if slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "CGO_ENABLED") || strings.Contains(p, "does not copy") }) {
		t.Errorf("a static build from the whole context was flagged: %q", problems)
	}

	if !dockerignoreExcludes("*\n!cmd/\n", "libs") || dockerignoreExcludes("*\n!cmd/\n", "cmd") {
		t.Error("dockerignoreExcludes misreads an allowlist")
	}
}

// ---------------------------------------------------------------------
// tilt/Tiltfile (Starlark; not run here, but its references are checked)

func TestDeployTiltfile(t *testing.T) {
	tiltDir := filepath.Join(deployRoot, "tilt")
	b, err := os.ReadFile(filepath.Join(tiltDir, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	build := regexp.MustCompile(`docker_build\(\s*'([^']+)',\s*context='([^']+)',\s*dockerfile='([^']+)'`).FindStringSubmatch(src)
	if build == nil {
		t.Fatal("Tiltfile: no docker_build('IMAGE', context=..., dockerfile=...)")
	}
	if build[1] != deployImage {
		t.Errorf("Tiltfile builds %s; the manifests run %s", build[1], deployImage)
	}
	root, _ := filepath.Abs(deployRoot)
	if abs, _ := filepath.Abs(filepath.Join(tiltDir, build[2])); abs != root {
		t.Errorf("Tiltfile: build context %s is not the repository root", build[2])
	}
	if _, err := os.Stat(filepath.Join(tiltDir, build[3])); err != nil {
		t.Errorf("Tiltfile: dockerfile %s: %v", build[3], err)
	}
	// Tilt sends only what `only` lists to the build: everything the
	// Dockerfile copies from the context must be in it.
	if only := regexp.MustCompile(`only=\[([^\]]*)\]`).FindStringSubmatch(src); only != nil {
		df, err := os.ReadFile(filepath.Join(tiltDir, build[3]))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range regexp.MustCompile(`(?m)^COPY (\S+) `).FindAllStringSubmatch(string(df), -1) {
			top, _, _ := strings.Cut(strings.TrimSuffix(c[1], "*"), "/")
			if !strings.HasPrefix(c[1], "--") && !strings.Contains(only[1], "'"+top+"'") {
				t.Errorf("Tiltfile: the Dockerfile copies %s, but docker_build's only=[%s] leaves it out of the context", c[1], only[1])
			}
		}
	}
	k := regexp.MustCompile(`k8s_yaml\(kustomize\('([^']+)'\)\)`).FindStringSubmatch(src)
	if k == nil {
		t.Fatal("Tiltfile: no k8s_yaml(kustomize('...'))")
	}
	if _, err := os.Stat(filepath.Join(tiltDir, k[1], "kustomization.yaml")); err != nil {
		t.Errorf("Tiltfile: kustomize(%q): %v", k[1], err)
	}

	m := loadKube(t)
	resources := regexp.MustCompile(`k8s_resource\(\s*'([^']+)'([^)]*)\)`).FindAllStringSubmatch(src, -1)
	named := map[string]string{}
	for _, r := range resources {
		named[r[1]] = r[2]
		if m.get("Deployment", r[1]) == nil && m.get("StatefulSet", r[1]) == nil {
			t.Errorf("Tiltfile: k8s_resource(%q) names no workload of the manifests", r[1])
		}
	}
	if !strings.Contains(named[deployGateway], "port_forwards=['8080:8080']") {
		t.Errorf("Tiltfile: the gateway's k8s_resource does not forward 8080:8080")
	}
}

// buildAgent builds cmd/cloister-node-agent, once for all the tests.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin, err := agentBuild()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

var agentBuild = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "cloister-node-agent")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "cloister-node-agent")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/cloister-node-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building cloister-node-agent: %v\n%s", err, out)
	}
	return bin, nil
})
