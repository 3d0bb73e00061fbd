package sgx_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/sgx"
)

const (
	sgxCollateralFile = "phala_sgx_quote_v3_collateral.json"
	tdxCollateralFile = "phala_tdx_quote_v4_collateral.json"
)

// collateralFile reads a vector from testdata.
func collateralFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func collateralOf(t testing.TB, name string) *sgx.Collateral {
	t.Helper()
	c, err := sgx.ParseCollateralJSON(collateralFile(t, name))
	if err != nil {
		t.Fatalf("ParseCollateralJSON(%s) = %v", name, err)
	}
	return c
}

// collateralFields decodes a collateral vector as plain strings, to check
// the parser against and to build variants from.
func collateralFields(t testing.TB, name string) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(collateralFile(t, name), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func marshalFields(t testing.TB, m map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// leafKeyOf returns the public key of the first certificate of a PEM chain.
func leafKeyOf(t testing.TB, chain []byte) *ecdsa.PublicKey {
	t.Helper()
	block, _ := pem.Decode(chain)
	if block == nil {
		t.Fatal("no PEM block in issuer chain")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("leaf key is %T, want ECDSA", cert.PublicKey)
	}
	return key
}

// flipped returns b with one bit of byte i changed.
func flipped(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x01
	return out
}

func wantReason(t *testing.T, call string, err error, reason sgx.Reason, item string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Errorf("%s = %v, want nil", call, err)
		}
		return
	}
	if !errors.Is(err, &sgx.Error{Reason: reason, Item: item}) {
		t.Errorf("%s = %v, want %s naming %q", call, err, reason, item)
	}
}

func TestParseCollateralJSON(t *testing.T) {
	tests := []struct {
		file        string
		tcbID, qeID string
	}{
		{sgxCollateralFile, `{"id":"SGX","version":3,`, `{"id":"QE","version":2,`},
		{tdxCollateralFile, `{"id":"TDX","version":3,`, `{"id":"TD_QE","version":2,`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := sgx.ParseCollateralJSON(collateralFile(t, tt.file))
			if err != nil {
				t.Fatalf("ParseCollateralJSON(%s) = %v, want nil", tt.file, err)
			}
			m := collateralFields(t, tt.file)
			for _, f := range []struct {
				name string
				got  []byte
				want string
			}{
				{"tcb_info", c.TCBInfoJSON, m["tcb_info"]},
				{"qe_identity", c.QEIdentityJSON, m["qe_identity"]},
				{"tcb_info_signature", c.TCBInfoSignature, mustHex(t, m["tcb_info_signature"])},
				{"qe_identity_signature", c.QEIdentitySignature, mustHex(t, m["qe_identity_signature"])},
				{"root_ca_crl", c.RootCACRL, mustHex(t, m["root_ca_crl"])},
				{"pck_crl", c.PCKCRL, mustHex(t, m["pck_crl"])},
				{"tcb_info_issuer_chain", c.TCBInfoIssuerChain, m["tcb_info_issuer_chain"]},
				{"qe_identity_issuer_chain", c.QEIdentityIssuerChain, m["qe_identity_issuer_chain"]},
				{"pck_crl_issuer_chain", c.PCKCRLIssuerChain, m["pck_crl_issuer_chain"]},
			} {
				if string(f.got) != f.want || len(f.got) == 0 {
					t.Errorf("ParseCollateralJSON(%s): %s = %.40q, want %.40q", tt.file, f.name, f.got, f.want)
				}
			}
			if !bytes.HasPrefix(c.TCBInfoJSON, []byte(tt.tcbID)) || !bytes.HasPrefix(c.QEIdentityJSON, []byte(tt.qeID)) {
				t.Errorf("ParseCollateralJSON(%s): signed JSON starts %.30q / %.30q, want %q / %q",
					tt.file, c.TCBInfoJSON, c.QEIdentityJSON, tt.tcbID, tt.qeID)
			}
			if len(c.TCBInfoSignature) != 64 || len(c.QEIdentitySignature) != 64 {
				t.Errorf("ParseCollateralJSON(%s): signatures of %d and %d bytes, want 64",
					tt.file, len(c.TCBInfoSignature), len(c.QEIdentitySignature))
			}
			for name, der := range map[string][]byte{"root_ca_crl": c.RootCACRL, "pck_crl": c.PCKCRL} {
				if _, err := x509.ParseRevocationList(der); err != nil {
					t.Errorf("ParseCollateralJSON(%s): %s is not a DER CRL: %v", tt.file, name, err)
				}
			}
		})
	}
}

