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
	Kind    Kind
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is makes errors.Is match two *Error values of the same kind and message,
// so sentinels survive a round trip over the wire.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Message == e.Message
}

// New returns an error of the given kind.
func New(k Kind, msg string) *Error { return &Error{Kind: k, Message: msg} }

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
