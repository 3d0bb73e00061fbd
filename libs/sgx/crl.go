package sgx

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

const itemCRL = "CRL"

// ParseCRL parses a certificate revocation list given as DER, as PEM
// ("X509 CRL") or as hex-encoded DER (the form used in collateral JSON).
func ParseCRL(b []byte) (*x509.RevocationList, error) {
	der, err := crlDER(b)
	if err != nil {
		return nil, err
	}
	// x509.ParseRevocationList ignores whatever follows the CRL.
	s := cryptobyte.String(der)
	if !s.SkipASN1(cbasn1.SEQUENCE) || !s.Empty() {
		return nil, failf(ReasonMalformed, itemCRL, "not a single DER SEQUENCE")
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fail(ReasonMalformed, itemCRL, err)
	}
	return crl, nil
}

func crlDER(b []byte) ([]byte, error) {
	if len(b) > 0 && b[0] == 0x30 { // a DER SEQUENCE; hex and PEM start with text
		return b, nil
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, failf(ReasonMalformed, itemCRL, "empty")
	}
	if bytes.HasPrefix(t, []byte("-----BEGIN ")) {
		block, rest := pem.Decode(t)
		// pem.Decode skips a broken block to the next one: allow only one.
		if block == nil || len(bytes.TrimSpace(rest)) != 0 || bytes.Count(t, []byte("-----BEGIN ")) != 1 {
			return nil, failf(ReasonMalformed, itemCRL, "bad PEM")
		}
		if block.Type != "X509 CRL" || len(block.Headers) != 0 {
			return nil, failf(ReasonMalformed, itemCRL, "PEM block %q, want X509 CRL", block.Type)
		}
		return block.Bytes, nil
	}
	der := make([]byte, hex.DecodedLen(len(t)))
	if _, err := hex.Decode(der, t); err != nil {
		return nil, failf(ReasonMalformed, itemCRL, "neither DER, PEM nor hex: %w", err)
	}
	return der, nil
}

// CRL extensions this package understands; a CRL with any other critical
// extension (a delta CRL, say) is refused.
var (
	oidCRLNumber              = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidAuthorityKeyIdentifier = asn1.ObjectIdentifier{2, 5, 29, 35}
)

// CheckCRL checks that crl is signed by issuer and that at lies within its
// ThisUpdate..NextUpdate window. item names the CRL in errors ("PCK CRL").
func CheckCRL(item string, crl *x509.RevocationList, issuer *x509.Certificate, at time.Time) error {
	if crl == nil {
		return failf(ReasonMalformed, item, "no CRL")
	}
	if issuer == nil {
		return failf(ReasonCollateralSignature, item, "no issuer")
	}
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return failf(ReasonCollateralSignature, item, "issued by %q, not %q", crl.Issuer.String(), issuer.Subject.String())
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return failf(ReasonCollateralSignature, item, "signature by %q: %w", subjectName(issuer), err)
	}
	for _, e := range crl.Extensions {
		if e.Critical && !e.Id.Equal(oidCRLNumber) && !e.Id.Equal(oidAuthorityKeyIdentifier) {
			return failf(ReasonUnsupported, item, "critical extension %v", e.Id)
		}
	}
	if crl.NextUpdate.IsZero() {
		return failf(ReasonMalformed, item, "no nextUpdate")
	}
	if at.Before(crl.ThisUpdate) || at.After(crl.NextUpdate) {
		return failf(ReasonExpired, item, "not valid at %s (valid from %s to %s)",
			at.UTC().Format(time.RFC3339), crl.ThisUpdate.UTC().Format(time.RFC3339), crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	return nil
}

// Revoked reports whether crl, issued by cert's issuer, lists cert's
// serial number. A CRL from another issuer says nothing about cert.
func Revoked(crl *x509.RevocationList, cert *x509.Certificate) bool {
	if crl == nil || cert == nil || cert.SerialNumber == nil || !bytes.Equal(crl.RawIssuer, cert.RawIssuer) {
		return false
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber != nil && e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return true
		}
	}
	return false
}
