package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit"
)

// TestCreateAccountIdempotencyKey: a creation sent again with its
// Idempotency-Key (its answer lost) is given the account its first
// sending made; the same key with another body is refused; another
// user's same key, or no key, makes accounts of their own. The log
// records one creation per account.
func TestCreateAccountIdempotencyKey(t *testing.T) {
	s := newStack(t, memory(t))
	_, ada := s.user("ada@example.com")
	_, bob := s.user("bob@example.com")
	create := func(token, key, name string) response {
		t.Helper()
		body := map[string]string{"name": name}
		if key == "" {
			return do(t, s.srv, "POST", "/v1/accounts", token, body)
		}
		return do(t, s.srv, "POST", "/v1/accounts", token, keyed{key, body})
	}
	id := func(r response) string {
		t.Helper()
		if r.status != 201 {
			t.Fatalf("creating an account = %d %s, want 201", r.status, r.body)
		}
		var a struct{ ID string }
		r.decode(t, &a)
		return a.ID
	}
	const key = "3b1f8c2e-0d4a-4f6b-9a7e-5c2d1e0f9a8b"
	first := id(create(ada, key, "Payments"))
	if again := id(create(ada, key, "Payments")); again != first {
		t.Fatalf("the same creation sent again with its key made account %s, want %s", again, first)
	}
	if r := create(ada, key, "Payroll"); r.status != 400 || !strings.Contains(string(r.body), "idempotency_key_reused") {
		t.Fatalf("the key with another name = %d %s, want 400 idempotency_key_reused", r.status, r.body)
	}
	if other := id(create(bob, key, "Payments")); other == first {
		t.Fatal("another user's same key was given the first user's account")
	}
	for _, bad := range []string{"has space", strings.Repeat("k", 256)} {
		if r := create(ada, bad, "Payments"); r.status != 400 || !strings.Contains(string(r.body), "Idempotency-Key") {
			t.Fatalf("Idempotency-Key %.20q = %d %s, want 400 naming the header", bad, r.status, r.body)
		}
	}
	unkeyed := []string{id(create(ada, "", "Payments")), id(create(ada, "", "Payments"))}
	if unkeyed[0] == unkeyed[1] || unkeyed[0] == first {
		t.Fatalf("creations without a key made %v beside %s, want two new accounts", unkeyed, first)
	}

	var list struct{ Items []struct{ ID, Name string } }
	do(t, s.srv, "GET", "/v1/accounts", ada, nil).decode(t, &list)
	if len(list.Items) != 3 {
		t.Fatalf("ada's accounts = %v, want 3 (one keyed, two not)", list.Items)
	}
	var audit struct{ Items []struct{ Action string } }
	creations := 0
	testkit.Eventually(t, 10*time.Second, func() bool {
		do(t, s.srv, "GET", "/v1/accounts/"+first+"/audit", ada, nil).decode(t, &audit)
		creations = 0
		for _, e := range audit.Items {
			if e.Action == "account.create" {
				creations++
			}
		}
		return creations > 0
	}, "the keyed account's creation is not in its log")
	if creations != 1 {
		t.Fatalf("the keyed account's log records %d creations, want 1: %s", creations, fmt.Sprint(audit.Items))
	}
}

// TestCreateJoinTokenIdempotencyKey: a token's creation sent again with
// its Idempotency-Key is given the same token with a new secret, and the
// first secret (lost with its answer) no longer enrols; once the token is
// used it cannot be given again (409); the same key with another body is
// refused; another account's same key makes a token of its own.
func TestCreateJoinTokenIdempotencyKey(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("ada@example.com")
	acct, other := s.account(admin, "A"), s.account(admin, "B")
	s.waitCA(t, admin, acct)
	const key = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"
	create := func(acct, name string) response {
		t.Helper()
		return do(t, s.srv, "POST", "/v1/accounts/"+acct+"/join-tokens", admin, keyed{key, map[string]any{"name": name, "max_uses": 1}})
	}
	var first, again struct{ ID, Secret string }
	if r := create(acct, "n1"); r.status != 201 {
		t.Fatalf("creating a token = %d %s", r.status, r.body)
	} else {
		r.decode(t, &first)
	}
	if r := create(acct, "n1"); r.status != 201 {
		t.Fatalf("the same creation sent again = %d %s, want 201", r.status, r.body)
	} else {
		r.decode(t, &again)
	}
	if again.ID != first.ID || again.Secret == first.Secret {
		t.Fatalf("sent again: token %s secret %.8s..., want token %s with a new secret", again.ID, again.Secret, first.ID)
	}
	var tokens struct{ Items []struct{ ID string } }
	do(t, s.srv, "GET", "/v1/accounts/"+acct+"/join-tokens", admin, nil).decode(t, &tokens)
	if len(tokens.Items) != 1 {
		t.Fatalf("the account has %d tokens, want 1", len(tokens.Items))
	}
	if r := create(acct, "n2"); r.status != 400 || !strings.Contains(string(r.body), "idempotency_key_reused") {
		t.Fatalf("the key with another name = %d %s, want 400 idempotency_key_reused", r.status, r.body)
	}
	if r := create(other, "n1"); r.status != 201 || strings.Contains(string(r.body), first.ID) {
		t.Fatalf("the key in another account = %d %s, want a token of its own", r.status, r.body)
	}

	enrol := func(secret string) response {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return do(t, s.srv, "POST", "/v1/agent/enroll", "", map[string]any{"join_token": secret, "node_name": "n1", "csr": string(csrOf(t, key))})
	}
	if r := enrol(first.Secret); r.status != 401 {
		t.Fatalf("enrolling with the replaced secret = %d %s, want 401", r.status, r.body)
	}
	if r := enrol(again.Secret); r.status != 201 {
		t.Fatalf("enrolling with the new secret = %d %s, want 201", r.status, r.body)
	}
	if r := create(acct, "n1"); r.status != 409 || !strings.Contains(string(r.body), "token_taken") {
		t.Fatalf("sent again after its token was used = %d %s, want 409 token_taken", r.status, r.body)
	}
}
