// Package tee holds what the verifiers of every trusted execution
// environment share: the error that says which check of the evidence
// failed, and why.
package tee

import (
	"errors"
	"fmt"
)

// The TEEs Cloister verifies evidence of.
const (
	SGX    = "sgx"
	TDX    = "tdx"
	SEVSNP = "sev-snp"
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
	ReasonReportSignature     Reason = "report_signature"     // an SEV-SNP report is not signed by its VCEK or VLEK
	ReasonQEIdentity          Reason = "qe_identity"          // the quoting enclave is not the one QE Identity describes
	ReasonTCB                 Reason = "tcb"                  // no TCB level matches, or the status is not accepted
	ReasonMismatch            Reason = "mismatch"             // collateral or a certificate for another platform (FMSPC, PCE-ID, chip, product)
	ReasonDebug               Reason = "debug"                // a debug enclave or VM where none is allowed
	ReasonSignature           Reason = "signature"            // a SIGSTRUCT's RSA signature, Q1 or Q2 does not verify
	ReasonPolicy              Reason = "policy"               // evidence that verifies, but that the policy does not accept
)

// Error is a failed verification: the TEE, the reason, the item it
// concerns (e.g. "TCB Info", "VCEK certificate") and the cause.
type Error struct {
	TEE    string
	Reason Reason
	Item   string
	Err    error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %s", e.Item, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.TEE != "" {
		msg = e.TEE + ": " + msg
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error with the same reason (and TEE and item, when
// the target names them), so tests and callers can write
// errors.Is(err, &tee.Error{Reason: tee.ReasonExpired}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason && (t.Item == "" || t.Item == e.Item) && (t.TEE == "" || t.TEE == e.TEE)
}

// ReasonOf returns the reason of the first *Error in err's chain, or "".
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
