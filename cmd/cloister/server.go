package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/netguard"
	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/account"
	"github.com/cloister-cc/cloister/services/attestation"
	"github.com/cloister-cc/cloister/services/ca"
	"github.com/cloister-cc/cloister/services/gateway"
	"github.com/cloister-cc/cloister/services/gateway/console"
	"github.com/cloister-cc/cloister/services/imageconverter"
	"github.com/cloister-cc/cloister/services/noderegistry"
)

// DefaultGramineImage is the Gramine project's published image of its
// current release: the runtime converted images carry by default.
const DefaultGramineImage = "docker.io/gramineproject/gramine:stable-noble"

// Services lists every service `cloister server` can run, in start order.
var Services = []string{"account", "attestation", "ca", "imageconverter", "noderegistry", "gateway"}

// needsMasterKey tells whether a service seals secrets under the master
// key: CA keys, signing keys and registry credentials, the simulation root.
func needsMasterKey(service string, simulation bool) bool {
	return service == "ca" || service == "imageconverter" || service == "attestation" && simulation
}

// serverConfig is the server's configuration; each field has a flag and
// an environment variable (serverEnv), which compose and Kubernetes use.
type serverConfig struct {
	Dev        bool
	DataDir    string
	HTTP       string
	Services   []string
	NATSURL    string
	NATSListen string
	RedisURL   string
	Replicas   int
	LogLevel   string
	PCSURL     string
	Simulation bool
	MasterKey  string // path of the KEK file
	Launcher   string // path of the cloister-launcher binary
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
	// nodeHTTPGiven: --node-http or its variable was given; otherwise
	// -dev serves the node listener on DevNodeHTTP.
	nodeHTTPGiven bool
	// Registry is the address of the built-in registry; empty serves none.
	Registry string
	Sample   string // path of the hello-https binary published to it
	// RegistryDeny are the networks the converter may not connect to.
	RegistryDeny []string
	// PublicURL is where users reach the gateway, when a proxy ends TLS
	// in front of it.
	PublicURL string
	// registryGiven: --registry or its variable was given; otherwise -dev
	// serves the registry on DevRegistry.
	registryGiven bool
}

// DevNodeHTTP is where -dev serves the node listener unless told otherwise.
const DevNodeHTTP = "127.0.0.1:8443"

// serverEnv maps each server flag to the environment variable that sets
// its default.
var serverEnv = map[string]string{
	"dev":                  "CLOISTER_DEV",
	"data-dir":             "CLOISTER_DATA_DIR",
	"http":                 "CLOISTER_HTTP",
	"services":             "CLOISTER_SERVICES",
	"nats-url":             "NATS_URL",
	"nats-listen":          "CLOISTER_NATS_LISTEN",
	"redis-url":            "REDIS_URL",
	"replicas":             "CLOISTER_REPLICAS",
	"log-level":            "CLOISTER_LOG_LEVEL",
	"pcs-url":              "CLOISTER_PCS_URL",
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
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "cloister")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "cloister")
	}
	return ".cloister"
}

