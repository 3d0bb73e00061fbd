// Package serverconfig is the configuration of `cloister server`: its
// flags, the environment variable behind each, and the checks it makes
// before starting. The server reads it, and the tests of the deployment
// files (deployments/) hold compose, Kubernetes and the Dockerfile to it.
package serverconfig

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/cloister-cc/cloister/libs/netguard"
)

// DefaultGramineImage is the Gramine project's published image of its
// current release: the runtime converted images carry by default.
const DefaultGramineImage = "docker.io/gramineproject/gramine:stable-noble"

// Services lists every service `cloister server` can run, in start order.
var Services = []string{"account", "attestation", "ca", "imageconverter", "noderegistry", "gateway"}

// NeedsMasterKey tells whether a service seals secrets under the master
// key: CA keys, signing keys and registry credentials, the simulation root.
func NeedsMasterKey(service string, simulation bool) bool {
	return service == "ca" || service == "imageconverter" || service == "attestation" && simulation
}

// Where -dev serves what it serves unless told otherwise, and what the
// built-in registry publishes.
const (
	// DevNodeHTTP is where -dev serves the node listener.
	DevNodeHTTP = "127.0.0.1:8443"
	// DevRegistry is where -dev serves its built-in registry.
	DevRegistry = "127.0.0.1:5000"
	// SampleRepository and SampleTag name the sample application in the
	// built-in registry.
	SampleRepository = "samples/hello-https"
	SampleTag        = "1"
	// StandInRuntimeRepository is where the built-in registry publishes
	// Cloister's stand-in Gramine runtime (tag 1).
	StandInRuntimeRepository = "cloister/gramine-runtime-standin"
)

// DevNodeHosts are the names of -dev's self-signed node listener
// certificate.
var DevNodeHosts = []string{"127.0.0.1", "::1", "localhost"}

// Config is the server's configuration; each field has a flag and an
// environment variable (Env), which compose and Kubernetes use.
type Config struct {
	Dev        bool
	DataDir    string
	HTTP       string
	Services   []string
	NATSURL    string
	NATSListen string
	// NATSCredentials is the directory holding the NATS identity (NKey
	// seed, <service>.nk) of each service this process runs.
	NATSCredentials string
	NATSTLSCA       string // PEM CA bundle the NATS server's certificate is checked against
	// InsecureNATS allows a NATS server that accepts anonymous clients.
	InsecureNATS bool
	RedisURL     string
	// RedisPasswordFile holds the Redis password, kept out of the URL.
	RedisPasswordFile string
	Replicas          int
	LogLevel          string
	PCSURL            string
	KDSURL            string
	Simulation        bool
	MasterKey         string // path of the KEK file
	Launcher          string // path of the cloister-launcher binary
	// GramineImage names the Gramine runtime image converted images carry;
	// empty: Cloister's stand-in when this process serves a built-in
	// registry, else DefaultGramineImage.
	GramineImage string
	Reattest     time.Duration
	// NodeHTTP is the address of the node listener (HTTPS, mutual TLS);
	// empty serves no node endpoints.
	NodeHTTP    string
	NodeTLSCert string // PEM server certificate (chain) of the node listener
	NodeTLSKey  string // its PEM private key
	// NodeTLSSelfSigned names the hosts of a self-signed node listener
	// certificate the server makes and keeps at NodeTLSCert and NodeTLSKey
	// (default: in DataDir); empty loads NodeTLSCert as it is.
	NodeTLSSelfSigned []string
	// NodeHTTPGiven: --node-http or its variable was given; otherwise
	// -dev serves the node listener on DevNodeHTTP.
	NodeHTTPGiven bool
	// Registry is the address of the built-in registry; empty serves none.
	Registry string
	Sample   string // path of the hello-https binary published to it
	// RegistryDeny are the networks the converter may not connect to.
	RegistryDeny []string
	// PublicURL is where users reach the gateway, when a proxy ends TLS
	// in front of it.
	PublicURL string
	// TrustedProxies are the networks of the proxies in front of the
	// gateway, whose X-Forwarded-For names the client (for rate limits).
	TrustedProxies []string
	// RegistryGiven: --registry or its variable was given; otherwise -dev
	// serves the registry on DevRegistry.
	RegistryGiven bool
}

