package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// KeyType is a key type and size an application may use.
type KeyType string

// The accepted key types.
const (
	RSA2048 KeyType = "rsa-2048"
	RSA3072 KeyType = "rsa-3072"
	RSA4096 KeyType = "rsa-4096"
	P256    KeyType = "ec-p256"
	P384    KeyType = "ec-p384"
)

// ParseKeyType checks a key type name.
func ParseKeyType(s string) (KeyType, error) {
	switch k := KeyType(s); k {
	case RSA2048, RSA3072, RSA4096, P256, P384:
		return k, nil
	}
	return "", fmt.Errorf("key type %q is not one of rsa-2048, rsa-3072, rsa-4096, ec-p256, ec-p384", s)
}

// keyTypeOf names the type of a public key, or "" for one not accepted.
func keyTypeOf(pub crypto.PublicKey) KeyType {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048
		case 3072:
			return RSA3072
		case 4096:
			return RSA4096
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return P256
		case elliptic.P384():
			return P384
		}
	}
	return ""
}

// CSRError says which check a CSR failed.
type CSRError struct{ Check, Detail string }

func (e *CSRError) Error() string { return "CSR refused: " + e.Check + ": " + e.Detail }

// CSR is a checked certificate signing request.
type CSR struct {
	Request *x509.CertificateRequest
	// KeyHash is SHA-256 of the DER SubjectPublicKeyInfo: what the enclave
	// puts in REPORTDATA to bind its key to its attestation.
	KeyHash  [32]byte
	DNSNames []string
}

// MaxCSRSize bounds the CSRs accepted.
const MaxCSRSize = 16 << 10

// CheckCSR parses a DER (or PEM) CSR, checks its self-signature, and that
// its key is exactly want (weaker or other keys are refused), and returns
// its names and key hash.
func CheckCSR(b []byte, want KeyType) (*CSR, error) {
	c, err := CheckCSRKey(b, want)
	if err != nil {
		return nil, err
	}
	if len(c.DNSNames) == 0 {
		return nil, &CSRError{"names", "the CSR names no DNS name"}
	}
	for _, n := range c.DNSNames {
		if err := CheckDNSName(n); err != nil {
			return nil, &CSRError{"names", err.Error()}
		}
	}
	return c, nil
}

// CheckDNSName accepts the names certificates are issued for: lower-case
// letters, digits and hyphens in labels of 1 to 63 characters, not
// starting or ending with a hyphen, at least two labels, at most 253
// characters, no wildcard and no trailing dot. Exactly one spelling of a
// name is accepted, so that allowlists and revocation compare bytes.
func CheckDNSName(n string) error {
	labels := strings.Split(n, ".")
	if n == "" || len(n) > 253 || len(labels) < 2 {
		return fmt.Errorf("%q is not a DNS name such as app.example.com", n)
	}
	if top := labels[len(labels)-1]; top != "" && strings.Trim(top, "0123456789") == "" {
		return fmt.Errorf("%q is an IP address, not a DNS name: the CA issues for names", n)
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q is not a DNS name: every label must be 1 to 63 characters, not starting or ending with '-'", n)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%q is not a DNS name that can be issued: only lower-case letters, digits, '-' and '.'", n)
			}
		}
	}
	return nil
}

// CheckCSRKey is CheckCSR for clients, whose certificates carry no DNS
// names: a CSR naming any is refused.
func CheckCSRKey(b []byte, want KeyType) (*CSR, error) {
	c, err := ParseCSRKey(b, want)
	if err != nil {
		return nil, err
	}
	if err := c.Request.CheckSignature(); err != nil {
		return nil, &CSRError{"signature", "the CSR is not signed by its own key"}
	}
	return c, nil
}

