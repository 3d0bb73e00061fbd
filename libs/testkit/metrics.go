package testkit

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// metricsReader reads what the process's instruments record: the first
// MetricSum installs it as the global meter provider, which the
// instruments made at package initialisation then report to. A test
// binary that installs another provider first reads nothing here.
var metricsReader = sync.OnceValue(func() *sdkmetric.ManualReader {
	r := sdkmetric.NewManualReader()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(r)))
	return r
})

// MetricSum returns the sum, over the data points whose attributes
// include every one of with, of the int64 counter or gauge name as
// recorded so far in this process (0 if none was). Call it before what it
// measures, and take the difference after.
func MetricSum(t testing.TB, name string, with ...attribute.KeyValue) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := metricsReader().Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collecting metrics: %v", err)
	}
	var sum int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			}
			for _, p := range points {
				if hasAll(p.Attributes, with) {
					sum += p.Value
				}
			}
		}
	}
	return sum
}

func hasAll(set attribute.Set, with []attribute.KeyValue) bool {
	for _, kv := range with {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}