func newServerCmd() *cobra.Command {
	var cfg serverConfig
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run Cloister's services",
		Long: `Run Cloister's services.

With -dev, every service runs in this process on an embedded NATS JetStream
server whose data is kept in --data-dir, with an in-process cache: nothing
else is needed. Without it, --services chooses which services run, against
the NATS server at --nats-url and, when --redis-url is set, a Redis cache.

Every flag can also be set by the environment variable named in its help.`,
		Example: `  cloister server -dev
  cloister server --services=account,gateway --nats-url nats://nats:4222 --redis-url redis://redis:6379`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err := runServer(ctx, cfg)
			// Stopped while starting: what failed was only cut short.
			if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&cfg.Dev, "dev", false, "run every service in one process with embedded NATS and an in-process cache")
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "where -dev keeps its data")
	f.StringVar(&cfg.HTTP, "http", "127.0.0.1:8080", "address of the HTTP listener (REST API, health, metrics)")
	f.StringSliceVar(&cfg.Services, "services", Services, "services to run: "+strings.Join(Services, ","))
	f.StringVar(&cfg.NATSURL, "nats-url", nats.DefaultURL, "NATS server to use (not with -dev)")
	f.StringVar(&cfg.NATSListen, "nats-listen", "", "with -dev, also serve the embedded NATS on this address (e.g. 127.0.0.1:4223)")
	f.StringVar(&cfg.RedisURL, "redis-url", "", "Redis for the cache; empty means an in-process cache")
	f.IntVar(&cfg.Replicas, "replicas", 1, "JetStream replicas of streams and buckets (3 in a cluster)")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&cfg.Simulation, "simulation", false, "accept simulated SGX evidence from accounts whose policy allows it (on with -dev); needs a master key")
	f.StringVar(&cfg.MasterKey, "master-key-file", "", "file holding the base64 key-encryption key that seals secrets at rest (or set $CLOISTER_MASTER_KEY; -dev makes one in --data-dir)")
	f.DurationVar(&cfg.Reattest, "reattest-every", 24*time.Hour, "how often nodes enrolled with TEE evidence must re-attest; one that fails, or is overdue, becomes untrusted and its certificate is revoked")
	f.StringVar(&cfg.GramineImage, "gramine-image", "", "the Gramine runtime image whose runtime (libpal.so, loader, libsysdb.so) every converted image carries, pulled on the first conversion "+
		"(default "+DefaultGramineImage+", or, when this process serves a built-in registry (--registry, as -dev does), Cloister's STAND-IN runtime, published there as "+StandInRuntimeRepository+":1, "+
		"which measures and attests in simulation but cannot start an SGX enclave)")
	f.StringVar(&cfg.Launcher, "launcher", "", "the cloister-launcher binary packed into converted images (default: cloister-launcher beside this binary, then on $PATH); without one the imageconverter serves its API but converts nothing")
	f.StringVar(&cfg.PCSURL, "pcs-url", "", "Intel PCS or PCCS base URL (API v4) to fetch SGX collateral from, e.g. https://api.trustedservices.intel.com/sgx/certification/v4/")
	f.StringVar(&cfg.NodeHTTP, "node-http", "", "address of the gateway's node listener (HTTPS; node agents present their client certificate); empty serves none. Default none, or "+DevNodeHTTP+" with -dev; needs --node-tls-cert and --node-tls-key, or --node-tls-self-signed, outside -dev")
	f.StringVar(&cfg.NodeTLSCert, "node-tls-cert", "", "PEM server certificate (with its chain) of the node listener; -dev without one creates a self-signed certificate for 127.0.0.1, ::1 and localhost in --data-dir (node-tls.crt)")
	f.StringVar(&cfg.NodeTLSKey, "node-tls-key", "", "PEM private key of --node-tls-cert")
	f.StringSliceVar(&cfg.NodeTLSSelfSigned, "node-tls-self-signed", nil, "host names and IP addresses (comma-separated) of a self-signed certificate for the node listener, "+
		"made on first start and again when it nears expiry or names other hosts, at --node-tls-cert and --node-tls-key or else in --data-dir (node-tls.crt, node-tls.key); "+
		"node agents trust it with --server-ca. For a single machine (docker compose); -dev without it uses "+strings.Join(devNodeHosts, ","))
	f.StringVar(&cfg.Registry, "registry", "", "address of a built-in OCI registry to serve (plain HTTP, no authentication, in memory: its images are lost when the server stops), "+
		"for trying Cloister without one; the sample application is published to it as <address>/"+SampleRepository+":"+SampleTag+". Default none, or "+DevRegistry+" with -dev")
	f.StringSliceVar(&cfg.RegistryDeny, "registry-deny", prefixStrings(netguard.DefaultDeny), "networks (CIDR, comma-separated) the image converter may not connect to, "+
		"whatever registry a user names: the default keeps it from link-local addresses such as cloud metadata services; add loopback and private networks "+
		"where no registry lives there (the list replaces the default)")
	f.StringVar(&cfg.PublicURL, "public-url", "", "the URL users and relying parties reach the gateway at, e.g. https://cloister.example.com: "+
		"application certificates name their CRL and OCSP responder there, and the web console marks its cookies Secure when it is https (a proxy in front ends TLS) "+
		"and shows it in the commands it gives; default: none in certificates, and what each request came to in the console")
	f.StringVar(&cfg.Sample, "sample", "", "the hello-https sample binary to publish to --registry (default: hello-https beside this binary, then on $PATH)")
	for name, env := range serverEnv {
		f.Lookup(name).Usage += " [$" + env + "]"
	}
	// Flags on the command line win; the environment fills in the rest.
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if err := applyServerEnv(f, os.LookupEnv); err != nil {
			return err
		}
		_, inEnv := os.LookupEnv(serverEnv["node-http"])
		cfg.nodeHTTPGiven = f.Changed("node-http") || inEnv
		_, inEnv = os.LookupEnv(serverEnv["registry"])
		cfg.registryGiven = f.Changed("registry") || inEnv
		return nil
	}
	// The server reads no CLI config file: skip the root's loading of it.
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error { return nil }
	return cmd
}

