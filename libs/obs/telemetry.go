package obs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// Config names the process in every span and metric.
type Config struct {
	ServiceName string // required
	Version     string
	// Logger, when set, receives OpenTelemetry's internal errors (a failed
	// export, say) at warn level. When nil, OpenTelemetry's own default
	// handling applies.
	Logger *slog.Logger
}

// Telemetry is the tracer and meter providers installed by Setup.
type Telemetry struct {
	tracers  *sdktrace.TracerProvider
	meters   *sdkmetric.MeterProvider
	registry *prometheus.Registry
}

// Setup installs OpenTelemetry globals: a tracer provider, the W3C
// TraceContext and Baggage propagator, and a meter provider read by a
// Prometheus exporter on a registry of its own (with the Go and process
// collectors), served by MetricsHandler.
//
// Spans are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (the exporter reads the other
// OTEL_EXPORTER_OTLP_* variables too). Otherwise spans are still real, with
// valid trace ids, so trace context propagates and reaches the logs; they
// are just not exported. OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
// override cfg.
//
// Call Shutdown before the process exits to flush spans.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	if cfg.ServiceName == "" {
		return nil, errors.New("setting up telemetry: no service name")
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(cfg.ServiceName)}
	if cfg.Version != "" {
		attrs = append(attrs, semconv.ServiceVersion(cfg.Version))
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attrs...),
		resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("describing telemetry resource: %w", err)
	}

	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	exporting := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	if exporting {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("creating OTLP trace exporter: %w", err)
		}
		topts = append(topts, sdktrace.WithBatcher(exp))
	}
	// OTEL_TRACES_SAMPLER (and _ARG), when set, choose; the SDK reads them.
	if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		topts = append(topts, sdktrace.WithSampler(DefaultSampler(exporting)))
	}
	tracers := sdktrace.NewTracerProvider(topts...)

	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reader, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		_ = tracers.Shutdown(ctx)
		return nil, fmt.Errorf("creating Prometheus exporter: %w", err)
	}
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))

	if cfg.Logger != nil {
		logger := cfg.Logger
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			logger.Warn("telemetry", KeyError, err.Error())
		}))
	}
	otel.SetTracerProvider(tracers)
	otel.SetMeterProvider(meters)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{}))

	return &Telemetry{tracers: tracers, meters: meters, registry: registry}, nil
}

// DefaultSampleRatio is the share of new traces recorded and exported
// when spans are exported and OTEL_TRACES_SAMPLER says nothing: enough to
// see what requests do, at a tenth of the cost of recording them all.
const DefaultSampleRatio = 0.1

// DefaultSampler decides which spans are recorded when OTEL_TRACES_SAMPLER
// is unset. A span whose caller sampled its trace is recorded (so traces
// stay whole); a new trace is recorded at DefaultSampleRatio when spans
// are exported, and not at all when they go nowhere. Spans not recorded
// still carry trace and span ids, which propagate and reach the logs.
func DefaultSampler(exporting bool) sdktrace.Sampler {
	if !exporting {
		return sdktrace.ParentBased(sdktrace.NeverSample())
	}
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(DefaultSampleRatio))
}

// MetricsHandler serves the Prometheus exposition of the telemetry's
// registry: every otel metric plus the Go and process collectors.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.InstrumentMetricHandler(t.registry,
		promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{}))
}

// Registry is the Prometheus registry behind MetricsHandler, for collectors
// that are not written against OpenTelemetry.
func (t *Telemetry) Registry() *prometheus.Registry { return t.registry }

// Shutdown flushes pending spans and stops both providers. The globals stay
// installed; spans and metrics recorded afterwards are dropped.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if err := t.tracers.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shutting down tracer provider: %w", err))
	}
	if err := t.meters.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shutting down meter provider: %w", err))
	}
	return errors.Join(errs...)
}
