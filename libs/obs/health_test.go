package obs_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/obs"
)

type healthResponse struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func serve(t *testing.T, h http.HandlerFunc) (int, healthResponse) {
	t.Helper()
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body healthResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body, err)
	}
	return rec.Code, body
}

func TestHealthz(t *testing.T) {
	h := obs.NewHealth()
	h.AddCheck("broken", func(context.Context) error { return errors.New("down") })
	code, body := serve(t, h.Healthz)
	if code != http.StatusOK || body.Status != "ok" {
		t.Errorf("Healthz = %d %+v, want 200 ok, whatever readiness says", code, body)
	}
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	fail := func(context.Context) error { return errors.New("nats: no servers available") }
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	ignoresCtx := make(chan struct{})
	t.Cleanup(func() { close(ignoresCtx) })
	stuck := func(context.Context) error { <-ignoresCtx; return nil }

	type namedCheck struct {
		name string
		fn   func(context.Context) error
	}
	tests := []struct {
		name       string
		checks     []namedCheck
		wantCode   int
		wantStatus string
		wantChecks map[string]string
	}{
		{"no checks", nil, http.StatusOK, "ready", map[string]string{}},
		{"all pass", []namedCheck{{"nats", ok}, {"kv", ok}}, http.StatusOK, "ready",
			map[string]string{"nats": "ok", "kv": "ok"}},
		{"one fails", []namedCheck{{"nats", fail}, {"kv", ok}}, http.StatusServiceUnavailable, "not ready",
			map[string]string{"nats": "nats: no servers available", "kv": "ok"}},
		{"times out", []namedCheck{{"slow", hang}, {"kv", ok}}, http.StatusServiceUnavailable, "not ready",
			map[string]string{"slow": context.DeadlineExceeded.Error(), "kv": "ok"}},
		{"ignores its context", []namedCheck{{"stuck", stuck}}, http.StatusServiceUnavailable, "not ready",
			map[string]string{"stuck": context.DeadlineExceeded.Error()}},
		{"a later check replaces one of the same name", []namedCheck{{"nats", fail}, {"nats", ok}}, http.StatusOK, "ready",
			map[string]string{"nats": "ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A short timeout only makes the hanging cases end sooner; no
			// outcome depends on it.
			h := obs.NewHealth(obs.WithCheckTimeout(50 * time.Millisecond))
			for _, c := range tt.checks {
				h.AddCheck(c.name, c.fn)
			}
			code, body := serve(t, h.Readyz)
			if code != tt.wantCode || body.Status != tt.wantStatus {
				t.Errorf("Readyz = %d %q, want %d %q", code, body.Status, tt.wantCode, tt.wantStatus)
			}
			if len(body.Checks) != len(tt.wantChecks) {
				t.Errorf("Readyz checks = %v, want %v", body.Checks, tt.wantChecks)
			}
			for name, want := range tt.wantChecks {
				if body.Checks[name] != want {
					t.Errorf("Readyz checks[%q] = %q, want %q", name, body.Checks[name], want)
				}
			}
		})
	}
}