// ParseCSRKey is CheckCSRKey without the signature: for a service that
// hands the CSR on to the CA, which checks it (CheckCSRKey) before it
// signs anything, so that the signature is verified once.
func ParseCSRKey(b []byte, want KeyType) (*CSR, error) {
	if len(b) == 0 || len(b) > MaxCSRSize {
		return nil, &CSRError{"size", fmt.Sprintf("a CSR must be 1 to %d bytes", MaxCSRSize)}
	}
	der := b
	if p := pemBlock(b, "CERTIFICATE REQUEST"); p != nil {
		der = p
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, &CSRError{"format", err.Error()}
	}
	got := keyTypeOf(req.PublicKey)
	switch {
	case got == "":
		return nil, &CSRError{"key", "the key is not an accepted type (RSA 2048/3072/4096, EC P-256/P-384)"}
	case got != want:
		return nil, &CSRError{"key", fmt.Sprintf("the key is %s, the application requires %s", got, want)}
	}
	if len(req.IPAddresses)+len(req.EmailAddresses)+len(req.URIs) > 0 {
		return nil, &CSRError{"names", "only DNS names may be requested"}
	}
	return &CSR{Request: req, KeyHash: sha256.Sum256(req.RawSubjectPublicKeyInfo), DNSNames: req.DNSNames}, nil
}

// OIDAttestation marks the extension that records what attestation the
// certificate was issued on. It sits in IANA's experimental arc until
// Cloister has a private enterprise number.
var OIDAttestation = asn1.ObjectIdentifier{1, 3, 6, 1, 3, 47, 1}

// Attestation is what the attestation extension records.
type Attestation struct {
	MRENCLAVE []byte
	MRSIGNER  []byte
	ISVProdID int
	ISVSVN    int
	TCBStatus string `asn1:"utf8"`
	Simulated bool
	// Debug: the enclave ran in debug mode, where the host can read its
	// memory.
	Debug bool
}

// ParseAttestation reads the attestation extension of a certificate.
func ParseAttestation(cert *x509.Certificate) (*Attestation, error) {
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDAttestation) {
			var a Attestation
			rest, err := asn1.Unmarshal(e.Value, &a)
			if err != nil || len(rest) != 0 {
				return nil, errors.New("pki: malformed attestation extension")
			}
			return &a, nil
		}
	}
	return nil, errors.New("pki: no attestation extension")
}

// Leaf is what to put in an application certificate.
type Leaf struct {
	CSR         *CSR
	Lifetime    time.Duration
	Attestation Attestation
	// OCSPURL and CRLURL, when set, tell relying parties where to check
	// revocation (authority information access, CRL distribution point).
	OCSPURL, CRLURL string
}

// IssueClient signs a client-authentication certificate for a CSR's key,
// identified by a URI (e.g. urn:cloister:node:<account>:<node>) and a
// common name, for nodes and other machine identities.
func (c *CA) IssueClient(csr *CSR, cn string, uri *url.URL, lifetime time.Duration, now time.Time) (*Cert, error) {
	if csr == nil || uri == nil {
		return nil, errors.New("pki: no CSR or identity")
	}
	if lifetime <= 0 || lifetime > maxLeafLifetime {
		return nil, fmt.Errorf("pki: certificate lifetime must be positive and at most %s", maxLeafLifetime)
	}
	// Encoded and signed as Issue does application certificates, without
	// x509.CreateCertificate's verification of its own signature;
	// TestClientMatchesCreateCertificate holds the bytes to its.
	name := pkix.Name{CommonName: cn, Organization: c.Root.Subject.Organization, OrganizationalUnit: c.Root.Subject.OrganizationalUnit}
	subject, err := asn1.Marshal(name.ToRDNSequence())
	if err != nil {
		return nil, err
	}
	cert := &Cert{Serial: newSerial(), NotBefore: now.Add(-LeafBackdate).Truncate(time.Second).UTC(),
		NotAfter: minTime(now.Add(lifetime), c.Issuer.NotAfter).Truncate(time.Second).UTC()}
	tbs, err := leafTBS(leafFields{
		serial: cert.Serial, issuer: c.Issuer.RawSubject, subject: subject, spki: csr.Request.RawSubjectPublicKeyInfo,
		notBefore: cert.NotBefore, notAfter: cert.NotAfter, authorityKeyID: c.Issuer.SubjectKeyId,
		uris: []string{uri.String()}, clientOnly: true,
	})
	if err != nil {
		return nil, err
	}
	if cert.DER, err = signTBS(tbs, c.issuerKey); err != nil {
		return nil, err
	}
	return cert, nil
}
