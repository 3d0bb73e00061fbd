package sgx

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"reflect"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// pckAt lies inside the validity window of every item of the real vector.
var pckAt = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

const (
	cnPCKLeaf  = "Intel SGX PCK Certificate"
	cnPCKCA    = "Intel SGX PCK Processor CA"
	cnRoot     = "Intel SGX Root CA"
	cnTCBSigns = "Intel SGX TCB Signing"
)

func pckTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pckQuoteCertData returns the certification data (type 5) of the real
// quote: the PEM chain up to and including its closing NUL byte.
func pckQuoteCertData(t testing.TB) []byte {
	t.Helper()
	q := pckTestdata(t, "phala_sgx_quote_v3.bin")
	i := bytes.Index(q, []byte("-----BEGIN CERTIFICATE-----"))
	if i < 0 {
		t.Fatal("no PEM certificate in the quote")
	}
	return q[i:]
}

// pckCollateral returns the string fields of the real collateral JSON.
func pckCollateral(t testing.TB) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(pckTestdata(t, "phala_sgx_quote_v3_collateral.json"), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func pckParse(t testing.TB, pemBytes []byte) []*x509.Certificate {
	t.Helper()
	certs, err := ParseCertificates(pemBytes)
	if err != nil {
		t.Fatalf("ParseCertificates = %v", err)
	}
	return certs
}

// pckQuoteChain returns the quote's certificates in the order they are
// stored: leaf, PCK Processor CA, root.
func pckQuoteChain(t testing.TB) []*x509.Certificate {
	t.Helper()
	certs := pckParse(t, pckQuoteCertData(t))
	if len(certs) != 3 {
		t.Fatalf("quote holds %d certificates, want 3", len(certs))
	}
	return certs
}

func pckCertPEM(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// pckTampered returns cert re-parsed from its DER with one byte changed.
func pckTampered(t *testing.T, cert *x509.Certificate, edit func(der []byte)) *x509.Certificate {
	t.Helper()
	der := bytes.Clone(cert.Raw)
	edit(der)
	// Go through PEM as a quote would carry it.
	certs := pckParse(t, pckCertPEM(&x509.Certificate{Raw: der}))
	return certs[0]
}

func pckKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pkiCert is a generated certificate and its key.
type pkiCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var pkiSerial int64 = 1000

// pkiIssue creates a certificate from tmpl, signed by parent (self-signed
// when parent is nil). Unset validity defaults to a year around pckAt.
func pkiIssue(t testing.TB, tmpl *x509.Certificate, parent *pkiCert) *pkiCert {
	t.Helper()
	key := pckKey(t)
	if tmpl.SerialNumber == nil {
		pkiSerial++
		tmpl.SerialNumber = big.NewInt(pkiSerial)
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = pckAt.AddDate(0, -6, 0)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = pckAt.AddDate(0, 6, 0)
	}
	signer, issuer := key, tmpl
	if parent != nil {
		signer, issuer = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &pkiCert{cert: cert, key: key}
}

func pkiCA(cn string, pathLen int) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            pathLen,
		MaxPathLenZero:        pathLen == 0,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

func pkiLeaf(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
}

// The embedded roots are Intel's two published ones, and a chain that
// carries one of them gets it parsed once, not again.
func TestKnownRoots(t *testing.T) {
	want := map[string]bool{
		"44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3": true, // to 2049
		"fc64f8076d79a4fee9d1d473d74c89eb8d8fd55c5abafeabeba7366d20429404": true, // to 2033
	}
	roots := knownRoots()
	if len(roots) != len(want) {
		t.Fatalf("%d embedded roots, want %d", len(roots), len(want))
	}
	for der, cert := range roots {
		sum := sha256.Sum256([]byte(der))
		if !want[hex.EncodeToString(sum[:])] {
			t.Errorf("embedded root %x is not one Intel publishes", sum)
		}
		if !bytes.Equal(cert.Raw, []byte(der)) {
			t.Errorf("embedded root %x is kept under another certificate's DER", sum)
		}
	}
	for _, name := range []string{"Intel_SGX_Root_CA_2049.pem", "Intel_SGX_Root_CA_2033_legacy.pem"} {
		certs := pckParse(t, pckTestdata(t, name))
		if roots[string(certs[0].Raw)] != certs[0] {
			t.Errorf("%s was parsed again rather than recognised", name)
		}
	}
}

func TestIntelRootKey(t *testing.T) {
	spki, err := x509.MarshalPKIXPublicKey(IntelRootKey())
	if err != nil {
		t.Fatal(err)
	}
	const want = "a0af031289f5d5d4132f9186068a7fc13628633ba235777472e29b6b6c67a49e"
	if got := sha256.Sum256(spki); hex.EncodeToString(got[:]) != want {
		t.Errorf("sha256(IntelRootKey SPKI) = %x, want %s", got, want)
	}
	for _, name := range []string{"Intel_SGX_Root_CA_2049.pem", "Intel_SGX_Root_CA_2033_legacy.pem"} {
		t.Run(name, func(t *testing.T) {
			certs := pckParse(t, pckTestdata(t, name))
			if len(certs) != 1 {
				t.Fatalf("ParseCertificates(%s) gave %d certificates, want 1", name, len(certs))
			}
			if !IntelRootKey().Equal(certs[0].PublicKey) {
				t.Errorf("%s does not carry IntelRootKey()", name)
			}
			if _, err := VerifyChain("root", certs, IntelRootKey(), pckAt); err != nil {
				t.Errorf("VerifyChain(%s) = %v, want nil", name, err)
			}
		})
	}
	// The pin cannot be changed through the returned value.
	k := IntelRootKey()
	orig := *k
	*k = ecdsa.PublicKey{}
	if got := IntelRootKey(); !got.Equal(&orig) {
		t.Error("IntelRootKey() returned a key its caller had changed")
	}
}

func TestParseCertificates(t *testing.T) {
	certData := pckQuoteCertData(t)
	col := pckCollateral(t)
	leaf := pckQuoteChain(t)[0]
	onePEM := pckCertPEM(leaf)
	noNUL := bytes.TrimRight(certData, "\x00")
	// A first block that does not decode: pem.Decode would skip it.
	broken := bytes.Replace(onePEM, []byte("MII"), []byte("M!I"), 1)
	tests := []struct {
		name  string
		in    []byte
		count int // 0: want ReasonMalformed
	}{
		{"quote certification data", certData, 3},
		{"without the NUL", noNUL, 3},
		{"CRLF and blank lines", append([]byte("\r\n\n"), bytes.ReplaceAll(noNUL, []byte("\n"), []byte("\r\n"))...), 3},
		{"pck_crl_issuer_chain", []byte(col["pck_crl_issuer_chain"]), 2},
		{"tcb_info_issuer_chain", []byte(col["tcb_info_issuer_chain"]), 2},
		{"qe_identity_issuer_chain", []byte(col["qe_identity_issuer_chain"]), 2},
		{"nil", nil, 0},
		{"NUL only", []byte{0}, 0},
		{"whitespace", []byte(" \n\t"), 0},
		{"junk", []byte("hello"), 0},
		{"DER", leaf.Raw, 0},
		{"junk before", append([]byte("x\n"), onePEM...), 0},
		{"junk after", append(bytes.Clone(onePEM), "x\n"...), 0},
		{"junk between", bytes.Join([][]byte{onePEM, onePEM}, []byte("x\n")), 0},
		{"NUL between", bytes.Join([][]byte{onePEM, onePEM}, []byte{0}), 0},
		{"NUL then PEM", append(append(bytes.Clone(onePEM), 0), onePEM...), 0},
		{"broken first block", append(bytes.Clone(broken), onePEM...), 0},
		{"unterminated block", onePEM[:len(onePEM)-10], 0},
		{"wrong type", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: leaf.Raw}), 0},
		{"headers", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: leaf.Raw}), 0},
		{"not a certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0}}), 0},
		{"truncated certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw[:len(leaf.Raw)-1]}), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := ParseCertificates(tc.in)
			if tc.count == 0 {
				if ReasonOf(err) != ReasonMalformed {
					t.Errorf("ParseCertificates = %d certificates, %v, want %s", len(certs), err, ReasonMalformed)
				}
				return
			}
			if err != nil || len(certs) != tc.count {
				t.Errorf("ParseCertificates = %d certificates, %v, want %d", len(certs), err, tc.count)
			}
		})
	}
}

