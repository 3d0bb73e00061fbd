package sgx

import (
	"crypto/sha256"
	"testing"
	"time"
)

// BenchmarkVerifyCached measures a full verification of the shared vector
// with its collateral and PCK chain already checked, beside its floor in
// the same run: the two ECDSA P-256 verifies and the SHA-256s that every
// quote needs (QE report, quote, attestation key binding). The ratio
// floor/ours is reported as x-floor (1 would be the floor).
func BenchmarkVerifyCached(b *testing.B) {
	raw := readVector(b, "phala_sgx_quote_v3.bin")
	opts := Options{At: inWindow, Collateral: vectorCollateral(b)}
	v := NewVerifier(nil)
	if _, err := v.Verify(raw, opts); err != nil { // fills the caches
		b.Fatal(err)
	}
	q, err := ParseQuote(raw)
	if err != nil {
		b.Fatal(err)
	}
	chain, err := v.checkChain(q.CertData, inWindow)
	if err != nil {
		b.Fatal(err)
	}
	attKey, err := parseRawP256(q.AttestationKey)
	if err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := v.Verify(raw, opts); err != nil {
			b.Fatal(err)
		}
	}
	ours := time.Since(start)
	b.StopTimer()

	floorStart := time.Now()
	for range b.N {
		h := sha256.New()
		h.Write(q.AttestationKey[:])
		h.Write(q.QEAuthData)
		_ = h.Sum(nil)
		if !verifyRS(chain.pckKey, q.QEReportRaw(), q.QEReportSignature) || !verifyRS(attKey, q.Signed(), q.Signature) {
			b.Fatal("floor signatures do not verify")
		}
	}
	floor := time.Since(floorStart)
	perSec := float64(b.N) / ours.Seconds()
	b.ReportMetric(perSec, "verifies/s/core")
	b.ReportMetric(float64(b.N)/floor.Seconds(), "floor-verifies/s/core")
	b.ReportMetric(floor.Seconds()/ours.Seconds(), "x-floor")
}