// Env maps each server flag to the environment variable that sets its
// default.
var Env = map[string]string{
	"dev":                  "CLOISTER_DEV",
	"data-dir":             "CLOISTER_DATA_DIR",
	"http":                 "CLOISTER_HTTP",
	"services":             "CLOISTER_SERVICES",
	"nats-url":             "NATS_URL",
	"nats-listen":          "CLOISTER_NATS_LISTEN",
	"nats-credentials":     "CLOISTER_NATS_CREDENTIALS",
	"nats-tls-ca":          "CLOISTER_NATS_TLS_CA",
	"insecure-nats":        "CLOISTER_INSECURE_NATS",
	"redis-password-file":  "CLOISTER_REDIS_PASSWORD_FILE",
	"redis-url":            "REDIS_URL",
	"replicas":             "CLOISTER_REPLICAS",
	"log-level":            "CLOISTER_LOG_LEVEL",
	"pcs-url":              "CLOISTER_PCS_URL",
	"amd-kds-url":          "CLOISTER_AMD_KDS_URL",
	"simulation":           "CLOISTER_SIMULATION",
	"master-key-file":      "CLOISTER_MASTER_KEY_FILE",
	"launcher":             "CLOISTER_LAUNCHER",
	"gramine-image":        "CLOISTER_GRAMINE_IMAGE",
	"reattest-every":       "CLOISTER_REATTEST_EVERY",
	"node-http":            "CLOISTER_NODE_HTTP",
	"node-tls-cert":        "CLOISTER_NODE_TLS_CERT",
	"node-tls-key":         "CLOISTER_NODE_TLS_KEY",
	"node-tls-self-signed": "CLOISTER_NODE_TLS_SELF_SIGNED",
	"registry":             "CLOISTER_REGISTRY",
	"sample":               "CLOISTER_SAMPLE",
	"registry-deny":        "CLOISTER_REGISTRY_DENY",
	"public-url":           "CLOISTER_PUBLIC_URL",
	"trusted-proxies":      "CLOISTER_TRUSTED_PROXIES",
}

// DefaultDataDir is where -dev keeps its data unless told otherwise.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "cloister")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "cloister")
	}
	return ".cloister"
}

