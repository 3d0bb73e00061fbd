// Package gateway is Cloister's REST API: it authenticates callers, turns
// JSON requests into service calls over NATS and answers in JSON, with
// errors as RFC 9457 problem documents. It keeps nothing durable.
package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cloister-cc/cloister/libs/busauth"
	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/cache/local"
	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/obs"
)

// Config is what the gateway needs.
type Config struct {
	NATS *nats.Conn
	// Replicas is the deployment's number of replicas of the streams
	// the gateway ensures as it starts (default 1; a stream with more
	// keeps them).
	Replicas int
	// Assertions signs the gateway's word on whom each call it makes for
	// a signed-in caller is for; the services take the actor from it.
	Assertions *busauth.Signer
	// Cache holds authenticated principals; wrap Redis in cache.Tolerant
	// so that an outage falls through to the account service.
	Cache  cache.Cache
	Logger *slog.Logger
	// CredentialRate limits sign-ups and logins per client address;
	// zero means DefaultCredentialRate. EmailRate limits them per account
	// email, whatever the address; zero means DefaultEmailRate.
	CredentialRate CredentialRate
	EmailRate      CredentialRate
	// TrustedProxies are the networks of the proxies in front of the
	// gateway, whose X-Forwarded-For names the client; elsewhere the
	// header is ignored.
	TrustedProxies []netip.Prefix
	// Clock is the time nodes' client certificates are checked against
	// and accounts' summaries are made at; nil means time.Now.
	Clock func() time.Time
}

// Gateway serves the REST API.
type Gateway struct {
	accounts    *accountv1.AccountClient
	attestation *attestationv1.AttestationClient
	ca          *cav1.CAClient
	images      *imageconverterv1.ImageConverterClient
	nodes       *noderegistryv1.NodeRegistryClient
	assertions  *busauth.Signer
	cache       cache.Cache
	logger      *slog.Logger
	mux         *http.ServeMux
	nodeMux     *http.ServeMux
	nodeCAs     *caPools
	clock       func() time.Time
	watch       *events.Consumer
	openapi     []byte
	credentials *limiter // per client
	emails      *limiter // per account email, whatever the client
	// trustedProxies are where X-Forwarded-For is believed.
	trustedProxies []netip.Prefix
	// distrustBefore (Unix nanoseconds): cached credentials written before
	// it are not trusted. It starts at the gateway's start, since a
	// revocation mark lost before then went unnoticed here, and moves to
	// the time of each lost mark.
	distrustBefore atomic.Int64
	// local holds principals decoded in process (localauth.go).
	local *local.Map[principal]
	// imageWatch follows the image converter's events to wake imageWaits.
	imageWatch *events.Consumer
	imageWaits imageWaits
}

// New returns a gateway and starts watching the events that invalidate
// its cache. Close stops the watch.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	if cfg.NATS == nil || cfg.Cache == nil || cfg.Assertions == nil {
		return nil, errors.New("gateway: a NATS connection, a cache and an assertion signer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	natsrpc.CountReconnects(cfg.NATS, "gateway")
	doc, err := OpenAPIJSON()
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		accounts:    accountv1.NewAccountClient(cfg.NATS),
		attestation: attestationv1.NewAttestationClient(cfg.NATS),
		ca:          cav1.NewCAClient(cfg.NATS),
		images:      imageconverterv1.NewImageConverterClient(cfg.NATS),
		nodes:       noderegistryv1.NewNodeRegistryClient(cfg.NATS),
		assertions:  cfg.Assertions,
		cache:       cfg.Cache,
		logger:      cfg.Logger.With(obs.KeyComponent, "gateway"),
		mux:         http.NewServeMux(),
		nodeMux:     http.NewServeMux(),
		nodeCAs:     newCAPools(),
		local:       newLocalPrincipals(),
		clock:       cfg.Clock,
		openapi:     doc,
	}
	if g.clock == nil {
		g.clock = time.Now
	}
	if cfg.CredentialRate.Burst <= 0 || cfg.CredentialRate.Every <= 0 {
		cfg.CredentialRate = DefaultCredentialRate
	}
	g.credentials = newLimiter(cfg.CredentialRate)
	if cfg.EmailRate.Burst <= 0 || cfg.EmailRate.Every <= 0 {
		cfg.EmailRate = DefaultEmailRate
	}
	g.emails = newLimiter(cfg.EmailRate)
	g.trustedProxies = slices.Clone(cfg.TrustedProxies)
	g.distrustBefore.Store(time.Now().UnixNano())
	for _, rt := range g.routes() {
		g.mux.Handle(rt.Method+" "+rt.Pattern, rt.Handler)
	}
	for _, rt := range g.nodeRoutes() {
		g.nodeMux.Handle(rt.Method+" "+rt.Pattern, rt.Handler)
	}
	js, err := events.Open(ctx, cfg.NATS, max(cfg.Replicas, 1))
	if err != nil {
		return nil, err
	}
	revocations := g.revocations()
	g.watch, err = events.Watch(ctx, js, events.StreamEvents, revocations.Subjects(), revocations.Handle, g.logger)
	if err != nil {
		return nil, err
	}
	images := g.imageEvents()
	if g.imageWatch, err = events.Watch(ctx, js, events.StreamEvents, images.Subjects(), images.Handle, g.logger); err != nil {
		g.watch.Stop()
		return nil, err
	}
	return g, nil
}

// Close stops watching events.
func (g *Gateway) Close() {
	g.watch.Stop()
	g.imageWatch.Stop()
}

// revocations drop the cache entry of a revoked credential.
func (g *Gateway) revocations() *events.Router {
	r := events.NewRouter()
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.SessionRevoked) error {
		return g.forget(ctx, SessionCacheKey(m.GetTokenHash()))
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.APIKeyRevoked) error {
		return g.forget(ctx, APIKeyCacheKey(m.GetKeyId()))
	})
	return r
}

// ServeHTTP answers unknown paths and wrong methods with problem
// documents too, not the mux's plain text.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { serveMux(g.mux, w, r) }

// serveMux serves r with mux, answering what it does not route with a
// problem document.
func serveMux(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	if _, pattern := mux.Handler(r); pattern != "" {
		mux.ServeHTTP(w, r)
		return
	}
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := mux.Handler(probe); p != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		writeProblem(w, errNotFound(r.URL.Path))
		return
	}
	for _, m := range allowed {
		w.Header().Add("Allow", m)
	}
	writeProblem(w, errMethod(r.Method, r.URL.Path))
}
