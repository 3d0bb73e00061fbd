// Command cloister-node-agent runs on each compute node. With a join token
// it enrols the node into an account once, keeping the node's identity (an
// ECDSA P-256 key and a client certificate from the account's CA) in its
// data directory; it then reports heartbeats and the enclaves it knows to
// the gateway's mTLS node listener, and serves the local API that enclave
// runtimes (cloister-launcher) call, on 127.0.0.1:9092 under /v1/.
//
//	cloister-node-agent --server URL --join-token-file FILE [flags]
//
// Every flag can also be set by the environment variable
// CLOISTER_AGENT_<FLAG> (e.g. CLOISTER_AGENT_NODE_SERVER); a flag on the
// command line wins.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/cloister-cc/cloister/libs/obs"
)

// Exit codes. Those from sysexits.h mean what they say there; a supervisor
// should not restart the agent on 64, 77, 78 or 79 (systemd:
// RestartPreventExitStatus=64 77 78 79), since a restart cannot fix them.
const (
	exitFailure = 1  // anything else, e.g. the local API's address is taken or the data directory cannot be written
	exitUsage   = 64 // EX_USAGE: bad flags or environment, or a first start without a join token
	exitNoPerm  = 77 // EX_NOPERM: the server refused the join token
	exitConfig  = 78 // EX_CONFIG: unusable --server-ca, a damaged identity in --data-dir, or a server that is not Cloister's
	// exitDeregistered: the server no longer accepts this node's identity
	// (deregistered, untrusted after a refused re-attestation, certificate
	// revoked or expired). Only a new enrolment, with a new join token,
	// brings the node back.
	exitDeregistered = 79
)

// envPrefix starts the environment variable of every flag.
const envPrefix = "CLOISTER_AGENT_"

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(runMain(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// runMain runs the agent until SIGINT or SIGTERM, or until it cannot go
// on, and returns the process's exit code. Logs go to stderr as JSON.
func runMain(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	opts, err := parseArgs(args, lookupEnv, stdout)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "cloister-node-agent:", err)
		return exitCode(err)
	case opts.version:
		fmt.Fprintln(stdout, "cloister-node-agent", buildVersion())
		return 0
	}
	level, _ := obs.ParseLevel(opts.logLevel) // checked by parseArgs
	logger := obs.NewLogger(stderr, level, "cloister-node-agent")

	cfg, err := opts.config(logger)
	if err == nil {
		var a *agent
		if a, err = newAgent(cfg); err == nil {
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger.Info("starting", "version", buildVersion(), "server", cfg.Server.String(), "node_server", cfg.NodeServer.String(),
				"data_dir", cfg.DataDir, "simulation", cfg.Simulation, "tee", cfg.TEE, "reattest_every", cfg.ReattestEvery.String())
			err = a.run(ctx)
		}
	}
	code := exitCode(err)
	if err != nil {
		logger.Error("stopping", obs.KeyError, err.Error(), "exit_code", code)
	} else {
		logger.Info("stopped")
	}
	return code
}

// exitError is a fatal error with the exit code it ends the process with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitWith(code int, format string, args ...any) error {
	return &exitError{code, fmt.Errorf(format, args...)}
}

// exitCode is 0 for nil, the code of an *exitError in err's chain, and
// exitFailure for anything else.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	return exitFailure
}

// options are the flags, as given.
type options struct {
	server, nodeServer, serverCA string
	joinToken, joinTokenFile     string
	name, dataDir, listen        string
	allowedHosts                 []string
	heartbeatEvery               time.Duration
	simulation                   bool
	tee                          string
	reattestEvery                time.Duration
	logLevel                     string
	version                      bool
}

// noEnv lists the flags no environment variable sets.
var noEnv = map[string]bool{"help": true, "version": true}

// envName is the environment variable of a flag: --node-server is
// CLOISTER_AGENT_NODE_SERVER.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

