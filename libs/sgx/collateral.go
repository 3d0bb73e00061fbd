package sgx

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// Collateral is everything besides the quote that verifying it needs, as
// Intel's PCS serves it. TCB Info and QE Identity are kept as the exact
// bytes Intel signed: verify the signature over these bytes and parse the
// same bytes, never a re-serialisation.
type Collateral struct {
	TCBInfoJSON, TCBInfoSignature       []byte // signature: r‖s, 64 bytes
	TCBInfoIssuerChain                  []byte // PEM
	QEIdentityJSON, QEIdentitySignature []byte // signature: r‖s, 64 bytes
	QEIdentityIssuerChain               []byte // PEM
	RootCACRL, PCKCRL                   []byte // DER
	PCKCRLIssuerChain                   []byte // PEM
}

// collateralWire is the JSON form of collateral used by Phala's dcap-qvl
// (and the shared test vectors).
type collateralWire struct {
	TCBInfo               *string `json:"tcb_info"`
	TCBInfoSignature      *string `json:"tcb_info_signature"`
	TCBInfoIssuerChain    *string `json:"tcb_info_issuer_chain"`
	QEIdentity            *string `json:"qe_identity"`
	QEIdentitySignature   *string `json:"qe_identity_signature"`
	QEIdentityIssuerChain *string `json:"qe_identity_issuer_chain"`
	RootCACRL             *string `json:"root_ca_crl"`
	PCKCRL                *string `json:"pck_crl"`
	PCKCRLIssuerChain     *string `json:"pck_crl_issuer_chain"`
}

// ParseCollateralJSON reads collateral in dcap-qvl's JSON form: tcb_info
// and qe_identity are strings holding the exact signed JSON, their
// signatures are hex r‖s, the CRLs are hex DER (PEM is accepted too) and
// the issuer chains are PEM. Every key is required; others are ignored.
// Nothing is verified here, and the signed JSON is not parsed.
//
// The signed JSON goes through a JSON string, which cannot carry invalid
// UTF-8: such bytes would come out changed and fail their signature.
func ParseCollateralJSON(b []byte) (*Collateral, error) {
	const item = "collateral"
	var w collateralWire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fail(ReasonMalformed, item, err)
	}
	var c Collateral
	var err error
	for _, f := range []struct {
		name string
		in   *string
		out  *[]byte
		read func(field, s string) ([]byte, error)
	}{
		{"tcb_info", w.TCBInfo, &c.TCBInfoJSON, collateralText},
		{"tcb_info_signature", w.TCBInfoSignature, &c.TCBInfoSignature, collateralSignature},
		{"tcb_info_issuer_chain", w.TCBInfoIssuerChain, &c.TCBInfoIssuerChain, collateralPEMChain},
		{"qe_identity", w.QEIdentity, &c.QEIdentityJSON, collateralText},
		{"qe_identity_signature", w.QEIdentitySignature, &c.QEIdentitySignature, collateralSignature},
		{"qe_identity_issuer_chain", w.QEIdentityIssuerChain, &c.QEIdentityIssuerChain, collateralPEMChain},
		{"root_ca_crl", w.RootCACRL, &c.RootCACRL, collateralCRL},
		{"pck_crl", w.PCKCRL, &c.PCKCRL, collateralCRL},
		{"pck_crl_issuer_chain", w.PCKCRLIssuerChain, &c.PCKCRLIssuerChain, collateralPEMChain},
	} {
		if f.in == nil {
			return nil, failf(ReasonMalformed, item, "no %q", f.name)
		}
		if *f.out, err = f.read(f.name, *f.in); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

func collateralText(field, s string) ([]byte, error) {
	if s == "" {
		return nil, failf(ReasonMalformed, "collateral", "%s is empty", field)
	}
	return []byte(s), nil
}

func collateralSignature(field, s string) ([]byte, error) {
	sig, err := hexSignature(s)
	if err != nil {
		return nil, failf(ReasonMalformed, "collateral", "%s: %v", field, err)
	}
	return sig, nil
}

// hexSignature decodes a hex r‖s P-256 signature.
func hexSignature(s string) ([]byte, error) {
	sig, err := hex.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(sig) != 64 {
		return nil, fmt.Errorf("%d bytes, want 64 (r‖s)", len(sig))
	}
	return sig, nil
}

// collateralPEMChain keeps a PEM chain as it is, once it is seen to hold a
// certificate; parsing and verifying the chain is left to the verifier.
func collateralPEMChain(field, s string) ([]byte, error) {
	b := []byte(s)
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, failf(ReasonMalformed, "collateral", "%s: no PEM certificate", field)
	}
	return b, nil
}