func mustHex(t testing.TB, s string) string {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseCollateralJSONVariants(t *testing.T) {
	base := collateralFields(t, sgxCollateralFile)
	want := collateralOf(t, sgxCollateralFile)
	crlPEM := func(field string) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte(mustHex(t, base[field]))}))
	}
	with := func(field, value string) []byte {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		if value == "\x00delete" {
			delete(m, field)
		} else {
			m[field] = value
		}
		return marshalFields(t, m)
	}

	accepted := []struct {
		name string
		body []byte
	}{
		{"CRLs as PEM", with("root_ca_crl", crlPEM("root_ca_crl"))},
		{"PCK CRL as PEM", with("pck_crl", crlPEM("pck_crl"))},
		{"upper-case hex", with("tcb_info_signature", strings.ToUpper(base["tcb_info_signature"]))},
		{"unknown key", with("pck_certificate_chain", "ignored")},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			c, err := sgx.ParseCollateralJSON(tt.body)
			if err != nil {
				t.Fatalf("ParseCollateralJSON(%s) = %v, want nil", tt.name, err)
			}
			if !bytes.Equal(c.RootCACRL, want.RootCACRL) || !bytes.Equal(c.PCKCRL, want.PCKCRL) ||
				!bytes.Equal(c.TCBInfoSignature, want.TCBInfoSignature) || !bytes.Equal(c.TCBInfoJSON, want.TCBInfoJSON) {
				t.Errorf("ParseCollateralJSON(%s) differs from the vector's", tt.name)
			}
		})
	}

	rejected := []struct {
		name string
		body []byte
	}{
		{"not JSON", []byte(`{"tcb_info":`)},
		{"array", []byte(`[]`)},
		{"tcb_info not a string", bytes.Replace(marshalFields(t, base), []byte(`"tcb_info":"`), []byte(`"tcb_info":7,"x":"`), 1)},
		{"empty tcb_info", with("tcb_info", "")},
		{"signature not hex", with("tcb_info_signature", "zz"+base["tcb_info_signature"][2:])},
		{"signature 63 bytes", with("qe_identity_signature", base["qe_identity_signature"][2:])},
		{"CRL not hex", with("root_ca_crl", "30xx")},
		{"CRL PEM of another type", with("pck_crl", strings.ReplaceAll(crlPEM("pck_crl"), "X509 CRL", "CERTIFICATE"))},
		{"chain not PEM", with("pck_crl_issuer_chain", "MIIC")},
	}
	for key := range base {
		rejected = append(rejected, struct {
			name string
			body []byte
		}{"without " + key, with(key, "\x00delete")})
	}
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sgx.ParseCollateralJSON(tt.body)
			wantReason(t, "ParseCollateralJSON("+tt.name+")", err, sgx.ReasonMalformed, "collateral")
		})
	}
}

// pcsBody builds a PCS response the way Intel's service lays it out.
func pcsBody(key string, signed, sig []byte) []byte {
	return []byte(`{"` + key + `":` + string(signed) + `,"signature":"` + hex.EncodeToString(sig) + `"}`)
}