// applyServerEnv sets each server flag not given on the command line from
// its environment variable, if set.
func applyServerEnv(f *pflag.FlagSet, lookup func(string) (string, bool)) error {
	names := slices.Sorted(maps.Keys(serverEnv))
	for _, name := range names {
		env := serverEnv[name]
		fl := f.Lookup(name)
		v, ok := lookup(env)
		if !ok || fl.Changed {
			continue
		}
		if err := fl.Value.Set(v); err != nil {
			return fmt.Errorf("$%s=%q: %w", env, v, err)
		}
	}
	return nil
}

func (c serverConfig) validate() error {
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
	if c.Registry != "" {
		if _, _, err := net.SplitHostPort(c.Registry); err != nil {
			return fmt.Errorf("--registry %q is not host:port: %w", c.Registry, err)
		}
	}
	if (c.NodeTLSCert == "") != (c.NodeTLSKey == "") {
		return errors.New("set both --node-tls-cert and --node-tls-key ($CLOISTER_NODE_TLS_CERT, $CLOISTER_NODE_TLS_KEY), or neither")
	}
	for _, h := range c.NodeTLSSelfSigned {
		if err := checkNodeTLSHost(h); err != nil {
			return fmt.Errorf("--node-tls-self-signed: %w", err)
		}
	}
	if !c.Dev && c.NodeHTTP != "" && c.NodeTLSCert == "" && len(c.NodeTLSSelfSigned) == 0 && slices.Contains(c.Services, "gateway") {
		return fmt.Errorf("--node-http %s serves node agents over TLS and needs a server certificate: set --node-tls-cert and --node-tls-key "+
			"($CLOISTER_NODE_TLS_CERT, $CLOISTER_NODE_TLS_KEY), or --node-tls-self-signed HOST,... on a single machine, "+
			"or leave --node-http empty to serve no node endpoints", c.NodeHTTP)
	}
	return nil
}

