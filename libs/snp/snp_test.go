package snp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/snp"
	"github.com/cloister-cc/cloister/libs/tee"
)

// vectorTime lies inside the Milan VCEK's validity (2023-04-03 to 2030-04-03).
var vectorTime = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func milan(t testing.TB) (report []byte, opts snp.Options) {
	return read(t, "report_milan.hex"), snp.Options{At: vectorTime, VCEK: read(t, "vcek_milan.der"), Chain: read(t, "cert_chain_milan")}
}

// The real Milan report verifies, and its fields are the ones an
// independent verifier read (testdata/README.md).
func TestVerifyMilanReport(t *testing.T) {
	report, opts := milan(t)
	res, err := snp.Verify(report, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"measurement": "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f",
		"report data": "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd",
	}
	got := map[string]string{"measurement": hex.EncodeToString(res.Measurement[:]), "report data": hex.EncodeToString(res.ReportData[:])}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}
	if res.Version != 2 || res.VMPL != 0 || res.Policy != 0x30000 || res.Debug || res.ProductLine != "Milan" || res.Signer != "VCEK" {
		t.Errorf("result = %+v; want version 2, VMPL 0, policy 0x30000, no debug, Milan, VCEK", res)
	}
	if res.ReportedTCB.String() != "0x7308000000000003" || res.CurrentTCB != res.ReportedTCB {
		t.Errorf("TCB reported %v current %v, want 0x7308000000000003 both", res.ReportedTCB, res.CurrentTCB)
	}
	if l := res.ReportedTCB.Levels(res.ProductLine); fmt.Sprint(l) != "map[bootloader:3 microcode:115 snp:8 tee:0]" {
		t.Errorf("TCB levels = %v, want bootloader 3, TEE 0, SNP 8, microcode 115", l)
	}
	if l := snp.TCB(0x0900000000000102).Levels("Turin"); fmt.Sprint(l) != "map[bootloader:1 fmc:2 microcode:9 snp:0 tee:0]" {
		t.Errorf("Turin TCB levels = %v", l)
	}

	// Binary works as hex does, and the chain is optional.
	raw, err := snp.DecodeReport(report)
	if err != nil || len(raw) != snp.ReportSize {
		t.Fatalf("DecodeReport = %d bytes, %v", len(raw), err)
	}
	opts.Chain = nil
	if _, err := snp.Verify(raw, opts); err != nil {
		t.Fatalf("binary report without the chain: %v", err)
	}
}

// Each way the evidence can be wrong fails with the reason that names it.
func TestVerifyRefuses(t *testing.T) {
	report, good := milan(t)
	raw, err := snp.DecodeReport(report)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int, bit byte) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= bit
		return c
	}
	turinChain := read(t, "cert_chain_turin")
	for _, tc := range []struct {
		name   string
		report []byte
		change func(*snp.Options)
		reason tee.Reason
		says   string
	}{
		{"a flipped bit in the report (byte 21)", flip(raw, 21, 0x80), nil, tee.ReasonReportSignature, "report"},
		{"a flipped byte in the measurement", flip(raw, 0x90, 0x01), nil, tee.ReasonReportSignature, "report"},
		{"a flipped byte in the signature", flip(raw, 0x2a0, 0x01), nil, tee.ReasonReportSignature, "report"},
		{"a VCEK of another product (Turin)", raw, func(o *snp.Options) { o.VCEK, o.Chain = read(t, "vcek_turin.der"), nil }, tee.ReasonMismatch, "another chip"},
		{"a Turin VCEK with its own chain", raw, func(o *snp.Options) { o.VCEK, o.Chain = read(t, "vcek_turin.der"), turinChain }, tee.ReasonMismatch, "another chip"},
		{"a chain of another product", raw, func(o *snp.Options) { o.Chain = turinChain }, tee.ReasonChain, "not AMD's Milan root"},
		{"a chain whose ASK is not AMD's", raw, func(o *snp.Options) { o.Chain = selfSignedChain(t, read(t, "cert_chain_milan")) }, tee.ReasonChain, "not signed by AMD's Milan root"},
		{"a chain that is not PEM", raw, func(o *snp.Options) { o.Chain = []byte("nonsense") }, tee.ReasonMalformed, "certificate chain"},
		{"no VCEK", raw, func(o *snp.Options) { o.VCEK = nil }, tee.ReasonChain, "none given"},
		{"a VCEK that is no certificate", raw, func(o *snp.Options) { o.VCEK = []byte{0x30, 0x03, 0x02, 0x01, 0x01} }, tee.ReasonMalformed, "VCEK"},
		{"a time before the VCEK", raw, func(o *snp.Options) { o.At = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC) }, tee.ReasonExpired, "VCEK"},
		{"a time after the VCEK", raw, func(o *snp.Options) { o.At = time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC) }, tee.ReasonExpired, "VCEK"},
		{"a short report", raw[:1000], nil, tee.ReasonMalformed, "1184"},
		{"a report of version 1", withVersion(raw, 1), nil, tee.ReasonUnsupported, "version"},
		{"bad hex", []byte(strings.Repeat("zz", snp.ReportSize)), nil, tee.ReasonMalformed, "hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := good
			if tc.change != nil {
				tc.change(&opts)
			}
			_, err := snp.Verify(tc.report, opts)
			if !errors.Is(err, &tee.Error{TEE: tee.SEVSNP, Reason: tc.reason}) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v; want reason %s saying %q", err, tc.reason, tc.says)
			}
		})
	}
	if _, err := snp.Verify(raw, snp.Options{VCEK: good.VCEK}); err == nil {
		t.Fatal("no time: want an error")
	}
}

