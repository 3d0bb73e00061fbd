package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
	"github.com/cloister-cc/cloister/libs/busauth"
	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/events"
	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/libs/pki"
)

// bus is the process's connections to NATS: one per service it runs, each
// as that service's identity, so that each has its own role's permissions.
type bus struct {
	conns map[string]*nats.Conn
	// secret is the gateway's assertion secret, when this process runs
	// the gateway or -dev; keys are the assertion keys of its services.
	secret busauth.AssertionSecret
	keys   map[string][]byte
	close  func()
}

// verifier checks the gateway's assertions addressed to service.
func (b *bus) verifier(service string) *busauth.Verifier {
	key, ok := b.keys[service]
	if !ok && b.secret != nil {
		key = b.secret.ServiceKey(service)
	}
	return busauth.NewVerifier(service, key, nil)
}

// signer makes the gateway's assertions.
func (b *bus) signer() (*busauth.Signer, error) { return busauth.NewSigner(b.secret, nil) }

// conn is the connection of the service name.
func (b *bus) conn(name string) *nats.Conn { return b.conns[name] }

// connected reports a service whose connection is down.
func (b *bus) connected(context.Context) error {
	for name, nc := range b.conns {
		if !nc.IsConnected() {
			return fmt.Errorf("%s is not connected to NATS", name)
		}
	}
	return nil
}

// readinessStreams are the streams every write needs: a process whose
// server cannot reach them cannot serve.
var readinessStreams = []string{events.StreamEvents, events.StreamAudit}

// streamsReachable reports a service whose NATS server cannot reach the
// streams' leaders: a server cut off from its cluster's quorum still
// takes connections but can store nothing, and a process on it should
// be taken out of service (its connections move on, or it heals).
func (b *bus) streamsReachable(ctx context.Context) error {
	for name, nc := range b.conns {
		js, err := jetstream.New(nc)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, stream := range readinessStreams {
			s, err := js.Stream(ctx, stream)
			if err != nil {
				return fmt.Errorf("%s cannot reach stream %s: %w", name, stream, err)
			}
			if c := s.CachedInfo().Cluster; c != nil && c.Leader == "" {
				return fmt.Errorf("stream %s has no leader", stream)
			}
		}
	}
	return nil
}

// connectBus connects each service to the configured server, or in -dev
// starts an embedded one keeping its JetStream data, and the services'
// identities, in the data directory.
func connectBus(ctx context.Context, cfg serverconfig.Config, logger *slog.Logger) (*bus, error) {
	if cfg.Dev {
		return startDevBus(cfg, logger)
	}
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
	if cfg.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSTLSCA))
	}
	ids, err := busauth.Load(cfg.NATSCredentials, cfg.Services)
	if err != nil {
		return nil, fmt.Errorf("--nats-credentials: %w", err)
	}
	b := &bus{conns: map[string]*nats.Conn{}, keys: map[string][]byte{}}
	for _, name := range cfg.Services {
		if name == busauth.Gateway {
			b.secret, err = busauth.LoadAssertionSecret(cfg.NATSCredentials)
		} else {
			b.keys[name], err = busauth.LoadServiceKey(cfg.NATSCredentials, name)
		}
		if err != nil {
			return nil, fmt.Errorf("--nats-credentials: %w", err)
		}
	}
	anonymous, err := acceptsAnonymous(ctx, cfg.NATSURL, opts, logger)
	if err != nil {
		return nil, err
	}
	if anonymous && cfg.InsecureNATS {
		logger.Warn("the NATS server lets clients in without credentials (--insecure-nats): anyone who reaches it can act as any Cloister service", "url", cfg.NATSURL)
	}
	if anonymous && !cfg.InsecureNATS {
		return nil, fmt.Errorf("the NATS server at %s lets clients in without credentials, so anyone who reaches it can act as any Cloister service; "+
			"give it the authorization `cloister bus init` writes (%s), or pass --insecure-nats ($CLOISTER_INSECURE_NATS) to run regardless", cfg.NATSURL, busauth.AuthFile)
	}
	b.close = func() {
		for _, nc := range b.conns {
			nc.Close()
		}
	}
	for _, name := range cfg.Services {
		o := append([]nats.Option{nats.Name("cloister " + name)}, opts...)
		if anonymous {
			// Such a server knows no identities (it refuses NKeys).
			o = append(o, nats.CustomInboxPrefix(busauth.InboxPrefix(name)))
		} else {
			o = append(o, ids[name].Options()...)
		}
		nc, err := nats.Connect(cfg.NATSURL, o...)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("connecting %s to NATS at %s: %w", name, cfg.NATSURL, err)
		}
		b.conns[name] = nc
	}
	return b, nil
}

