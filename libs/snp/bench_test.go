package snp_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha512"
	"math/big"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/snp"
	"github.com/cloister-cc/cloister/libs/testkit/bench"
)

// BenchmarkVerify measures a verification of the Milan report by a
// Verifier that has checked its VCEK before (the node agent sends the
// same VCEK with each report), beside its floor in the same run: the one
// check no verification can skip, the report's ECDSA P-384 signature by
// the VCEK. The ratio floor/ours is reported as x-floor (1 would be the
// floor). BenchmarkVerifyUncached does the same with nothing remembered.
func BenchmarkVerify(b *testing.B) {
	report, opts := milan(b)
	opts.Chain = nil
	raw, err := snp.DecodeReport(report)
	if err != nil {
		b.Fatal(err)
	}
	v := snp.NewVerifier()
	if _, err := v.Verify(raw, opts); err != nil {
		b.Fatal(err)
	}
	vcek, err := snp.ParseCertificate("VCEK", opts.VCEK)
	if err != nil {
		b.Fatal(err)
	}
	key := vcek.PublicKey.(*ecdsa.PublicKey)
	const signed = 0x2a0 // the report's bytes before its signature
	r, s := snpSignature(raw)
	took := bench.Alternate(b, func() {
		if _, err := v.Verify(raw, opts); err != nil {
			b.Fatal(err)
		}
	}, func() {
		digest := sha512.Sum384(raw[:signed])
		if !ecdsa.Verify(key, digest[:], r, s) {
			b.Fatal("the floor's signature does not verify")
		}
	})
	reportVerifies(b, took[0], took[1])
}

// BenchmarkVerifyUncached measures a verification with nothing
// remembered, beside the signatures it cannot skip: the VCEK's RSA-PSS
// signature by the ASK, the ASK's by the ARK, and the report's.
func BenchmarkVerifyUncached(b *testing.B) {
	report, opts := milan(b)
	opts.Chain = nil
	raw, err := snp.DecodeReport(report)
	if err != nil {
		b.Fatal(err)
	}
	vcek, err := snp.ParseCertificate("VCEK", opts.VCEK)
	if err != nil {
		b.Fatal(err)
	}
	chain := read(b, "cert_chain_milan")
	ask, err := snp.ParseCertificate("ASK", chain)
	if err != nil {
		b.Fatal(err)
	}
	ark, err := snp.ParseCertificate("ARK", chain[bytes.Index(chain, []byte("-----END CERTIFICATE-----"))+25:])
	if err != nil {
		b.Fatal(err)
	}
	key := vcek.PublicKey.(*ecdsa.PublicKey)
	digest := sha512.Sum384(raw[:0x2a0])
	r, s := snpSignature(raw)
	if !ecdsa.Verify(key, digest[:], r, s) {
		b.Fatal("the report's signature does not verify")
	}
	took := bench.Alternate(b, func() {
		if _, err := snp.Verify(raw, opts); err != nil {
			b.Fatal(err)
		}
	}, func() {
		digest := sha512.Sum384(raw[:0x2a0])
		if vcek.CheckSignatureFrom(ask) != nil || ask.CheckSignatureFrom(ark) != nil || !ecdsa.Verify(key, digest[:], r, s) {
			b.Fatal("the floor's signatures do not verify")
		}
	})
	reportVerifies(b, took[0], took[1])
}

// snpSignature is a report's signature: r and s, 72 bytes each,
// little-endian, at 0x2a0.
func snpSignature(raw []byte) (r, s *big.Int) {
	le := func(b []byte) *big.Int {
		be := make([]byte, len(b))
		for i := range b {
			be[len(b)-1-i] = b[i]
		}
		return new(big.Int).SetBytes(be)
	}
	return le(raw[0x2a0 : 0x2a0+72]), le(raw[0x2a0+72 : 0x2a0+144])
}

// reportVerifies reports ours and the floor as verifications per second on one
// core, and x-floor.
func reportVerifies(b *testing.B, ours, floor time.Duration) {
	b.ReportMetric(float64(ours.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(b.N)/ours.Seconds(), "verifies/s/core")
	b.ReportMetric(float64(b.N)/floor.Seconds(), "floor-verifies/s/core")
	b.ReportMetric(floor.Seconds()/ours.Seconds(), "x-floor")
}
