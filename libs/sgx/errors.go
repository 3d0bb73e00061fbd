// Package sgx parses and verifies Intel SGX evidence: DCAP ECDSA quotes
// (v3, certification data type 5), their PCK certificate chains, Intel's
// collateral (TCB Info, QE Identity, CRLs) and TCB evaluation. It works
// offline: collateral is given, never fetched, and the clock is injected.
package sgx

import (
	"errors"
	"fmt"
)

// Reason says which check failed.
type Reason string

// The reasons a verification fails.
const (
	ReasonMalformed           Reason = "malformed"            // bytes that do not parse
	ReasonUnsupported         Reason = "unsupported"          // a version, key or data type this verifier does not handle
	ReasonChain               Reason = "chain"                // a certificate chain does not lead to the pinned root
	ReasonRevoked             Reason = "revoked"              // a certificate is on its issuer's CRL
	ReasonExpired             Reason = "expired"              // an item is outside its validity window at the given time
	ReasonCollateralSignature Reason = "collateral_signature" // TCB Info, QE Identity or a CRL is not signed by its issuer
	ReasonQESignature         Reason = "qe_signature"         // the QE report is not signed by the PCK key
	ReasonQEReportData        Reason = "qe_report_data"       // the QE report does not bind the attestation key
	ReasonQuoteSignature      Reason = "quote_signature"      // the quote is not signed by the attestation key
	ReasonQEIdentity          Reason = "qe_identity"          // the quoting enclave is not the one QE Identity describes
	ReasonTCB                 Reason = "tcb"                  // no TCB level matches, or the status is not accepted
	ReasonMismatch            Reason = "mismatch"             // collateral for another platform (FMSPC, PCE-ID)
	ReasonDebug               Reason = "debug"                // a debug enclave where none is allowed
	ReasonSignature           Reason = "signature"            // a SIGSTRUCT's RSA signature, Q1 or Q2 does not verify
)

// Error is a failed verification: the reason, the item it concerns (e.g.
// "TCB Info", "PCK certificate") and the cause.
type Error struct {
	Reason Reason
	Item   string
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("sgx: %s: %s", e.Item, e.Reason)
	}
	return fmt.Sprintf("sgx: %s: %s: %v", e.Item, e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error with the same reason (and item, when the
// target names one), so tests and callers can write
// errors.Is(err, &sgx.Error{Reason: sgx.ReasonExpired}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason && (t.Item == "" || t.Item == e.Item)
}

func fail(r Reason, item string, err error) *Error { return &Error{Reason: r, Item: item, Err: err} }

func failf(r Reason, item, format string, args ...any) *Error {
	return &Error{Reason: r, Item: item, Err: fmt.Errorf(format, args...)}
}

// ReasonOf returns the reason of the first *Error in err's chain, or "".
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
