package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/account"
	"github.com/cloister-cc/cloister/services/attestation"
	"github.com/cloister-cc/cloister/services/ca"
	"github.com/cloister-cc/cloister/services/gateway"
	"github.com/cloister-cc/cloister/services/imageconverter"
	"github.com/cloister-cc/cloister/services/noderegistry"
)

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
}

// serverEnv maps each server flag to the environment variable that sets
// its default.
var serverEnv = map[string]string{
	"dev":             "CLOISTER_DEV",
	"data-dir":        "CLOISTER_DATA_DIR",
	"http":            "CLOISTER_HTTP",
	"services":        "CLOISTER_SERVICES",
	"nats-url":        "NATS_URL",
	"nats-listen":     "CLOISTER_NATS_LISTEN",
	"redis-url":       "REDIS_URL",
	"replicas":        "CLOISTER_REPLICAS",
	"log-level":       "CLOISTER_LOG_LEVEL",
	"pcs-url":         "CLOISTER_PCS_URL",
	"simulation":      "CLOISTER_SIMULATION",
	"master-key-file": "CLOISTER_MASTER_KEY_FILE",
	"launcher":        "CLOISTER_LAUNCHER",
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
			return runServer(ctx, cfg)
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
	f.StringVar(&cfg.Launcher, "launcher", "", "the cloister-launcher binary packed into converted images (default: cloister-launcher beside this binary, then on $PATH); without one the imageconverter serves its API but converts nothing")
	f.StringVar(&cfg.PCSURL, "pcs-url", "", "Intel PCS or PCCS base URL (API v4) to fetch SGX collateral from, e.g. https://api.trustedservices.intel.com/sgx/certification/v4/")
	for name, env := range serverEnv {
		f.Lookup(name).Usage += " [$" + env + "]"
	}
	// Flags on the command line win; the environment fills in the rest.
	cmd.PreRunE = func(*cobra.Command, []string) error { return applyServerEnv(f, os.LookupEnv) }
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
	return nil
}

func runServer(ctx context.Context, cfg serverConfig) error {
	if cfg.Dev {
		cfg.Services = Services
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

	for _, name := range cfg.Services {
		switch name {
		case "account":
			svc, err := account.Start(ctx, account.Config{NATS: nc, Replicas: cfg.Replicas, Logger: logger})
			if err != nil {
				return fmt.Errorf("starting account service: %w", err)
			}
			defer svc.Stop()
		case "attestation":
			acfg := attestation.Config{NATS: nc, Replicas: cfg.Replicas, Logger: logger, Cache: c, PCSURL: cfg.PCSURL, Simulation: cfg.Simulation || cfg.Dev}
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
			svc, err := ca.Start(ctx, ca.Config{NATS: nc, Replicas: cfg.Replicas, Logger: logger, KEK: kek, Cache: c})
			if err != nil {
				return fmt.Errorf("starting ca service: %w", err)
			}
			defer svc.Stop()
		case "imageconverter":
			kek, err := loadKEK(cfg)
			if err != nil {
				return err
			}
			launcher, err := loadLauncher(cfg.Launcher)
			if err != nil {
				return err
			}
			if launcher == nil {
				logger.Warn("no cloister-launcher found (--launcher): this process converts nothing; conversion jobs wait for one that can")
			}
			svc, err := imageconverter.Start(ctx, imageconverter.Config{NATS: nc, Replicas: cfg.Replicas, Logger: logger, KEK: kek, Launcher: launcher})
			if err != nil {
				return fmt.Errorf("starting imageconverter service: %w", err)
			}
			defer svc.Stop()
		case "noderegistry":
			svc, err := noderegistry.Start(ctx, noderegistry.Config{NATS: nc, Replicas: cfg.Replicas, Logger: logger, Cache: c})
			if err != nil {
				return fmt.Errorf("starting noderegistry service: %w", err)
			}
			defer svc.Stop()
		case "gateway":
			gw, err := gateway.New(ctx, gateway.Config{NATS: nc, Cache: c, Logger: logger})
			if err != nil {
				return fmt.Errorf("starting gateway: %w", err)
			}
			defer gw.Close()
			mux.Handle("/v1/", obs.HTTPMiddleware("gateway", gw))
		}
	}

	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.HTTP, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second}
	logger.Info("cloister serving", "http", "http://"+ln.Addr().String(), "services", strings.Join(cfg.Services, ","), "dev", cfg.Dev)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

func shutdown(f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = f(ctx)
}

// connectNATS connects to the configured server, or in -dev starts an
// embedded one keeping its JetStream data in the data directory.
func connectNATS(cfg serverConfig, logger *slog.Logger) (*nats.Conn, func(), error) {
	name := nats.Name("cloister " + strings.Join(cfg.Services, ","))
	if !cfg.Dev {
		nc, err := nats.Connect(cfg.NATSURL, name, nats.MaxReconnects(-1),
			nats.RetryOnFailedConnect(true), nats.ReconnectWait(time.Second))
		if err != nil {
			return nil, nil, fmt.Errorf("connecting to NATS at %s: %w", cfg.NATSURL, err)
		}
		return nc, nc.Close, nil
	}
	opts := &server.Options{
		ServerName: "cloister-dev",
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "jetstream"),
		DontListen: cfg.NATSListen == "",
		NoSigs:     true,
		NoLog:      true,
	}
	if cfg.NATSListen != "" {
		host, port, err := net.SplitHostPort(cfg.NATSListen)
		if err != nil {
			return nil, nil, fmt.Errorf("--nats-listen %q is not host:port: %w", cfg.NATSListen, err)
		}
		opts.Host = host
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return nil, nil, fmt.Errorf("--nats-listen port %q: %w", port, err)
		}
	}
	if err := os.MkdirAll(opts.StoreDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating data directory: %w", err)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("starting embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, nil, errors.New("embedded NATS did not start within 30s")
	}
	logger.Info("embedded NATS JetStream running", "store", opts.StoreDir)
	nc, err := nats.Connect("", nats.InProcessServer(ns), name)
	if err != nil {
		ns.Shutdown()
		return nil, nil, fmt.Errorf("connecting to embedded NATS: %w", err)
	}
	return nc, func() {
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	}, nil
}

