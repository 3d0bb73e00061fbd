package busauth_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// BenchmarkAuthenticatedBus measures a call as Cloister makes it for a
// signed-in user: the gateway's identity calls account.ListAccounts with
// its signed assertion of the caller, answered by the account service's
// identity, which verifies it, each under its role's permissions. Its
// floor is a raw nats.Request with the same body to a plain subscriber on
// a server without authentication, in the same run; x-floor is the
// floor's time over ours (both per call). assertion-share is the part of
// a call the assertion costs: its time less that of the same call without
// one (the same request and handler, served with no check), over its time.
// The time per op covers both calls.
func BenchmarkAuthenticatedBus(b *testing.B) {
	n := testkit.StartNATS(b)
	accountConn := n.ConnectAs(b, "account")
	mux := natsrpc.NewMux(accountConn, "account", n.Verifier("account"))
	principal := &accountv1.Principal{UserId: "0193c2a4-7d0e-7b1a-9c1e-2f4b6d8a0c1e", Email: "ada@example.com", Credential: "session", CredentialId: "0193c2a4-7d0e-7b1a-9c1e-2f4b6d8a0c1f"}
	list := &accountv1.ListAccountsResponse{Accounts: []*accountv1.Account{{Id: "0193c2a4-7d0e-7b1a-9c1e-2f4b6d8a0c20", Name: "Demo"}}}
	handler := func(_ context.Context, r *accountv1.ListAccountsRequest) (*accountv1.ListAccountsResponse, error) {
		if r.GetActor().GetUserId() != principal.UserId {
			b.Fatalf("the actor reached the service as %v", r.GetActor())
		}
		return list, nil
	}
	if err := accountv1.AccountListAccounts.Handle(mux, nil, handler); err != nil {
		b.Fatal(err)
	}
	gatewayConn := n.ConnectAs(b, "gateway")
	client := accountv1.NewAccountClient(gatewayConn)
	listReq := &accountv1.ListAccountsRequest{Actor: principal}
	ctx := natsrpc.WithAsserter(context.Background(), n.Signer(b).For(principal, ""))

	open := testkit.StartOpenNATS(b)
	raw, err := nats.Connect(open.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(raw.Close)
	reply, _ := proto.Marshal(list)
	if _, err := raw.Subscribe("raw.list", func(m *nats.Msg) { _ = m.Respond(reply) }); err != nil {
		b.Fatal(err)
	}
	body, _ := proto.Marshal(listReq)

	// The same call without an assertion: the same request to the same
	// handler, between the same identities, on a subject whose server
	// checks nothing. The two are taken in turn, so that both see the same
	// machine.
	unchecked := natsrpc.NewMethod[*accountv1.ListAccountsRequest, *accountv1.ListAccountsResponse]("account", "ListAccountsUnchecked")
	if err := unchecked.Handle(natsrpc.NewMux(accountConn, "account", passAll{}), nil, handler); err != nil {
		b.Fatal(err)
	}
	var ours, plain time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := client.ListAccounts(ctx, listReq); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := unchecked.Invoke(context.Background(), gatewayConn, listReq); err != nil {
			b.Fatal(err)
		}
		ours, plain = ours+t1.Sub(t0), plain+time.Since(t1)
	}
	b.StopTimer()
	floorStart := time.Now()
	for range b.N {
		if _, err := raw.Request("raw.list", body, 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	floor := time.Since(floorStart)
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(floor)/float64(ours), "x-floor")
	b.ReportMetric(float64(ours-plain)/float64(ours), "assertion-share")
}

// BenchmarkFreshAssertion measures an assertion neither side has seen:
// the gateway makes it and a service checks it (an HMAC-SHA256 each, and
// the caches, full after the first ten thousand callers), as on a caller's first call of a method. Its floor is
// the authenticated call itself, measured in the same run without an
// assertion: x-floor is the fraction of its speed a call with a fresh
// assertion keeps (1.0 = no cost), and assertion-share the part of such a
// call the fresh assertion takes.
func BenchmarkFreshAssertion(b *testing.B) {
	n := testkit.StartNATS(b)
	signer, verifier := n.Signer(b), n.Verifier("account")
	subject := natsrpc.Subject("account", "ListAccounts")
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		// A caller never seen: no cache helps.
		req := &accountv1.ListAccountsRequest{Actor: &accountv1.Principal{UserId: "0193c2a4-7d0e-7b1a-9c1e-" + strconv.Itoa(i), Email: "ada@example.com", Credential: "session"}}
		token, err := signer.For(req.Actor, "").Assert(subject, req)
		if err != nil {
			b.Fatal(err)
		}
		if err := verifier.Verify(subject, nats.Header{natsrpc.HeaderAssertion: []string{token}}, req); err != nil {
			b.Fatal(err)
		}
	}
	ours := time.Since(start)
	b.StopTimer()

	mux := natsrpc.NewMux(n.ConnectAs(b, "account"), "account", nil)
	auth := &accountv1.AuthenticateResponse{Principal: &accountv1.Principal{UserId: "u"}}
	if err := accountv1.AccountAuthenticate.Handle(mux, nil, func(context.Context, *accountv1.AuthenticateRequest) (*accountv1.AuthenticateResponse, error) {
		return auth, nil
	}); err != nil {
		b.Fatal(err)
	}
	gatewayConn := n.ConnectAs(b, "gateway")
	client := accountv1.NewAccountClient(gatewayConn)
	req := &accountv1.AuthenticateRequest{Token: "cst_a-session-token-of-the-usual-length-0123456789abcdef"}
	// The floor's calls are a thousand times slower than an assertion: a
	// bounded number of them gives their cost per call.
	calls := min(b.N, 5000)
	callStart := time.Now()
	for range calls {
		if _, err := client.Authenticate(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	call := float64(time.Since(callStart).Nanoseconds()) / float64(calls)
	assertion := float64(ours.Nanoseconds()) / float64(b.N)
	b.ReportMetric(call, "call-ns/op")
	b.ReportMetric(call/(call+assertion), "x-floor")
	b.ReportMetric(assertion/(call+assertion), "assertion-share")
}

// passAll checks nothing: the floor of a check.
type passAll struct{}

func (passAll) Verify(string, nats.Header, any) error { return nil }
