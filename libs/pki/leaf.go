package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Cert is an issued certificate: its DER and what the CA records of it.
type Cert struct {
	DER       []byte
	Serial    *big.Int
	NotBefore time.Time
	NotAfter  time.Time
}

// Issue signs a leaf certificate for the CSR's key and names, for TLS
// server and client use, carrying the attestation extension. Its subject
// is the first DNS name: nothing else the CSR says about its subject is
// vouched for.
//
// It encodes the certificate itself rather than calling
// x509.CreateCertificate, which verifies every signature it makes (a
// guard against faulty hardware signers). That verification costs more
// than the signature itself; the issuing key here is an in-memory ECDSA
// key, and TestLeafMatchesCreateCertificate holds the encoding byte for
// byte to the standard library's.
func (c *CA) Issue(l Leaf, now time.Time) (*Cert, error) {
	if l.CSR == nil {
		return nil, errors.New("pki: no CSR")
	}
	if l.Lifetime <= 0 || l.Lifetime > maxLeafLifetime {
		return nil, fmt.Errorf("pki: certificate lifetime must be positive and at most %s", maxLeafLifetime)
	}
	if len(l.CSR.DNSNames) == 0 {
		return nil, errors.New("pki: an application certificate needs a DNS name")
	}
	ext, err := asn1.Marshal(l.Attestation)
	if err != nil {
		return nil, fmt.Errorf("encoding attestation extension: %w", err)
	}
	// A common name holds at most 64 characters (RFC 5280); a longer first
	// name leaves the subject empty, and the names critical (§4.2.1.6).
	var name pkix.Name
	if len(l.CSR.DNSNames[0]) <= 64 {
		name.CommonName = l.CSR.DNSNames[0]
	}
	subject, err := asn1.Marshal(name.ToRDNSequence())
	if err != nil {
		return nil, err
	}
	_, isRSA := l.CSR.Request.PublicKey.(*rsa.PublicKey)
	cert := &Cert{Serial: newSerial(), NotBefore: now.Add(-LeafBackdate).Truncate(time.Second).UTC(),
		NotAfter: minTime(now.Add(l.Lifetime), c.Issuer.NotAfter).Truncate(time.Second).UTC()}
	tbs, err := leafTBS(leafFields{
		serial: cert.Serial, issuer: c.Issuer.RawSubject, subject: subject, spki: l.CSR.Request.RawSubjectPublicKeyInfo,
		notBefore: cert.NotBefore, notAfter: cert.NotAfter, authorityKeyID: c.Issuer.SubjectKeyId,
		dnsNames: l.CSR.DNSNames, keyEncipherment: isRSA, extra: []pkix.Extension{{Id: OIDAttestation, Value: ext}},
		ocspURL: l.OCSPURL, crlURL: l.CRLURL,
	})
	if err != nil {
		return nil, err
	}
	cert.DER, err = signTBS(tbs, c.issuerKey)
	if err != nil {
		return nil, err
	}
	return cert, nil
}

type leafFields struct {
	serial              *big.Int
	issuer, subject     []byte // DER Names
	spki                []byte
	notBefore, notAfter time.Time
	authorityKeyID      []byte
	dnsNames            []string
	uris                []string // after the DNS names, as x509 writes them
	clientOnly          bool     // client authentication only, not server
	keyEncipherment     bool
	extra               []pkix.Extension
	ocspURL, crlURL     string // empty: no AIA, no CRL distribution point
}

var (
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidKeyUsage        = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage     = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidAuthorityKeyID  = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidSubjectAltName  = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidServerAuth      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	oidClientAuth      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	oidAuthorityInfo   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidOCSP            = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1}
	oidCRLDistribution = asn1.ObjectIdentifier{2, 5, 29, 31}
)

// leafTBS encodes a TBSCertificate (RFC 5280 §4.1) with the extensions,
// in the order, that x509.CreateCertificate writes for the same template:
// key usage, extended key usage, authority key id, authority information
// access (OCSP), subject alternative names, CRL distribution points, then
// the extra ones.
func leafTBS(f leafFields) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1Int64(2) // v3
		})
		b.AddASN1BigInt(f.serial)
		addAlgorithm(b)
		b.AddBytes(f.issuer)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addTime(b, f.notBefore)
			addTime(b, f.notAfter)
		})
		b.AddBytes(f.subject)
		b.AddBytes(f.spki)
		b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				usage := keyUsageDigitalSignature
				if f.keyEncipherment {
					usage = keyUsageDigitalSignatureKeyEncipherment
				}
				addExtension(b, oidKeyUsage, true, func(b *cryptobyte.Builder) { b.AddBytes(usage) })
				addExtension(b, oidExtKeyUsage, false, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						if !f.clientOnly {
							b.AddASN1ObjectIdentifier(oidServerAuth)
						}
						b.AddASN1ObjectIdentifier(oidClientAuth)
					})
				})
				if len(f.authorityKeyID) > 0 {
					addExtension(b, oidAuthorityKeyID, false, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(f.authorityKeyID) })
						})
					})
				}
				// A URI GeneralName is [6] IA5String (RFC 5280 §4.2.1.6).
				uri := func(b *cryptobyte.Builder, u string) {
					b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(u)) })
				}
				if f.ocspURL != "" {
					addExtension(b, oidAuthorityInfo, false, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1ObjectIdentifier(oidOCSP)
								uri(b, f.ocspURL)
							})
						})
					})
				}
				addExtension(b, oidSubjectAltName, bytes.Equal(f.subject, emptySubject), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						for _, n := range f.dnsNames {
							b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(n)) })
						}
						for _, u := range f.uris {
							uri(b, u)
						}
					})
				})
				if f.crlURL != "" {
					// DistributionPoint { distributionPoint [0] { fullName [0] { uri } } }
					addExtension(b, oidCRLDistribution, false, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
									b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { uri(b, f.crlURL) })
								})
							})
						})
					})
				}
				for _, e := range f.extra {
					addExtension(b, e.Id, e.Critical, func(b *cryptobyte.Builder) { b.AddBytes(e.Value) })
				}
			})
		})
	})
	return b.Bytes()
}

// emptySubject is the DER of an empty Name.
var emptySubject = []byte{0x30, 0}

// The DER BIT STRINGs of the key usages leaves carry.
var (
	keyUsageDigitalSignature                = mustMarshal(asn1.BitString{Bytes: []byte{0x80}, BitLength: 1})
	keyUsageDigitalSignatureKeyEncipherment = mustMarshal(asn1.BitString{Bytes: []byte{0xa0}, BitLength: 3})
)

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func addAlgorithm(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidECDSAWithSHA256) })
}

// addTime writes UTCTime through 2049 and GeneralizedTime after, as RFC
// 5280 §4.1.2.5 requires.
func addTime(b *cryptobyte.Builder, t time.Time) {
	t = t.UTC()
	if t.Year() >= 1950 && t.Year() < 2050 {
		b.AddASN1UTCTime(t)
		return
	}
	b.AddASN1GeneralizedTime(t)
}

func addExtension(b *cryptobyte.Builder, id asn1.ObjectIdentifier, critical bool, value func(*cryptobyte.Builder)) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(id)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

// signTBS signs a TBSCertificate with ECDSA P-256 and SHA-256 and wraps
// it into a Certificate.
func signTBS(tbs []byte, key *ecdsa.PrivateKey) ([]byte, error) {
	digest := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		addAlgorithm(b)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}