// pckPermutations returns every ordering of certs.
func pckPermutations(certs []*x509.Certificate) [][]*x509.Certificate {
	if len(certs) <= 1 {
		return [][]*x509.Certificate{certs}
	}
	var out [][]*x509.Certificate
	for i := range certs {
		rest := append(append([]*x509.Certificate{}, certs[:i]...), certs[i+1:]...)
		for _, p := range pckPermutations(rest) {
			out = append(out, append([]*x509.Certificate{certs[i]}, p...))
		}
	}
	return out
}

func TestVerifyChainOrders(t *testing.T) {
	want := pckQuoteChain(t)
	perms := pckPermutations(want)
	if len(perms) != 6 {
		t.Fatalf("%d permutations, want 6", len(perms))
	}
	for _, p := range perms {
		in := append([]*x509.Certificate{}, p...)
		got, err := VerifyChain("PCK certificate chain", in, IntelRootKey(), pckAt)
		if err != nil {
			t.Errorf("VerifyChain(%s) = %v, want nil", pckNames(p), err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("VerifyChain(%s) = %s, want %s", pckNames(p), pckNames(got), pckNames(want))
		}
		if !reflect.DeepEqual(in, p) {
			t.Errorf("VerifyChain(%s) reordered its argument", pckNames(p))
		}
	}
}

func pckNames(certs []*x509.Certificate) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, c := range certs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(subjectName(c))
	}
	b.WriteByte(']')
	return b.String()
}

