package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit"
)

var (
	rsaKeysOnce sync.Once
	rsaKeys     map[int]*rsa.PrivateKey
)

func testKey(t testing.TB, kt KeyType) crypto.Signer {
	t.Helper()
	rsaKeysOnce.Do(func() {
		rsaKeys = map[int]*rsa.PrivateKey{}
		for _, bits := range []int{1024, 2048, 3072, 4096} {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				panic(err)
			}
			rsaKeys[bits] = k
		}
	})
	switch kt {
	case RSA2048:
		return rsaKeys[2048]
	case RSA3072:
		return rsaKeys[3072]
	case RSA4096:
		return rsaKeys[4096]
	case P256:
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return k
	case P384:
		k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		return k
	case "rsa-1024":
		return rsaKeys[1024]
	case "ec-p224":
		k, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
		return k
	}
	t.Fatalf("no test key for %s", kt)
	return nil
}

func csrFor(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func appCSR(t testing.TB, kt KeyType) []byte {
	return csrFor(t, testKey(t, kt), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "myapp.example.com"}, DNSNames: []string{"myapp.example.com"}})
}

var at = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// issueParsed issues a leaf and parses it with the standard library,
// which fails the test on any encoding mistake.
func issueParsed(t testing.TB, ca *CA, l Leaf, now time.Time) *x509.Certificate {
	t.Helper()
	c, err := ca.Issue(l, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		t.Fatalf("parsing an issued certificate: %v", err)
	}
	if cert.SerialNumber.Cmp(c.Serial) != 0 || !cert.NotBefore.Equal(c.NotBefore) || !cert.NotAfter.Equal(c.NotAfter) {
		t.Fatalf("issued %v %v..%v, recorded %v %v..%v", cert.SerialNumber, cert.NotBefore, cert.NotAfter, c.Serial, c.NotBefore, c.NotAfter)
	}
	return cert
}

// TestLeafMatchesCreateCertificate holds Issue's own encoding to the
// standard library's: the TBSCertificate of the same template, from
// x509.CreateCertificate, must be the same bytes, for every key type,
// several names, and validity on both sides of 2050 (UTCTime and
// GeneralizedTime).
func TestLeafMatchesCreateCertificate(t *testing.T) {
	ca, err := NewCA("acct-1", at)
	if err != nil {
		t.Fatal(err)
	}
	ext := []pkix.Extension{{Id: OIDAttestation, Value: []byte{0x30, 0x03, 0x01, 0x01, 0xff}}}
	long := strings.Repeat("a", 60) + ".example.com" // over 64: no common name
	names := [][]string{{"a.example.com"}, {"myapp.example.com", "b.example.com", "c.d.example.com"}, {long, "b.example.com"}}
	for _, kt := range []KeyType{RSA2048, RSA4096, P256, P384} {
		for i, dns := range names {
			for j, notAfter := range []time.Time{at.Add(time.Hour), time.Date(2051, 1, 1, 0, 0, 0, 0, time.UTC)} {
				csr, err := CheckCSR(csrFor(t, testKey(t, kt), &x509.CertificateRequest{DNSNames: dns}), kt)
				if err != nil {
					t.Fatal(err)
				}
				var name pkix.Name
				if len(dns[0]) <= 64 {
					name.CommonName = dns[0]
				}
				subject, _ := asn1.Marshal(name.ToRDNSequence())
				f := leafFields{serial: newSerial(), issuer: ca.Issuer.RawSubject, subject: subject, spki: csr.Request.RawSubjectPublicKeyInfo,
					notBefore: at.Add(-time.Minute), notAfter: notAfter, authorityKeyID: ca.Issuer.SubjectKeyId, dnsNames: dns,
					keyEncipherment: kt == RSA2048 || kt == RSA4096, extra: ext}
				var ocsp, crl []string
				if (i+j)%2 == 1 { // with and without the revocation URLs
					f.ocspURL, f.crlURL = "https://cloister.example.com/v1/ocsp/acct-1", "https://cloister.example.com/v1/crl/acct-1.crl?issuer=0a1b"
					ocsp, crl = []string{f.ocspURL}, []string{f.crlURL}
				}
				ours, err := leafTBS(f)
				if err != nil {
					t.Fatal(err)
				}
				usage := x509.KeyUsageDigitalSignature
				if f.keyEncipherment {
					usage |= x509.KeyUsageKeyEncipherment
				}
				der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: f.serial, RawSubject: subject,
					NotBefore: f.notBefore, NotAfter: f.notAfter, KeyUsage: usage, DNSNames: dns,
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
					OCSPServer:  ocsp, CRLDistributionPoints: crl,
					ExtraExtensions: ext}, ca.Issuer, csr.Request.PublicKey, ca.issuerKey)
				if err != nil {
					t.Fatal(err)
				}
				std, _ := x509.ParseCertificate(der)
				if len(ocsp) > 0 && (len(std.OCSPServer) != 1 || len(std.CRLDistributionPoints) != 1) {
					t.Fatalf("the standard library's certificate lost the revocation URLs: %v %v", std.OCSPServer, std.CRLDistributionPoints)
				}
				if !bytes.Equal(ours, std.RawTBSCertificate) {
					t.Fatalf("%s names %d until %s: TBS differs from x509.CreateCertificate's\nours %x\nstd  %x", kt, i, notAfter, ours, std.RawTBSCertificate)
				}
			}
		}
	}
}

