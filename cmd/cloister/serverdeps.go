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
	"github.com/redis/go-redis/v9"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/libs/pki"
)

// connectNATS connects to the configured server, or in -dev starts an
// embedded one keeping its JetStream data in the data directory.
func connectNATS(cfg serverconfig.Config, logger *slog.Logger) (*nats.Conn, func(), error) {
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
