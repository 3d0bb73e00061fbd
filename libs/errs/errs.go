// Package errs classifies errors by kind so that each edge (HTTP, NATS
// request/reply) can map them to its own status codes in one place, while
// domain packages stay free of transport imports.
package errs

import (
	"errors"
	"fmt"
)

// Kind says what sort of failure an error is, independent of transport.
type Kind int

// The kinds, in rough order of HTTP status.
const (
	Internal         Kind = iota // a bug or an unexpected failure; details are not shown to callers
	Invalid                      // the request is malformed or breaks a rule
	Unauthenticated              // no valid credentials
	PermissionDenied             // valid credentials, but the role does not allow it
	NotFound                     // no such object, or not visible to the caller
	Conflict                     // exists already, or a concurrent change won
	TooLarge                     // a body or field over its limit
	Unavailable                  // a dependency cannot be reached; the call may be retried
	RateLimited                  // too many attempts; retry later
)

var kindNames = map[Kind]string{
	Internal:         "internal",
	Invalid:          "invalid",
	Unauthenticated:  "unauthenticated",
	PermissionDenied: "permission_denied",
	NotFound:         "not_found",
	Conflict:         "conflict",
	TooLarge:         "too_large",
	Unavailable:      "unavailable",
	RateLimited:      "rate_limited",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is an error with a kind and a message that is safe to show to the
// caller. Wrap it with fmt.Errorf("...: %w", err) to add context for logs.
type Error struct {
	Kind Kind
	// Reason names a refusal for programs ("image_not_found"): it travels
	// over the wire with the message, and errors.Is compares it. A one-off
	// error has none.
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is makes errors.Is match two *Error values of the same kind and reason,
// so sentinels survive a round trip over the wire whatever their message
// says. Errors without a reason match only themselves.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason != "" && t.Kind == e.Kind && t.Reason == e.Reason
}

// New returns an error of the given kind.
func New(k Kind, msg string) *Error { return &Error{Kind: k, Message: msg} }

// Define returns a refusal callers can recognise with errors.Is, here or
// across the wire: its reason is lower_snake_case and stable, its message
// for people. It panics on a malformed reason (a bug of the declaration).
func Define(k Kind, reason, msg string) *Error {
	if !validReason(reason) {
		panic(fmt.Sprintf("errs: reason %q is not lower_snake_case", reason))
	}
	return &Error{Kind: k, Reason: reason, Message: msg}
}

// Withf returns the same refusal (kind and reason) with a message that
// says more of the case at hand.
func (e *Error) Withf(format string, args ...any) *Error {
	return &Error{Kind: e.Kind, Reason: e.Reason, Message: fmt.Sprintf(format, args...)}
}

// ValidReason reports whether reason may name a refusal: 1 to 64
// characters of a-z, 0-9 and _, starting with a letter.
func ValidReason(reason string) bool { return validReason(reason) }

func validReason(r string) bool {
	if r == "" || len(r) > 64 || r[0] < 'a' || r[0] > 'z' {
		return false
	}
	for _, c := range r {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// ReasonOf is the reason of the first *Error in err's chain; "" when it
// has none, and for internal errors, whose details callers never see.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != Internal {
		return e.Reason
	}
	return ""
}

// Newf returns an error of the given kind with a formatted message.
func Newf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// KindOf reports the kind of err: the kind of the first *Error in its chain,
// or Internal when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// PublicMessage returns the message that may be shown to a caller: the
// *Error's own message, or a generic text for internal errors so that
// details of failures never leak.
func PublicMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != Internal {
		return e.Message
	}
	return "internal error"
}