const usageText = `usage: cloister-node-agent [flags]

Runs on a compute node. The first start enrols the node with a join token
(create one with ` + "`cloister node token create NAME`" + `) and keeps the node's key and
certificate in --data-dir; later starts reuse them and need no token. The
agent then sends heartbeats to the gateway's node listener over mTLS and
serves enclave runtimes on --listen under /v1/.

A node in an Intel TDX trust domain or an AMD SEV-SNP VM proves itself with
evidence from Linux's configfs-tsm (/sys/kernel/config/tsm/report): a TDX quote
or an SEV-SNP report binding the node's key and the server's nonce, at
enrolment and every --reattest-every after (--tee). In simulation mode a
node without them presents simulated SGX evidence instead.

Every flag can also be set by the environment variable in brackets; a flag
on the command line wins. Prefer --join-token-file or the environment to
--join-token, which other users of the machine can read in the process list.

Exit codes: 0 stopped by SIGINT or SIGTERM; 64 bad usage, or no join token
for a first start; 77 the join token was refused; 78 unusable configuration
or identity; 79 the node was deregistered or its certificate revoked, e.g.
after a refused re-attestation (enrol again with a new join token); 1
anything else.

Flags:
`

// parseArgs reads the flags, then the environment for each flag not given.
// For -h it prints the usage to stdout and returns pflag.ErrHelp.
func parseArgs(args []string, lookupEnv func(string) (string, bool), stdout io.Writer) (options, error) {
	var o options
	f := pflag.NewFlagSet("cloister-node-agent", pflag.ContinueOnError)
	f.SetOutput(io.Discard)
	f.SortFlags = false
	f.StringVar(&o.server, "server", "http://127.0.0.1:8080", "the gateway's public API `URL`, where the node enrols")
	f.StringVar(&o.nodeServer, "node-server", "https://127.0.0.1:8443", "the gateway's mTLS node listener `URL`, for heartbeats, nonces and certificates")
	f.StringVar(&o.serverCA, "server-ca", "", "PEM `FILE` of the CA to trust for the node listener's certificate (also trusted for --server); default: the system roots")
	f.StringVar(&o.joinToken, "join-token", "", "join `TOKEN` (cjt_...) for the first start; not needed once the node has an identity")
	f.StringVar(&o.joinTokenFile, "join-token-file", "", "`FILE` holding the join token, instead of --join-token")
	f.StringVar(&o.name, "name", "", "the node's `NAME`: 1 to 64 letters, digits, '.', '_' or '-'; used only at enrolment "+
		"(default: the join token's name when the token is for one node, else this host's name)")
	f.StringVar(&o.dataDir, "data-dir", defaultDataDir(), "`DIR` of the node's identity: key.pem, chain.pem, node.json")
	f.StringVar(&o.listen, "listen", "127.0.0.1:9092", "`ADDR` of the local API for enclave runtimes: HOST:PORT, or unix:PATH for a Unix socket "+
		"(plain HTTP, unauthenticated: keep it on loopback, a host-only network or a socket only the runtimes' group can open)")
	f.StringSliceVar(&o.allowedHosts, "allowed-hosts", nil, "host `NAMES` (comma-separated) the local API answers to besides IP addresses and localhost, "+
		"e.g. node-agent when containers call it by that name; a request naming another host is refused (DNS rebinding)")
	f.DurationVar(&o.heartbeatEvery, "heartbeat-every", 30*time.Second, "time between heartbeats")
	f.BoolVar(&o.simulation, "simulation", false, "simulation mode: no SGX hardware; the agent fetches a simulated QE from the server and quotes enclaves' report bodies with it (POST /v1/enclave/attest)")
	f.StringVar(&o.tee, "tee", teeAuto, "the node's own evidence: auto (configfs-tsm's if this machine has it, else simulated SGX evidence with --simulation, else none), "+
		"tdx or sev-snp (configfs-tsm's: a TDX quote, an SEV-SNP report; with --simulation and no configfs-tsm, tdx is a simulated TD's), "+
		"sgx (simulated: with --simulation), or none")
	f.DurationVar(&o.reattestEvery, "reattest-every", defaultReattestEvery, "time between re-attestations of a node that presents evidence: the agent binds "+
		"the key of its certificate in fresh evidence and sends it to the server (POST /v1/node/attest) at once, then at this interval; "+
		"keep it well under the server's period (24 h by default), past which the node is overdue")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&o.version, "version", false, "print the version and exit")
	f.VisitAll(func(fl *pflag.Flag) {
		if !noEnv[fl.Name] {
			fl.Usage += " [$" + envName(fl.Name) + "]"
		}
	})

	if err := f.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, usageText, f.FlagUsages())
			return o, err
		}
		return o, exitWith(exitUsage, "%v; run cloister-node-agent --help for its flags", err)
	}
	if f.NArg() > 0 {
		return o, exitWith(exitUsage, "unexpected argument %q; the agent takes flags only", f.Arg(0))
	}
	// A token given one way on the command line wins over the other way
	// in the environment.
	tokenGiven := f.Changed("join-token") || f.Changed("join-token-file")
	var err error
	f.VisitAll(func(fl *pflag.Flag) {
		if err != nil || fl.Changed || noEnv[fl.Name] || tokenGiven && strings.HasPrefix(fl.Name, "join-token") {
			return
		}
		env := envName(fl.Name)
		v, ok := lookupEnv(env)
		if !ok {
			return
		}
		if serr := fl.Value.Set(v); serr != nil {
			if fl.Name == "join-token" { // never echo a secret
				v = "..."
			}
			err = exitWith(exitUsage, "$%s=%q: %v", env, v, serr)
		}
	})
	if err != nil {
		return o, err
	}
	if _, err := obs.ParseLevel(o.logLevel); err != nil {
		return o, exitWith(exitUsage, "--log-level: %v", err)
	}
	return o, nil
}

