package sgx

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	_ "embed"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// intelRootSPKI is the DER SubjectPublicKeyInfo of the Intel SGX Root CA,
// carried by both published root certificates (valid to 2033 and to 2049).
// Pinning the key rather than a certificate accepts either of them.
const intelRootSPKI = "3059301306072a8648ce3d020106082a8648ce3d03010703420004" +
	"0ba9c4c0c0c86193a3fe23d6b02cda10a8bbd4e88e48b4458561a36e705525f5" +
	"67918e2edc88e40d860bd0cc4ee26aacc988e505a953558c453f6b0904ae7394"

// IntelRootKey returns the pinned public key of the Intel SGX Root CA
// (P-256). Each call returns a new value, so callers cannot alter the pin.
func IntelRootKey() *ecdsa.PublicKey {
	der, err := hex.DecodeString(intelRootSPKI)
	if err != nil {
		panic("sgx: bad pinned root key: " + err.Error())
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		panic("sgx: bad pinned root key: " + err.Error())
	}
	return key.(*ecdsa.PublicKey)
}

// intelRootsPEM holds the two published Intel SGX Root CA certificates
// (valid to 2049, and the legacy one to 2033), as Intel publishes them.
//
//go:embed intel_roots.pem
var intelRootsPEM []byte

// knownRoots maps the DER of each published root certificate to it,
// parsed once. Nearly every chain ends with one of them, byte for byte,
// and parsing it would be a fifth of the cost of an uncached verification's
// certificates; any other certificate, a root or not, is parsed as it
// comes. What the chain's root is trusted for is unchanged: its key, which
// VerifyChain matches to the pinned one.
var knownRoots = sync.OnceValue(func() map[string]*x509.Certificate {
	roots := map[string]*x509.Certificate{}
	rest := intelRootsPEM
	for {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil || !pinnedRoot().Equal(cert.PublicKey) {
			panic("sgx: embedded Intel root certificate does not hold the pinned key")
		}
		roots[string(block.Bytes)] = cert
	}
	return roots
})

// pinnedRoot is IntelRootKey made once, for the verifiers that do not
// hand it out.
var pinnedRoot = sync.OnceValue(IntelRootKey)

const itemCertificates = "certificates"

// ParseCertificates parses a sequence of PEM CERTIFICATE blocks, as found
// in quote certification data type 5 (which ends with a NUL byte) and in
// collateral issuer chains. Only whitespace may separate the blocks, and
// only whitespace and NUL bytes may follow the last one. The certificates
// returned may be shared: they must not be modified.
func ParseCertificates(pemBytes []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := pemBytes
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(bytes.Trim(rest, " \t\r\n\x00")) == 0 {
			break
		}
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, failf(ReasonMalformed, itemCertificates, "certificate %d: not PEM", len(certs)+1)
		}
		der, next, ok := plainPEMCertificate(rest)
		if !ok {
			block, after := pem.Decode(rest)
			// pem.Decode skips text it cannot decode up to the next BEGIN
			// line; a block that swallowed a second BEGIN means the first
			// block was broken.
			if block == nil || bytes.Count(rest[:len(rest)-len(after)], []byte("-----BEGIN ")) != 1 {
				return nil, failf(ReasonMalformed, itemCertificates, "certificate %d: bad PEM block", len(certs)+1)
			}
			if block.Type != "CERTIFICATE" || len(block.Headers) != 0 {
				return nil, failf(ReasonMalformed, itemCertificates, "certificate %d: PEM block %q, want CERTIFICATE", len(certs)+1, block.Type)
			}
			der, next = block.Bytes, after
		}
		cert := knownRoots()[string(der)]
		if cert == nil {
			var err error
			if cert, err = x509.ParseCertificate(der); err != nil {
				return nil, failf(ReasonMalformed, itemCertificates, "certificate %d: %w", len(certs)+1, err)
			}
		}
		certs = append(certs, cert)
		rest = next
	}
	if len(certs) == 0 {
		return nil, failf(ReasonMalformed, itemCertificates, "no certificate")
	}
	return certs, nil
}