func TestSplitPCSBody(t *testing.T) {
	sgxC := collateralOf(t, sgxCollateralFile)
	tdxC := collateralOf(t, tdxCollateralFile)
	var indented bytes.Buffer
	if err := json.Indent(&indented, sgxC.TCBInfoJSON, "", "  "); err != nil {
		t.Fatal(err)
	}
	escaped := bytes.Replace(sgxC.QEIdentityJSON, []byte(`"id":"QE"`), []byte(`"id":"\u0051E"`), 1)
	sigHex := hex.EncodeToString(sgxC.TCBInfoSignature)

	tests := []struct {
		name        string
		body        []byte
		signed, sig []byte
		verifies    bool // the signature is Intel's over signed
	}{
		{"tcbInfo", pcsBody("tcbInfo", sgxC.TCBInfoJSON, sgxC.TCBInfoSignature), sgxC.TCBInfoJSON, sgxC.TCBInfoSignature, true},
		{"enclaveIdentity", pcsBody("enclaveIdentity", sgxC.QEIdentityJSON, sgxC.QEIdentitySignature), sgxC.QEIdentityJSON, sgxC.QEIdentitySignature, true},
		{"TDX tcbInfo", pcsBody("tcbInfo", tdxC.TCBInfoJSON, tdxC.TCBInfoSignature), tdxC.TCBInfoJSON, tdxC.TCBInfoSignature, true},
		{"TDX enclaveIdentity", pcsBody("enclaveIdentity", tdxC.QEIdentityJSON, tdxC.QEIdentitySignature), tdxC.QEIdentityJSON, tdxC.QEIdentitySignature, true},
		{"whitespace around the object",
			[]byte("{\n  \"tcbInfo\" :\t" + string(sgxC.TCBInfoJSON) + " \r\n, \"signature\" : \"" + sigHex + "\"\n}\n"),
			sgxC.TCBInfoJSON, sgxC.TCBInfoSignature, true},
		{"signature first",
			[]byte(`{"signature":"` + sigHex + `","tcbInfo":` + string(sgxC.TCBInfoJSON) + `}`),
			sgxC.TCBInfoJSON, sgxC.TCBInfoSignature, true},
		{"upper-case hex signature",
			[]byte(`{"tcbInfo":` + string(sgxC.TCBInfoJSON) + `,"signature":"` + strings.ToUpper(sigHex) + `"}`),
			sgxC.TCBInfoJSON, sgxC.TCBInfoSignature, true},
		{"whitespace inside the object", pcsBody("tcbInfo", indented.Bytes(), sgxC.TCBInfoSignature), indented.Bytes(), sgxC.TCBInfoSignature, false},
		{"escapes inside the object", pcsBody("enclaveIdentity", escaped, sgxC.QEIdentitySignature), escaped, sgxC.QEIdentitySignature, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signed, sig, err := sgx.SplitPCSBody(tt.body)
			if err != nil {
				t.Fatalf("SplitPCSBody(%s) = %v, want nil", tt.name, err)
			}
			if !bytes.Equal(signed, tt.signed) {
				t.Errorf("SplitPCSBody(%s) signed = %.60q…, want the exact bytes %.60q…", tt.name, signed, tt.signed)
			}
			if !bytes.Equal(sig, tt.sig) {
				t.Errorf("SplitPCSBody(%s) signature = %x, want %x", tt.name, sig, tt.sig)
			}
			if tt.verifies {
				key := leafKeyOf(t, sgxC.TCBInfoIssuerChain)
				if err := sgx.VerifySignedJSON("PCS response", signed, sig, key); err != nil {
					t.Errorf("VerifySignedJSON(SplitPCSBody(%s)) = %v, want nil", tt.name, err)
				}
			}
		})
	}
}

