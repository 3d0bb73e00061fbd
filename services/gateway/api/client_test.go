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
	"time"

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

// TestDoOnce: a creation is sent again, with the same key and body, while
// its answer is lost or is 503, and not after any other answer.
func TestDoOnce(t *testing.T) {
	type sending struct{ key, body string }
	var got []sending
	answers := []func(w http.ResponseWriter){
		func(w http.ResponseWriter) { // unavailable for the moment
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(api.Problem{Title: "Service Unavailable", Status: 503, Code: "unavailable"})
		},
		func(w http.ResponseWriter) { // the answer is lost with the connection
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		},
		func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"id":"a-1"}`)
		},
		func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusConflict)
			_ = json.NewEncoder(w).Encode(api.Problem{Title: "Conflict", Status: 409, Code: "conflict"})
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, sending{r.Header.Get("Idempotency-Key"), string(b)})
		answers[min(len(got), len(answers))-1](w)
	}))
	defer srv.Close()
	c := &api.Client{BaseURL: srv.URL, HTTP: srv.Client()}
	ctx := context.Background()

	var out struct{ ID string }
	if err := c.DoOnce(ctx, "POST", "/v1/accounts", "k-1", map[string]string{"name": "a"}, &out); err != nil || out.ID != "a-1" {
		t.Fatalf("DoOnce = %v, %+v; want a-1 at the third sending", err, out)
	}
	if len(got) != 3 {
		t.Fatalf("sent %d times, want 3 (503, lost answer, 201)", len(got))
	}
	for i, s := range got {
		if s != (sending{"k-1", `{"name":"a"}`}) {
			t.Errorf("sending %d = %+v, want the same key and body each time", i+1, s)
		}
	}

	// Any other problem is the answer: no second sending.
	var pe *api.Error
	if err := c.DoOnce(ctx, "POST", "/v1/accounts", "k-2", map[string]string{"name": "b"}, nil); !errors.As(err, &pe) || pe.Status != 409 || len(got) != 4 {
		t.Fatalf("409 = %v after %d sendings, want the conflict after one more", err, len(got))
	}
	if err := c.DoOnce(ctx, "POST", "/v1/accounts", "", nil, nil); err == nil || len(got) != 4 {
		t.Fatalf("an empty key = %v, want an error before sending", err)
	}

	// An API that stays unavailable: the last 503, when ctx ends.
	answers = answers[:1]
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	before := len(got)
	if err := c.DoOnce(short, "POST", "/v1/accounts", "k-3", nil, nil); !errors.As(err, &pe) || pe.Status != 503 || len(got)-before < 2 {
		t.Fatalf("unavailable = %v after %d sendings, want the 503 after several", err, len(got)-before)
	}
}
