package idempotency_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/idempotency"
)

func TestID(t *testing.T) {
	a := idempotency.ID("ada", "account", "", "k1")
	if a != idempotency.ID("ada", "account", "", "k1") || uuid.Validate(a) != nil {
		t.Fatalf("ID is not a stable UUID: %s", a)
	}
	for _, other := range []string{
		idempotency.ID("bob", "account", "", "k1"),
		idempotency.ID("ada", "join-token", "", "k1"),
		idempotency.ID("ada", "account", "acct", "k1"),
		idempotency.ID("ada", "account", "", "k2"),
		// The parts cannot run into each other.
		idempotency.ID("ad", "aaccount", "", "k1"),
	} {
		if other == a {
			t.Fatalf("another user, kind, scope or key gave the same id %s", a)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, ok := range []string{"", "k", "3b1f8c2e-0d4a-4f6b-9a7e-5c2d1e0f9a8b", strings.Repeat("~", idempotency.MaxKeyLength)} {
		if err := idempotency.Check(ok); err != nil {
			t.Errorf("Check(%.20q) = %v", ok, err)
		}
	}
	for _, bad := range []string{" ", "a b", "é", "\x00", strings.Repeat("k", idempotency.MaxKeyLength+1)} {
		if err := idempotency.Check(bad); errs.KindOf(err) != errs.Invalid || !strings.Contains(err.Error(), idempotency.Header) {
			t.Errorf("Check(%.20q) = %v, want invalid naming the header", bad, err)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("3b1f8c2e-0d4a-4f6b-9a7e-5c2d1e0f9a8b")
	f.Add("a b")
	f.Fuzz(func(t *testing.T, key string) {
		if idempotency.Check(key) != nil {
			return
		}
		if len(key) > idempotency.MaxKeyLength || strings.ContainsFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			t.Fatalf("Check accepted %q", key)
		}
	})
}
