package gateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/libs/testkit/servicetest"
	"github.com/cloister-cc/cloister/services/account"
	"github.com/cloister-cc/cloister/services/attestation"
	"github.com/cloister-cc/cloister/services/ca"
	"github.com/cloister-cc/cloister/services/gateway"
	"github.com/cloister-cc/cloister/services/imageconverter"
	"github.com/cloister-cc/cloister/services/noderegistry"
)

// go-redis logs every failed dial on its own; the tests that stop Redis
// would fill the output with them.
func init() {
	redis.SetLogger(quietRedis{})
	openapi3filter.RegisterBodyDecoder("application/pkix-crl", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/ocsp-response", openapi3filter.FileBodyDecoder)
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// vectorTime is when the shared SGX vector's collateral is valid; the
// attestation service in these tests lives then.
var vectorTime = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

// cheap keeps password hashing fast in tests; the algorithm is the same.
var cheap = &account.PasswordCost{Memory: 1024, Time: 1, Threads: 1}

// stack is every service and a gateway, on an embedded NATS server or a
// cluster.
type stack struct {
	t   testing.TB
	st  *servicetest.Stack
	nc  *nats.Conn
	gw  *gateway.Gateway
	srv *httptest.Server
	att *attestation.Service // simulation on, for accounts whose policy allows it
	// replicaConns are the connections of each set of service replicas
	// (one of each service), which crash cuts.
	replicaConns [][]*nats.Conn
	// gwConns are the gateways' connections, the first s.gw's.
	gwConns []*nats.Conn
	// converterLater moves the image converter's clock past the CA's
	// (both at vectorTime): what it sees as the age of a certificate.
	converterLater atomic.Int64
}

// crash cuts every connection of the services of replica set i at once,
// as kill -9 of a process running them would: nothing is drained or
// unsubscribed, replies in flight are never sent, messages handed to
// them are never acknowledged. What they leave undone is another
// replica's to do.
func (s *stack) crash(i int) {
	for _, nc := range s.replicaConns[i] {
		nc.Close()
	}
}

// cacheKinds are the caches every cache-sensitive test runs against.
var cacheKinds = []struct {
	name string
	make func(t testing.TB) cache.Cache
}{
	{"memory", func(t testing.TB) cache.Cache {
		m := cache.NewMemory(0)
		t.Cleanup(func() { m.Close() })
		return m
	}},
	{"redis", func(t testing.TB) cache.Cache {
		r := testkit.StartRedis(t)
		return cache.NewRedis(r.Client, r.Prefix)
	}},
}

func newStack(t testing.TB, c cache.Cache) *stack {
	t.Helper()
	return newStackOn(t, c, nil, 1)
}

// newStackOn is newStack on cluster (nil: a server of its own) with
// replicas instances of every service, each on its own connection (to
// the cluster's nodes in turn).
func newStackOn(t testing.TB, c cache.Cache, cluster *testkit.Cluster, replicas int) *stack {
	t.Helper()
	// Every service shares the test's cache, as a deployment shares Redis.
	opts := []servicetest.Option{servicetest.WithCache(c)}
	if cluster != nil {
		opts = append(opts, servicetest.OnCluster(cluster))
	}
	st := servicetest.New(t, opts...)
	s := &stack{t: t, st: st, nc: st.Connect()}
	for i := range replicas {
		var conns []*nats.Conn
		// kept remembers a replica's connection for crash.
		kept := func(o service.Options) service.Options { conns = append(conns, o.NATS); return o }
		servicetest.Start(st, "account", func(ctx context.Context, o service.Options) (*account.Service, error) {
			return account.Start(ctx, account.Config{Options: kept(o), PasswordCost: cheap})
		})
		att := servicetest.Start(st, "attestation", func(ctx context.Context, o service.Options) (*attestation.Service, error) {
			return attestation.Start(ctx, attestation.Config{Options: kept(o), Clock: func() time.Time { return vectorTime }, Simulation: true, KEK: st.KEK, Cache: c})
		})
		if i == 0 {
			s.att = att
		}
		servicetest.Start(st, "ca", func(ctx context.Context, o service.Options) (*ca.Service, error) {
			return ca.Start(ctx, ca.Config{Options: kept(o), KEK: st.KEK, Cache: c, Clock: func() time.Time { return vectorTime }})
		})
		servicetest.Start(st, "imageconverter", func(ctx context.Context, o service.Options) (*imageconverter.Service, error) {
			// At the CA's time: it seals secrets only with a certificate
			// just issued.
			return imageconverter.Start(ctx, imageconverter.Config{Options: kept(o), KEK: st.KEK, GenerateKey: reuseSigningKey,
				Clock: func() time.Time { return vectorTime.Add(time.Duration(s.converterLater.Load())) }})
		})
		servicetest.Start(st, "noderegistry", func(ctx context.Context, o service.Options) (*noderegistry.Service, error) {
			return noderegistry.Start(ctx, noderegistry.Config{Options: kept(o), Cache: c})
		})
		s.replicaConns = append(s.replicaConns, conns)
	}
	s.gw, s.srv = s.addGateway(c)
	return s
}

// signingKey is one real enclave signing key for every account of the
// suite: making an RSA-3072 e = 3 key takes a second or more.
var signingKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return sgx.GenerateSigningKey(rand.Reader) })

func reuseSigningKey(io.Reader) (*rsa.PrivateKey, error) { return signingKey() }