// collateralCRL returns the DER of a CRL given as hex DER or as PEM.
func collateralCRL(field, s string) ([]byte, error) {
	t := bytes.TrimSpace([]byte(s))
	if bytes.HasPrefix(t, []byte("-----BEGIN")) {
		block, _ := pem.Decode(t)
		if block == nil || block.Type != "X509 CRL" {
			return nil, failf(ReasonMalformed, "collateral", "%s: no PEM X509 CRL", field)
		}
		return block.Bytes, nil
	}
	der, err := hex.DecodeString(string(t))
	if err != nil {
		return nil, failf(ReasonMalformed, "collateral", "%s: neither PEM nor hex: %v", field, err)
	}
	if len(der) == 0 {
		return nil, failf(ReasonMalformed, "collateral", "%s is empty", field)
	}
	return der, nil
}

// pcsBodyWire is a PCS response for TCB Info or QE Identity (API v3/v4).
// json.RawMessage keeps the inner object's bytes exactly as they are in
// the body, which is what Intel signed.
type pcsBodyWire struct {
	TCBInfo         json.RawMessage `json:"tcbInfo"`
	EnclaveIdentity json.RawMessage `json:"enclaveIdentity"`
	Signature       *string         `json:"signature"`
}

// SplitPCSBody splits an Intel PCS response body, {"tcbInfo":{…},
// "signature":"hex"} or {"enclaveIdentity":{…},"signature":"hex"}, into
// the signed object's bytes, exactly as they appear in the body, and the
// decoded r‖s signature. A body with both objects, or neither, is
// ReasonMalformed.
func SplitPCSBody(body []byte) (signed, signature []byte, err error) {
	const item = "PCS response"
	var w pcsBodyWire
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, nil, fail(ReasonMalformed, item, err)
	}
	switch {
	case w.TCBInfo != nil && w.EnclaveIdentity != nil:
		return nil, nil, failf(ReasonMalformed, item, `both "tcbInfo" and "enclaveIdentity"`)
	case w.TCBInfo != nil:
		signed = w.TCBInfo
	case w.EnclaveIdentity != nil:
		signed = w.EnclaveIdentity
	default:
		return nil, nil, failf(ReasonMalformed, item, `neither "tcbInfo" nor "enclaveIdentity"`)
	}
	if len(signed) == 0 || signed[0] != '{' {
		return nil, nil, failf(ReasonMalformed, item, "the signed value is not a JSON object")
	}
	if w.Signature == nil {
		return nil, nil, failf(ReasonMalformed, item, `no "signature"`)
	}
	if signature, err = hexSignature(*w.Signature); err != nil {
		return nil, nil, failf(ReasonMalformed, item, "signature: %v", err)
	}
	return signed, signature, nil
}

// VerifySignedJSON checks Intel's signature over signed collateral: ECDSA
// P-256 over SHA-256 of raw, sig being r‖s (32 bytes each, big-endian).
// key is the leaf of the item's issuer chain, verified by the caller. A
// signature that does not verify is ReasonCollateralSignature naming item;
// a key not on P-256 is ReasonUnsupported.
func VerifySignedJSON(item string, raw, sig []byte, key *ecdsa.PublicKey) error {
	// A key without coordinates would make ecdsa.Verify panic.
	//lint:ignore SA1019 the coordinates are only checked for nil: Bytes and Verify panic on them
	if key == nil || key.Curve == nil || key.X == nil || key.Y == nil {
		return failf(ReasonCollateralSignature, item, "no signing key")
	}
	if key.Curve != elliptic.P256() {
		return failf(ReasonUnsupported, item, "signing key is on %s, want P-256", key.Curve.Params().Name)
	}
	if len(sig) != 64 {
		return failf(ReasonCollateralSignature, item, "signature is %d bytes, want 64 (r‖s)", len(sig))
	}
	digest := sha256.Sum256(raw)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(key, digest[:], r, s) {
		return failf(ReasonCollateralSignature, item, "ECDSA P-256 signature does not verify with the issuer's key")
	}
	return nil
}

// CheckDates checks that at is inside an item's validity window: on or
// after issue, and before next (Intel's nextUpdate). Outside it is
// ReasonExpired naming item.
func CheckDates(item string, issue, next, at time.Time) error {
	const layout = time.RFC3339
	if at.Before(issue) {
		return failf(ReasonExpired, item, "issued %s, after the verification time %s",
			issue.UTC().Format(layout), at.UTC().Format(layout))
	}
	if !at.Before(next) {
		return failf(ReasonExpired, item, "next update was due %s, at or before the verification time %s",
			next.UTC().Format(layout), at.UTC().Format(layout))
	}
	return nil
}