func TestVerifyChainCollateralSigners(t *testing.T) {
	col := pckCollateral(t)
	tests := []struct {
		key, leafCN string
	}{
		{"tcb_info_issuer_chain", cnTCBSigns},
		{"qe_identity_issuer_chain", cnTCBSigns},
		{"pck_crl_issuer_chain", cnPCKCA},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			certs := pckParse(t, []byte(col[tc.key]))
			chain, err := VerifyChain("TCB signing chain", certs, IntelRootKey(), pckAt)
			if err != nil || len(chain) != 2 || chain[0].Subject.CommonName != tc.leafCN || chain[1].Subject.CommonName != cnRoot {
				t.Errorf("VerifyChain(%s) = %s, %v, want [%s, %s]", tc.key, pckNames(chain), err, tc.leafCN, cnRoot)
			}
		})
	}
}

func TestVerifyChainFailures(t *testing.T) {
	quote := pckQuoteChain(t)
	leaf, ca, root := quote[0], quote[1], quote[2]
	legacyRoot := pckParse(t, pckTestdata(t, "Intel_SGX_Root_CA_2033_legacy.pem"))[0]
	tcbSigner := pckParse(t, []byte(pckCollateral(t)["tcb_info_issuer_chain"]))[0]
	otherRoot := pckKey(t)

	// The leaf's CRL distribution point URL is inside its TBS; changing
	// a letter's case keeps the certificate parseable.
	tbsFlipped := pckTampered(t, leaf, func(der []byte) {
		i := bytes.Index(der, []byte("trustedservices"))
		if i < 0 {
			t.Fatal("no CRL distribution point in the leaf")
		}
		der[i] ^= 0x20
	})
	sigFlipped := pckTampered(t, leaf, func(der []byte) { der[len(der)-1] ^= 1 })
	caSigFlipped := pckTampered(t, ca, func(der []byte) { der[len(der)-1] ^= 1 })
	rootSigFlipped := pckTampered(t, root, func(der []byte) { der[len(der)-1] ^= 1 })

	// A generated PKI for the properties the real chain cannot show.
	gRoot := pkiIssue(t, pkiCA("Test Root", 1), nil)
	gCA := pkiIssue(t, pkiCA("Test CA", 0), gRoot)
	gLeaf := pkiIssue(t, pkiLeaf("Test Leaf"), gCA)
	gNotCA := pkiIssue(t, pkiLeaf("Test Not CA"), gRoot)
	gUnderNotCA := pkiIssue(t, pkiLeaf("Test Leaf Under Not CA"), gNotCA)
	gNoCertSign := pkiCA("Test No CertSign", 0)
	gNoCertSign.KeyUsage = x509.KeyUsageCRLSign
	gNoSign := pkiIssue(t, gNoCertSign, gRoot)
	gUnderNoSign := pkiIssue(t, pkiLeaf("Test Leaf Under No CertSign"), gNoSign)
	gShortRoot := pkiIssue(t, pkiCA("Test Short Root", 0), nil)
	gShortCA := pkiIssue(t, pkiCA("Test Short CA", 0), gShortRoot)
	gShortLeaf := pkiIssue(t, pkiLeaf("Test Short Leaf"), gShortCA)
	gCriticalTmpl := pkiLeaf("Test Critical")
	gCriticalTmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}}
	gCritical := pkiIssue(t, gCriticalTmpl, gCA)
	gOther := pkiIssue(t, pkiLeaf("Test Unrelated"), pkiIssue(t, pkiCA("Test Other Root", 1), nil))

	tests := []struct {
		name   string
		certs  []*x509.Certificate
		root   *ecdsa.PublicKey
		at     time.Time
		reason Reason // "" means the chain verifies
		item   string
	}{
		{"valid", quote, IntelRootKey(), pckAt, "", ""},
		{"legacy root certificate", []*x509.Certificate{leaf, ca, legacyRoot}, IntelRootKey(), pckAt, "", ""},
		{"at leaf NotBefore", quote, IntelRootKey(), leaf.NotBefore, "", ""},
		{"at leaf NotAfter", quote, IntelRootKey(), leaf.NotAfter, "", ""},
		{"generated", []*x509.Certificate{gLeaf.cert, gCA.cert, gRoot.cert}, &gRoot.key.PublicKey, pckAt, "", ""},
		{"root only", []*x509.Certificate{root}, IntelRootKey(), pckAt, "", ""},
		// The root is trusted for its pinned key (a trust anchor), not for
		// its self-signature; what it signed is still checked.
		{"root self-signature flipped", []*x509.Certificate{leaf, ca, rootSigFlipped}, IntelRootKey(), pckAt, "", ""},

		{"before leaf NotBefore", quote, IntelRootKey(), leaf.NotBefore.Add(-time.Second), ReasonExpired, cnPCKLeaf},
		{"after leaf NotAfter", quote, IntelRootKey(), leaf.NotAfter.Add(time.Second), ReasonExpired, cnPCKLeaf},
		{"after legacy root NotAfter", []*x509.Certificate{ca, legacyRoot}, IntelRootKey(), legacyRoot.NotAfter.Add(time.Second), ReasonExpired, ""},
		{"other root key", quote, &otherRoot.PublicKey, pckAt, ReasonChain, "PCK certificate chain"},
		{"nil root key", quote, nil, pckAt, ReasonChain, ""},
		{"leaf TBS flipped", []*x509.Certificate{tbsFlipped, ca, root}, IntelRootKey(), pckAt, ReasonChain, "PCK certificate chain"},
		{"leaf signature flipped", []*x509.Certificate{sigFlipped, ca, root}, IntelRootKey(), pckAt, ReasonChain, "PCK certificate chain"},
		{"CA signature flipped", []*x509.Certificate{leaf, caSigFlipped, root}, IntelRootKey(), pckAt, ReasonChain, ""},
		{"extra certificate from the same root", []*x509.Certificate{leaf, ca, tcbSigner, root}, IntelRootKey(), pckAt, ReasonChain, ""},
		{"extra unrelated certificate", []*x509.Certificate{leaf, gOther.cert, ca, root}, IntelRootKey(), pckAt, ReasonChain, ""},
		{"leaf twice", []*x509.Certificate{leaf, leaf, ca, root}, IntelRootKey(), pckAt, ReasonChain, ""},
		{"both root certificates", []*x509.Certificate{leaf, ca, root, legacyRoot}, IntelRootKey(), pckAt, ReasonChain, ""},
		{"no intermediate", []*x509.Certificate{leaf, root}, IntelRootKey(), pckAt, ReasonChain, ""},
		{"no root", []*x509.Certificate{leaf, ca}, IntelRootKey(), pckAt, ReasonChain, ""},
		{"empty", nil, IntelRootKey(), pckAt, ReasonChain, ""},
		{"nil certificate", []*x509.Certificate{leaf, nil, root}, IntelRootKey(), pckAt, ReasonChain, ""},
		{"issuer not a CA", []*x509.Certificate{gUnderNotCA.cert, gNotCA.cert, gRoot.cert}, &gRoot.key.PublicKey, pckAt, ReasonChain, ""},
		{"issuer without certSign", []*x509.Certificate{gUnderNoSign.cert, gNoSign.cert, gRoot.cert}, &gRoot.key.PublicKey, pckAt, ReasonChain, ""},
		{"path length exceeded", []*x509.Certificate{gShortLeaf.cert, gShortCA.cert, gShortRoot.cert}, &gShortRoot.key.PublicKey, pckAt, ReasonChain, ""},
		{"unhandled critical extension", []*x509.Certificate{gCritical.cert, gCA.cert, gRoot.cert}, &gRoot.key.PublicKey, pckAt, ReasonChain, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chain, err := VerifyChain("PCK certificate chain", tc.certs, tc.root, tc.at)
			if tc.reason == "" {
				if err != nil || len(chain) != len(tc.certs) {
					t.Errorf("VerifyChain(%s) = %s, %v, want a chain of %d", pckNames(tc.certs), pckNames(chain), err, len(tc.certs))
				}
				return
			}
			if !errors.Is(err, &Error{Reason: tc.reason, Item: tc.item}) || chain != nil {
				t.Errorf("VerifyChain(%s) = %s, %v, want reason %s item %q", pckNames(tc.certs), pckNames(chain), err, tc.reason, tc.item)
			}
		})
	}
}