func runServer(ctx context.Context, cfg serverConfig) error {
	if cfg.Dev {
		cfg.Services = Services
		if !cfg.nodeHTTPGiven {
			cfg.NodeHTTP = DevNodeHTTP
		}
		if !cfg.registryGiven {
			cfg.Registry = DevRegistry
		}
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	level, err := obs.ParseLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	logger := obs.NewLogger(os.Stderr, level, "cloister")
	tel, err := obs.Setup(ctx, obs.Config{ServiceName: "cloister", Version: version})
	if err != nil {
		return err
	}
	defer shutdown(tel.Shutdown)

	nc, closeNATS, err := connectNATS(cfg, logger)
	if err != nil {
		return err
	}
	defer closeNATS()

	health := obs.NewHealth()
	health.AddCheck("nats", func(context.Context) error {
		if !nc.IsConnected() {
			return errors.New("not connected to NATS")
		}
		return nil
	})
	mux := http.NewServeMux()
	obs.Mount(mux, tel, health)
	// One cache for every service in the process: Redis when configured.
	c, err := newCache(ctx, cfg, logger, health)
	if err != nil {
		return err
	}

	var gw *gateway.Gateway
	opts := service.Options{NATS: nc, Replicas: cfg.Replicas, Logger: logger}
	for _, name := range cfg.Services {
		switch name {
		case "account":
			svc, err := account.Start(ctx, account.Config{Options: opts})
			if err != nil {
				return fmt.Errorf("starting account service: %w", err)
			}
			defer svc.Stop()
		case "attestation":
			acfg := attestation.Config{Options: opts, Cache: c, PCSURL: cfg.PCSURL, Simulation: cfg.Simulation || cfg.Dev}
			if acfg.Simulation {
				if acfg.KEK, err = loadKEK(cfg); err != nil {
					return err
				}
				logger.Warn("SGX simulation is on: simulated evidence proves nothing about hardware, and is accepted only for accounts whose policy allows it")
			}
			svc, err := attestation.Start(ctx, acfg)
			if err != nil {
				return fmt.Errorf("starting attestation service: %w", err)
			}
			defer svc.Stop()
		case "ca":
			kek, err := loadKEK(cfg)
			if err != nil {
				return err
			}
			svc, err := ca.Start(ctx, ca.Config{Options: opts, KEK: kek, Cache: c, PublicURL: cfg.PublicURL})
			if err != nil {
				return fmt.Errorf("starting ca service: %w", err)
			}
			defer svc.Stop()
		case "imageconverter":
			kek, err := loadKEK(cfg)
			if err != nil {
				return err
			}
			launcher, err := loadBinary("--launcher", cfg.Launcher, "cloister-launcher")
			if err != nil {
				return err
			}
			if launcher == nil {
				logger.Warn("no cloister-launcher found (--launcher): this process converts nothing; conversion jobs wait for one that can")
			}
			deny, _ := netguard.ParsePrefixes(cfg.RegistryDeny) // checked by validate
			icfg := imageconverter.Config{Options: opts, KEK: kek, Launcher: launcher, GramineImage: firstNonEmpty(cfg.GramineImage, DefaultGramineImage),
				RegistryOptions: []remote.Option{remote.WithTransport(netguard.New(deny).Transport())}}
			if cfg.GramineImage == "" && cfg.Registry != "" {
				rt, err := enclave.StandInRuntime(localAddr(cfg.Registry) + "/" + StandInRuntimeRepository)
				if err != nil {
					return fmt.Errorf("loading the stand-in Gramine runtime: %w", err)
				}
				icfg.Runtime = rt
				logger.Warn("converted images carry Cloister's STAND-IN Gramine runtime: they measure and attest in simulation but cannot start an SGX enclave; "+
					"set --gramine-image to a Gramine runtime image for real enclaves", "runtime", rt.Ref)
			}
			svc, err := imageconverter.Start(ctx, icfg)
			if err != nil {
				return fmt.Errorf("starting imageconverter service: %w", err)
			}
			defer svc.Stop()
		case "noderegistry":
			svc, err := noderegistry.Start(ctx, noderegistry.Config{Options: opts, Cache: c, ReattestEvery: cfg.Reattest})
			if err != nil {
				return fmt.Errorf("starting noderegistry service: %w", err)
			}
			defer svc.Stop()
		case "gateway":
			gw, err = gateway.New(ctx, gateway.Config{NATS: nc, Cache: c, Logger: logger})
			if err != nil {
				return fmt.Errorf("starting gateway: %w", err)
			}
			defer gw.Close()
			mux.Handle("/v1/", obs.HTTPMiddleware("gateway", gw))
			var public *url.URL
			if cfg.PublicURL != "" {
				public, _ = url.Parse(cfg.PublicURL) // checked by validate
			}
			con, err := console.New(console.Config{API: gw, Logger: logger, PublicURL: public})
			if err != nil {
				return fmt.Errorf("starting the console: %w", err)
			}
			mux.Handle("/", obs.HTTPMiddleware("console", con))
		}
	}

	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.HTTP, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second}
	servers := []*http.Server{srv}
	errc := make(chan error, 3)
	if gw != nil && cfg.NodeHTTP != "" {
		nodeSrv, err := serveNodes(cfg, gw, logger, errc)
		if err != nil {
			ln.Close()
			return err
		}
		if nodeSrv != nil {
			servers = append(servers, nodeSrv)
		}
	}
	if cfg.Registry != "" {
		regSrv, err := serveRegistry(ctx, cfg, logger, errc)
		if err != nil {
			ln.Close()
			for _, s := range servers[1:] {
				s.Close()
			}
			return err
		}
		if regSrv != nil {
			servers = append(servers, regSrv)
		}
	}
	logger.Info("cloister serving", "http", "http://"+ln.Addr().String(), "services", strings.Join(cfg.Services, ","), "dev", cfg.Dev)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errsShutdown []error
	for _, s := range servers {
		errsShutdown = append(errsShutdown, s.Shutdown(shutdownCtx))
	}
	return errors.Join(errsShutdown...)
}

// devNodeHosts are the names of -dev's self-signed node listener
// certificate, unless --node-tls-self-signed names others.
var devNodeHosts = []string{"127.0.0.1", "::1", "localhost"}

func shutdown(f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = f(ctx)
}
