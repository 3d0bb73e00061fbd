package obs_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cloister-cc/cloister/libs/obs"
)

// keepGlobals restores the OpenTelemetry globals when the test ends, so
// tests that install them do not leak into each other.
func keepGlobals(t *testing.T) {
	tp, mp, prop := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(tp)
		otel.SetMeterProvider(mp)
		otel.SetTextMapPropagator(prop)
	})
}

// noOTLP clears the variables that turn the OTLP exporter on.
func noOTLP(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_TRACES_SAMPLER", "")
}

func setup(t *testing.T) *obs.Telemetry {
	t.Helper()
	keepGlobals(t)
	tel, err := obs.Setup(t.Context(), obs.Config{ServiceName: "obs-test", Version: "v0.0.1"})
	if err != nil {
		t.Fatalf("Setup = %v", err)
	}
	t.Cleanup(func() {
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
	})
	return tel
}

func TestSetupNeedsServiceName(t *testing.T) {
	keepGlobals(t)
	if _, err := obs.Setup(t.Context(), obs.Config{}); err == nil {
		t.Fatal("Setup(no service name) = nil error, want an error")
	}
}

// metricValue returns the value of the sample of name in a Prometheus text
// exposition, and whether there is one.
func metricValue(t *testing.T, exposition, name string) (string, bool) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(exposition))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			return line[strings.LastIndexByte(line, ' ')+1:], true
		}
	}
	return "", false
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", rec.Code)
	}
	return rec.Body.String()
}

func TestSetupMetrics(t *testing.T) {
	noOTLP(t)
	tel := setup(t)
	counter, err := otel.Meter("obs_test").Int64Counter("obs_test.hits")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(t.Context(), 2)
	counter.Add(t.Context(), 1)

	body := scrape(t, tel.MetricsHandler())
	tests := []struct {
		name string
		want string // "" for any value
	}{
		{"obs_test_hits_total", "3"},
		{"go_goroutines", ""},
		{"process_cpu_seconds_total", ""},
		{"target_info", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := metricValue(t, body, tt.name)
			if !ok {
				t.Fatalf("/metrics has no %s:\n%s", tt.name, body)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("/metrics %s = %s, want %s", tt.name, got, tt.want)
			}
		})
	}
	if !strings.Contains(body, `service_name="obs-test"`) {
		t.Errorf("/metrics target_info lacks service_name=\"obs-test\":\n%s", body)
	}
}

// TestSetupTraces: with OTEL_TRACES_SAMPLER=always_on, spans are
// recorded and their context propagates with baggage.
func TestSetupTraces(t *testing.T) {
	noOTLP(t)
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	setup(t)
	ctx, parent := otel.Tracer("test").Start(t.Context(), "parent")
	_, child := otel.Tracer("test").Start(ctx, "child")
	defer parent.End()
	defer child.End()

	psc, csc := parent.SpanContext(), child.SpanContext()
	if !psc.IsValid() || !psc.IsSampled() {
		t.Fatalf("parent span context = %+v, want valid and sampled", psc)
	}
	if csc.TraceID() != psc.TraceID() || csc.SpanID() == psc.SpanID() {
		t.Errorf("child span = %s/%s, want trace %s and a new span id", csc.TraceID(), csc.SpanID(), psc.TraceID())
	}

	// The propagator carries the trace and baggage on.
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	want := "00-" + psc.TraceID().String() + "-" + psc.SpanID().String() + "-01"
	if got := carrier.Get("traceparent"); got != want {
		t.Errorf("injected traceparent = %q, want %q", got, want)
	}
	if fields := otel.GetTextMapPropagator().Fields(); !contains(fields, "baggage") {
		t.Errorf("propagator fields = %v, want baggage among them", fields)
	}
}

