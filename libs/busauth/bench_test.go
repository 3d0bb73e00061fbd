package busauth_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// BenchmarkAuthenticatedBus measures a call as Cloister makes it: the
// gateway's identity calling account.Authenticate, answered by the account
// service's identity, each under its role's permissions. Its floor is a
// raw nats.Request with the same body to a plain subscriber on a server
// without authentication, in the same run; x-floor is the floor's time
// over ours.
func BenchmarkAuthenticatedBus(b *testing.B) {
	n := testkit.StartNATS(b)
	mux := natsrpc.NewMux(n.ConnectAs(b, "account"), "account")
	answer := &accountv1.AuthenticateResponse{Principal: &accountv1.Principal{UserId: "u1", Email: "ada@example.com"}}
	if err := accountv1.AccountAuthenticate.Handle(mux, nil, func(context.Context, *accountv1.AuthenticateRequest) (*accountv1.AuthenticateResponse, error) {
		return answer, nil
	}); err != nil {
		b.Fatal(err)
	}
	client := accountv1.NewAccountClient(n.ConnectAs(b, "gateway"))
	req := &accountv1.AuthenticateRequest{Token: "cst_a-session-token-of-the-usual-length-0123456789"}
	ctx := context.Background()

	open := testkit.StartOpenNATS(b)
	raw, err := nats.Connect(open.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(raw.Close)
	reply, _ := proto.Marshal(answer)
	if _, err := raw.Subscribe("raw.authenticate", func(m *nats.Msg) { _ = m.Respond(reply) }); err != nil {
		b.Fatal(err)
	}
	body, _ := proto.Marshal(req)

	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := client.Authenticate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	ours := time.Since(start)
	b.StopTimer()
	floorStart := time.Now()
	for range b.N {
		if _, err := raw.Request("raw.authenticate", body, 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	floor := time.Since(floorStart)
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(floor)/float64(ours), "x-floor")
}
