package snp_test

import (
	"bytes"
	"testing"

	"github.com/cloister-cc/cloister/libs/snp"
)

// FuzzParseReport: any bytes parse or are refused, without a panic.
func FuzzParseReport(f *testing.F) {
	report := read(f, "report_milan.hex")
	raw, err := snp.DecodeReport(report)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(report)
	f.Add(raw)
	f.Add(raw[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, got, err := snp.ParseReport(b)
		if err == nil && (r == nil || len(got) != snp.ReportSize) {
			t.Fatalf("ParseReport accepted %d bytes as %d", len(b), len(got))
		}
	})
}

// FuzzVerify: a report changed in its signed part never verifies, and
// nothing panics, whatever the report or the VCEK.
func FuzzVerify(f *testing.F) {
	report, opts := milan(f)
	raw, err := snp.DecodeReport(report)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw, opts.VCEK)
	f.Add(raw[:snp.ReportSize-1], opts.VCEK)
	f.Add(raw, opts.VCEK[:200])
	const signed = 0x2a0 // the report's bytes before its signature
	f.Fuzz(func(t *testing.T, b, vcek []byte) {
		o := opts
		o.VCEK = vcek
		res, err := snp.Verify(b, o)
		if err != nil {
			return
		}
		got, _ := snp.DecodeReport(b)
		if !bytes.Equal(got[:signed], raw[:signed]) || res == nil {
			t.Fatalf("a changed report verified: %x", got[:signed])
		}
	})
}

// FuzzCertificates: a host's certificate table is read or refused, never
// a panic, and what it gives lies within it.
func FuzzCertificates(f *testing.F) {
	_, opts := milan(f)
	f.Add(opts.VCEK)
	f.Add(certTableOf(map[string][]byte{"63da758d-e664-4564-adc5-f4b93be8accd": opts.VCEK}, "63da758d-e664-4564-adc5-f4b93be8accd"))
	f.Add(make([]byte, 48))
	f.Fuzz(func(t *testing.T, aux []byte) {
		vcek, _, err := snp.Certificates(aux)
		if err == nil && len(aux) > 0 && (len(vcek) == 0 || len(vcek) > len(aux)) {
			t.Fatalf("Certificates gave %d bytes from %d", len(vcek), len(aux))
		}
	})
}
