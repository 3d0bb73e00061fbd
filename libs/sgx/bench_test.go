package sgx

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit/bench"
)

// BenchmarkVerifyCached measures a full verification of the shared vector
// with its collateral and PCK chain already checked, beside its floor in
// the same run: the two ECDSA P-256 verifies and the SHA-256s that every
// quote needs (QE report, quote, attestation key binding). The ratio
// floor/ours is reported as x-floor (1 would be the floor).
func BenchmarkVerifyCached(b *testing.B) {
	benchCached(b, "phala_sgx_quote_v3.bin", vectorCollateral(b))
}

// BenchmarkVerifyTDXCached is BenchmarkVerifyCached for the TDX vector:
// its collateral and PCK chain checked once, then full verifications
// (quote, QE report and binding, TCB, TDX module and QE identity) beside
// the same floor.
func BenchmarkVerifyTDXCached(b *testing.B) {
	benchCached(b, "phala_tdx_quote_v4.bin", tdxCollateral(b))
}

// benchCached measures verifications of a vector quote by a verifier
// that has checked its collateral and PCK chain before.
func benchCached(b *testing.B, vector string, col *Collateral) {
	raw := readVector(b, vector)
	opts := Options{At: inWindow, Collateral: col}
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

	took := bench.Alternate(b, func() {
		if _, err := v.Verify(raw, opts); err != nil {
			b.Fatal(err)
		}
	}, func() {
		h := sha256.New()
		h.Write(q.AttestationKey[:])
		h.Write(q.QEAuthData)
		_ = h.Sum(nil)
		if !verifyRS(chain.pckKey, q.QEReportRaw(), q.QEReportSignature) || !verifyRS(attKey, q.Signed(), q.Signature) {
			b.Fatal("floor signatures do not verify")
		}
	})
	reportVerifies(b, took[0], took[1])
}

// reportVerifies reports ours and the floor as verifications per second
// on one core, and x-floor.
func reportVerifies(b *testing.B, ours, floor time.Duration) {
	b.ReportMetric(float64(ours.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(b.N)/ours.Seconds(), "verifies/s/core")
	b.ReportMetric(float64(b.N)/floor.Seconds(), "floor-verifies/s/core")
	b.ReportMetric(floor.Seconds()/ours.Seconds(), "x-floor")
}

// BenchmarkVerifyUncached measures a full verification by a new Verifier
// each time (nothing cached: the PCK chain, the collateral's chains and
// signatures are all checked), revocation lists aside, beside its floor in
// the same run: the seven ECDSA P-256 verifies such a verification needs,
// with the certificates parsed beforehand: the PCK CA and the PCK
// certificate, the TCB signing certificate (which also signs the QE
// Identity), the TCB Info and QE Identity signatures, the QE report and
// the quote.
func BenchmarkVerifyUncached(b *testing.B) {
	raw := readVector(b, "phala_sgx_quote_v3.bin")
	col := vectorCollateral(b)
	opts := Options{At: inWindow, Collateral: col, SkipCRL: true}
	if _, err := NewVerifier(nil).Verify(raw, opts); err != nil {
		b.Fatal(err)
	}
	q, err := ParseQuote(raw)
	if err != nil {
		b.Fatal(err)
	}
	pck, err := ParseCertificates(q.CertData)
	if err != nil {
		b.Fatal(err)
	}
	pckChain, err := VerifyChain("PCK", pck, IntelRootKey(), inWindow)
	if err != nil {
		b.Fatal(err)
	}
	tcbCerts, err := ParseCertificates(col.TCBInfoIssuerChain)
	if err != nil {
		b.Fatal(err)
	}
	tcbChain, err := VerifyChain("TCB", tcbCerts, IntelRootKey(), inWindow)
	if err != nil {
		b.Fatal(err)
	}
	attKey, err := parseRawP256(q.AttestationKey)
	if err != nil {
		b.Fatal(err)
	}
	pckKey := pckChain[0].PublicKey.(*ecdsa.PublicKey)
	tcbKey := tcbChain[0].PublicKey.(*ecdsa.PublicKey)

	took := bench.Alternate(b, func() {
		if _, err := NewVerifier(nil).Verify(raw, opts); err != nil {
			b.Fatal(err)
		}
	}, func() {
		ok := pckChain[1].CheckSignatureFrom(pckChain[2]) == nil && pckChain[0].CheckSignatureFrom(pckChain[1]) == nil &&
			tcbChain[0].CheckSignatureFrom(tcbChain[1]) == nil &&
			VerifySignedJSON("TCB Info", col.TCBInfoJSON, col.TCBInfoSignature, tcbKey) == nil &&
			VerifySignedJSON("QE Identity", col.QEIdentityJSON, col.QEIdentitySignature, tcbKey) == nil &&
			verifyRS(pckKey, q.QEReportRaw(), q.QEReportSignature) && verifyRS(attKey, q.Signed(), q.Signature)
		if !ok {
			b.Fatal("the floor's signatures do not verify")
		}
	})
	reportVerifies(b, took[0], took[1])
}
