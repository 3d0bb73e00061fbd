// Package obs is what every Cloister process shares for observability:
// JSON logging with slog, OpenTelemetry traces and metrics (Prometheus
// /metrics, OTLP traces when configured), and the /healthz and /readyz
// endpoints.
package obs

// Log keys shared by every package, so that one query finds an attribute in
// every service's logs.
const (
	KeyService    = "service"   // the process: cloister, cloister-node-agent...
	KeyComponent  = "component" // the service within it: account, ca, gateway...
	KeyError      = "error"
	KeyAccount    = "account_id"
	KeyUser       = "user_id"
	KeyRequestID  = "request_id"
	KeySubject    = "subject"
	KeyTraceID    = "trace_id"
	KeySpanID     = "span_id"
	KeyOp         = "op"
	KeySuppressed = "suppressed" // log lines held back by rate limiting
)