// plainPEMCertificate decodes a CERTIFICATE block at the start of b in the
// plain shape everyone writes (no headers, base64 lines ending in LF or
// CRLF, the END line ending the same way or the input), as pem.Decode
// would, and returns the rest after it. It is not ok for any other shape,
// which pem.Decode is then left to read: this is the common case without
// pem.Decode's searches, a fifth of the certificates' cost.
func plainPEMCertificate(b []byte) (der, rest []byte, ok bool) {
	const begin, end = "-----BEGIN CERTIFICATE-----", "\n-----END CERTIFICATE-----"
	body, ok := bytes.CutPrefix(b, []byte(begin))
	if !ok {
		return nil, nil, false
	}
	if body, ok = cutLineEnd(body); !ok {
		return nil, nil, false
	}
	// pem.Decode ends the block at the first END line of any type.
	i := bytes.Index(body, []byte("\n-----END "))
	if i <= 0 || !bytes.HasPrefix(body[i:], []byte(end)) {
		return nil, nil, false
	}
	rest = body[i+len(end):]
	if len(rest) > 0 {
		if rest, ok = cutLineEnd(rest); !ok {
			return nil, nil, false
		}
	}
	// The decoder skips CR and LF; anything else that is not base64 (a
	// space, a header's colon, another BEGIN line) fails it.
	der = make([]byte, base64.StdEncoding.DecodedLen(i))
	n, err := base64.StdEncoding.Decode(der, body[:i])
	if err != nil || n == 0 {
		return nil, nil, false
	}
	return der[:n], rest, true
}

// cutLineEnd cuts a LF or CRLF from the start of b.
func cutLineEnd(b []byte) ([]byte, bool) {
	if rest, ok := bytes.CutPrefix(b, []byte("\n")); ok {
		return rest, true
	}
	return bytes.CutPrefix(b, []byte("\r\n"))
}

