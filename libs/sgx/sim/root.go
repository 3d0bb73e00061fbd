package sim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sync"
	"time"
)

// Common names of the simulation's certificates. They say "Simulation" so
// that no one mistakes them for Intel's.
const (
	RootCommonName      = "Cloister SGX Simulation Root CA"
	PCKCACommonName     = "Cloister SGX Simulation PCK Processor CA"
	TCBSignerCommonName = "Cloister SGX Simulation TCB Signing"
	PCKCommonName       = "Cloister SGX Simulation PCK Certificate"
)

// The organisation and unit of every simulation certificate subject.
const (
	subjectOrganization = "Cloister"
	subjectUnit         = "SGX simulation - proves nothing about hardware"
)

// Validity of the root and of the CAs and signer derived from it.
const (
	backdate     = time.Hour
	rootValidity = 10 * 365 * 24 * time.Hour
)

func simName(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Organization: []string{subjectOrganization}, OrganizationalUnit: []string{subjectUnit}}
}

// Root is a deployment's simulation root CA (ECDSA P-256, self-signed,
// CN "Cloister SGX Simulation Root CA") with what it derives: the PCK CA
// that issues simulated PCK certificates and the TCB signing certificate
// that signs TCB Info and QE Identity, as Intel's root does for real
// platforms. It also remembers the PCK certificates revoked with RevokePCK.
// Safe for concurrent use.
type Root struct {
	cert         *x509.Certificate
	key          *ecdsa.PrivateKey
	pckCA        *x509.Certificate
	pckCAKey     *ecdsa.PrivateKey
	tcbSigner    *x509.Certificate
	tcbSignerKey *ecdsa.PrivateKey

	mu      sync.Mutex
	revoked []*big.Int // serials on the PCK CRL, in revocation order
}

