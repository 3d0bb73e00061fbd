package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// TestConvertWaitsForTheSigningKey: with --wait, a conversion asked for
// while the account's signing key is being made is asked for again, once
// saying why; without --wait, or on another refusal, the refusal stands;
// the timeout ends the waiting with what to do.
func TestConvertWaitsForTheSigningKey(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := posts.Add(1)
		w.Header().Set("Content-Type", "application/problem+json")
		switch {
		case strings.Contains(r.URL.Path, "never-ready"), n <= 2:
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"type":"about:blank","title":"Conflict","status":409,"detail":"the account's enclave signing key is not ready yet","reason":"signing_key_not_ready"}`))
		case strings.Contains(r.URL.Path, "other"):
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"type":"about:blank","title":"Conflict","status":409,"detail":"an image of tag 1 exists","reason":"image_exists"}`))
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"img-1","status":"pending"}`))
		}
	}))
	defer srv.Close()
	c := &cli{addr: srv.URL}
	ctx := context.Background()
	var said bytes.Buffer

	im, err := c.convert(ctx, "/v1/accounts/a/images", api.ConvertImage{App: "x", Tag: "1"}, true, &said)
	if err != nil || im.ID != "img-1" || posts.Load() != 3 || strings.Count(said.String(), "waiting for the account's enclave signing key") != 1 {
		t.Fatalf("convert --wait = %+v, %v after %d requests, saying %q; want the image on the third, said once", im, err, posts.Load(), said.String())
	}
	posts.Store(0)
	var pe *api.Error
	if _, err := c.convert(ctx, "/v1/accounts/a/images", api.ConvertImage{}, false, &said); !errors.As(err, &pe) || pe.Reason != "signing_key_not_ready" || posts.Load() != 1 {
		t.Fatalf("convert without --wait = %v after %d requests, want the refusal at once", err, posts.Load())
	}
	posts.Store(10)
	if _, err := c.convert(ctx, "/v1/accounts/a/other", api.ConvertImage{}, true, &said); !errors.As(err, &pe) || pe.Reason != "image_exists" {
		t.Fatalf("convert --wait refused otherwise = %v, want that refusal", err)
	}
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	_, err = c.convert(short, "/v1/accounts/a/never-ready", api.ConvertImage{}, true, &said)
	if err = waited(err, 1500*time.Millisecond, ""); err == nil || !strings.Contains(err.Error(), "signing key was not ready within --timeout 1.5s") {
		t.Fatalf("convert --wait past its timeout = %v, want it to say the key was not ready", err)
	}
	if err := waited(context.DeadlineExceeded, time.Minute, "img-1"); !strings.Contains(err.Error(), "it goes on: follow it with cloister image show img-1") {
		t.Fatalf("waited(image) = %v", err)
	}
	if line := progressLine(api.Image{Status: "failed", Reason: "pull_failed", Error: "the input image could not be pulled (HTTP 404)"}); !strings.Contains(line, "failed     pull_failed: the input image could not be pulled") {
		t.Fatalf("the progress line of a failed conversion = %q, want its reason", line)
	}
	if line := progressLine(api.Image{Status: "pending", Reason: "registry_timeout", Error: "the registry is unavailable (HTTP 503)"}); !strings.Contains(line,
		"pending    to be tried again after registry_timeout: the registry is unavailable (HTTP 503)") {
		t.Fatalf("the progress line between attempts = %q, want why the last one failed", line)
	}
}