// VerifyChain orders certs from leaf to root, whatever order they come in,
// and checks that the chain ends at a self-issued certificate of the key
// root (trusted for that key: its self-signature is not checked), that
// every other certificate is signed by the next, that every issuer is a CA
// within its path length, and that every certificate is valid at at. Every
// certificate given must be on the chain. It returns [leaf, ..., root].
//
// item names the chain in errors ("PCK certificate chain"); a certificate
// outside its validity window is reported as ReasonExpired with the
// certificate's subject common name as the item.
func VerifyChain(item string, certs []*x509.Certificate, root *ecdsa.PublicKey, at time.Time) ([]*x509.Certificate, error) {
	if root == nil {
		return nil, failf(ReasonChain, item, "no root key")
	}
	if len(certs) == 0 {
		return nil, failf(ReasonChain, item, "no certificate")
	}
	for i, c := range certs {
		if c == nil {
			return nil, failf(ReasonChain, item, "certificate %d is nil", i+1)
		}
	}
	chain, err := orderChain(item, certs, root)
	if err != nil {
		return nil, err
	}
	for i, c := range chain {
		if len(c.UnhandledCriticalExtensions) > 0 {
			return nil, failf(ReasonChain, item, "%q has an unhandled critical extension %v", subjectName(c), c.UnhandledCriticalExtensions[0])
		}
		parent := c
		if i+1 < len(chain) {
			parent = chain[i+1]
		}
		// Every certificate below parent but the leaf is an
		// intermediate CA that parent's path length must allow.
		intermediates := i
		if parent == c {
			intermediates = i - 1
		}
		if err := checkIssuer(parent, intermediates); err != nil {
			return nil, failf(ReasonChain, item, "issuer of %q: %w", subjectName(c), err)
		}
		// The root is trusted for its key, which orderChain matched to
		// the pinned one: as for a trust anchor in RFC 5280 §6.1, its
		// self-signature adds nothing, and is not checked (an ECDSA verify
		// per chain). Every certificate below it is.
		if parent == c {
			continue
		}
		if err := c.CheckSignatureFrom(parent); err != nil {
			return nil, failf(ReasonChain, item, "signature of %q by %q: %w", subjectName(c), subjectName(parent), err)
		}
	}
	for _, c := range chain {
		if at.Before(c.NotBefore) || at.After(c.NotAfter) {
			return nil, failf(ReasonExpired, subjectName(c), "%s: not valid at %s (valid from %s to %s)",
				item, at.UTC().Format(time.RFC3339), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return chain, nil
}

// orderChain finds the self-signed certificate holding the root key and
// walks down to the leaf by issuer and subject names. Signatures are
// checked afterwards, so a tampered certificate is reported as such rather
// than as a missing link.
func orderChain(item string, certs []*x509.Certificate, root *ecdsa.PublicKey) ([]*x509.Certificate, error) {
	var top *x509.Certificate
	rest := make([]*x509.Certificate, 0, len(certs))
	for _, c := range certs {
		if !bytes.Equal(c.RawSubject, c.RawIssuer) {
			rest = append(rest, c)
			continue
		}
		if top != nil {
			return nil, failf(ReasonChain, item, "more than one self-issued certificate (%q, %q)", subjectName(top), subjectName(c))
		}
		top = c
	}
	if top == nil {
		return nil, failf(ReasonChain, item, "no self-signed root certificate")
	}
	if !root.Equal(top.PublicKey) {
		return nil, failf(ReasonChain, item, "root %q does not hold the pinned root key", subjectName(top))
	}
	down := []*x509.Certificate{top}
	for len(rest) > 0 {
		parent := down[len(down)-1]
		next := -1
		for i, c := range rest {
			if !bytes.Equal(c.RawIssuer, parent.RawSubject) {
				continue
			}
			if next >= 0 {
				return nil, failf(ReasonChain, item, "%q issued more than one certificate (%q, %q)", subjectName(parent), subjectName(rest[next]), subjectName(c))
			}
			next = i
		}
		if next < 0 {
			return nil, failf(ReasonChain, item, "certificate %q is not on the chain to the root", subjectName(rest[0]))
		}
		down = append(down, rest[next])
		rest = append(rest[:next], rest[next+1:]...)
	}
	chain := make([]*x509.Certificate, len(down))
	for i, c := range down {
		chain[len(down)-1-i] = c
	}
	return chain, nil
}

// checkIssuer checks that c may issue a certificate with the given number
// of intermediate CAs between c and the leaf.
func checkIssuer(c *x509.Certificate, intermediates int) error {
	if !c.BasicConstraintsValid || !c.IsCA {
		return errors.New("not a CA")
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("key usage does not allow certificate signing")
	}
	if c.MaxPathLen >= 0 && intermediates > c.MaxPathLen {
		return errors.New("path length exceeded")
	}
	return nil
}

func subjectName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// The kinds of platform a PCK certificate is issued for (PCKExtension.SGXType).
const (
	SGXTypeStandard              = 0
	SGXTypeScalable              = 1
	SGXTypeScalableWithIntegrity = 2
)

// PCKExtension is the SGX extension (OID 1.2.840.113741.1.13.1) of a PCK
// certificate.
type PCKExtension struct {
	PPID          []byte    // 16 bytes
	TCBComponents [16]uint8 // SGX TCB comp01..comp16 SVNs
	PCESVN        uint16
	CPUSVN        [16]byte
	PCEID         [2]byte
	FMSPC         [6]byte
	SGXType       int // SGXTypeStandard, SGXTypeScalable or SGXTypeScalableWithIntegrity

	// Only certificates issued by the PCK Platform CA carry these; nil
	// otherwise.
	PlatformInstanceID []byte
	Configuration      *PlatformConfiguration
}

// PlatformConfiguration is the optional Configuration of a multi-package
// platform. A flag absent from the certificate reads as false.
type PlatformConfiguration struct {
	DynamicPlatform bool
	CachedKeys      bool
	SMTEnabled      bool
}

const itemPCKExtension = "PCK certificate SGX extension"

var oidSGXExtension = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}

// ParsePCKExtension parses the SGX extension of a PCK certificate.
func ParsePCKExtension(cert *x509.Certificate) (PCKExtension, error) {
	if cert == nil {
		return PCKExtension{}, failf(ReasonMalformed, itemPCKExtension, "no certificate")
	}
	var value []byte
	found := false
	for _, e := range cert.Extensions {
		if !e.Id.Equal(oidSGXExtension) {
			continue
		}
		if found {
			return PCKExtension{}, failf(ReasonMalformed, itemPCKExtension, "extension appears twice")
		}
		value, found = e.Value, true
	}
	if !found {
		return PCKExtension{}, failf(ReasonMalformed, itemPCKExtension, "certificate %q has no SGX extension", subjectName(cert))
	}
	return parsePCKExtensionValue(value)
}

// parsePCKExtensionValue parses the DER value of the SGX extension: a
// SEQUENCE of (OID, value) pairs keyed by arcs under the extension's OID,
// each present at most once. Unknown arcs are rejected.
func parsePCKExtensionValue(der []byte) (PCKExtension, error) {
	var ext PCKExtension
	malformed := func(format string, args ...any) (PCKExtension, error) {
		return PCKExtension{}, failf(ReasonMalformed, itemPCKExtension, format, args...)
	}
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return malformed("not a DER SEQUENCE")
	}
	var seen [8]bool
	for !seq.Empty() {
		arc, value, ok := readPair(&seq, derSGXExtension)
		if !ok {
			return malformed("bad entry")
		}
		if arc < 1 || arc >= len(seen) {
			return malformed("unknown entry %v.%d", oidSGXExtension, arc)
		}
		if seen[arc] {
			return malformed("entry %v.%d appears twice", oidSGXExtension, arc)
		}
		seen[arc] = true
		switch arc {
		case 1:
			if !readOctets(&value, 16, &ext.PPID) {
				return malformed("bad PPID")
			}
		case 2:
			if err := parseTCB(&value, &ext); err != nil {
				return malformed("TCB: %w", err)
			}
		case 3:
			var b []byte
			if !readOctets(&value, len(ext.PCEID), &b) {
				return malformed("bad PCE-ID")
			}
			copy(ext.PCEID[:], b)
		case 4:
			var b []byte
			if !readOctets(&value, len(ext.FMSPC), &b) {
				return malformed("bad FMSPC")
			}
			copy(ext.FMSPC[:], b)
		case 5:
			if !value.ReadASN1Enum(&ext.SGXType) || ext.SGXType < SGXTypeStandard || ext.SGXType > SGXTypeScalableWithIntegrity {
				return malformed("bad SGX type")
			}
		case 6:
			if !readOctets(&value, 16, &ext.PlatformInstanceID) {
				return malformed("bad platform instance ID")
			}
		case 7:
			cfg, err := parseConfiguration(&value)
			if err != nil {
				return malformed("configuration: %w", err)
			}
			ext.Configuration = cfg
		}
		if !value.Empty() {
			return malformed("trailing data in entry %v.%d", oidSGXExtension, arc)
		}
	}
	for arc := 1; arc <= 5; arc++ {
		if !seen[arc] {
			return malformed("entry %v.%d missing", oidSGXExtension, arc)
		}
	}
	return ext, nil
}

var (
	oidSGXTCB    = append(oidSGXExtension[:len(oidSGXExtension):len(oidSGXExtension)], 2)
	oidSGXConfig = append(oidSGXExtension[:len(oidSGXExtension):len(oidSGXExtension)], 7)

	derSGXExtension, derSGXTCB, derSGXConfig = oidDER(oidSGXExtension), oidDER(oidSGXTCB), oidDER(oidSGXConfig)
)

// oidDER is the DER content of an OBJECT IDENTIFIER (no tag or length).
func oidDER(oid asn1.ObjectIdentifier) []byte {
	der, err := asn1.Marshal(oid)
	if err != nil || len(der) < 2 || int(der[1]) != len(der)-2 {
		panic("sgx: bad OID " + oid.String())
	}
	return der[2:]
}

const (
	tcbArcPCESVN = 17
	tcbArcCPUSVN = 18
)

// parseTCB reads the TCB entry: a SEQUENCE of the 16 component SVNs
// (arcs 1..16, INTEGER 0..255), the PCESVN (arc 17, INTEGER 0..65535) and
// the CPUSVN (arc 18, 16 octets).
func parseTCB(s *cryptobyte.String, ext *PCKExtension) error {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return errors.New("not a SEQUENCE")
	}
	var seen [tcbArcCPUSVN + 1]bool
	for !seq.Empty() {
		arc, value, ok := readPair(&seq, derSGXTCB)
		if !ok {
			return errors.New("bad entry")
		}
		if arc < 1 || arc > tcbArcCPUSVN {
			return errors.New("unknown entry")
		}
		if seen[arc] {
			return errors.New("entry appears twice")
		}
		seen[arc] = true
		switch {
		case arc <= len(ext.TCBComponents):
			var svn uint64
			if !value.ReadASN1Integer(&svn) || svn > 0xff {
				return errors.New("bad component SVN")
			}
			ext.TCBComponents[arc-1] = uint8(svn)
		case arc == tcbArcPCESVN:
			var svn uint64
			if !value.ReadASN1Integer(&svn) || svn > 0xffff {
				return errors.New("bad PCESVN")
			}
			ext.PCESVN = uint16(svn)
		case arc == tcbArcCPUSVN:
			var b []byte
			if !readOctets(&value, len(ext.CPUSVN), &b) {
				return errors.New("bad CPUSVN")
			}
			copy(ext.CPUSVN[:], b)
		}
		if !value.Empty() {
			return errors.New("trailing data in entry")
		}
	}
	for arc := 1; arc <= tcbArcCPUSVN; arc++ {
		if !seen[arc] {
			return errors.New("entry missing")
		}
	}
	return nil
}

