package main

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/busauth"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// refusals records what the NATS server refused a connection.
type refusals struct {
	mu   sync.Mutex
	errs []string
}

func (r *refusals) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err.Error())
}

func (r *refusals) refused(subject string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.errs, func(e string) bool {
		return strings.Contains(e, "Permissions Violation") && strings.Contains(e, `"`+subject+`"`)
	})
}

// TestBusRefusesStrangers starts `cloister server -dev` with its NATS
// listening, and tries it as an attacker on the network would: without
// credentials, and with the image converter's (the service that handles
// untrusted images). Every call and publish outside the role is refused;
// the gateway's identity, which may call the account service, is answered,
// but a caller is only ever who the gateway's signed assertion says.
func TestBusRefusesStrangers(t *testing.T) {
	dataDir, addr, natsAddr := t.TempDir(), testkit.FreeAddr(t), testkit.FreeAddr(t)
	startServerArgs(t, addr, "-dev", "--data-dir", dataDir, "--registry=", "--node-http=", "--nats-listen", natsAddr)
	url := "nats://" + natsAddr

	if nc, err := nats.Connect(url, nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected to -dev's NATS")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connecting without credentials: %v, want an authorization violation", err)
	}

	creds := filepath.Join(dataDir, "nats-credentials")
	connect := func(role string) (*nats.Conn, *refusals) {
		id, err := busauth.LoadIdentity(creds, role)
		if err != nil {
			t.Fatal(err)
		}
		r := &refusals{}
		nc, err := nats.Connect(url, append(id.Options(), nats.ErrorHandler(r.handler))...)
		if err != nil {
			t.Fatalf("connecting as %s: %v", role, err)
		}
		t.Cleanup(nc.Close)
		return nc, r
	}
	body, _ := proto.Marshal(&accountv1.CreateAPIKeyRequest{Actor: &accountv1.Principal{UserId: "victim"}, AccountId: "acc", Name: "x"})
	ic, icRefusals := connect("imageconverter")
	attempts := []string{
		"cloister.account.v1.CreateAPIKey",    // take over an account
		"events.account.v1.MemberAdded",       // forge another service's event
		"$KV.account_sessions.forged",         // write another service's state
		"$JS.API.DIRECT.GET.KV_account_users", // read it
	}
	for _, subject := range attempts {
		if _, err := ic.Request(subject, body, time.Second); err == nil {
			t.Errorf("%s was answered for the image converter", subject)
		}
	}
	if _, err := ic.SubscribeSync(busauth.InboxPrefix("gateway") + ".>"); err != nil {
		t.Fatal(err)
	}
	_ = ic.Flush()
	for _, subject := range append(attempts, busauth.InboxPrefix("gateway")+".>") {
		testkit.Eventually(t, 5*time.Second, func() bool { return icRefusals.refused(subject) }, "NATS did not refuse the image converter %s", subject)
	}

	// The gateway may call the account service: it gets the service's
	// answer (an unknown token is 401), not a refusal.
	gw, gwRefusals := connect("gateway")
	auth, _ := proto.Marshal(&accountv1.AuthenticateRequest{Token: "cst_unknown"})
	reply, err := gw.Request(natsrpc.Subject("account", "Authenticate"), auth, 10*time.Second)
	if err != nil {
		t.Fatalf("the gateway's call: %v (refusals %v)", err, gwRefusals.errs)
	}
	if code := reply.Header.Get(natsrpc.HeaderErrorCode); code != "401" {
		t.Fatalf("the gateway's call answered %q, want 401", code)
	}

	// Even with the gateway's identity, a caller is only who the gateway's
	// assertion says: none, a forged one and an expired one are refused;
	// the real one reaches the account service (which does not know the
	// account: 404).
	secret, err := busauth.LoadAssertionSecret(creds)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := busauth.NewAssertionSecret()
	if err != nil {
		t.Fatal(err)
	}
	subject := natsrpc.Subject("account", "CreateAPIKey")
	assertion := func(s busauth.AssertionSecret, at time.Time) string {
		signer, err := busauth.NewSigner(s, func() time.Time { return at })
		if err != nil {
			t.Fatal(err)
		}
		tok, err := signer.For(&accountv1.Principal{UserId: "victim"}, "acc").Assert(subject, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, c := range []struct{ name, token, code, reason string }{
		{"no assertion", "", "401", "assertion_refused"},
		{"a forged assertion", assertion(forged, time.Now()), "401", "assertion_refused"},
		{"an expired assertion", assertion(secret, time.Now().Add(-time.Hour)), "401", "assertion_refused"},
		{"the gateway's assertion", assertion(secret, time.Now()), "404", "account_not_found"},
	} {
		msg := nats.NewMsg(subject)
		msg.Data = body
		if c.token != "" {
			msg.Header.Set(natsrpc.HeaderAssertion, c.token)
		}
		reply, err := gw.RequestMsg(msg, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if code, reason := reply.Header.Get(natsrpc.HeaderErrorCode), reply.Header.Get(natsrpc.HeaderErrorReason); code != c.code || reason != c.reason {
			t.Errorf("CreateAPIKey with %s: %s %s (%s), want %s %s", c.name, code, reason, reply.Header.Get(natsrpc.HeaderError), c.code, c.reason)
		}
	}
}

// TestServerRefusesAnOpenNATS: `cloister server` does not run its services
// on a NATS server that lets anyone in, unless told --insecure-nats; and
// it needs the bus credentials either way.
func TestServerRefusesAnOpenNATS(t *testing.T) {
	open := testkit.StartOpenNATS(t)
	c, err := busauth.NewCredentials()
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), "bus")
	if err := c.Write(creds); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-credentials", creds}, "lets clients in without credentials"},
		{nil, "--nats-credentials ($CLOISTER_NATS_CREDENTIALS) is needed"},
	} {
		args := append([]string{"server", "--services=account", "--http", testkit.FreeAddr(t), "--nats-url", open.ClientURL()}, c.args...)
		out, err := cloisterCmd(t, t.TempDir(), args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Fatalf("cloister %s: %v, output:\n%s\nwant a refusal saying %q", strings.Join(args, " "), err, out, c.want)
		}
	}
	startServerArgs(t, testkit.FreeAddr(t), "--services=account", "--nats-url", open.ClientURL(), "--nats-credentials", creds, "--insecure-nats")
}