// NewRoot creates a simulation root valid from an hour before now for ten
// years, with its PCK CA and TCB signing certificate valid as long. rand
// supplies serial numbers (Go's crypto ignores it for keys and signatures
// and always uses a secure source).
func NewRoot(rand io.Reader, now time.Time) (*Root, error) {
	notBefore, notAfter := now.Add(-backdate), now.Add(rootValidity)
	r := &Root{}
	var err error
	if r.key, err = ecdsa.GenerateKey(elliptic.P256(), rand); err != nil {
		return nil, fmt.Errorf("generating simulation root key: %w", err)
	}
	rootTmpl := &x509.Certificate{
		Subject:               simName(RootCommonName),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	if r.cert, err = issue(rand, rootTmpl, nil, &r.key.PublicKey, r.key); err != nil {
		return nil, fmt.Errorf("issuing simulation root certificate: %w", err)
	}

	if r.pckCAKey, err = ecdsa.GenerateKey(elliptic.P256(), rand); err != nil {
		return nil, fmt.Errorf("generating simulation PCK CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               simName(PCKCACommonName),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	if r.pckCA, err = issue(rand, caTmpl, r.cert, &r.pckCAKey.PublicKey, r.key); err != nil {
		return nil, fmt.Errorf("issuing simulation PCK CA certificate: %w", err)
	}

	if r.tcbSignerKey, err = ecdsa.GenerateKey(elliptic.P256(), rand); err != nil {
		return nil, fmt.Errorf("generating simulation TCB signing key: %w", err)
	}
	signerTmpl := &x509.Certificate{
		Subject:               simName(TCBSignerCommonName),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true,
	}
	if r.tcbSigner, err = issue(rand, signerTmpl, r.cert, &r.tcbSignerKey.PublicKey, r.key); err != nil {
		return nil, fmt.Errorf("issuing simulation TCB signing certificate: %w", err)
	}
	return r, nil
}

// issue signs tmpl with key as parent (tmpl itself when parent is nil) and
// parses the result.
func issue(rand io.Reader, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, key *ecdsa.PrivateKey) (*x509.Certificate, error) {
	if parent == nil {
		parent = tmpl
	}
	tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
	der, err := x509.CreateCertificate(rand, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// PublicKey returns the simulation root's public key: the trust anchor to
// give sgx.NewVerifier for simulated quotes. Each call returns a new value.
func (r *Root) PublicKey() *ecdsa.PublicKey {
	pub, err := x509.ParsePKIXPublicKey(r.cert.RawSubjectPublicKeyInfo)
	if err != nil {
		panic("sim: root certificate with an unparsable key: " + err.Error())
	}
	return pub.(*ecdsa.PublicKey)
}

// Certificate returns the simulation root's self-signed certificate.
func (r *Root) Certificate() *x509.Certificate { return r.cert }

// RevokePCK puts a certificate serial (a QE's PCK certificate's, say) on
// the PCK CRL of every later Collateral call. A nil serial is ignored.
func (r *Root) RevokePCK(serial *big.Int) {
	if serial == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if slices.ContainsFunc(r.revoked, func(s *big.Int) bool { return s.Cmp(serial) == 0 }) {
		return
	}
	r.revoked = append(r.revoked, new(big.Int).Set(serial))
}

func (r *Root) revokedSerials() []*big.Int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.revoked)
}

// rootFormat names the serialised form, so that other bytes are refused.
const rootFormat = "cloister-sgx-simulation-root/v1"

// rootWire is the serialised root: PEM certificates and PEM PKCS#8 keys.
type rootWire struct {
	Format                string   `json:"format"`
	RootCertificate       string   `json:"rootCertificate"`
	RootKey               string   `json:"rootKey"`
	PCKCACertificate      string   `json:"pckCACertificate"`
	PCKCAKey              string   `json:"pckCAKey"`
	TCBSigningCertificate string   `json:"tcbSigningCertificate"`
	TCBSigningKey         string   `json:"tcbSigningKey"`
	RevokedPCKSerials     []string `json:"revokedPCKSerials,omitempty"` // hex
}

// MarshalBinary serialises the root, its CAs, their private keys and the
// revoked PCK serials as JSON holding PEM certificates and PEM PKCS#8 keys.
// The output holds private keys in the clear: encrypting it at rest is the
// caller's job.
func (r *Root) MarshalBinary() ([]byte, error) {
	w := rootWire{
		Format:                rootFormat,
		RootCertificate:       certPEM(r.cert),
		PCKCACertificate:      certPEM(r.pckCA),
		TCBSigningCertificate: certPEM(r.tcbSigner),
	}
	for _, k := range []struct {
		key *ecdsa.PrivateKey
		out *string
	}{{r.key, &w.RootKey}, {r.pckCAKey, &w.PCKCAKey}, {r.tcbSignerKey, &w.TCBSigningKey}} {
		der, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			return nil, fmt.Errorf("encoding simulation key: %w", err)
		}
		*k.out = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	for _, s := range r.revokedSerials() {
		w.RevokedPCKSerials = append(w.RevokedPCKSerials, s.Text(16))
	}
	return json.Marshal(w)
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// ErrBadRoot is returned, wrapped, by UnmarshalRoot for bytes that are not a
// consistent serialised simulation root.
var ErrBadRoot = errors.New("sim: not a simulation root")

// UnmarshalRoot reads what MarshalBinary wrote. It checks that every key
// matches its certificate, that the root is self-signed and issued the
// PCK CA and TCB signing certificates, and that all three carry the
// simulation's names. It does not check dates.
func UnmarshalRoot(b []byte) (*Root, error) {
	var w rootWire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRoot, err)
	}
	if w.Format != rootFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrBadRoot, w.Format, rootFormat)
	}
	r := &Root{}
	var err error
	for _, p := range []struct {
		what       string
		cn         string
		certPEM    string
		keyPEM     string
		cert       **x509.Certificate
		key        **ecdsa.PrivateKey
		wantIsCA   bool
		selfSigned bool
	}{
		{"root", RootCommonName, w.RootCertificate, w.RootKey, &r.cert, &r.key, true, true},
		{"PCK CA", PCKCACommonName, w.PCKCACertificate, w.PCKCAKey, &r.pckCA, &r.pckCAKey, true, false},
		{"TCB signer", TCBSignerCommonName, w.TCBSigningCertificate, w.TCBSigningKey, &r.tcbSigner, &r.tcbSignerKey, false, false},
	} {
		if *p.cert, *p.key, err = parsePair(p.certPEM, p.keyPEM); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadRoot, p.what, err)
		}
		c := *p.cert
		if c.Subject.CommonName != p.cn {
			return nil, fmt.Errorf("%w: %s certificate is %q, want %q", ErrBadRoot, p.what, c.Subject.CommonName, p.cn)
		}
		if c.IsCA != p.wantIsCA {
			return nil, fmt.Errorf("%w: %s certificate: CA is %t", ErrBadRoot, p.what, c.IsCA)
		}
		issuer := r.cert
		if err := c.CheckSignatureFrom(issuer); err != nil || !bytes.Equal(c.RawIssuer, issuer.RawSubject) {
			return nil, fmt.Errorf("%w: %s certificate is not issued by the root", ErrBadRoot, p.what)
		}
	}
	for _, s := range w.RevokedPCKSerials {
		n, ok := new(big.Int).SetString(s, 16)
		if !ok || n.Sign() < 0 {
			return nil, fmt.Errorf("%w: revoked serial %q is not a hex number", ErrBadRoot, s)
		}
		r.revoked = append(r.revoked, n)
	}
	return r, nil
}

// parsePair parses a PEM certificate and a PEM PKCS#8 ECDSA P-256 key and
// checks that they belong together.
func parsePair(certText, keyText string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, rest := pem.Decode([]byte(certText))
	if cb == nil || cb.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, errors.New("no single PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	kb, rest := pem.Decode([]byte(keyText))
	if kb == nil || kb.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, errors.New("no single PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, nil, errors.New("key is not ECDSA P-256")
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New("key does not match the certificate")
	}
	return cert, key, nil
}