// parseConfiguration reads the optional Configuration entry: a SEQUENCE
// of optional BOOLEAN flags (arcs 1..3).
func parseConfiguration(s *cryptobyte.String) (*PlatformConfiguration, error) {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil, errors.New("not a SEQUENCE")
	}
	var cfg PlatformConfiguration
	flags := []*bool{&cfg.DynamicPlatform, &cfg.CachedKeys, &cfg.SMTEnabled}
	var seen [3]bool
	for !seq.Empty() {
		arc, value, ok := readPair(&seq, derSGXConfig)
		if !ok || arc < 1 || arc > len(flags) || seen[arc-1] {
			return nil, errors.New("bad entry")
		}
		seen[arc-1] = true
		if !value.ReadASN1Boolean(flags[arc-1]) || !value.Empty() {
			return nil, errors.New("bad flag")
		}
	}
	return &cfg, nil
}

// readPair reads a SEQUENCE { OID, value } whose OID is parent's (given as
// DER content) plus one arc, and returns that arc and the undecoded value.
// The OID is compared as DER rather than decoded, which allocated: an arc
// of 128 or more, which no entry has, is not read.
func readPair(s *cryptobyte.String, parent []byte) (int, cryptobyte.String, bool) {
	var pair, oid cryptobyte.String
	if !s.ReadASN1(&pair, cbasn1.SEQUENCE) || !pair.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) {
		return 0, nil, false
	}
	if len(oid) != len(parent)+1 || !bytes.HasPrefix(oid, parent) || oid[len(parent)] >= 0x80 {
		return 0, nil, false
	}
	return int(oid[len(parent)]), pair, true
}

// readOctets reads an OCTET STRING of exactly n bytes into a fresh slice.
func readOctets(s *cryptobyte.String, n int, out *[]byte) bool {
	var b cryptobyte.String
	if !s.ReadASN1(&b, cbasn1.OCTET_STRING) || len(b) != n {
		return false
	}
	*out = bytes.Clone(b)
	return true
}
