package obs

import (
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// instrumentation names the tracer and meter of HTTPMiddleware.
const instrumentation = "github.com/cloister-cc/cloister/libs/obs"

// HTTPMiddleware wraps a handler with a server span per request,
// continuing the caller's trace, and the standard HTTP server duration
// metric (http.server.request.duration, by method, route and status). The
// span is named after the route pattern ("GET /v1/apps/{id}") when next
// is an http.ServeMux, else after the method; service is recorded on the
// span, and the process's service name reaches every span through the
// resource that Setup installs. Probes and scrapes (/healthz, /readyz,
// /metrics) are neither traced nor measured: they would outnumber real
// requests.
//
// It does what otelhttp's handler did, at a fraction of the cost per
// request: a span that is not sampled gets no attributes, and the metric's
// attribute sets are made once per method, route and status.
//
// The middleware uses the global providers and propagator, which delegate
// to those Setup installs, so it may be built before Setup runs.
func HTTPMiddleware(service string, next http.Handler) http.Handler {
	duration, err := otel.Meter(instrumentation).Float64Histogram("http.server.request.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of HTTP server requests."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	if err != nil {
		otel.Handle(err)
	}
	return &httpMiddleware{next: next, service: attribute.String("cloister.http.service", service),
		tracer: otel.Tracer(instrumentation), duration: duration}
}

type httpMiddleware struct {
	next     http.Handler
	service  attribute.KeyValue
	tracer   trace.Tracer
	duration metric.Float64Histogram // nil if it could not be made
	sets     sync.Map                // metricKey → metric.MeasurementOption
}

// metricKey is what the duration metric's attributes depend on.
type metricKey struct {
	method, route string
	status        int
}

func (m *httpMiddleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		m.next.ServeHTTP(w, r)
		return
	}
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := m.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	sw := &statusWriter{ResponseWriter: w}
	req := r.WithContext(ctx)
	start := time.Now()
	m.next.ServeHTTP(sw, req)
	elapsed := time.Since(start)

	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	route := req.Pattern // set by an http.ServeMux next
	if span.IsRecording() {
		if route != "" {
			span.SetName(route)
		}
		span.SetAttributes(m.service,
			attribute.String("http.request.method", r.Method),
			attribute.String("http.route", route),
			attribute.String("url.path", r.URL.Path),
			attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, "")
		}
	}
	if m.duration != nil {
		method := r.Method
		if !knownMethods[method] {
			method = "_OTHER" // a client's made-up method must not make a series
		}
		m.duration.Record(ctx, elapsed.Seconds(), m.attributes(metricKey{method, route, status}))
	}
}

// attributes returns the duration metric's attributes for k, made once.
func (m *httpMiddleware) attributes(k metricKey) metric.MeasurementOption {
	if o, ok := m.sets.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	o := metric.WithAttributeSet(attribute.NewSet(
		attribute.String("http.request.method", k.method),
		attribute.String("http.route", k.route),
		attribute.Int("http.response.status_code", k.status)))
	m.sets.Store(k, o)
	return o
}

var knownMethods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush and Unwrap keep what the writer underneath can do (streaming,
// http.ResponseController) available through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