// TestClientMatchesCreateCertificate holds IssueClient's encoding to what
// x509.CreateCertificate makes of the template node certificates had:
// the same TBSCertificate bytes, a signature by the issuing CA, and a
// certificate that verifies for client authentication only.
func TestClientMatchesCreateCertificate(t *testing.T) {
	ca, err := NewCA("acct-1", at)
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t, P256)
	csr, err := CheckCSRKey(csrFor(t, key, &x509.CertificateRequest{}), P256)
	if err != nil {
		t.Fatal(err)
	}
	uri := &url.URL{Scheme: "urn", Opaque: "cloister:node:acct-1:node-1"}
	for _, lifetime := range []time.Duration{90 * 24 * time.Hour, 30 * 365 * 24 * time.Hour} { // the second is cut at the issuer's end
		ours, err := ca.IssueClient(csr, "node node-1", uri, min(lifetime, maxLeafLifetime), at)
		if err != nil {
			t.Fatal(err)
		}
		got, err := x509.ParseCertificate(ours.DER)
		if err != nil {
			t.Fatal(err)
		}
		if got.SerialNumber.Cmp(ours.Serial) != 0 || !got.NotBefore.Equal(ours.NotBefore) || !got.NotAfter.Equal(ours.NotAfter) {
			t.Fatalf("the certificate says serial %x, %v to %v; IssueClient recorded %x, %v to %v",
				got.SerialNumber, got.NotBefore, got.NotAfter, ours.Serial, ours.NotBefore, ours.NotAfter)
		}
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: ours.Serial,
			Subject:      pkix.Name{CommonName: "node node-1", Organization: ca.Root.Subject.Organization, OrganizationalUnit: ca.Root.Subject.OrganizationalUnit},
			URIs:         []*url.URL{uri}, NotBefore: ours.NotBefore, NotAfter: ours.NotAfter,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, ca.Issuer, &key.(*ecdsa.PrivateKey).PublicKey, ca.issuerKey)
		if err != nil {
			t.Fatal(err)
		}
		std, _ := x509.ParseCertificate(der)
		if !bytes.Equal(got.RawTBSCertificate, std.RawTBSCertificate) {
			t.Fatalf("TBS differs from x509.CreateCertificate's\nours %x\nstd  %x", got.RawTBSCertificate, std.RawTBSCertificate)
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca.Root)
		inter := x509.NewCertPool()
		inter.AddCert(ca.Issuer)
		if _, err := got.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: at,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("the node certificate does not verify for client authentication: %v", err)
		}
		if _, err := got.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: at,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
			t.Fatal("the node certificate verifies for server authentication")
		}
	}
}

