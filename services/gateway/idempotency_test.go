package gateway_test

import (
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
