package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// echo answers POST /v1/echo with the body it got, the caller's token and
// address; anything else with a problem, and /v1/plain with plain text.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/echo":
		var in map[string]string
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		in["auth"], in["from"] = r.Header.Get("Authorization"), r.RemoteAddr
		_ = json.NewEncoder(w).Encode(in)
	case "/v1/plain":
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "upstream down\n")
	default:
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(api.Problem{Type: "about:blank", Title: "Not Found", Status: 404, Detail: "no such app", Code: "not_found", Reason: "app_not_found"})
	}
})

func TestClient(t *testing.T) {
	srv := httptest.NewServer(echo)
	defer srv.Close()
	ctx := context.Background()
	for name, c := range map[string]*api.Client{
		"network":    {BaseURL: srv.URL + "/", Token: "cls_t", HTTP: srv.Client()},
		"in process": {Token: "cls_t", HTTP: api.InProcess(echo, "192.0.2.7:1234")},
	} {
		t.Run(name, func(t *testing.T) {
			var out map[string]string
			if err := c.Do(ctx, "POST", "/v1/echo", map[string]string{"a": "b"}, &out); err != nil {
				t.Fatal(err)
			}
			if out["a"] != "b" || out["auth"] != "Bearer cls_t" || out["from"] == "" {
				t.Fatalf("echo = %v", out)
			}
			if name == "in process" && out["from"] != "192.0.2.7:1234" {
				t.Errorf("in-process caller address %q", out["from"])
			}
			var pe *api.Error
			err := c.Do(ctx, "GET", "/v1/apps/x", nil, nil)
			if !errors.As(err, &pe) || pe.Status != 404 || pe.Reason != "app_not_found" || err.Error() != "no such app" {
				t.Fatalf("problem = %#v (%v)", pe, err)
			}
			err = c.Do(ctx, "GET", "/v1/plain", nil, nil)
			if !errors.As(err, &pe) || pe.Status != 502 || pe.Detail != "upstream down" {
				t.Fatalf("plain error = %#v (%v)", pe, err)
			}
		})
	}
	// An answer over MaxReply is cut, and then does not decode.
	small := &api.Client{BaseURL: srv.URL, HTTP: srv.Client(), MaxReply: 8}
	if err := small.Do(ctx, "POST", "/v1/echo", map[string]string{"a": "b"}, &map[string]string{}); err == nil || !strings.Contains(err.Error(), "decoding") {
		t.Fatalf("an answer over MaxReply = %v, want a decoding error", err)
	}
	down := &api.Client{BaseURL: "http://127.0.0.1:1"}
	var pe *api.Error
	if err := down.Do(ctx, "GET", "/v1/echo", nil, nil); err == nil || errors.As(err, &pe) {
		t.Fatalf("unreachable API = %v, want a transport error", err)
	}
}
