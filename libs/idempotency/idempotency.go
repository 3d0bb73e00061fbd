// Package idempotency makes a creation safe to send again: a client gives
// it a key (the HTTP Idempotency-Key header), and the service derives the
// new record's id from the key and the client, so that a second sending
// finds the record the first one wrote instead of making another.
package idempotency

import (
	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
)

// Header is the HTTP header a client sends its key in.
const Header = "Idempotency-Key"

// MaxKeyLength bounds a key.
const MaxKeyLength = 255

// namespace names the ids made from keys.
var namespace = uuid.MustParse("6f1d4a52-3c0e-4b8e-9a51-2f7c8d0e9b14")

// ID is the id of the record of kind that user creates, within scope (an
// account, say), with key: the same for the same four, another for
// another user's same key.
func ID(user, kind, scope, key string) string {
	return uuid.NewSHA1(namespace, []byte(user+"\x00"+kind+"\x00"+scope+"\x00"+key)).String()
}

// ErrKeyReused refuses a key sent again with another request than the
// one it first came with.
var ErrKeyReused = errs.Define(errs.Invalid, "idempotency_key_reused",
	"this Idempotency-Key was used for another request; use a new key for a new request")

// Check accepts "" (no key) or 1 to MaxKeyLength visible ASCII characters,
// and refuses anything else with an error that names the header.
func Check(key string) error {
	if len(key) > MaxKeyLength {
		return errs.Newf(errs.Invalid, "%s: at most %d characters", Header, MaxKeyLength)
	}
	for _, c := range []byte(key) {
		if c < 0x21 || c > 0x7e {
			return errs.Newf(errs.Invalid, "%s: visible ASCII characters only (a UUID, say)", Header)
		}
	}
	return nil
}
