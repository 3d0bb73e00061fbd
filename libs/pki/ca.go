package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// Lifetimes of the CA hierarchy.
const (
	RootLifetime   = 20 * 365 * 24 * time.Hour
	IssuerLifetime = 5 * 365 * 24 * time.Hour
	backdate       = time.Hour // tolerate clocks a little behind
	// LeafBackdate is how far before its issue a node's or an
	// application's certificate starts: clocks a little behind accept it.
	// NotBefore + LeafBackdate is when it was issued.
	LeafBackdate    = 5 * time.Minute
	maxLeafLifetime = 397 * 24 * time.Hour
)

// CA is an account's certificate authority: an offline-style root (ECDSA
// P-384) that signs only issuing CAs, and an issuing CA (ECDSA P-256) that
// signs leaf certificates. Rotating the issuer keeps the root, so
// certificates already issued still chain.
type CA struct {
	Root      *x509.Certificate
	rootKey   *ecdsa.PrivateKey
	Issuer    *x509.Certificate
	issuerKey *ecdsa.PrivateKey
	// retired are the issuing CAs rotated out, newest first: they sign no
	// more certificates, but still the CRLs and OCSP answers of those they
	// signed, until those expire.
	retired    []retiredIssuer
	accountRef string
}

type retiredIssuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA creates the hierarchy of an account, named after it.
func NewCA(account string, now time.Time) (*CA, error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	name := pkix.Name{Organization: []string{"Cloister"}, OrganizationalUnit: []string{"account " + account}}
	rootTmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               withCN(name, "Cloister Account Root CA"),
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(RootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		SubjectKeyId:          keyID(&rootKey.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("creating root CA certificate: %w", err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{Root: root, rootKey: rootKey, accountRef: account}
	if err := ca.RotateIssuer(now); err != nil {
		return nil, err
	}
	return ca, nil
}

// MaxRetiredIssuers bounds the issuing CAs kept after rotation: each stays
// until it expires, and answers for its certificates.
const MaxRetiredIssuers = 8

// ErrTooManyRetired refuses a rotation while MaxRetiredIssuers retired
// issuers are still live.
var ErrTooManyRetired = fmt.Errorf("pki: %d retired issuing CAs are still live; retire one early, or rotate revoking the previous one", MaxRetiredIssuers)

// RotateIssuer replaces the issuing CA with a new key signed by the root;
// the previous one is kept, retired, unless MaxRetiredIssuers are.
func (c *CA) RotateIssuer(now time.Time) error { return c.rotate(now, false) }

// ForceRotateIssuer is RotateIssuer whatever the number of retired
// issuers: for a rotation whose previous issuer is retired for good right
// after (DropRetired), so that rotating away from a compromised issuer
// always works.
func (c *CA) ForceRotateIssuer(now time.Time) error { return c.rotate(now, true) }

// ErrCurrentIssuer refuses to drop the issuing CA in use.
var ErrCurrentIssuer = errors.New("pki: the current issuing CA cannot be retired; rotate first")

// ErrNoSuchIssuer: no retired issuing CA has that key id.
var ErrNoSuchIssuer = errors.New("pki: no retired issuing CA has that key id")

// DropRetired forgets the retired issuing CA whose subject key id is
// keyID, its key included: it signs nothing more, not even CRLs (sign its
// last one first). It returns the dropped certificate.
func (c *CA) DropRetired(keyID []byte) (*x509.Certificate, error) {
	if c.Issuer != nil && bytes.Equal(c.Issuer.SubjectKeyId, keyID) {
		return nil, ErrCurrentIssuer
	}
	for i, r := range c.retired {
		if bytes.Equal(r.cert.SubjectKeyId, keyID) {
			c.retired = slices.Delete(c.retired, i, i+1)
			return r.cert, nil
		}
	}
	return nil, ErrNoSuchIssuer
}

func (c *CA) rotate(now time.Time, force bool) error {
	if c.Issuer != nil && !force {
		live := slices.DeleteFunc(slices.Clone(c.retired), func(r retiredIssuer) bool { return now.After(r.cert.NotAfter) })
		if len(live) >= MaxRetiredIssuers {
			return ErrTooManyRetired
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		// Named after its key, so that CRLs and chains of successive issuers
		// are told apart by name as well as by key id.
		Subject:               withCN(c.Root.Subject, fmt.Sprintf("Cloister Account Issuing CA %X", keyID(&key.PublicKey)[:4])),
		NotBefore:             now.Add(-backdate),
		NotAfter:              minTime(now.Add(IssuerLifetime), c.Root.NotAfter),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Root, &key.PublicKey, c.rootKey)
	if err != nil {
		return fmt.Errorf("creating issuing CA certificate: %w", err)
	}
	issuer, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	if c.Issuer != nil {
		c.retired = append([]retiredIssuer{{c.Issuer, c.issuerKey}}, c.retired...)
		// Retired issuers whose every certificate has expired are dropped.
		c.retired = slices.DeleteFunc(c.retired, func(r retiredIssuer) bool { return now.After(r.cert.NotAfter) })
	}
	c.Issuer, c.issuerKey = issuer, key
	return nil
}

// IssuerSigner is the issuing CA's key, for CRLs and OCSP responses.
func (c *CA) IssuerSigner() crypto.Signer { return c.issuerKey }

// Issuers returns the issuing CAs whose certificates may still be in use:
// the current one first, then those rotated out, newest first.
func (c *CA) Issuers() []*x509.Certificate {
	out := []*x509.Certificate{c.Issuer}
	for _, r := range c.retired {
		out = append(out, r.cert)
	}
	return out
}

// SignerOf returns the key of one of the Issuers, for the CRLs and OCSP
// answers about the certificates it signed.
func (c *CA) SignerOf(issuer *x509.Certificate) (crypto.Signer, bool) {
	if issuer.Equal(c.Issuer) {
		return c.issuerKey, true
	}
	for _, r := range c.retired {
		if issuer.Equal(r.cert) {
			return r.key, true
		}
	}
	return nil, false
}

// IssuerOf returns the issuing CA (current or retired) that signed cert,
// by its authority key identifier.
func (c *CA) IssuerOf(cert *x509.Certificate) (*x509.Certificate, bool) {
	for _, i := range c.Issuers() {
		if bytes.Equal(i.SubjectKeyId, cert.AuthorityKeyId) {
			return i, true
		}
	}
	return nil, false
}

// ChainPEM is the issuing CA then the root, as servers send them.
func (c *CA) ChainPEM() []byte {
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Issuer.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Root.Raw})...)
}

// caRecord is the CA's stored form: certificates in clear, each private
// key sealed on its own (a data key per CA key) and bound to the account
// and its role, so a sealed key moved to another record does not open.
type caRecord struct {
	Account   string          `json:"account"`
	Root      []byte          `json:"root"`
	RootKey   []byte          `json:"root_key_sealed"`
	Issuer    []byte          `json:"issuer"`
	IssuerKey []byte          `json:"issuer_key_sealed"`
	Retired   []retiredRecord `json:"retired,omitempty"`
}

type retiredRecord struct {
	Cert []byte `json:"cert"`
	Key  []byte `json:"key_sealed"`
}

// retiredRole binds a retired issuer's sealed key to that issuer.
func retiredRole(cert *x509.Certificate) string {
	return "retired/" + hex.EncodeToString(cert.SubjectKeyId)
}

// Seal returns the CA's stored form with its keys sealed under kek.
func (c *CA) Seal(kek *KEK) ([]byte, error) {
	r := caRecord{Account: c.accountRef, Root: c.Root.Raw, Issuer: c.Issuer.Raw, Retired: make([]retiredRecord, len(c.retired))}
	keys := []struct {
		key  *ecdsa.PrivateKey
		role string
		out  *[]byte
	}{{c.rootKey, "root", &r.RootKey}, {c.issuerKey, "issuer", &r.IssuerKey}}
	for i, ret := range c.retired {
		r.Retired[i].Cert = ret.cert.Raw
		keys = append(keys, struct {
			key  *ecdsa.PrivateKey
			role string
			out  *[]byte
		}{ret.key, retiredRole(ret.cert), &r.Retired[i].Key})
	}
	for _, k := range keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			return nil, err
		}
		*k.out, err = kek.Seal(der, caAAD(c.accountRef, k.role))
		clear(der)
		if err != nil {
			return nil, err
		}
	}
	return json.Marshal(r)
}