// AddFlags declares the server's flags on f, each with its variable named
// in its help, reading into cfg.
func AddFlags(f *pflag.FlagSet, cfg *Config) {
	f.BoolVar(&cfg.Dev, "dev", false, "run every service in one process with embedded NATS and an in-process cache")
	f.StringVar(&cfg.DataDir, "data-dir", DefaultDataDir(), "where -dev keeps its data (locked: one server per directory)")
	f.StringVar(&cfg.HTTP, "http", "127.0.0.1:8080", "address of the HTTP listener (REST API, health, metrics)")
	f.StringSliceVar(&cfg.Services, "services", Services, "services to run: "+strings.Join(Services, ","))
	f.StringVar(&cfg.NATSURL, "nats-url", nats.DefaultURL, "NATS server to use (not with -dev)")
	f.StringVar(&cfg.NATSListen, "nats-listen", "", "with -dev, also serve the embedded NATS on this address (e.g. 127.0.0.1:4223)")
	f.StringVar(&cfg.NATSCredentials, "nats-credentials", "", "directory made by `cloister bus init` holding the NATS identity of each service this process runs (<service>.nk) "+
		"and the key of the gateway's assertions of callers (assertion.nk for the gateway, assertion.pub for the others); each service connects as itself, "+
		"with only the permissions its role has. Needed outside -dev, whose embedded server keeps its own in --data-dir")
	f.StringVar(&cfg.NATSTLSCA, "nats-tls-ca", "", "PEM file of the CA that signed the NATS server's certificate, for a tls:// --nats-url (default: the system's roots)")
	f.BoolVar(&cfg.InsecureNATS, "insecure-nats", false, "run on a NATS server that lets clients in without credentials; "+
		"without it the server refuses to start there, since anyone who reaches such a NATS can act as any service")
	f.StringVar(&cfg.RedisURL, "redis-url", "", "Redis for the cache; empty means an in-process cache")
	f.StringVar(&cfg.RedisPasswordFile, "redis-password-file", "", "file holding the Redis password (kept out of --redis-url and the environment)")
	f.IntVar(&cfg.Replicas, "replicas", 1, "JetStream replicas of streams and buckets (3 in a cluster; one that has more keeps them)")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&cfg.Simulation, "simulation", false, "accept simulated SGX evidence from accounts whose policy allows it (on with -dev); needs a master key")
	f.StringVar(&cfg.MasterKey, "master-key-file", "", "file holding the base64 key-encryption key that seals secrets at rest (or set $CLOISTER_MASTER_KEY; -dev makes one in --data-dir)")
	f.DurationVar(&cfg.Reattest, "reattest-every", 24*time.Hour, "how often nodes enrolled with TEE evidence must re-attest; one that fails, or is overdue, becomes untrusted and its certificate is revoked")
	f.StringVar(&cfg.GramineImage, "gramine-image", "", "the Gramine runtime image whose runtime (libpal.so, loader, libsysdb.so) every converted image carries, pulled on the first conversion "+
		"(default "+DefaultGramineImage+", or, when this process serves a built-in registry (--registry, as -dev does), Cloister's STAND-IN runtime, published there as "+StandInRuntimeRepository+":1, "+
		"which measures and attests in simulation but cannot start an SGX enclave)")
	f.StringVar(&cfg.Launcher, "launcher", "", "the cloister-launcher binary packed into converted images (default: cloister-launcher beside this binary, then on $PATH); without one the imageconverter serves its API but converts nothing")
	f.StringVar(&cfg.PCSURL, "pcs-url", "", "Intel PCS or PCCS base URL (API v4) to fetch SGX collateral from, e.g. https://api.trustedservices.intel.com/sgx/certification/v4/ (TDX collateral from its tdx/certification/v4/ beside it)")
	f.StringVar(&cfg.KDSURL, "amd-kds-url", "", "AMD key distribution service base URL to fetch the VCEK of an SEV-SNP report that comes without it, e.g. https://kdsintf.amd.com (default: none; nodes send their VCEK)")
	f.StringVar(&cfg.NodeHTTP, "node-http", "", "address of the gateway's node listener (HTTPS; node agents present their client certificate); empty serves none. Default none, or "+DevNodeHTTP+" with -dev; needs --node-tls-cert and --node-tls-key, or --node-tls-self-signed, outside -dev")
	f.StringVar(&cfg.NodeTLSCert, "node-tls-cert", "", "PEM server certificate (with its chain) of the node listener; -dev without one creates a self-signed certificate for 127.0.0.1, ::1 and localhost in --data-dir (node-tls.crt)")
	f.StringVar(&cfg.NodeTLSKey, "node-tls-key", "", "PEM private key of --node-tls-cert")
	f.StringSliceVar(&cfg.NodeTLSSelfSigned, "node-tls-self-signed", nil, "host names and IP addresses (comma-separated) of a self-signed certificate for the node listener, "+
		"made on first start and again when it nears expiry or names other hosts, at --node-tls-cert and --node-tls-key or else in --data-dir (node-tls.crt, node-tls.key); "+
		"node agents trust it with --server-ca. For a single machine (docker compose); -dev without it uses "+strings.Join(DevNodeHosts, ","))
	f.StringVar(&cfg.Registry, "registry", "", "address of a built-in OCI registry to serve (plain HTTP, no authentication; kept in the data directory with -dev, else in memory and lost when the server stops), "+
		"for trying Cloister without one; the sample application is published to it as <address>/"+SampleRepository+":"+SampleTag+". Default none, or "+DevRegistry+" with -dev")
	f.StringSliceVar(&cfg.RegistryDeny, "registry-deny", prefixStrings(netguard.DefaultDeny), "networks (CIDR, comma-separated) the image converter may not connect to, "+
		"whatever registry a user names: the default keeps it from loopback, private networks, where a deployment's own services live, and cloud metadata services; "+
		"to reach a registry on a private network give the list without that network (it replaces the default); the registry this process serves (--registry) is always reachable")
	f.StringVar(&cfg.PublicURL, "public-url", "", "the URL users and relying parties reach the gateway at, e.g. https://cloister.example.com: "+
		"application certificates name their CRL and OCSP responder there, and the web console marks its cookies Secure when it is https (a proxy in front ends TLS) "+
		"and shows it in the commands it gives; default: none in certificates, and what each request came to in the console")
	f.StringSliceVar(&cfg.TrustedProxies, "trusted-proxies", nil, "networks (CIDR, comma-separated) of the proxies in front of the gateway: "+
		"from them, X-Forwarded-For names the client that sign-up and login limits count; from anywhere else it is ignored. Default none")
	f.StringVar(&cfg.Sample, "sample", "", "the hello-https sample binary to publish to --registry (default: hello-https beside this binary, then on $PATH)")
	for name, env := range Env {
		f.Lookup(name).Usage += " [$" + env + "]"
	}
}

// ApplyEnv sets each server flag not given on the command line from its
// environment variable, if set (lookup is os.LookupEnv in the server),
// and notes which of the addresses -dev would default were given.
func ApplyEnv(f *pflag.FlagSet, cfg *Config, lookup func(string) (string, bool)) error {
	for _, name := range slices.Sorted(maps.Keys(Env)) {
		env := Env[name]
		fl := f.Lookup(name)
		v, ok := lookup(env)
		if !ok || fl.Changed {
			continue
		}
		if err := fl.Value.Set(v); err != nil {
			return fmt.Errorf("$%s=%q: %w", env, v, err)
		}
	}
	_, inEnv := lookup(Env["node-http"])
	cfg.NodeHTTPGiven = f.Changed("node-http") || inEnv
	_, inEnv = lookup(Env["registry"])
	cfg.RegistryGiven = f.Changed("registry") || inEnv
	return nil
}