func TestIssueEveryKeyType(t *testing.T) {
	ca, err := NewCA("acct-1", at)
	if err != nil {
		t.Fatal(err)
	}
	for _, kt := range []KeyType{RSA2048, RSA3072, RSA4096, P256, P384} {
		t.Run(string(kt), func(t *testing.T) {
			csr, err := CheckCSR(appCSR(t, kt), kt)
			if err != nil {
				t.Fatal(err)
			}
			want := Attestation{MRENCLAVE: bytes.Repeat([]byte{1}, 32), MRSIGNER: bytes.Repeat([]byte{2}, 32), ISVProdID: 7, ISVSVN: 3, TCBStatus: "UpToDate", Simulated: true}
			cert := issueParsed(t, ca, Leaf{CSR: csr, Lifetime: 24 * time.Hour, Attestation: want}, at)
			pool := x509.NewCertPool()
			pool.AddCert(ca.Root)
			inter := x509.NewCertPool()
			inter.AddCert(ca.Issuer)
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: "myapp.example.com",
					CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Fatalf("Verify(%v) = %v", usage, err)
				}
			}
			got, err := ParseAttestation(cert)
			if err != nil || !bytes.Equal(got.MRENCLAVE, want.MRENCLAVE) || got.ISVSVN != 3 || got.TCBStatus != "UpToDate" || !got.Simulated {
				t.Fatalf("ParseAttestation = %+v, %v; want %+v", got, err, want)
			}
			if cert.NotAfter.Sub(at) > 24*time.Hour {
				t.Fatalf("lifetime = %s, want at most 24h", cert.NotAfter.Sub(at))
			}
			// RSA keys encipher (TLS 1.2 RSA key exchange); EC keys only sign.
			wantUsage := x509.KeyUsageDigitalSignature
			if strings.HasPrefix(string(kt), "rsa") {
				wantUsage |= x509.KeyUsageKeyEncipherment
			}
			if cert.KeyUsage != wantUsage || cert.Subject.CommonName != "myapp.example.com" {
				t.Fatalf("key usage %v, subject %s; want %v and CN=myapp.example.com", cert.KeyUsage, cert.Subject, wantUsage)
			}
		})
	}
}