func TestSplitPCSBodyRejects(t *testing.T) {
	c := collateralOf(t, sgxCollateralFile)
	raw := string(c.TCBInfoJSON)
	sig := hex.EncodeToString(c.TCBInfoSignature)
	tests := []struct {
		name string
		body string
	}{
		{"empty", ``},
		{"not JSON", `{"tcbInfo":` + raw},
		{"trailing data", `{"tcbInfo":` + raw + `,"signature":"` + sig + `"} x`},
		{"neither object", `{"signature":"` + sig + `"}`},
		{"both objects", `{"tcbInfo":` + raw + `,"enclaveIdentity":` + raw + `,"signature":"` + sig + `"}`},
		{"null object", `{"tcbInfo":null,"signature":"` + sig + `"}`},
		{"string object", `{"tcbInfo":"` + strings.ReplaceAll(raw, `"`, `\"`) + `","signature":"` + sig + `"}`},
		{"no signature", `{"tcbInfo":` + raw + `}`},
		{"signature not hex", `{"tcbInfo":` + raw + `,"signature":"` + sig[:126] + `zz"}`},
		{"signature 63 bytes", `{"tcbInfo":` + raw + `,"signature":"` + sig[2:] + `"}`},
		{"signature a number", `{"tcbInfo":` + raw + `,"signature":12}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signed, _, err := sgx.SplitPCSBody([]byte(tt.body))
			wantReason(t, "SplitPCSBody("+tt.name+")", err, sgx.ReasonMalformed, "PCS response")
			if signed != nil {
				t.Errorf("SplitPCSBody(%s) returned signed bytes with an error", tt.name)
			}
		})
	}
}

func TestVerifySignedJSON(t *testing.T) {
	sgxC := collateralOf(t, sgxCollateralFile)
	tdxC := collateralOf(t, tdxCollateralFile)
	tcbKey := leafKeyOf(t, sgxC.TCBInfoIssuerChain)
	qeKey := leafKeyOf(t, sgxC.QEIdentityIssuerChain)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mid := len(sgxC.TCBInfoJSON) / 2

	tests := []struct {
		name, item string
		raw, sig   []byte
		key        *ecdsa.PublicKey
		want       sgx.Reason
	}{
		{"SGX TCB Info", "TCB Info", sgxC.TCBInfoJSON, sgxC.TCBInfoSignature, tcbKey, ""},
		{"SGX QE Identity", "QE Identity", sgxC.QEIdentityJSON, sgxC.QEIdentitySignature, qeKey, ""},
		{"TDX TCB Info", "TCB Info", tdxC.TCBInfoJSON, tdxC.TCBInfoSignature, leafKeyOf(t, tdxC.TCBInfoIssuerChain), ""},
		{"TDX QE Identity", "QE Identity", tdxC.QEIdentityJSON, tdxC.QEIdentitySignature, leafKeyOf(t, tdxC.QEIdentityIssuerChain), ""},
		{"TCB Info byte flipped", "TCB Info", flipped(sgxC.TCBInfoJSON, mid), sgxC.TCBInfoSignature, tcbKey, sgx.ReasonCollateralSignature},
		{"TCB Info first byte flipped", "TCB Info", flipped(sgxC.TCBInfoJSON, 0), sgxC.TCBInfoSignature, tcbKey, sgx.ReasonCollateralSignature},
		{"TCB Info with a byte appended", "TCB Info", append(bytes.Clone(sgxC.TCBInfoJSON), ' '), sgxC.TCBInfoSignature, tcbKey, sgx.ReasonCollateralSignature},
		{"TCB Info signature r flipped", "TCB Info", sgxC.TCBInfoJSON, flipped(sgxC.TCBInfoSignature, 0), tcbKey, sgx.ReasonCollateralSignature},
		{"TCB Info signature s flipped", "TCB Info", sgxC.TCBInfoJSON, flipped(sgxC.TCBInfoSignature, 63), tcbKey, sgx.ReasonCollateralSignature},
		{"QE Identity byte flipped", "QE Identity", flipped(sgxC.QEIdentityJSON, len(sgxC.QEIdentityJSON)/2), sgxC.QEIdentitySignature, qeKey, sgx.ReasonCollateralSignature},
		{"QE Identity signature flipped", "QE Identity", sgxC.QEIdentityJSON, flipped(sgxC.QEIdentitySignature, 10), qeKey, sgx.ReasonCollateralSignature},
		{"TCB Info with QE Identity's signature", "TCB Info", sgxC.TCBInfoJSON, sgxC.QEIdentitySignature, tcbKey, sgx.ReasonCollateralSignature},
		{"signature 63 bytes", "TCB Info", sgxC.TCBInfoJSON, sgxC.TCBInfoSignature[:63], tcbKey, sgx.ReasonCollateralSignature},
		{"no signature", "TCB Info", sgxC.TCBInfoJSON, nil, tcbKey, sgx.ReasonCollateralSignature},
		{"another P-256 key", "TCB Info", sgxC.TCBInfoJSON, sgxC.TCBInfoSignature, &other.PublicKey, sgx.ReasonCollateralSignature},
		{"nil key", "TCB Info", sgxC.TCBInfoJSON, sgxC.TCBInfoSignature, nil, sgx.ReasonCollateralSignature},
		{"key without a point", "TCB Info", sgxC.TCBInfoJSON, sgxC.TCBInfoSignature, &ecdsa.PublicKey{Curve: elliptic.P256()}, sgx.ReasonCollateralSignature},
		{"P-384 key", "QE Identity", sgxC.QEIdentityJSON, sgxC.QEIdentitySignature, &p384.PublicKey, sgx.ReasonUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sgx.VerifySignedJSON(tt.item, tt.raw, tt.sig, tt.key)
			wantReason(t, "VerifySignedJSON("+tt.name+")", err, tt.want, tt.item)
		})
	}
}

func TestCheckDates(t *testing.T) {
	tcb, err := sgx.ParseTCBInfo(collateralOf(t, sgxCollateralFile).TCBInfoJSON)
	if err != nil {
		t.Fatal(err)
	}
	qe, err := sgx.ParseQEIdentity(collateralOf(t, sgxCollateralFile).QEIdentityJSON)
	if err != nil {
		t.Fatal(err)
	}
	tdx, err := sgx.ParseTCBInfo(collateralOf(t, tdxCollateralFile).TCBInfoJSON)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		item        string
		issue, next time.Time
		at          string
		want        sgx.Reason
	}{
		{"TCB Info", tcb.IssueDate, tcb.NextUpdate, "2025-07-01T00:00:00Z", ""},
		{"TCB Info", tcb.IssueDate, tcb.NextUpdate, "2025-08-01T00:00:00Z", sgx.ReasonExpired},
		{"TCB Info", tcb.IssueDate, tcb.NextUpdate, "2025-06-01T00:00:00Z", sgx.ReasonExpired},
		{"TCB Info", tcb.IssueDate, tcb.NextUpdate, "2025-06-19T10:56:10Z", sgx.ReasonExpired},
		{"TCB Info", tcb.IssueDate, tcb.NextUpdate, "2025-06-19T10:56:11Z", ""},
		{"TCB Info", tcb.IssueDate, tcb.NextUpdate, "2025-07-19T10:56:10Z", ""},
		{"TCB Info", tcb.IssueDate, tcb.NextUpdate, "2025-07-19T10:56:11Z", sgx.ReasonExpired},
		{"TCB Info", tcb.IssueDate, tcb.NextUpdate, "2025-07-19T12:56:11+02:00", sgx.ReasonExpired},
		{"QE Identity", qe.IssueDate, qe.NextUpdate, "2025-07-01T00:00:00Z", ""},
		{"QE Identity", qe.IssueDate, qe.NextUpdate, "2025-07-19T10:01:18Z", sgx.ReasonExpired},
		{"QE Identity", qe.IssueDate, qe.NextUpdate, "2025-07-19T10:30:00Z", sgx.ReasonExpired},
		{"TDX TCB Info", tdx.IssueDate, tdx.NextUpdate, "2025-07-01T00:00:00Z", ""},
		{"TDX TCB Info", tdx.IssueDate, tdx.NextUpdate, "2026-01-01T00:00:00Z", sgx.ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.item+" at "+tt.at, func(t *testing.T) {
			err := sgx.CheckDates(tt.item, tt.issue, tt.next, at(tt.at))
			wantReason(t, "CheckDates("+tt.item+", "+tt.at+")", err, tt.want, tt.item)
		})
	}
}

func FuzzParseCollateralJSON(f *testing.F) {
	for _, name := range []string{sgxCollateralFile, tdxCollateralFile} {
		f.Add(collateralFile(f, name))
	}
	f.Add([]byte(`{"tcb_info":"{}","tcb_info_signature":"","root_ca_crl":"-----BEGIN X509 CRL-----\n-----END X509 CRL-----"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := sgx.ParseCollateralJSON(b)
		if err != nil {
			if r := sgx.ReasonOf(err); r != sgx.ReasonMalformed {
				t.Fatalf("ParseCollateralJSON = %v, want a ReasonMalformed error", err)
			}
			return
		}
		if len(c.TCBInfoSignature) != 64 || len(c.QEIdentitySignature) != 64 ||
			len(c.TCBInfoJSON) == 0 || len(c.QEIdentityJSON) == 0 || len(c.RootCACRL) == 0 || len(c.PCKCRL) == 0 {
			t.Fatalf("ParseCollateralJSON accepted incomplete collateral: %+v", c)
		}
	})
}

func FuzzSplitPCSBody(f *testing.F) {
	for _, name := range []string{sgxCollateralFile, tdxCollateralFile} {
		c := collateralOf(f, name)
		f.Add(pcsBody("tcbInfo", c.TCBInfoJSON, c.TCBInfoSignature))
		f.Add(pcsBody("enclaveIdentity", c.QEIdentityJSON, c.QEIdentitySignature))
	}
	f.Add([]byte(`{"tcbInfo":{"a":[1,{"b":"\u0041"}]} ,"signature":"00"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		signed, sig, err := sgx.SplitPCSBody(body)
		if err != nil {
			if r := sgx.ReasonOf(err); r != sgx.ReasonMalformed {
				t.Fatalf("SplitPCSBody = %v, want a ReasonMalformed error", err)
			}
			return
		}
		if !bytes.Contains(body, signed) || !json.Valid(signed) || signed[0] != '{' {
			t.Fatalf("SplitPCSBody signed = %q, not a JSON object taken from the body %q", signed, body)
		}
		if len(sig) != 64 {
			t.Fatalf("SplitPCSBody signature of %d bytes, want 64", len(sig))
		}
	})
}