// Building blocks for SGX extension values.

type pckExtEntry struct {
	arc   int
	value func(*cryptobyte.Builder)
	oid   asn1.ObjectIdentifier // replaces parent.arc when set
}

// pckExtSpec describes an SGX extension value: its top-level entries and
// the entries of its TCB (used when the TCB entry's value is nil).
type pckExtSpec struct {
	top, tcb []pckExtEntry
}

func pckOctets(b []byte) func(*cryptobyte.Builder) {
	return func(c *cryptobyte.Builder) { c.AddASN1OctetString(b) }
}

func pckInt(v int64) func(*cryptobyte.Builder) {
	return func(c *cryptobyte.Builder) { c.AddASN1Int64(v) }
}

func pckEnum(v int64) func(*cryptobyte.Builder) {
	return func(c *cryptobyte.Builder) { c.AddASN1Enum(v) }
}

func pckBool(v bool) func(*cryptobyte.Builder) {
	return func(c *cryptobyte.Builder) { c.AddASN1Boolean(v) }
}

func pckRaw(b []byte) func(*cryptobyte.Builder) {
	return func(c *cryptobyte.Builder) { c.AddBytes(b) }
}

func pckSeq(oid asn1.ObjectIdentifier, entries []pckExtEntry) func(*cryptobyte.Builder) {
	return func(c *cryptobyte.Builder) {
		c.AddASN1(0x30, func(c *cryptobyte.Builder) {
			for _, e := range entries {
				c.AddASN1(0x30, func(c *cryptobyte.Builder) {
					id := e.oid
					if id == nil {
						id = append(oid[:len(oid):len(oid)], e.arc)
					}
					c.AddASN1ObjectIdentifier(id)
					e.value(c)
				})
			}
		})
	}
}

