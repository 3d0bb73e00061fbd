package obs

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// DefaultCheckTimeout bounds each readiness check.
const DefaultCheckTimeout = 2 * time.Second

// Health serves liveness and readiness. It is safe for concurrent use.
type Health struct {
	timeout time.Duration

	mu     sync.RWMutex
	checks []check
}

type check struct {
	name string
	fn   func(ctx context.Context) error
}

// HealthOption configures a Health.
type HealthOption func(*Health)

// WithCheckTimeout sets how long Readyz waits for each check (default
// DefaultCheckTimeout).
func WithCheckTimeout(d time.Duration) HealthOption {
	return func(h *Health) {
		if d > 0 {
			h.timeout = d
		}
	}
}

// NewHealth returns a Health with no readiness checks: ready until some are
// added.
func NewHealth(opts ...HealthOption) *Health {
	h := &Health{timeout: DefaultCheckTimeout}
	for _, o := range opts {
		o(h)
	}
	return h
}

// AddCheck adds a readiness check, replacing any check of the same name.
// Check only what the process cannot serve without (NATS, say), not what
// it tolerates losing (the cache).
func (h *Health) AddCheck(name string, fn func(ctx context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.checks {
		if h.checks[i].name == name {
			h.checks[i].fn = fn
			return
		}
	}
	h.checks = append(h.checks, check{name: name, fn: fn})
}

type healthBody struct {
	Status string `json:"status"`
}

type readyBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// Healthz answers 200 {"status":"ok"} while the process runs.
func (h *Health) Healthz(w http.ResponseWriter, _ *http.Request) {
	writeHealth(w, http.StatusOK, healthBody{Status: "ok"})
}

// Readyz runs every check at once, each bounded by the check timeout, and
// answers 200 {"status":"ready","checks":{name:"ok"}} when all pass, or 503
// {"status":"not ready","checks":{name:"<error text>"}}. A check that
// ignores its context is reported as timed out and left to finish on its
// own.
func (h *Health) Readyz(w http.ResponseWriter, r *http.Request) {
	h.mu.RLock()
	checks := append([]check(nil), h.checks...)
	h.mu.RUnlock()

	results := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { results[i] = h.run(r.Context(), c) })
	}
	wg.Wait()

	body := readyBody{Status: "ready", Checks: make(map[string]string, len(checks))}
	status := http.StatusOK
	for i, c := range checks {
		if err := results[i]; err != nil {
			body.Status, status = "not ready", http.StatusServiceUnavailable
			body.Checks[c.name] = err.Error()
			continue
		}
		body.Checks[c.name] = "ok"
	}
	writeHealth(w, status, body)
}

func (h *Health) run(ctx context.Context, c check) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func writeHealth(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// Mount registers GET /healthz, GET /readyz and GET /metrics on mux. Neither
// t nor h may be nil.
func Mount(mux *http.ServeMux, t *Telemetry, h *Health) {
	mux.HandleFunc("GET /healthz", h.Healthz)
	mux.HandleFunc("GET /readyz", h.Readyz)
	mux.Handle("GET /metrics", t.MetricsHandler())
}
