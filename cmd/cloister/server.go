package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
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

func newServerCmd() *cobra.Command {
	var cfg serverconfig.Config
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
	serverconfig.AddFlags(f, &cfg)
	// Flags on the command line win; the environment fills in the rest.
	cmd.PreRunE = func(*cobra.Command, []string) error { return serverconfig.ApplyEnv(f, &cfg, os.LookupEnv) }
	// The server reads no CLI config file: skip the root's loading of it.
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error { return nil }
	return cmd
}

func runServer(ctx context.Context, cfg serverconfig.Config) error {
	if cfg.Dev {
		cfg.Services = serverconfig.Services
		if !cfg.NodeHTTPGiven {
			cfg.NodeHTTP = serverconfig.DevNodeHTTP
		}
		if !cfg.RegistryGiven {
			cfg.Registry = serverconfig.DevRegistry
		}
	}
	level, err := obs.ParseLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger := obs.NewLogger(os.Stderr, level, "cloister")
	tel, err := obs.Setup(ctx, obs.Config{ServiceName: "cloister", Version: version})
	if err != nil {
		return err
	}
	defer shutdown(tel.Shutdown)

	b, err := connectBus(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer b.close()

	health := obs.NewHealth()
	health.AddCheck("nats", b.connected)
	health.AddCheck("streams", b.streamsReachable)
	mux := http.NewServeMux()
	obs.Mount(mux, tel, health)
	// One cache for every service in the process: Redis when configured.
	c, err := newCache(ctx, cfg, logger, health)
	if err != nil {
		return err
	}

	var gw *gateway.Gateway
	for _, name := range cfg.Services {
		opts := service.Options{NATS: b.conn(name), Replicas: cfg.Replicas, Logger: logger, Assertions: b.verifier(name)}
		switch name {
		case "account":
			svc, err := account.Start(ctx, account.Config{Options: opts})
			if err != nil {
				return fmt.Errorf("starting account service: %w", err)
			}
			defer svc.Stop()
		case "attestation":
			acfg := attestation.Config{Options: opts, Cache: c, PCSURL: cfg.PCSURL, KDSURL: cfg.KDSURL, Simulation: cfg.Simulation || cfg.Dev}
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
			guard := netguard.New(deny, builtInRegistryAddrs(ctx, cfg)...)
			icfg := imageconverter.Config{Options: opts, KEK: kek, Launcher: launcher, GramineImage: firstNonEmpty(cfg.GramineImage, serverconfig.DefaultGramineImage),
				RegistryOptions: []remote.Option{remote.WithTransport(guard.Transport())}}
			if cfg.GramineImage == "" && cfg.Registry != "" {
				rt, err := enclave.StandInRuntime(serverconfig.LocalAddr(cfg.Registry) + "/" + serverconfig.StandInRuntimeRepository)
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
			proxies, _ := netguard.ParsePrefixes(cfg.TrustedProxies) // checked by validate
			signer, err := b.signer()
			if err != nil {
				return fmt.Errorf("--nats-credentials: %w", err)
			}
			gw, err = gateway.New(ctx, gateway.Config{NATS: b.conn(name), Replicas: cfg.Replicas, Assertions: signer, Cache: c, Logger: logger, TrustedProxies: proxies})
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

func shutdown(f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = f(ctx)
}