var (
	pckVectorPPID   = []byte{0xd0, 0x4e, 0xc0, 0x6d, 0x4e, 0x6d, 0x92, 0xdc, 0x90, 0xd0, 0xad, 0x3c, 0xf5, 0xee, 0x2d, 0xdf}
	pckVectorCPUSVN = [16]byte{11, 11, 2, 2, 255, 1}
	pckVectorTCB    = [16]uint8{11, 11, 2, 2, 255, 1}
)

// pckVectorSpec describes the extension of the real quote's PCK leaf.
func pckVectorSpec() *pckExtSpec {
	s := &pckExtSpec{}
	for i, svn := range pckVectorTCB {
		s.tcb = append(s.tcb, pckExtEntry{arc: i + 1, value: pckInt(int64(svn))})
	}
	s.tcb = append(s.tcb,
		pckExtEntry{arc: 17, value: pckInt(13)},
		pckExtEntry{arc: 18, value: pckOctets(pckVectorCPUSVN[:])})
	s.top = []pckExtEntry{
		{arc: 1, value: pckOctets(pckVectorPPID)},
		{arc: 2},
		{arc: 3, value: pckOctets([]byte{0, 0})},
		{arc: 4, value: pckOctets([]byte{0x00, 0xa0, 0x67, 0x11, 0x00, 0x00})},
		{arc: 5, value: pckEnum(0)},
	}
	return s
}

func (s *pckExtSpec) encode() []byte {
	top := make([]pckExtEntry, len(s.top))
	for i, e := range s.top {
		if e.arc == 2 && e.value == nil {
			e.value = pckSeq(oidSGXTCB, s.tcb)
		}
		top[i] = e
	}
	var b cryptobyte.Builder
	pckSeq(oidSGXExtension, top)(&b)
	return b.BytesOrPanic()
}

func (s *pckExtSpec) set(arc int, v func(*cryptobyte.Builder)) *pckExtSpec {
	for i := range s.top {
		if s.top[i].arc == arc {
			s.top[i].value = v
			return s
		}
	}
	s.top = append(s.top, pckExtEntry{arc: arc, value: v})
	return s
}

func (s *pckExtSpec) drop(arc int) *pckExtSpec {
	for i := range s.top {
		if s.top[i].arc == arc {
			s.top = append(s.top[:i], s.top[i+1:]...)
			break
		}
	}
	return s
}

func (s *pckExtSpec) setTCB(arc int, v func(*cryptobyte.Builder)) *pckExtSpec {
	for i := range s.tcb {
		if s.tcb[i].arc == arc {
			s.tcb[i].value = v
			return s
		}
	}
	s.tcb = append(s.tcb, pckExtEntry{arc: arc, value: v})
	return s
}

func (s *pckExtSpec) dropTCB(arc int) *pckExtSpec {
	for i := range s.tcb {
		if s.tcb[i].arc == arc {
			s.tcb = append(s.tcb[:i], s.tcb[i+1:]...)
			break
		}
	}
	return s
}