// OpenCA opens a CA sealed by Seal for account.
func OpenCA(stored []byte, kek *KEK, account string) (*CA, error) {
	var r caRecord
	if err := json.Unmarshal(stored, &r); err != nil || r.Account != account {
		return nil, ErrOpen
	}
	rootKey, err := kek.Open(r.RootKey, caAAD(account, "root"))
	if err != nil {
		return nil, err
	}
	defer clear(rootKey)
	issuerKey, err := kek.Open(r.IssuerKey, caAAD(account, "issuer"))
	if err != nil {
		return nil, err
	}
	defer clear(issuerKey)
	r.RootKey, r.IssuerKey = rootKey, issuerKey
	c := &CA{accountRef: account}
	if c.Root, err = x509.ParseCertificate(r.Root); err != nil {
		return nil, err
	}
	if c.Issuer, err = x509.ParseCertificate(r.Issuer); err != nil {
		return nil, err
	}
	if c.rootKey, err = parseECKey(r.RootKey, c.Root); err != nil {
		return nil, err
	}
	if c.issuerKey, err = parseECKey(r.IssuerKey, c.Issuer); err != nil {
		return nil, err
	}
	for _, ret := range r.Retired {
		cert, err := x509.ParseCertificate(ret.Cert)
		if err != nil {
			return nil, err
		}
		der, err := kek.Open(ret.Key, caAAD(account, retiredRole(cert)))
		if err != nil {
			return nil, err
		}
		key, err := parseECKey(der, cert)
		clear(der)
		if err != nil {
			return nil, err
		}
		c.retired = append(c.retired, retiredIssuer{cert, key})
	}
	return c, nil
}

func caAAD(account, role string) []byte { return []byte("cloister/ca/" + account + "/" + role) }

func parseECKey(der []byte, cert *x509.Certificate) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || !ec.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("pki: CA key does not match its certificate")
	}
	return ec, nil
}

func withCN(n pkix.Name, cn string) pkix.Name {
	n.CommonName = cn
	return n
}

// newSerial returns a random positive 127-bit serial number.
func newSerial() *big.Int {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x40 // never short: serials keep one length
	return new(big.Int).SetBytes(b)
}

func keyID(pub crypto.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
