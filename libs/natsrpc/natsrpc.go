// Package natsrpc is a go-kit transport for request/reply over NATS.
//
// It differs from go-kit's own transport/nats where that one falls short:
// request headers reach the server, the caller's deadline and OpenTelemetry
// trace context travel with the request, and errors come back as a kind
// code and message in the Nats-Service-Error-Code and Nats-Service-Error
// headers (the convention of nats.go's micro package), with the errs reason
// in Cloister-Error-Reason, so a caller gets the same errs.Kind and reason
// the service returned, and errors.Is recognises its sentinels.
package natsrpc

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/nats-io/nats.go"
)

// Header names carried on every request or reply.
const (
	HeaderError     = "Nats-Service-Error"
	HeaderErrorCode = "Nats-Service-Error-Code"
	// HeaderErrorReason carries the refusal's errs reason, if it has one.
	HeaderErrorReason = "Cloister-Error-Reason"
	// HeaderDeadline carries the caller's deadline as Unix nanoseconds.
	HeaderDeadline = "Cloister-Deadline"
)

// DefaultTimeout applies to a call whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// Subject returns the request subject of a method: cloister.<service>.v1.<method>.
func Subject(service, method string) string {
	return "cloister." + service + ".v1." + method
}

// Error codes on the wire follow HTTP status numbers, which every reader knows.
var kindToCode = map[errs.Kind]int{
	errs.Invalid:          400,
	errs.Unauthenticated:  401,
	errs.PermissionDenied: 403,
	errs.NotFound:         404,
	errs.Conflict:         409,
	errs.TooLarge:         413,
	errs.Internal:         500,
	errs.Unavailable:      503,
	errs.RateLimited:      429,
}

// Code returns the wire code of an error kind.
func Code(k errs.Kind) int {
	if c, ok := kindToCode[k]; ok {
		return c
	}
	return 500
}

// KindFromCode is the inverse of Code; an unknown code is Internal.
func KindFromCode(code int) errs.Kind {
	for k, c := range kindToCode {
		if c == code {
			return k
		}
	}
	return errs.Internal
}

// errorFromHeader returns the error a reply carries, or nil.
func errorFromHeader(h nats.Header) error {
	if h == nil {
		return nil
	}
	codeText := h.Get(HeaderErrorCode)
	if codeText == "" {
		return nil
	}
	code, err := strconv.Atoi(codeText)
	if err != nil {
		return errs.Newf(errs.Internal, "malformed %s header %q", HeaderErrorCode, codeText)
	}
	msg := h.Get(HeaderError)
	if msg == "" {
		msg = "error " + codeText
	}
	e := errs.New(KindFromCode(code), msg)
	if r := h.Get(HeaderErrorReason); errs.ValidReason(r) {
		e.Reason = r
	}
	return e
}

// setError writes err into reply headers. Internal errors are reduced to a
// generic message: the server logs the details, callers never see them.
func setError(h nats.Header, err error) {
	h.Set(HeaderErrorCode, strconv.Itoa(Code(errs.KindOf(err))))
	h.Set(HeaderError, errs.PublicMessage(err))
	if r := errs.ReasonOf(err); r != "" {
		h.Set(HeaderErrorReason, r)
	}
}

// transportError turns a failure of the NATS request itself into an errs.Error.
func transportError(subject string, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return errs.Newf(errs.Unavailable, "%s: no service is answering", subject)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return errs.Newf(errs.Unavailable, "%s: timed out", subject)
	case errors.Is(err, context.Canceled):
		return err
	default:
		return errs.Newf(errs.Unavailable, "%s: %v", subject, err)
	}
}
