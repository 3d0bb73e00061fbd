package natsrpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// BenchmarkRoundTrip measures a natsrpc call beside its floor, a raw
// nats.Request with the same body on the same connection to a plain
// subscriber, in the same run, and reports the ratio.
func BenchmarkRoundTrip(b *testing.B) {
	n := testkit.StartNATS(b)
	srvConn := n.Connect(b)
	mux := natsrpc.NewMux(srvConn, "bench", nil)
	if err := mux.Handle(echo.Subject(), echo.Server(func(_ context.Context, req any) (any, error) {
		return req, nil
	}, nil)); err != nil {
		b.Fatal(err)
	}
	if _, err := srvConn.Subscribe("raw.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		b.Fatal(err)
	}
	nc := n.Connect(b)
	client := echo.Client(nc)
	req := wrapperspb.String("a request of a typical small size, some forty bytes")
	body, _ := proto.Marshal(req)
	ctx := context.Background()

	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := client(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	ours := time.Since(start)
	b.StopTimer()
	floorStart := time.Now()
	for range b.N {
		if _, err := nc.Request("raw.echo", body, 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	floor := time.Since(floorStart)
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(floor)/float64(ours), "x-floor")
}