// TestDefaultSampling: without OTEL_TRACES_SAMPLER, spans that go nowhere
// are not recorded but keep valid ids; exported, about a tenth of new
// traces are recorded, and a trace its caller sampled always is.
func TestDefaultSampling(t *testing.T) {
	noOTLP(t)
	setup(t)
	_, span := otel.Tracer("test").Start(t.Context(), "unexported")
	span.End()
	if sc := span.SpanContext(); !sc.IsValid() || sc.IsSampled() || span.IsRecording() {
		t.Fatalf("a span with no exporter = %+v (recording %v), want valid ids, not sampled", sc, span.IsRecording())
	}

	exporting := sdktrace.NewTracerProvider(sdktrace.WithSampler(obs.DefaultSampler(true)))
	defer func() { _ = exporting.Shutdown(context.Background()) }()
	tr := exporting.Tracer("test")
	sampled := 0
	const n = 2000
	for range n {
		_, s := tr.Start(context.Background(), "root")
		if s.SpanContext().IsSampled() {
			sampled++
		}
		s.End()
	}
	// Binomial(2000, 0.1): mean 200, sd about 13.
	if sampled < 120 || sampled > 280 {
		t.Errorf("%d of %d new traces sampled, want about %v", sampled, n, obs.DefaultSampleRatio*n)
	}
	parentCtx := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true}))
	for range 20 {
		_, s := tr.Start(parentCtx, "child")
		if !s.SpanContext().IsSampled() {
			t.Fatal("a span whose caller sampled its trace was not sampled")
		}
		s.End()
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// With an OTLP endpoint set, spans reach it by the time Shutdown returns.
func TestSetupOTLP(t *testing.T) {
	var (
		mu    sync.Mutex
		paths []string
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on") // the default keeps a tenth
	keepGlobals(t)

	tel, err := obs.Setup(t.Context(), obs.Config{ServiceName: "obs-test"})
	if err != nil {
		t.Fatalf("Setup = %v", err)
	}
	_, span := otel.Tracer("test").Start(t.Context(), "exported")
	span.End()
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !contains(paths, "POST /v1/traces") {
		t.Errorf("collector got %v, want POST /v1/traces", paths)
	}
}

func TestMount(t *testing.T) {
	noOTLP(t)
	tel := setup(t)
	h := obs.NewHealth()
	mux := http.NewServeMux()
	obs.Mount(mux, tel, h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodGet, "/readyz", http.StatusOK},
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodHead, "/healthz", http.StatusOK},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed},
		{http.MethodGet, "/nope", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
			}
		})
	}
}

func TestHTTPMiddleware(t *testing.T) {
	keepGlobals(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})

	var inHandler trace.SpanContext
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/apps/{id}", func(w http.ResponseWriter, r *http.Request) {
		inHandler = trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusTeapot)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	h := obs.HTTPMiddleware("gateway", mux)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := httptest.NewRequest(http.MethodGet, "/v1/apps/42", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("recorded %d spans, want 1 (probes are not traced)", len(spans))
	}
	s := spans[0]
	tests := []struct {
		what      string
		got, want any
	}{
		{"kind", s.SpanKind(), trace.SpanKindServer},
		{"name", s.Name(), "GET /v1/apps/{id}"},
		{"trace id", s.SpanContext().TraceID().String(), traceID},
		{"parent span id", s.Parent().SpanID().String(), "00f067aa0ba902b7"},
		{"span seen by the handler", inHandler.SpanID(), s.SpanContext().SpanID()},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("server span %s = %v, want %v", tt.what, tt.got, tt.want)
		}
	}
	var status any
	for _, a := range s.Attributes() {
		if a.Key == "http.response.status_code" {
			status = a.Value.AsInt64()
		}
	}
	if status != int64(http.StatusTeapot) {
		t.Errorf("server span http.response.status_code = %v, want %d", status, http.StatusTeapot)
	}
}

// The middleware's standard HTTP server metrics reach /metrics.
func TestHTTPMiddlewareMetrics(t *testing.T) {
	noOTLP(t)
	tel := setup(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/apps", func(http.ResponseWriter, *http.Request) {})
	h := obs.HTTPMiddleware("gateway", mux)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/apps", nil))

	body := scrape(t, tel.MetricsHandler())
	got, ok := metricValue(t, body, "http_server_request_duration_seconds_count")
	if !ok || got != "1" {
		t.Errorf("/metrics http_server_request_duration_seconds_count = %q (present %v), want 1:\n%s", got, ok, body)
	}
}

// TestHTTPMiddlewareBounds: a made-up method adds no metric series of its
// own, a 5xx marks the span an error, and a handler can still flush
// through the middleware.
func TestHTTPMiddlewareBounds(t *testing.T) {
	noOTLP(t)
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	tel := setup(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	otel.SetTracerProvider(tp)
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/fail", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	mux.HandleFunc("/v1/stream", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("part"))
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flushing through the middleware: %v", err)
		}
	})
	h := obs.HTTPMiddleware("gateway", mux)
	for i := range 5 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("MADEUP"+string(rune('A'+i)), "/v1/fail", nil))
	}
	flushed := httptest.NewRecorder()
	h.ServeHTTP(flushed, httptest.NewRequest(http.MethodGet, "/v1/stream", nil))
	if !flushed.Flushed {
		t.Error("the handler's flush did not reach the writer underneath")
	}

	body := scrape(t, tel.MetricsHandler())
	if n := strings.Count(body, `http_server_request_duration_seconds_count{http_request_method="_OTHER"`); n != 1 {
		t.Errorf("made-up methods make %d series, want one _OTHER:\n%s", n, body)
	}
	if strings.Contains(body, "MADEUP") {
		t.Error("a made-up method reached /metrics")
	}
	var failed int
	for _, s := range rec.Ended() {
		if s.Status().Code == codes.Error {
			failed++
		}
	}
	if failed != 5 {
		t.Errorf("%d spans marked as errors, want the 5 answered 502", failed)
	}
}