// addGateway starts another gateway replica with its own cache.
func (s *stack) addGateway(c cache.Cache) (*gateway.Gateway, *httptest.Server) {
	s.t.Helper()
	// The suite signs up and logs in far more than a person would. Node
	// certificates come from the CA, which lives at vectorTime.
	nc := s.st.ConnectAs("gateway")
	s.gwConns = append(s.gwConns, nc)
	gw, err := gateway.New(context.Background(), gateway.Config{NATS: nc, Replicas: s.st.Replicas(), Assertions: s.st.Identities().Signer(s.t), Cache: c, Logger: s.st.Logger,
		CredentialRate: gateway.CredentialRate{Every: time.Millisecond, Burst: 1000},
		EmailRate:      gateway.CredentialRate{Every: time.Millisecond, Burst: 1000},
		Clock:          func() time.Time { return vectorTime }})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(gw.Close)
	srv := httptest.NewServer(gw)
	s.t.Cleanup(srv.Close)
	return gw, srv
}

var (
	docOnce   sync.Once
	docRouter routers.Router
	docErr    error
)

func openapiRouter(t testing.TB) routers.Router {
	t.Helper()
	docOnce.Do(func() {
		var doc *openapi3.T
		doc, docErr = gateway.OpenAPI()
		if docErr == nil {
			doc.Servers = openapi3.Servers{{URL: "http://127.0.0.1/"}}
			docRouter, docErr = gorillamux.NewRouter(doc)
		}
	})
	if docErr != nil {
		t.Fatal(docErr)
	}
	return docRouter
}

// response is a received reply, already checked against the OpenAPI
// document.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

func (r response) problem(t testing.TB) gateway.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, r.body)
	}
	var p gateway.Problem
	r.decode(t, &p)
	if p.Status != r.status || p.Detail == "" {
		t.Fatalf("problem %+v does not match status %d or lacks detail", p, r.status)
	}
	return p
}

// do sends a request to srv and validates the response against the
// OpenAPI document: every response the suite sees is checked.
func do(t testing.TB, srv *httptest.Server, method, path, token string, body any) response {
	t.Helper()
	k, isKeyed := body.(keyed)
	if isKeyed {
		body = k.body
	}
	var rd io.Reader
	raw, isRaw := body.(rawBody)
	switch {
	case isRaw:
		rd = strings.NewReader(raw.data)
	case body != nil:
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		if isRaw && raw.contentType != "" {
			req.Header.Set("Content-Type", raw.contentType)
		}
		if isRaw && raw.contentType == "-" {
			req.Header.Del("Content-Type")
		}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if isKeyed {
		req.Header.Set("Idempotency-Key", k.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: data}
	if resp.StatusCode >= 500 {
		t.Fatalf("%s %s = %d, a server error: %s", method, path, resp.StatusCode, data)
	}
	validate(t, req, r)
	return r
}

// keyed sends body with an Idempotency-Key.
type keyed struct {
	key  string
	body any
}

// rawBody sends data as is, with a chosen Content-Type ("-" for none).
type rawBody struct {
	data        string
	contentType string
}

func validate(t testing.TB, req *http.Request, r response) {
	t.Helper()
	vreq := req.Clone(context.Background())
	vreq.URL.Scheme, vreq.URL.Host, vreq.Host = "http", "127.0.0.1", "127.0.0.1"
	route, params, err := openapiRouter(t).FindRoute(vreq)
	if err != nil {
		// Paths the API does not have must still answer with a problem.
		if r.header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s %s: not in the OpenAPI document and not a problem reply: %d %s", req.Method, req.URL.Path, r.status, r.body)
		}
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: r.status, Header: r.header, Body: io.NopCloser(bytes.NewReader(r.body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Fatalf("%s %s = %d %s\ndoes not match the OpenAPI document: %v", req.Method, req.URL.Path, r.status, r.body, err)
	}
}

// user signs up and logs in, returning the user id and session token.
func (s *stack) user(email string) (id, token string) {
	s.t.Helper()
	r := do(s.t, s.srv, "POST", "/v1/users", "", map[string]string{"email": email, "password": "correct horse battery"})
	if r.status != http.StatusCreated {
		s.t.Fatalf("sign-up of %s = %d %s", email, r.status, r.body)
	}
	var u struct{ ID string }
	r.decode(s.t, &u)
	r = do(s.t, s.srv, "POST", "/v1/sessions", "", map[string]string{"email": email, "password": "correct horse battery"})
	if r.status != http.StatusCreated {
		s.t.Fatalf("login of %s = %d %s", email, r.status, r.body)
	}
	var sess struct{ Token string }
	r.decode(s.t, &sess)
	return u.ID, sess.Token
}

// account creates an account as token and returns its id.
func (s *stack) account(token, name string) string {
	s.t.Helper()
	r := do(s.t, s.srv, "POST", "/v1/accounts", token, map[string]string{"name": name})
	if r.status != http.StatusCreated {
		s.t.Fatalf("creating account %s = %d %s", name, r.status, r.body)
	}
	var a struct{ ID string }
	r.decode(s.t, &a)
	return a.ID
}

func (s *stack) addMember(token, accountID, email, role string) {
	s.t.Helper()
	r := do(s.t, s.srv, "POST", "/v1/accounts/"+accountID+"/members", token, map[string]string{"email": email, "role": role})
	if r.status != http.StatusCreated {
		s.t.Fatalf("adding %s as %s = %d %s", email, role, r.status, r.body)
	}
}

func (s *stack) apiKey(token, accountID string) (id, secret string) {
	s.t.Helper()
	r := do(s.t, s.srv, "POST", "/v1/accounts/"+accountID+"/api-keys", token, map[string]string{"name": "ci"})
	if r.status != http.StatusCreated {
		s.t.Fatalf("creating API key = %d %s", r.status, r.body)
	}
	var k struct{ ID, Token string }
	r.decode(s.t, &k)
	return k.ID, k.Token
}
