package natsrpc

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

var reconnects, _ = otel.Meter(tracerName).Int64Counter("cloister.nats.reconnects",
	metric.WithDescription("Times a connection to NATS was made again, to its server or another, after it was lost"))

// CountReconnects counts nc's reconnections in cloister.nats.reconnects,
// as those of name (a service, or the gateway), keeping the handler nc
// had. Call it before nc is shared.
func CountReconnects(nc *nats.Conn, name string) {
	attrs := metric.WithAttributes(attribute.String("service", name))
	before := nc.Opts.ReconnectedCB
	nc.SetReconnectHandler(func(c *nats.Conn) {
		reconnects.Add(context.Background(), 1, attrs)
		if before != nil {
			before(c)
		}
	})
}