// TestOpenSSLVerifies checks the chain with a second, independent
// implementation.
func TestOpenSSLVerifies(t *testing.T) {
	bin := testkit.Tool(t, "openssl")
	ca, err := NewCA("acct-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	csr, err := CheckCSR(appCSR(t, P256), P256)
	if err != nil {
		t.Fatal(err)
	}
	cert := issueParsed(t, ca, Leaf{CSR: csr, Lifetime: time.Hour}, time.Now())
	dir := t.TempDir()
	write := func(name string, ders ...[]byte) string {
		var b []byte
		for _, d := range ders {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	root, issuer, leaf := write("root.pem", ca.Root.Raw), write("issuer.pem", ca.Issuer.Raw), write("leaf.pem", cert.Raw)
	out, err := exec.Command(bin, "verify", "-CAfile", root, "-untrusted", issuer, "-purpose", "sslserver", leaf).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Fatalf("openssl verify = %v: %s", err, out)
	}
	// And without the issuing CA it must not verify.
	if out, err := exec.Command(bin, "verify", "-CAfile", root, leaf).CombinedOutput(); err == nil {
		t.Fatalf("openssl verify without the issuing CA succeeded: %s", out)
	}
}

func TestRotationKeepsIssuedCertificates(t *testing.T) {
	ca, err := NewCA("acct-1", at)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := CheckCSR(appCSR(t, P256), P256)
	before := issueParsed(t, ca, Leaf{CSR: csr, Lifetime: time.Hour}, at)
	oldIssuer := ca.Issuer
	if err := ca.RotateIssuer(at); err != nil {
		t.Fatal(err)
	}
	after := issueParsed(t, ca, Leaf{CSR: csr, Lifetime: time.Hour}, at)
	if bytes.Equal(oldIssuer.Raw, ca.Issuer.Raw) {
		t.Fatal("RotateIssuer kept the issuing CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root)
	for name, c := range map[string]*x509.Certificate{"before": before, "after": after} {
		inter := x509.NewCertPool()
		inter.AddCert(oldIssuer)
		inter.AddCert(ca.Issuer)
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at}); err != nil {
			t.Fatalf("certificate issued %s the rotation: %v", name, err)
		}
	}
	if ca.Issuer.Subject.CommonName == oldIssuer.Subject.CommonName {
		t.Fatalf("the new issuer has the old one's name %q", oldIssuer.Subject.CommonName)
	}
	// The retired issuer survives sealing, and still speaks for what it signed.
	kek := testKEK(t, 4)
	sealed, err := ca.Seal(kek)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := OpenCA(sealed, kek, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := opened.Issuers(); len(got) != 2 || !got[0].Equal(ca.Issuer) || !got[1].Equal(oldIssuer) {
		t.Fatalf("Issuers after reopening = %d certificates, want the current then the retired one", len(got))
	}
	for name, c := range map[string]*x509.Certificate{"before": before, "after": after} {
		issuer, ok := opened.IssuerOf(c)
		if !ok {
			t.Fatalf("IssuerOf(certificate issued %s) found none", name)
		}
		signer, ok := opened.SignerOf(issuer)
		if !ok || !signer.Public().(*ecdsa.PublicKey).Equal(issuer.PublicKey) {
			t.Fatalf("SignerOf the issuer of the certificate issued %s: no matching key", name)
		}
		if want := map[string]*x509.Certificate{"before": oldIssuer, "after": ca.Issuer}[name]; !issuer.Equal(want) {
			t.Fatalf("IssuerOf(certificate issued %s) is not the issuer that signed it", name)
		}
	}
}

func TestSealedCA(t *testing.T) {
	kek := testKEK(t, 3)
	ca, err := NewCA("acct-1", at)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := ca.Seal(kek)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(ca.issuerKey)
	if bytes.Contains(sealed, keyDER[len(keyDER)-32:]) {
		t.Fatal("the sealed CA contains its private key in clear")
	}
	opened, err := OpenCA(sealed, kek, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := CheckCSR(appCSR(t, P256), P256)
	issueParsed(t, opened, Leaf{CSR: csr, Lifetime: time.Hour}, at)
	if _, err := OpenCA(sealed, kek, "acct-2"); !errors.Is(err, ErrOpen) {
		t.Fatalf("OpenCA for another account = %v, want ErrOpen", err)
	}
	if _, err := OpenCA(sealed, testKEK(t, 4), "acct-1"); !errors.Is(err, ErrOpen) {
		t.Fatalf("OpenCA with another KEK = %v, want ErrOpen", err)
	}
	// Each key is sealed for its role: swapping them does not open.
	var r caRecord
	if err := json.Unmarshal(sealed, &r); err != nil {
		t.Fatal(err)
	}
	r.RootKey, r.IssuerKey = r.IssuerKey, r.RootKey
	swapped, _ := json.Marshal(r)
	if _, err := OpenCA(swapped, kek, "acct-1"); !errors.Is(err, ErrOpen) {
		t.Fatalf("OpenCA with the keys swapped = %v, want ErrOpen", err)
	}
}

func TestCheckCSRRefuses(t *testing.T) {
	good := appCSR(t, P256)
	tampered := bytes.Clone(good)
	tampered[len(tampered)-5] ^= 1
	tests := []struct {
		name  string
		csr   []byte
		want  KeyType
		check string
	}{
		{"weak RSA", appCSR(t, "rsa-1024"), RSA2048, "key"},
		{"P-224", appCSR(t, "ec-p224"), P256, "key"},
		{"other type than configured", appCSR(t, P384), P256, "key"},
		{"RSA 2048 where 4096 is required", appCSR(t, RSA2048), RSA4096, "key"},
		{"bad self-signature", tampered, P256, "signature"},
		{"garbage", []byte("not a csr"), P256, "format"},
		{"empty", nil, P256, "size"},
		{"no DNS name", csrFor(t, testKey(t, P256), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}), P256, "names"},
		{"IP address", csrFor(t, testKey(t, P256), &x509.CertificateRequest{DNSNames: []string{"a.example.com"}, IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}), P256, "names"},
		{"wildcard", csrFor(t, testKey(t, P256), &x509.CertificateRequest{DNSNames: []string{"*.example.com"}}), P256, "names"},
		{"upper case", csrFor(t, testKey(t, P256), &x509.CertificateRequest{DNSNames: []string{"A.example.com"}}), P256, "names"},
		{"trailing dot", csrFor(t, testKey(t, P256), &x509.CertificateRequest{DNSNames: []string{"a.example.com."}}), P256, "names"},
		{"NUL", csrFor(t, testKey(t, P256), &x509.CertificateRequest{DNSNames: []string{"a.example.com\x00.evil.com"}}), P256, "names"},
		{"one label", csrFor(t, testKey(t, P256), &x509.CertificateRequest{DNSNames: []string{"localhost"}}), P256, "names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CheckCSR(tt.csr, tt.want)
			var ce *CSRError
			if !errors.As(err, &ce) || ce.Check != tt.check {
				t.Fatalf("CheckCSR = %v, want a %q refusal", err, tt.check)
			}
		})
	}
	pemCSR := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: good})
	if c, err := CheckCSR(pemCSR, P256); err != nil || c.DNSNames[0] != "myapp.example.com" {
		t.Fatalf("CheckCSR(PEM) = %v, %v", c, err)
	}
}

