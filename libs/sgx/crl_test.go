package sgx

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// crlVectors returns the DER of the real Root CA CRL and PCK CRL.
func crlVectors(t testing.TB) (rootCRL, pckCRL []byte) {
	t.Helper()
	col := pckCollateral(t)
	var err error
	if rootCRL, err = hex.DecodeString(col["root_ca_crl"]); err != nil {
		t.Fatal(err)
	}
	if pckCRL, err = hex.DecodeString(col["pck_crl"]); err != nil {
		t.Fatal(err)
	}
	return rootCRL, pckCRL
}

func crlParse(t testing.TB, b []byte) *x509.RevocationList {
	t.Helper()
	crl, err := ParseCRL(b)
	if err != nil {
		t.Fatalf("ParseCRL = %v", err)
	}
	return crl
}

func crlPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func TestParseCRL(t *testing.T) {
	col := pckCollateral(t)
	rootDER, pckDER := crlVectors(t)
	leaf := pckQuoteChain(t)[0]
	tests := []struct {
		name   string
		in     []byte
		issuer string // "" means ReasonMalformed
	}{
		{"root CA CRL hex", []byte(col["root_ca_crl"]), cnRoot},
		{"PCK CRL hex", []byte(col["pck_crl"]), cnPCKCA},
		{"hex upper case with newline", []byte(strings.ToUpper(col["pck_crl"]) + "\n"), cnPCKCA},
		{"DER", pckDER, cnPCKCA},
		{"PEM", crlPEM(rootDER), cnRoot},
		{"PEM with blank lines", append(append([]byte("\n\n"), crlPEM(rootDER)...), "\n\n"...), cnRoot},

		{"nil", nil, ""},
		{"whitespace", []byte(" \n"), ""},
		{"junk", []byte("hello"), ""},
		{"odd hex", []byte(col["pck_crl"][1:]), ""},
		{"hex with a space", []byte(col["pck_crl"][:10] + " " + col["pck_crl"][10:]), ""},
		{"hex of junk", []byte("00ff"), ""},
		{"hex with trailing byte", []byte(col["pck_crl"] + "00"), ""},
		{"DER with trailing byte", append(bytes.Clone(pckDER), 0), ""},
		{"truncated DER", pckDER[:len(pckDER)-1], ""},
		{"empty SEQUENCE", []byte{0x30, 0}, ""},
		{"certificate DER", leaf.Raw, ""},
		{"PEM of wrong type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pckDER}), ""},
		{"PEM with headers", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Headers: map[string]string{"A": "b"}, Bytes: pckDER}), ""},
		{"PEM then junk", append(crlPEM(pckDER), "junk"...), ""},
		{"two PEM blocks", append(crlPEM(pckDER), crlPEM(rootDER)...), ""},
		{"broken PEM then good PEM", append(bytes.Replace(crlPEM(pckDER), []byte("MII"), []byte("M!I"), 1), crlPEM(rootDER)...), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			crl, err := ParseCRL(tc.in)
			if tc.issuer == "" {
				if ReasonOf(err) != ReasonMalformed || crl != nil {
					t.Errorf("ParseCRL = %v, %v, want %s", crl != nil, err, ReasonMalformed)
				}
				return
			}
			if err != nil || crl.Issuer.CommonName != tc.issuer {
				t.Errorf("ParseCRL = %v, want a CRL issued by %q", err, tc.issuer)
			}
		})
	}
}

