package convert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cloister-cc/cloister/libs/netguard"
)

// Reason says why a conversion failed, in words a user can act on; it is
// stable, for the API and the console.
type Reason string

// The reasons a conversion fails.
const (
	ReasonNotFound         Reason = "image_not_found"
	ReasonUnauthorized     Reason = "unauthorized"
	ReasonUnsupportedMedia Reason = "unsupported_media_type"
	ReasonNoPlatform       Reason = "no_linux_amd64"
	// ReasonTimeout is also every network error, a 5xx or 429 from a
	// registry, and a cancelled or expired ctx: transient.
	ReasonTimeout Reason = "registry_timeout"
	// ReasonInvalidImage: a bad tar, a path that escapes the root, no
	// entrypoint, an image that is converted already...
	ReasonInvalidImage Reason = "invalid_image"
	// ReasonInvalidApp: the application's settings do not fit, e.g. a
	// memory size below the layout's minimum (the message says it).
	ReasonInvalidApp Reason = "invalid_app"
	// ReasonTLS: the registry's certificate is not trusted (the
	// converter trusts the system's CAs and checks the name), or it does
	// not speak TLS at all.
	ReasonTLS Reason = "registry_tls"
	// ReasonAddressDenied: the registry's address is in a network the
	// converter may not reach (cloister server --registry-deny).
	ReasonAddressDenied Reason = "registry_address_denied"
	// ReasonInternal: the converter itself is misconfigured (no launcher,
	// an unusable signing key); no user of the app can fix it.
	ReasonInternal Reason = "internal"
)

// Error is a conversion failure with a reason a user can act on.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Transient reports whether the same conversion may succeed later
// unchanged: a timeout, a network error, a cancelled ctx, or a registry's
// 5xx or 429 (all ReasonTimeout).
func (e *Error) Transient() bool { return e.Reason == ReasonTimeout }

func fail(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Err: fmt.Errorf(format, args...)}
}

// registryError wraps an error of a registry operation (what names it,
// e.g. "pulling registry.example.com/app:1") with the reason it implies;
// other is the reason of an error that says nothing about the registry.
func registryError(err error, other Reason, what string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	r, hint := reasonOf(err, other)
	// A registry's answer is named by its status alone: its body or banner
	// is the registry's to say, and may be anything (an internal service's
	// page, once the converter was pointed at one).
	var te *transport.Error
	if errors.As(err, &te) {
		if hint == "" {
			hint = "the registry refused the request"
		}
		return &Error{Reason: r, Err: fmt.Errorf("%s: %s (HTTP %d %s)", what, hint, te.StatusCode, http.StatusText(te.StatusCode))}
	}
	if hint != "" {
		return &Error{Reason: r, Err: fmt.Errorf("%s: %s: %w", what, hint, err)}
	}
	return &Error{Reason: r, Err: fmt.Errorf("%s: %w", what, err)}
}

// reasonOf classifies a go-containerregistry error: the registry's error
// codes first, then the HTTP status, then the network.
func reasonOf(err error, other Reason) (Reason, string) {
	switch {
	case errors.Is(err, context.Canceled):
		return ReasonTimeout, "cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout, "timed out"
	case errors.Is(err, remote.ErrSchema1):
		return ReasonUnsupportedMedia, "Docker schema 1 images are not supported: push the image again with a current Docker or buildah"
	}
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return ReasonNotFound, "no such image or repository"
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return ReasonUnauthorized, "the registry refused the credentials (or their absence)"
			case transport.TooManyRequestsErrorCode, transport.UnavailableErrorCode:
				return ReasonTimeout, "the registry is busy"
			}
		}
		switch s := te.StatusCode; {
		case s == http.StatusUnauthorized, s == http.StatusForbidden:
			return ReasonUnauthorized, "the registry refused the credentials (or their absence)"
		case s == http.StatusNotFound:
			return ReasonNotFound, "no such image or repository"
		case s == http.StatusTooManyRequests, s >= 500:
			return ReasonTimeout, "the registry is unavailable"
		case s == http.StatusUnsupportedMediaType:
			return ReasonUnsupportedMedia, ""
		}
		return other, ""
	}
	// Before net.Error, which the dialer's refusal also is: it is final.
	var de *netguard.DeniedError
	if errors.As(err, &de) {
		return ReasonAddressDenied, "the converter may not connect to this address (see the server's --registry-deny)"
	}
	// Before net.Error too, which url.Error wraps every failure in: a
	// certificate that is not trusted stays so, however often it is tried.
	var (
		verify  *tls.CertificateVerificationError
		host    x509.HostnameError
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		record  tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &host), errors.As(err, &unknown), errors.As(err, &invalid):
		return ReasonTLS, "the registry's TLS certificate is not trusted (the converter trusts the system's CAs, for the registry's name)"
	// net/http says so in words only, when the answer was plain HTTP.
	case errors.As(err, &record), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return ReasonTLS, "the registry does not speak TLS at this address"
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ReasonTimeout, "the registry did not answer"
	}
	return other, ""
}