func withVersion(raw []byte, v byte) []byte {
	c := append([]byte(nil), raw...)
	c[0] = v
	return c
}

func TestTCBAtLeast(t *testing.T) {
	tcb := snp.TCB(0x7308000000000003)
	for min, want := range map[snp.TCB]bool{0: true, tcb: true, 0x7308000000000002: true, 0x7308000000000004: false,
		0x7408000000000000: false, 0x0009000000000000: false, 0x0000000000000103: false} {
		if got := tcb.AtLeast(min); got != want {
			t.Errorf("%v.AtLeast(%v) = %v, want %v", tcb, min, got, want)
		}
	}
}

// selfSignedChain is chain (ASK, ARK) with its ASK replaced by one of the
// same name that no AMD key signed.
func selfSignedChain(t *testing.T, chain []byte) []byte {
	t.Helper()
	askBlock, rest := pem.Decode(chain)
	if askBlock == nil {
		t.Fatal("no ASK in the chain")
	}
	ask, err := x509.ParseCertificate(askBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: ask.Subject, NotBefore: ask.NotBefore, NotAfter: ask.NotAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), rest...)
}

func TestPolicy(t *testing.T) {
	report, opts := milan(t)
	res, err := snp.Verify(report, opts)
	if err != nil {
		t.Fatal(err)
	}
	m, err := snp.ParseMeasurement(hex.EncodeToString(res.Measurement[:]))
	if err != nil {
		t.Fatal(err)
	}
	debug := *res
	debug.Debug = true
	var other [48]byte
	host := res.HostData
	otherHost := host
	otherHost[0] ^= 1
	for _, tc := range []struct {
		name   string
		p      snp.Policy
		r      *snp.Result
		reason tee.Reason
	}{
		{"the default", snp.Policy{}, res, ""},
		{"its measurement and TCB", snp.Policy{MinTCB: 0x7308000000000003, Measurements: [][48]byte{other, m}, HostData: &host}, res, ""},
		{"a debug VM", snp.Policy{}, &debug, tee.ReasonDebug},
		{"a debug VM, allowed", snp.Policy{AllowDebug: true}, &debug, ""},
		{"a TCB below the minimum", snp.Policy{MinTCB: 0x7309000000000003}, res, tee.ReasonTCB},
		{"another measurement", snp.Policy{Measurements: [][48]byte{other}}, res, tee.ReasonPolicy},
		{"other host data", snp.Policy{HostData: &otherHost}, res, tee.ReasonPolicy},
	} {
		if err := tc.p.Check(tc.r); tee.ReasonOf(err) != tc.reason {
			t.Errorf("%s: Check = %v, want reason %q", tc.name, err, tc.reason)
		}
	}
	if tcb, err := snp.ParseTCB("0x7308000000000003"); err != nil || tcb != res.ReportedTCB {
		t.Errorf("ParseTCB = %v, %v", tcb, err)
	}
	for _, bad := range []string{"", "0x", "zz", "0x10000000000000000"} {
		if _, err := snp.ParseTCB(bad); err == nil {
			t.Errorf("ParseTCB(%q) accepted", bad)
		}
	}
	if _, err := snp.ParseMeasurement("abcd"); err == nil {
		t.Error("a short measurement accepted")
	}
}