func TestCheckCRL(t *testing.T) {
	rootDER, pckDER := crlVectors(t)
	rootCRL, pckCRL := crlParse(t, rootDER), crlParse(t, pckDER)
	quote := pckQuoteChain(t)
	col := pckCollateral(t)
	pckIssuers := pckParse(t, []byte(col["pck_crl_issuer_chain"]))
	pckCA, root := pckIssuers[0], pckIssuers[1]
	legacyRoot := pckParse(t, pckTestdata(t, "Intel_SGX_Root_CA_2033_legacy.pem"))[0]
	tcbSigner := pckParse(t, []byte(col["tcb_info_issuer_chain"]))[0]

	// A CA with the PCK Processor CA's exact name but another key.
	impostorTmpl := pkiCA("", 0)
	impostorTmpl.RawSubject = pckCA.RawSubject
	impostor := pkiIssue(t, impostorTmpl, nil).cert

	tampered := bytes.Clone(pckDER)
	tampered[len(tampered)-1] ^= 1
	pckTamperedCRL := crlParse(t, tampered)

	// Generated CRLs for the cases the real ones cannot show.
	gCA := pkiIssue(t, pkiCA("Test CRL CA", 0), nil)
	gNotCRLSignTmpl := pkiCA("Test Not CRL Signer", 0)
	gNotCRLSignTmpl.KeyUsage = x509.KeyUsageCertSign
	gNotCRLSign := pkiIssue(t, gNotCRLSignTmpl, nil)
	gCRL := crlCreate(t, gCA, &x509.RevocationList{})
	gCritical := crlCreate(t, gCA, &x509.RevocationList{ExtraExtensions: []pkix.Extension{
		{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: []byte{2, 1, 1}}, // delta CRL indicator
	}})
	gNotCRLSignCRL := crlCreate(t, gNotCRLSign, &x509.RevocationList{})
	// Signed with gCA's key but naming another issuer.
	renamed := *gCA.cert
	renamed.RawSubject = gNotCRLSign.cert.RawSubject
	gMisnamed := crlCreate(t, &pkiCert{cert: &renamed, key: gCA.key}, &x509.RevocationList{})

	tests := []struct {
		name   string
		crl    *x509.RevocationList
		issuer *x509.Certificate
		at     time.Time
		reason Reason // "" means the CRL checks out
	}{
		{"root CA CRL", rootCRL, root, pckAt, ""},
		{"root CA CRL, legacy root", rootCRL, legacyRoot, pckAt, ""},
		{"root CA CRL, root from the quote", rootCRL, quote[2], pckAt, ""},
		{"PCK CRL", pckCRL, pckCA, pckAt, ""},
		{"PCK CRL, CA from the quote", pckCRL, quote[1], pckAt, ""},
		{"at thisUpdate", pckCRL, pckCA, pckCRL.ThisUpdate, ""},
		{"at nextUpdate", pckCRL, pckCA, pckCRL.NextUpdate, ""},
		{"generated", gCRL, gCA.cert, pckAt, ""},

		{"before thisUpdate", pckCRL, pckCA, pckCRL.ThisUpdate.Add(-time.Second), ReasonExpired},
		{"after nextUpdate", pckCRL, pckCA, pckCRL.NextUpdate.Add(time.Second), ReasonExpired},
		{"root CA CRL after nextUpdate", rootCRL, root, rootCRL.NextUpdate.Add(time.Second), ReasonExpired},
		{"PCK CRL by the root", pckCRL, root, pckAt, ReasonCollateralSignature},
		{"root CA CRL by the PCK CA", rootCRL, pckCA, pckAt, ReasonCollateralSignature},
		{"PCK CRL by the TCB signer", pckCRL, tcbSigner, pckAt, ReasonCollateralSignature},
		{"PCK CRL by the leaf", pckCRL, quote[0], pckAt, ReasonCollateralSignature},
		{"PCK CRL by an impostor with the same name", pckCRL, impostor, pckAt, ReasonCollateralSignature},
		{"tampered PCK CRL", pckTamperedCRL, pckCA, pckAt, ReasonCollateralSignature},
		{"CRL naming another issuer", gMisnamed, gCA.cert, pckAt, ReasonCollateralSignature},
		{"issuer without cRLSign", gNotCRLSignCRL, gNotCRLSign.cert, pckAt, ReasonCollateralSignature},
		{"nil issuer", pckCRL, nil, pckAt, ReasonCollateralSignature},
		{"nil CRL", nil, pckCA, pckAt, ReasonMalformed},
		{"critical delta CRL indicator", gCritical, gCA.cert, pckAt, ReasonUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckCRL("PCK CRL", tc.crl, tc.issuer, tc.at)
			if tc.reason == "" {
				if err != nil {
					t.Errorf("CheckCRL = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, &Error{Reason: tc.reason, Item: "PCK CRL"}) {
				t.Errorf("CheckCRL = %v, want reason %s item %q", err, tc.reason, "PCK CRL")
			}
		})
	}
}

// crlCreate issues a CRL from ca, valid a month around pckAt unless tmpl
// says otherwise.
func crlCreate(t testing.TB, ca *pkiCert, tmpl *x509.RevocationList) *x509.RevocationList {
	t.Helper()
	if tmpl.Number == nil {
		tmpl.Number = big.NewInt(1)
	}
	if tmpl.ThisUpdate.IsZero() {
		tmpl.ThisUpdate = pckAt.AddDate(0, 0, -15)
	}
	if tmpl.NextUpdate.IsZero() {
		tmpl.NextUpdate = pckAt.AddDate(0, 0, 15)
	}
	issuer := ca.cert
	if issuer.KeyUsage&x509.KeyUsageCRLSign == 0 {
		// CreateRevocationList refuses such an issuer: sign with a copy
		// that allows it, and check against the real one.
		c := *issuer
		c.KeyUsage |= x509.KeyUsageCRLSign
		issuer = &c
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	// Through PEM, as a caller might hold it.
	return crlParse(t, crlPEM(der))
}

func TestRevoked(t *testing.T) {
	rootDER, pckDER := crlVectors(t)
	rootCRL, pckCRL := crlParse(t, rootDER), crlParse(t, pckDER)
	quote := pckQuoteChain(t)
	tcbSigner := pckParse(t, []byte(pckCollateral(t)["tcb_info_issuer_chain"]))[0]

	ca := pkiIssue(t, pkiCA("Test Revoking CA", 0), nil)
	other := pkiIssue(t, pkiCA("Test Other CA", 0), nil)
	revoked := pkiIssue(t, pkiLeaf("Test Revoked"), ca)
	kept := pkiIssue(t, pkiLeaf("Test Kept"), ca)
	sameSerialTmpl := pkiLeaf("Test Same Serial")
	sameSerialTmpl.SerialNumber = new(big.Int).Set(revoked.cert.SerialNumber)
	sameSerial := pkiIssue(t, sameSerialTmpl, other)
	crl := crlCreate(t, ca, &x509.RevocationList{
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: big.NewInt(1), RevocationTime: pckAt.AddDate(0, -1, 0)},
			{SerialNumber: revoked.cert.SerialNumber, RevocationTime: pckAt.AddDate(0, -1, 0)},
		},
	})
	if err := CheckCRL("test CRL", crl, ca.cert, pckAt); err != nil {
		t.Fatalf("CheckCRL(test CRL) = %v, want nil", err)
	}

	tests := []struct {
		name string
		crl  *x509.RevocationList
		cert *x509.Certificate
		want bool
	}{
		{"PCK leaf on the PCK CRL", pckCRL, quote[0], false},
		{"PCK CA on the root CA CRL", rootCRL, quote[1], false},
		{"TCB signer on the root CA CRL", rootCRL, tcbSigner, false},
		{"revoked", crl, revoked.cert, true},
		{"not revoked", crl, kept.cert, false},
		{"same serial, other issuer", crl, sameSerial.cert, false},
		{"nil CRL", nil, revoked.cert, false},
		{"nil certificate", crl, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Revoked(tc.crl, tc.cert); got != tc.want {
				t.Errorf("Revoked = %v, want %v", got, tc.want)
			}
		})
	}
}

func FuzzParseCRL(f *testing.F) {
	col := pckCollateral(f)
	rootDER, pckDER := crlVectors(f)
	f.Add([]byte(col["root_ca_crl"]))
	f.Add(pckDER)
	f.Add(crlPEM(rootDER))
	root := pckParse(f, pckTestdata(f, "Intel_SGX_Root_CA_2049.pem"))[0]
	f.Fuzz(func(t *testing.T, b []byte) {
		crl, err := ParseCRL(b)
		if err != nil {
			if ReasonOf(err) != ReasonMalformed || crl != nil {
				t.Fatalf("ParseCRL = %v, want %s", err, ReasonMalformed)
			}
			return
		}
		if crl == nil {
			t.Fatal("ParseCRL returned neither a CRL nor an error")
		}
		err = CheckCRL("fuzzed CRL", crl, root, pckAt)
		if r := ReasonOf(err); err != nil && r != ReasonCollateralSignature && r != ReasonExpired && r != ReasonMalformed && r != ReasonUnsupported {
			t.Fatalf("CheckCRL = %v, want a typed error", err)
		}
		Revoked(crl, root)
	})
}