// Validate refuses a configuration the server cannot run with, saying
// which flag (and variable) to change.
func (c Config) Validate() error {
	for _, s := range c.Services {
		if !slices.Contains(Services, s) {
			return fmt.Errorf("unknown service %q; choose from %s", s, strings.Join(Services, ","))
		}
	}
	if len(c.Services) == 0 {
		return errors.New("--services names no service")
	}
	if len(slices.Compact(slices.Sorted(slices.Values(c.Services)))) != len(c.Services) {
		return fmt.Errorf("--services names a service twice: %s", strings.Join(c.Services, ","))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("--replicas must be 1 to 5, not %d", c.Replicas)
	}
	if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
		return fmt.Errorf("--http %q is not host:port: %w", c.HTTP, err)
	}
	if c.NodeHTTP != "" {
		if _, _, err := net.SplitHostPort(c.NodeHTTP); err != nil {
			return fmt.Errorf("--node-http %q is not host:port: %w", c.NodeHTTP, err)
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("--public-url %q is not an http(s) URL such as https://cloister.example.com", c.PublicURL)
		}
	}
	if _, err := netguard.ParsePrefixes(c.RegistryDeny); err != nil {
		return fmt.Errorf("--registry-deny: %w", err)
	}
	if _, err := netguard.ParsePrefixes(c.TrustedProxies); err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	if c.Registry != "" {
		if _, _, err := net.SplitHostPort(c.Registry); err != nil {
			return fmt.Errorf("--registry %q is not host:port: %w", c.Registry, err)
		}
	}
	if (c.NodeTLSCert == "") != (c.NodeTLSKey == "") {
		return errors.New("set both --node-tls-cert and --node-tls-key ($CLOISTER_NODE_TLS_CERT, $CLOISTER_NODE_TLS_KEY), or neither")
	}
	for _, h := range c.NodeTLSSelfSigned {
		if err := CheckNodeTLSHost(h); err != nil {
			return fmt.Errorf("--node-tls-self-signed: %w", err)
		}
	}
	if !c.Dev && c.NodeHTTP != "" && c.NodeTLSCert == "" && len(c.NodeTLSSelfSigned) == 0 && slices.Contains(c.Services, "gateway") {
		return fmt.Errorf("--node-http %s serves node agents over TLS and needs a server certificate: set --node-tls-cert and --node-tls-key "+
			"($CLOISTER_NODE_TLS_CERT, $CLOISTER_NODE_TLS_KEY), or --node-tls-self-signed HOST,... on a single machine, "+
			"or leave --node-http empty to serve no node endpoints", c.NodeHTTP)
	}
	if !c.Dev && c.NATSCredentials == "" {
		return errors.New("--nats-credentials ($CLOISTER_NATS_CREDENTIALS) is needed: the directory of the services' NATS identities and of the key of the gateway's assertions, " +
			"which `cloister bus init` makes")
	}
	return nil
}

// CheckNodeTLSHost accepts an IP address or a host name (one label or
// more, such as a compose service's name) for a self-signed certificate.
func CheckNodeTLSHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	if h == "" || len(h) > 253 {
		return fmt.Errorf("%q is neither an IP address nor a host name", h)
	}
	for _, l := range strings.Split(h, ".") {
		ok := len(l) > 0 && len(l) <= 63 && l[0] != '-' && l[len(l)-1] != '-'
		for i := 0; ok && i < len(l); i++ {
			c := l[i] | 0x20 // lower case
			ok = c >= 'a' && c <= 'z' || l[i] >= '0' && l[i] <= '9' || l[i] == '-'
		}
		if !ok {
			return fmt.Errorf("%q is neither an IP address nor a host name (letters, digits, '-' and '.')", h)
		}
	}
	return nil
}

// SingleDashLongFlags accepts "-dev" as "--dev", the spelling that
// `vault server -dev` made familiar; pflag would read it as -d -e -v.
func SingleDashLongFlags(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "-dev" || strings.HasPrefix(a, "-dev=") {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

// ReadyzURL is the readiness URL of a server listening on httpAddr, as
// reached from inside its own container (`cloister healthcheck`'s
// default).
func ReadyzURL(httpAddr string) string {
	if _, _, err := net.SplitHostPort(httpAddr); err != nil {
		return "http://127.0.0.1:8080/readyz"
	}
	return "http://" + LocalAddr(httpAddr) + "/readyz"
}

// LocalAddr turns a listener address into one a client on this machine
// can dial: an unspecified host becomes 127.0.0.1.
func LocalAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
