package obs

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// HTTPMiddleware wraps a handler with otelhttp: a server span per request,
// continuing the caller's trace, and the standard HTTP server metrics. The
// span is named after the method and route pattern ("GET /v1/apps/{id}")
// when next is, or wraps, an http.ServeMux; service is the otelhttp
// operation, and the process's service name reaches every span through the
// resource that Setup installs. Probes and scrapes (/healthz, /readyz,
// /metrics) are not traced: they would outnumber real requests.
//
// The middleware uses the global providers and propagator, which delegate
// to those Setup installs, so it may be built before Setup runs.
func HTTPMiddleware(service string, next http.Handler) http.Handler {
	return otelhttp.NewHandler(next, service,
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return true
		}))
}
