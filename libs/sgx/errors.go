// Package sgx parses and verifies Intel DCAP evidence: SGX ECDSA quotes
// (v3, certification data type 5) and TDX ECDSA quotes (v4, TD report
// 1.0), their PCK certificate chains, Intel's collateral (TCB Info, QE
// Identity, CRLs), TCB evaluation, and for TDX the TDX module's identity.
// It works offline: collateral is given, never fetched, and the clock is
// injected.
package sgx

import (
	"fmt"

	"github.com/cloister-cc/cloister/libs/tee"
)

// Reason says which check failed; Error is a failed verification (see
// package tee, which every TEE's verifier shares).
type (
	Reason = tee.Reason
	Error  = tee.Error
)

// The reasons a verification fails.
const (
	ReasonMalformed           = tee.ReasonMalformed
	ReasonUnsupported         = tee.ReasonUnsupported
	ReasonChain               = tee.ReasonChain
	ReasonRevoked             = tee.ReasonRevoked
	ReasonExpired             = tee.ReasonExpired
	ReasonCollateralSignature = tee.ReasonCollateralSignature
	ReasonQESignature         = tee.ReasonQESignature
	ReasonQEReportData        = tee.ReasonQEReportData
	ReasonQuoteSignature      = tee.ReasonQuoteSignature
	ReasonQEIdentity          = tee.ReasonQEIdentity
	ReasonTCB                 = tee.ReasonTCB
	ReasonMismatch            = tee.ReasonMismatch
	ReasonDebug               = tee.ReasonDebug
	ReasonSignature           = tee.ReasonSignature
)

func fail(r Reason, item string, err error) *Error {
	return &Error{TEE: tee.SGX, Reason: r, Item: item, Err: err}
}

func failf(r Reason, item, format string, args ...any) *Error {
	return fail(r, item, fmt.Errorf(format, args...))
}

// ReasonOf returns the reason of the first *Error in err's chain, or "".
func ReasonOf(err error) Reason { return tee.ReasonOf(err) }
