package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// TestAPIClientErrors: the CLI adds its advice where the user can act on
// it (a server it cannot reach, a missing login) and nowhere else.
func TestAPIClientErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/users/me":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"type":"about:blank","title":"Unauthorized","status":401,"detail":"the token is missing, expired or revoked","code":"unauthenticated"}`))
		default:
			_, _ = w.Write([]byte(`{not json`))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := &apiClient{api.Client{BaseURL: srv.URL, HTTP: srv.Client()}}

	err := c.do(ctx, "GET", "/v1/users/me", nil, &struct{}{})
	var pe *api.Error
	if !errors.As(err, &pe) || pe.Status != 401 || !strings.Contains(err.Error(), "cloister login") || !strings.Contains(err.Error(), "[401 unauthenticated]") {
		t.Errorf("401 = %v, want the problem with the login advice", err)
	}
	err = c.do(ctx, "GET", "/v1/accounts", nil, &struct{}{})
	if err == nil || strings.Contains(err.Error(), "is the server running") || !strings.Contains(err.Error(), "decoding") {
		t.Errorf("a malformed answer = %v, want a decoding error without the connection advice", err)
	}
	down := &apiClient{api.Client{BaseURL: "http://127.0.0.1:1", HTTP: &http.Client{}}}
	if err := down.do(ctx, "GET", "/v1/accounts", nil, nil); err == nil || !strings.Contains(err.Error(), "is the server running") {
		t.Errorf("an unreachable server = %v, want the connection advice", err)
	}
}