// config checks the options and turns them into the agent's config.
func (o options) config(logger *slog.Logger) (config, error) {
	cfg := config{JoinToken: strings.TrimSpace(o.joinToken), JoinTokenFile: o.joinTokenFile, Name: o.name, HostName: hostName(), DataDir: o.dataDir,
		Listen: o.listen, AllowedHosts: o.allowedHosts, HeartbeatEvery: o.heartbeatEvery, Simulation: o.simulation, TEE: o.tee, ReattestEvery: o.reattestEvery, Logger: logger}
	var err error
	if cfg.Server, err = parseServerURL("--server", o.server, "http", "https"); err != nil {
		return config{}, err
	}
	if cfg.NodeServer, err = parseServerURL("--node-server", o.nodeServer, "https"); err != nil {
		return config{}, err
	}
	switch {
	case cfg.JoinToken != "" && cfg.JoinTokenFile != "":
		return config{}, exitWith(exitUsage, "give either --join-token or --join-token-file, not both")
	case cfg.Name != "" && !validName(cfg.Name):
		return config{}, exitWith(exitUsage, "--name %q: a node's name is 1 to %d letters, digits, '.', '_' or '-'", cfg.Name, maxNameLength)
	case cfg.DataDir == "":
		return config{}, exitWith(exitUsage, "--data-dir is empty")
	case o.heartbeatEvery <= 0:
		return config{}, exitWith(exitUsage, "--heartbeat-every must be positive, not %v", o.heartbeatEvery)
	case o.reattestEvery <= 0:
		return config{}, exitWith(exitUsage, "--reattest-every must be positive, not %v", o.reattestEvery)
	}
	if path, ok := strings.CutPrefix(cfg.Listen, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return config{}, exitWith(exitUsage, "--listen %q: a Unix socket needs an absolute path, e.g. unix:/run/cloister/agent.sock", cfg.Listen)
		}
	} else if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return config{}, exitWith(exitUsage, "--listen %q: want HOST:PORT, e.g. 127.0.0.1:9092, or unix:PATH", cfg.Listen)
	}
	for i, h := range cfg.AllowedHosts {
		cfg.AllowedHosts[i] = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if cfg.AllowedHosts[i] == "" || strings.ContainsAny(cfg.AllowedHosts[i], ":/ ") {
			return config{}, exitWith(exitUsage, "--allowed-hosts: %q is not a host name", h)
		}
	}
	if o.serverCA != "" {
		if cfg.ServerCA, err = os.ReadFile(o.serverCA); err != nil {
			return config{}, exitWith(exitConfig, "reading --server-ca: %w", err)
		}
	}
	return cfg, nil
}

func parseServerURL(flag, s string, schemes ...string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, exitWith(exitUsage, "%s %q: want a URL such as %s://127.0.0.1:8443, without credentials, query or fragment", flag, s, schemes[0])
	}
	for _, sch := range schemes {
		if u.Scheme == sch {
			return u, nil
		}
	}
	return nil, exitWith(exitUsage, "%s %q: the scheme must be %s", flag, s, strings.Join(schemes, " or "))
}

// maxNameLength and nameRE are the node registry's rule for node names,
// checked here so that a bad name does not spend a join token's use.
const maxNameLength = 64

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func validName(s string) bool { return len(s) <= maxNameLength && nameRE.MatchString(s) }

// hostName is this host's name, or empty when it has none that can name
// a node: the server then needs --name or a token for one node.
func hostName() string {
	h, err := os.Hostname()
	if err != nil || !validName(h) {
		return ""
	}
	return h
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "cloister-node-agent")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "cloister-node-agent")
	}
	return ".cloister-node-agent"
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