// A Verifier's remembered VCEK holds only while its chain is valid, and
// the report's own signature is checked every time.
func TestVerifierCache(t *testing.T) {
	report, opts := milan(t)
	v := snp.NewVerifier()
	for range 2 {
		if _, err := v.Verify(report, opts); err != nil {
			t.Fatal(err)
		}
	}
	late := opts
	late.At = time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := v.Verify(report, late); tee.ReasonOf(err) != tee.ReasonExpired {
		t.Fatalf("after the VCEK expired = %v, want expired", err)
	}
	raw, _ := snp.DecodeReport(report)
	raw = append([]byte(nil), raw...)
	raw[0x90] ^= 1
	if _, err := v.Verify(raw, opts); tee.ReasonOf(err) != tee.ReasonReportSignature {
		t.Fatalf("a changed report with a remembered VCEK = %v, want report_signature", err)
	}
	opts.Chain = read(t, "cert_chain_turin")
	if _, err := v.Verify(report, opts); tee.ReasonOf(err) != tee.ReasonChain {
		t.Fatalf("the remembered VCEK with another chain = %v, want chain", err)
	}
}

// certTableOf lays out a certificate table as a host gives it.
func certTableOf(entries map[string][]byte, order ...string) []byte {
	head := make([]byte, 24*(len(order)+1))
	var data []byte
	for i, g := range order {
		u := uuid.MustParse(g)
		copy(head[24*i:], u[:])
		binary.LittleEndian.PutUint32(head[24*i+16:], uint32(len(head)+len(data)))
		binary.LittleEndian.PutUint32(head[24*i+20:], uint32(len(entries[g])))
		data = append(data, entries[g]...)
	}
	return append(head, data...)
}

// What a host gives beside a report: the VCEK in DER or PEM, or an
// extended report's certificate table; the report verifies with each.
func TestCertificates(t *testing.T) {
	report, opts := milan(t)
	der := opts.VCEK
	chain := read(t, "cert_chain_milan")
	askBlk, rest := pem.Decode(chain)
	arkBlk, _ := pem.Decode(rest)
	const vcekG, askG, arkG = "63da758d-e664-4564-adc5-f4b93be8accd", "4ab7b379-bbac-4fe4-a02f-05aef327c782", "c0b406a4-a803-4952-9743-3fb6014cd0ae"
	table := snp.CertTable(der, askBlk.Bytes, arkBlk.Bytes, false)
	for name, aux := range map[string][]byte{
		"DER": der, "PEM": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), "table": table,
		"table without the chain": snp.CertTable(der, nil, nil, false),
	} {
		vcek, ch, err := snp.Certificates(aux)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := snp.Verify(report, snp.Options{At: vectorTime, VCEK: vcek, Chain: ch}); err != nil {
			t.Fatalf("%s: Verify = %v", name, err)
		}
		if name == "table" && len(ch) == 0 {
			t.Fatal("the table's ASK and ARK were not taken")
		}
	}
	bad := map[string][]byte{
		"no terminator": table[:24],
		"out of range": func() []byte {
			b := append([]byte(nil), table...)
			binary.LittleEndian.PutUint32(b[20:], 1<<31)
			return b
		}(),
		"offset wrapping": func() []byte {
			b := append([]byte(nil), table...)
			binary.LittleEndian.PutUint32(b[16:], 0xffffffff)
			return b
		}(),
		"no VCEK":              certTableOf(map[string][]byte{askG: askBlk.Bytes}, askG),
		"empty":                make([]byte, 24),
		"an entry given twice": certTableOf(map[string][]byte{vcekG: der}, vcekG, vcekG),
	}
	for name, aux := range bad {
		if _, _, err := snp.Certificates(aux); tee.ReasonOf(err) != tee.ReasonMalformed {
			t.Errorf("%s: Certificates = %v, want malformed", name, err)
		}
	}
}

// A VCEK checked alone says what it is for; the report it signed names it.
func TestCheckVCEK(t *testing.T) {
	report, opts := milan(t)
	info, der, err := snp.NewVerifier().CheckVCEK(opts.VCEK, vectorTime)
	if err != nil {
		t.Fatal(err)
	}
	key, err := snp.ReportVCEKKey(report)
	if err != nil || key != info.Key() || info.ProductLine != "Milan" || info.TCB != 0x7308000000000003 || len(der) == 0 {
		t.Fatalf("CheckVCEK = %+v (key %s); the report names %s, %v", info, info.Key(), key, err)
	}
	if _, _, err := snp.NewVerifier().CheckVCEK(opts.VCEK, time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)); tee.ReasonOf(err) != tee.ReasonExpired {
		t.Fatalf("an expired VCEK = %v", err)
	}
	if _, _, err := snp.NewVerifier().CheckVCEK([]byte("nonsense"), vectorTime); tee.ReasonOf(err) != tee.ReasonMalformed {
		t.Fatalf("nonsense = %v", err)
	}
}