// pckExtensionValue returns the raw SGX extension of the real PCK leaf.
func pckExtensionValue(t testing.TB) []byte {
	t.Helper()
	leaf := pckQuoteChain(t)[0]
	for _, e := range leaf.Extensions {
		if e.Id.Equal(oidSGXExtension) {
			return e.Value
		}
	}
	t.Fatal("PCK leaf has no SGX extension")
	return nil
}

func pckCertWith(values ...[]byte) *x509.Certificate {
	c := &x509.Certificate{}
	for _, v := range values {
		c.Extensions = append(c.Extensions, pkix.Extension{Id: oidSGXExtension, Value: v})
	}
	return c
}

func TestParsePCKExtension(t *testing.T) {
	want := PCKExtension{
		PPID:          pckVectorPPID,
		TCBComponents: pckVectorTCB,
		PCESVN:        13,
		CPUSVN:        pckVectorCPUSVN,
		PCEID:         [2]byte{0, 0},
		FMSPC:         [6]byte{0x00, 0xa0, 0x67, 0x11, 0x00, 0x00},
		SGXType:       SGXTypeStandard,
	}
	quote := pckQuoteChain(t)
	got, err := ParsePCKExtension(quote[0])
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParsePCKExtension(PCK leaf) = %+v, %v, want %+v", got, err, want)
	}
	// The test encoder reproduces the real extension byte for byte, so
	// the malformed variants below differ from it only where intended.
	if real, built := pckExtensionValue(t), pckVectorSpec().encode(); !bytes.Equal(real, built) {
		t.Fatalf("encoded vector spec = %x, want %x", built, real)
	}

	scalable := pckVectorSpec().set(5, pckEnum(SGXTypeScalableWithIntegrity)).
		set(6, pckOctets(bytes.Repeat([]byte{7}, 16))).
		set(7, pckSeq(oidSGXConfig, []pckExtEntry{{arc: 1, value: pckBool(true)}, {arc: 3, value: pckBool(true)}}))
	wantScalable := want
	wantScalable.SGXType = SGXTypeScalableWithIntegrity
	wantScalable.PlatformInstanceID = bytes.Repeat([]byte{7}, 16)
	wantScalable.Configuration = &PlatformConfiguration{DynamicPlatform: true, SMTEnabled: true}
	got, err = ParsePCKExtension(pckCertWith(scalable.encode()))
	if err != nil || !reflect.DeepEqual(got, wantScalable) {
		t.Errorf("ParsePCKExtension(scalable) = %+v, %v, want %+v", got, err, wantScalable)
	}

	reordered := pckVectorSpec()
	reordered.top[0], reordered.top[4] = reordered.top[4], reordered.top[0]
	reordered.tcb[0], reordered.tcb[17] = reordered.tcb[17], reordered.tcb[0]
	got, err = ParsePCKExtension(pckCertWith(reordered.encode()))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParsePCKExtension(reordered) = %+v, %v, want %+v", got, err, want)
	}
}

