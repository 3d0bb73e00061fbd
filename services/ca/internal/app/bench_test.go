package app_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
)

// BenchmarkIssueApp measures an application certificate's issuance on one
// core, CSR parsing and every check included (configuration, key type,
// verdict, key binding, names against the allowlist), beside its floor in
// the same run: x509.CreateCertificate of the same certificate with the
// same CA key. Lookups that cross NATS (the verdict, the nonce, the
// allowlist on a cache miss) are excluded; the domain allowlist is a map
// here, as an in-process cache hit. x-floor is ours over the
// floor (1 = as fast as the floor).
func BenchmarkIssueApp(b *testing.B) {
	now := time.Now()
	ca, err := pki.NewCA("bench", now)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	names := []string{"hello.cloister.test"}
	raw, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, key)
	if err != nil {
		b.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	binding := sha256.Sum256(spki)
	cfg := domain.AppConfig{AccountID: "a", AppID: "app", Domain: names[0], Issuer: "cloister", KeyType: pki.P256}
	v := domain.Verdict{ID: "v", OK: true, AppID: "app", MRENCLAVE: make([]byte, 32), MRSIGNER: make([]byte, 32),
		TCBStatus: "UpToDate", ReportData: append(binding[:], make([]byte, 32)...), VerifiedAt: now}
	approved := map[string]bool{"app/hello.cloister.test": true}

	b.ResetTimer()
	start := time.Now()
	for range b.N {
		csr, err := app.Decide(cfg, v, raw, now)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range csr.DNSNames {
			if !approved[cfg.AppID+"/"+n] {
				b.Fatal("name not approved")
			}
		}
		if _, err := ca.Issue(pki.Leaf{CSR: csr, Lifetime: 30 * 24 * time.Hour, Attestation: pki.Attestation{
			MRENCLAVE: v.MRENCLAVE, MRSIGNER: v.MRSIGNER, TCBStatus: v.TCBStatus}}, now); err != nil {
			b.Fatal(err)
		}
	}
	ours := time.Since(start)

	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: now, NotAfter: now.Add(30 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	floorStart := time.Now()
	for i := range b.N {
		tmpl.SerialNumber = big.NewInt(int64(i) + 1)
		if _, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Issuer, &key.PublicKey, ca.IssuerSigner()); err != nil {
			b.Fatal(err)
		}
	}
	floor := time.Since(floorStart)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/ours.Seconds(), "issues/s/core")
	b.ReportMetric(float64(b.N)/floor.Seconds(), "floor-issues/s/core")
	b.ReportMetric(floor.Seconds()/ours.Seconds(), "x-floor")
}