func FuzzCheckCSR(f *testing.F) {
	f.Add(appCSR(f, P256))
	f.Add(appCSR(f, RSA2048))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kt := range []KeyType{P256, RSA2048} {
			c, err := CheckCSR(b, kt)
			var ce *CSRError
			if err != nil && !errors.As(err, &ce) {
				t.Fatalf("CheckCSR error %v is not a *CSRError", err)
			}
			if err == nil && (len(c.DNSNames) == 0 || keyTypeOf(c.Request.PublicKey) != kt) {
				t.Fatalf("CheckCSR accepted %+v for %s", c, kt)
			}
		}
	})
}

func TestRotationIsBounded(t *testing.T) {
	ca, err := NewCA("acct-1", at)
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxRetiredIssuers {
		if err := ca.RotateIssuer(at); err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
	}
	if err := ca.RotateIssuer(at); !errors.Is(err, ErrTooManyRetired) {
		t.Fatalf("rotation past the bound = %v, want ErrTooManyRetired", err)
	}
	// A forced rotation works past the bound, and dropping the issuer it
	// retired comes back to it; the current issuer cannot be dropped.
	if _, err := ca.DropRetired(ca.Issuer.SubjectKeyId); !errors.Is(err, ErrCurrentIssuer) {
		t.Fatalf("dropping the current issuer = %v, want ErrCurrentIssuer", err)
	}
	previous := ca.Issuer
	if err := ca.ForceRotateIssuer(at); err != nil {
		t.Fatal(err)
	}
	if n := len(ca.Issuers()); n != MaxRetiredIssuers+2 {
		t.Fatalf("%d issuers after a forced rotation, want %d", n, MaxRetiredIssuers+2)
	}
	if dropped, err := ca.DropRetired(previous.SubjectKeyId); err != nil || dropped != previous {
		t.Fatalf("DropRetired = %v, %v; want the previous issuer", dropped, err)
	}
	if _, err := ca.DropRetired(previous.SubjectKeyId); !errors.Is(err, ErrNoSuchIssuer) {
		t.Fatalf("dropping it again = %v, want ErrNoSuchIssuer", err)
	}
	if _, ok := ca.SignerOf(previous); ok {
		t.Fatal("the dropped issuer's key is still there")
	}
	// Once the retired issuers expire, rotation works again.
	if err := ca.RotateIssuer(at.Add(IssuerLifetime + time.Hour)); err != nil {
		t.Fatalf("rotation after the retired issuers expired: %v", err)
	}
	// Every earlier issuer, the one just rotated out included, has expired.
	if n := len(ca.Issuers()); n != 1 {
		t.Fatalf("%d issuers after the expired ones were dropped, want 1", n)
	}
}