// newCache returns Redis behind cache.Tolerant when configured, else an
// in-process cache.
func newCache(ctx context.Context, cfg serverConfig, logger *slog.Logger, health *obs.Health) (cache.Cache, error) {
	if cfg.RedisURL == "" || cfg.Dev {
		if !cfg.Dev {
			logger.Warn("no --redis-url: each process caches on its own, so run one replica of each service; with more, changes reach the others' caches only when entries expire")
		}
		return cache.NewMemory(0), nil
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis-url: %w", err)
	}
	// Fail fast when Redis is down: the cache is optional and Tolerant
	// falls through to the services, so a slow dial only adds latency.
	opt.DialTimeout, opt.DialerRetries, opt.MaxRetries = 500*time.Millisecond, 1, 1
	redis.SetLogger(redisLogger{logger})
	client := redis.NewClient(opt)
	r := cache.NewRedis(client, "cloister:")
	// Redis down makes the gateway slower, not wrong: report it, stay ready.
	if err := r.Ping(ctx); err != nil {
		logger.Warn("Redis not reachable; lookups fall through to the services", "error", err)
	}
	return cache.Tolerant(r, logger), nil
}

// redisLogger sends go-redis's own messages (a line per failed dial) to
// the debug level, so an outage is reported once by cache.Tolerant rather
// than flooding standard error.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// loadLauncher reads the launcher binary: the path given, else
// cloister-launcher beside this executable, else on $PATH. Not finding
// one where none was asked for is not an error (nil); a path given that
// cannot be read is.
func loadLauncher(path string) ([]byte, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--launcher: %w", err)
		}
		return b, nil
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "cloister-launcher"))
	}
	if p, err := exec.LookPath("cloister-launcher"); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		if b, err := os.ReadFile(c); err == nil {
			return b, nil
		}
	}
	return nil, nil
}

// loadKEK returns the key-encryption key: $CLOISTER_MASTER_KEY, else the
// --master-key-file, else (with -dev only) a key file in the data directory,
// created on first start.
func loadKEK(cfg serverConfig) (*pki.KEK, error) {
	if v := os.Getenv("CLOISTER_MASTER_KEY"); v != "" {
		k, err := pki.ParseKEK(v)
		if err != nil {
			return nil, fmt.Errorf("$CLOISTER_MASTER_KEY: %w", err)
		}
		return k, nil
	}
	switch {
	case cfg.MasterKey != "":
		return pki.LoadOrCreateKEKFile(cfg.MasterKey)
	case cfg.Dev:
		return pki.LoadOrCreateKEKFile(filepath.Join(cfg.DataDir, "master.key"))
	}
	return nil, errors.New("a master key is needed to seal secrets: set $CLOISTER_MASTER_KEY (32 bytes, base64) or --master-key-file")
}
