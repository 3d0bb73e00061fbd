package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// FuzzDecodeBodies feeds every request body type arbitrary bytes: decoding
// never panics, and every failure is a client error with a message.
func FuzzDecodeBodies(f *testing.F) {
	for _, seed := range []string{
		`{"email":"a@example.com","password":"correct horse battery"}`,
		`{"name":"A","description":"d"}`, `{"name":null}`, `{"role":"admin"}`,
		`{"name":"k","ttl_seconds":3600}`, `{"email":"a@b.co","role":"member"}`,
		`{`, `[]`, `""`, `{"a":1}`, `{} {}`, "\xff\xfe", `{"ttl_seconds":1e400}`,
	} {
		f.Add([]byte(seed))
	}
	targets := []func() any{
		func() any { return new(api.Credentials) },
		func() any { return new(api.CreateAccount) },
		func() any { return new(api.UpdateAccount) },
		func() any { return new(api.AddMember) },
		func() any { return new(api.SetRole) },
		func() any { return new(api.CreateAPIKey) },
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, newTarget := range targets {
			req := httptest.NewRequest("POST", "/v1/x", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			err := decodeJSON(httptest.NewRecorder(), req, newTarget())
			if err == nil {
				continue
			}
			if k := errs.KindOf(err); k != errs.Invalid && k != errs.TooLarge {
				t.Fatalf("decoding %q: kind %v, want a client error: %v", body, k, err)
			}
			if errs.PublicMessage(err) == "" {
				t.Fatalf("decoding %q: empty message", body)
			}
		}
	})
}

// FuzzCredentials feeds the Authorization header and query parsing.
func FuzzCredentials(f *testing.F) {
	for _, seed := range []string{"Bearer cls_abc", "Bearer clk_0194_secret", "bearer  x", "Basic Zm9v", "", "Bearer " + strings.Repeat("a", 300)} {
		f.Add(seed, "limit=5&cursor=abc")
	}
	f.Fuzz(func(t *testing.T, header, query string) {
		r := &http.Request{Header: http.Header{"Authorization": {header}}, URL: &url.URL{RawQuery: query}}
		token, err := bearerToken(r)
		if err == nil {
			if token == "" || len(token) > maxTokenLen {
				t.Fatalf("bearerToken(%q) = %q, nil", header, token)
			}
			if key, ok := cacheKey(token); ok && !strings.HasPrefix(key, "auth:") {
				t.Fatalf("cacheKey(%q) = %q", token, key)
			}
		}
		if limit, _, err := pageParams(r); err == nil && (limit < 0 || limit > 200) {
			t.Fatalf("pageParams(%q) limit %d accepted", query, limit)
		} else if err != nil && errs.KindOf(err) != errs.Invalid {
			t.Fatalf("pageParams(%q): %v", query, err)
		}
	})
}