// acceptsAnonymous tells whether the server at url lets a client in
// without credentials, waiting for it to answer at all.
func acceptsAnonymous(ctx context.Context, url string, opts []nats.Option, logger *slog.Logger) (bool, error) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		nc, err := nats.Connect(url, append(opts, nats.NoReconnect(), nats.Timeout(5*time.Second))...)
		if err == nil {
			nc.Close()
			return true, nil
		}
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || strings.Contains(strings.ToLower(err.Error()), "authorization") {
			return false, nil
		}
		logger.Warn("waiting for NATS", "url", url, "error", err)
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("connecting to NATS at %s: %w", url, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// startDevBus starts the embedded NATS server of -dev: private unless
// --nats-listen, and even then open only to the identities kept in the
// data directory (nats-credentials/), each with its role's permissions.
func startDevBus(cfg serverconfig.Config, logger *slog.Logger) (_ *bus, err error) {
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	creds, err := busauth.LoadOrCreate(DevCredentialsDir(cfg.DataDir))
	if err != nil {
		return nil, fmt.Errorf("the embedded NATS's identities: %w", err)
	}
	ids := creds.Identities
	users, err := busauth.Users(ids.PublicKeys())
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "cloister-dev",
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "jetstream"),
		DontListen: cfg.NATSListen == "",
		NoSigs:     true,
		NoLog:      true,
		Nkeys:      users,
	}
	if cfg.NATSListen != "" {
		host, port, err := net.SplitHostPort(cfg.NATSListen)
		if err != nil {
			return nil, fmt.Errorf("--nats-listen %q is not host:port: %w", cfg.NATSListen, err)
		}
		opts.Host = host
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("--nats-listen port %q: %w", port, err)
		}
	}
	if err := os.MkdirAll(opts.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("starting embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS did not start within 30s")
	}
	logger.Info("embedded NATS JetStream running", "store", opts.StoreDir)
	b := &bus{conns: map[string]*nats.Conn{}, secret: creds.Assertion}
	b.close = func() {
		for _, nc := range b.conns {
			nc.Close()
		}
		ns.Shutdown()
		ns.WaitForShutdown()
		unlock()
	}
	for _, name := range cfg.Services {
		nc, err := nats.Connect("", append(ids[name].Options(), nats.InProcessServer(ns), nats.Name("cloister "+name))...)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("connecting %s to embedded NATS: %w", name, err)
		}
		b.conns[name] = nc
	}
	return b, nil
}

// DevCredentialsDir is where -dev keeps its services' NATS identities:
// with --nats-listen, another `cloister server --nats-credentials` can
// join with them.
func DevCredentialsDir(dataDir string) string { return filepath.Join(dataDir, "nats-credentials") }

// newCache returns Redis behind cache.Tolerant when configured, else an
// in-process cache.
func newCache(ctx context.Context, cfg serverconfig.Config, logger *slog.Logger, health *obs.Health) (cache.Cache, error) {
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
	if cfg.RedisPasswordFile != "" {
		pw, err := os.ReadFile(cfg.RedisPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--redis-password-file: %w", err)
		}
		opt.Password = strings.TrimSpace(string(pw))
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

// loadBinary reads a binary the server hands out: the path given by
// flag, else the named file beside this executable, else on $PATH. Not
// finding one where none was asked for is not an error (nil); a path given
// that cannot be read is.
func loadBinary(flag, path, file string) ([]byte, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		return b, nil
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), file))
	}
	if p, err := exec.LookPath(file); err == nil {
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
func loadKEK(cfg serverconfig.Config) (*pki.KEK, error) {
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