func TestParsePCKExtensionMalformed(t *testing.T) {
	value := pckExtensionValue(t)
	quote := pckQuoteChain(t)
	wrongTag := bytes.Clone(value)
	wrongTag[0] = 0x31
	tests := []struct {
		name string
		cert *x509.Certificate
	}{
		{"nil certificate", nil},
		{"no SGX extension", quote[1]},
		{"extension twice", pckCertWith(value, value)},
		{"empty", pckCertWith(nil)},
		{"trailing byte", pckCertWith(append(bytes.Clone(value), 0))},
		{"SET instead of SEQUENCE", pckCertWith(wrongTag)},
		{"empty SEQUENCE", pckCertWith([]byte{0x30, 0})},
		{"no PPID", pckCertWith(pckVectorSpec().drop(1).encode())},
		{"no TCB", pckCertWith(pckVectorSpec().drop(2).encode())},
		{"no PCE-ID", pckCertWith(pckVectorSpec().drop(3).encode())},
		{"no FMSPC", pckCertWith(pckVectorSpec().drop(4).encode())},
		{"no SGX type", pckCertWith(pckVectorSpec().drop(5).encode())},
		{"PPID twice", pckCertWith(func() []byte {
			s := pckVectorSpec()
			s.top = append(s.top, s.top[0])
			return s.encode()
		}())},
		{"unknown entry", pckCertWith(pckVectorSpec().set(8, pckInt(0)).encode())},
		{"entry outside the SGX arc", pckCertWith(func() []byte {
			s := pckVectorSpec()
			s.top = append(s.top, pckExtEntry{oid: asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 2, 6}, value: pckOctets(make([]byte, 16))})
			return s.encode()
		}())},
		{"entry with a longer OID", pckCertWith(func() []byte {
			s := pckVectorSpec()
			s.top[3].oid = append(oidSGXExtension[:7:7], 4, 1)
			return s.encode()
		}())},
		{"entry without a value", pckCertWith(pckVectorSpec().set(3, func(*cryptobyte.Builder) {}).encode())},
		{"entry with two values", pckCertWith(pckVectorSpec().set(3, func(c *cryptobyte.Builder) {
			c.AddASN1OctetString([]byte{0, 0})
			c.AddASN1OctetString([]byte{0, 0})
		}).encode())},
		{"short PPID", pckCertWith(pckVectorSpec().set(1, pckOctets(make([]byte, 15))).encode())},
		{"long PCE-ID", pckCertWith(pckVectorSpec().set(3, pckOctets(make([]byte, 3))).encode())},
		{"short FMSPC", pckCertWith(pckVectorSpec().set(4, pckOctets(make([]byte, 5))).encode())},
		{"FMSPC as INTEGER", pckCertWith(pckVectorSpec().set(4, pckInt(0xa067110000)).encode())},
		{"SGX type 3", pckCertWith(pckVectorSpec().set(5, pckEnum(3)).encode())},
		{"SGX type -1", pckCertWith(pckVectorSpec().set(5, pckEnum(-1)).encode())},
		{"SGX type as INTEGER", pckCertWith(pckVectorSpec().set(5, pckInt(0)).encode())},
		{"TCB not a SEQUENCE", pckCertWith(pckVectorSpec().set(2, pckOctets(make([]byte, 16))).encode())},
		{"component SVN 256", pckCertWith(pckVectorSpec().setTCB(5, pckInt(256)).encode())},
		{"component SVN -1", pckCertWith(pckVectorSpec().setTCB(1, pckInt(-1)).encode())},
		{"component SVN non-minimal", pckCertWith(pckVectorSpec().setTCB(1, pckRaw([]byte{2, 2, 0, 11})).encode())},
		{"component SVN as OCTET STRING", pckCertWith(pckVectorSpec().setTCB(1, pckOctets([]byte{11})).encode())},
		{"PCESVN 65536", pckCertWith(pckVectorSpec().setTCB(17, pckInt(65536)).encode())},
		{"short CPUSVN", pckCertWith(pckVectorSpec().setTCB(18, pckOctets(make([]byte, 15))).encode())},
		{"no component 16", pckCertWith(pckVectorSpec().dropTCB(16).encode())},
		{"no PCESVN", pckCertWith(pckVectorSpec().dropTCB(17).encode())},
		{"no CPUSVN", pckCertWith(pckVectorSpec().dropTCB(18).encode())},
		{"unknown TCB entry", pckCertWith(pckVectorSpec().setTCB(19, pckInt(0)).encode())},
		{"TCB entry 0", pckCertWith(pckVectorSpec().setTCB(0, pckInt(0)).encode())},
		{"component twice", pckCertWith(func() []byte {
			s := pckVectorSpec()
			s.tcb = append(s.tcb, s.tcb[0])
			return s.encode()
		}())},
		{"platform instance ID short", pckCertWith(pckVectorSpec().set(6, pckOctets(make([]byte, 15))).encode())},
		{"configuration flag not BOOLEAN", pckCertWith(pckVectorSpec().set(7, pckSeq(oidSGXConfig, []pckExtEntry{{arc: 1, value: pckInt(1)}})).encode())},
		{"configuration flag unknown", pckCertWith(pckVectorSpec().set(7, pckSeq(oidSGXConfig, []pckExtEntry{{arc: 4, value: pckBool(true)}})).encode())},
		{"configuration flag twice", pckCertWith(pckVectorSpec().set(7, pckSeq(oidSGXConfig, []pckExtEntry{{arc: 2, value: pckBool(true)}, {arc: 2, value: pckBool(false)}})).encode())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePCKExtension(tc.cert)
			if ReasonOf(err) != ReasonMalformed {
				t.Errorf("ParsePCKExtension = %+v, %v, want %s", got, err, ReasonMalformed)
			}
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		for n := range len(value) {
			if got, err := parsePCKExtensionValue(value[:n]); ReasonOf(err) != ReasonMalformed {
				t.Fatalf("parsePCKExtensionValue(first %d bytes) = %+v, %v, want %s", n, got, err, ReasonMalformed)
			}
		}
	})
}

