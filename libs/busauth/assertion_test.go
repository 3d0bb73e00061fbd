package busauth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/busauth"
	"github.com/cloister-cc/cloister/libs/errs"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
)

var (
	ada       = &accountv1.Principal{UserId: "ada", Email: "ada@example.com", Credential: "session"}
	mallory   = &accountv1.Principal{UserId: "mallory", Email: "mallory@example.com", Credential: "session"}
	createKey = natsrpc.Subject("account", "CreateAPIKey")
)

func newSecret(t *testing.T) busauth.AssertionSecret {
	t.Helper()
	s, err := busauth.NewAssertionSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func assertAt(t *testing.T, secret busauth.AssertionSecret, at time.Time, p *accountv1.Principal, account, subject string) nats.Header {
	t.Helper()
	s, err := busauth.NewSigner(secret, func() time.Time { return at })
	if err != nil {
		t.Fatal(err)
	}
	token, err := s.For(p, account).Assert(subject, nil)
	if err != nil {
		t.Fatal(err)
	}
	return nats.Header{natsrpc.HeaderAssertion: []string{token}}
}

// TestAssertionBindsTheActor: the service takes the actor from the
// gateway's assertion, whatever the request body says.
func TestAssertionBindsTheActor(t *testing.T) {
	secret, now := newSecret(t), time.Now()
	v := busauth.NewVerifier("account", secret.ServiceKey("account"), func() time.Time { return now })
	req := &accountv1.CreateAPIKeyRequest{Actor: mallory, AccountId: "acc-1", Name: "k"}
	if err := v.Verify(createKey, assertAt(t, secret, now, ada, "acc-1", createKey), req); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(req.GetActor(), ada) {
		t.Fatalf("the actor is %v after verification, want the asserted %v", req.GetActor(), ada)
	}
	// A peer's call names no one, and needs no assertion.
	if err := v.Verify(createKey, nats.Header{}, &accountv1.CreateAPIKeyRequest{AccountId: "acc-1"}); err != nil {
		t.Fatalf("a call naming no actor, without assertion: %v", err)
	}
}

// TestAssertionRefusals: a missing, forged, expired, misdirected or
// malformed assertion is refused, as unauthenticated.
func TestAssertionRefusals(t *testing.T) {
	secret, now := newSecret(t), time.Now()
	v := busauth.NewVerifier("account", secret.ServiceKey("account"), func() time.Time { return now })
	other := newSecret(t)
	for _, c := range []struct {
		name   string
		header nats.Header
		want   string
	}{
		{"none", nats.Header{}, "carries no assertion"},
		{"forged with another secret", assertAt(t, other, now, ada, "acc-1", createKey), "not the gateway's word"},
		{"addressed to another service", func() nats.Header {
			// What the image converter's key could make: only its own.
			return assertAt(t, secret, now, ada, "acc-1", natsrpc.Subject("imageconverter", "CreateAPIKey"))
		}(), "not the gateway's word"},
		{"expired", assertAt(t, secret, now.Add(-busauth.AssertionTTL-time.Second), ada, "acc-1", createKey), "expired"},
		{"too far ahead", assertAt(t, secret, now.Add(time.Hour), ada, "acc-1", createKey), "too far ahead"},
		{"for another method", assertAt(t, secret, now, ada, "acc-1", natsrpc.Subject("account", "RevokeAPIKey")), "made for cloister.account.v1.RevokeAPIKey"},
		{"for another account", assertAt(t, secret, now, ada, "acc-2", createKey), `made for account "acc-2"`},
		{"malformed", nats.Header{natsrpc.HeaderAssertion: []string{"not-a-token"}}, "malformed"},
		{"tampered", func() nats.Header {
			h := assertAt(t, secret, now, ada, "acc-1", createKey)
			tok := h.Get(natsrpc.HeaderAssertion)
			h.Set(natsrpc.HeaderAssertion, "e30"+tok[3:])
			return h
		}(), "assertion"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := &accountv1.CreateAPIKeyRequest{Actor: ada, AccountId: "acc-1", Name: "k"}
			err := v.Verify(createKey, c.header, req)
			if err == nil || errs.KindOf(err) != errs.Unauthenticated || !strings.Contains(err.Error(), c.want) || errs.ReasonOf(err) != "assertion_refused" {
				t.Fatalf("Verify = %v, want an unauthenticated refusal saying %q", err, c.want)
			}
		})
	}
}

// TestRequireNone: a service given no verifier refuses any request that
// names an actor.
func TestRequireNone(t *testing.T) {
	if err := (natsrpc.RequireNone{}).Verify(createKey, nats.Header{}, &accountv1.CreateAPIKeyRequest{Actor: ada}); errs.KindOf(err) != errs.Unauthenticated {
		t.Fatalf("RequireNone with an actor = %v, want unauthenticated", err)
	}
	if err := (natsrpc.RequireNone{}).Verify(createKey, nats.Header{}, &accountv1.CreateAPIKeyRequest{}); err != nil {
		t.Fatalf("RequireNone without an actor = %v", err)
	}
}

// FuzzVerify: whatever the assertion header holds, Verify refuses it or
// accepts it, and never panics; what it accepts came from the signer.
func FuzzVerify(f *testing.F) {
	secret := busauth.AssertionSecret(make([]byte, busauth.AssertionSecretSize))
	now := time.Unix(1_800_000_000, 0)
	s, _ := busauth.NewSigner(secret, func() time.Time { return now })
	good, _ := s.For(ada, "acc-1").Assert(createKey, nil)
	f.Add(good)
	f.Add("")
	f.Add("e30.AAAA")
	f.Add(strings.Repeat("A", 100) + "." + strings.Repeat("B", 43))
	v := busauth.NewVerifier("account", secret.ServiceKey("account"), func() time.Time { return now })
	f.Fuzz(func(t *testing.T, token string) {
		req := &accountv1.CreateAPIKeyRequest{Actor: mallory, AccountId: "acc-1"}
		err := v.Verify(createKey, nats.Header{natsrpc.HeaderAssertion: []string{token}}, req)
		if err == nil && token != "" && !proto.Equal(req.GetActor(), ada) {
			t.Fatalf("accepted %q naming %v", token, req.GetActor())
		}
	})
}