func FuzzParsePCKExtension(f *testing.F) {
	f.Add(pckExtensionValue(f))
	f.Add(pckVectorSpec().set(5, pckEnum(1)).set(6, pckOctets(make([]byte, 16))).
		set(7, pckSeq(oidSGXConfig, []pckExtEntry{{arc: 1, value: pckBool(true)}, {arc: 2, value: pckBool(false)}, {arc: 3, value: pckBool(true)}})).encode())
	f.Add([]byte{0x30, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ext, err := ParsePCKExtension(pckCertWith(b))
		if err != nil {
			if ReasonOf(err) != ReasonMalformed {
				t.Fatalf("ParsePCKExtension = %v, want %s", err, ReasonMalformed)
			}
			return
		}
		if len(ext.PPID) != 16 || ext.SGXType < SGXTypeStandard || ext.SGXType > SGXTypeScalableWithIntegrity ||
			(ext.PlatformInstanceID != nil && len(ext.PlatformInstanceID) != 16) {
			t.Fatalf("ParsePCKExtension = %+v, which breaks its invariants", ext)
		}
	})
}

func FuzzParseCertificates(f *testing.F) {
	f.Add(pckQuoteCertData(f))
	col := pckCollateral(f)
	f.Add([]byte(col["pck_crl_issuer_chain"]))
	f.Add([]byte(col["tcb_info_issuer_chain"]))
	f.Add(pckTestdata(f, "Intel_SGX_Root_CA_2033_legacy.pem"))
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseCertificates(b)
		if err != nil {
			if ReasonOf(err) != ReasonMalformed || certs != nil {
				t.Fatalf("ParseCertificates = %d certificates, %v, want %s", len(certs), err, ReasonMalformed)
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("ParseCertificates returned no certificate and no error")
		}
		chain, err := VerifyChain("fuzzed chain", certs, IntelRootKey(), pckAt)
		if err != nil {
			if r := ReasonOf(err); r != ReasonChain && r != ReasonExpired {
				t.Fatalf("VerifyChain = %v, want %s or %s", err, ReasonChain, ReasonExpired)
			}
			return
		}
		if len(chain) != len(certs) || !IntelRootKey().Equal(chain[len(chain)-1].PublicKey) {
			t.Fatalf("VerifyChain = %s, want all %d certificates up to the Intel root", pckNames(chain), len(certs))
		}
	})
}

// plainPEMCertificate reads what it reads as pem.Decode does: the same
// bytes and the same rest. Its seeds are the plain shape and the shapes
// it must leave to pem.Decode.
func FuzzPlainPEMCertificate(f *testing.F) {
	root := pckTestdata(f, "Intel_SGX_Root_CA_2049.pem")
	f.Add(pckQuoteCertData(f))
	f.Add(root)
	f.Add(bytes.ReplaceAll(root, []byte("\n"), []byte("\r\n")))
	f.Add(bytes.Replace(root, []byte("CERTIFICATE-----\n"), []byte("CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\n"), 1))
	f.Add(bytes.Replace(root, []byte("\n-----END"), []byte(" \n-----END"), 1))
	f.Add(bytes.TrimSuffix(root, []byte("\n")))
	f.Add(append(bytes.TrimSuffix(root, []byte("\n")), 0))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		der, rest, ok := plainPEMCertificate(b)
		if !ok {
			return
		}
		block, pemRest := pem.Decode(b)
		switch {
		case block == nil:
			t.Fatalf("read %d bytes where pem.Decode reads none: %q", len(der), b)
		case block.Type != "CERTIFICATE" || len(block.Headers) != 0:
			t.Fatalf("read a plain certificate where pem.Decode reads %q with headers %v", block.Type, block.Headers)
		case !bytes.Equal(der, block.Bytes) || !bytes.Equal(rest, pemRest):
			t.Fatalf("read %x, rest %q; pem.Decode %x, rest %q", der, rest, block.Bytes, pemRest)
		}
	})
}

// The plain shape is read without pem.Decode; the vectors' chains are all
// in it.
func TestPlainPEMCertificate(t *testing.T) {
	der, rest, ok := plainPEMCertificate(pckQuoteCertData(t))
	if !ok {
		t.Fatal("the quote's PCK chain is not read as plain PEM")
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(rest, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Fatalf("rest = %.40q, want the next certificate", rest)
	}
	withHeader := bytes.Replace(pckTestdata(t, "Intel_SGX_Root_CA_2049.pem"), []byte("CERTIFICATE-----\n"), []byte("CERTIFICATE-----\nA: b\n\n"), 1)
	if _, _, ok := plainPEMCertificate(withHeader); ok {
		t.Fatal("a block with a header was read as plain")
	}
}
