package app_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"net/url"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/testkit/bench"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
)

// BenchmarkIssue measures issuance on one core, beside its floor in the
// same run: parsing the CSR, checking its signature and signing once with
// the CA's key, which no issuance can avoid. For application certificates
// (per key type of the enclave's key) ours is every check included
// (configuration, key type, verdict, key binding, names against the
// allowlist, a map here as an in-process cache hit); lookups that cross
// NATS are excluded. For node certificates ours is the CSR check and
// IssueClient. x-floor is the fraction of the floor's speed.
func BenchmarkIssue(b *testing.B) {
	now := time.Now()
	ca, err := pki.NewCA("bench", now)
	if err != nil {
		b.Fatal(err)
	}
	for _, kt := range []pki.KeyType{pki.P256, pki.P384, pki.RSA2048} {
		b.Run("app-"+string(kt), func(b *testing.B) {
			key := benchKey(b, kt)
			names := []string{"hello.cloister.test"}
			raw, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, key)
			if err != nil {
				b.Fatal(err)
			}
			spki, _ := x509.MarshalPKIXPublicKey(key.Public())
			binding := sha256.Sum256(spki)
			cfg := domain.AppConfig{AccountID: "a", AppID: "app", Domain: names[0], Issuer: "cloister", KeyType: kt}
			v := domain.Verdict{ID: "v", OK: true, AppID: "app", MRENCLAVE: make([]byte, 32), MRSIGNER: make([]byte, 32),
				TCBStatus: "UpToDate", ReportData: append(binding[:], make([]byte, 32)...), VerifiedAt: now}
			approved := map[string]bool{"app/hello.cloister.test": true}
			var tbs []byte
			issueVsFloor(b, ca, raw, func() {
				csr, err := app.Decide(cfg, v, raw, nil, now)
				if err != nil {
					b.Fatal(err)
				}
				for _, n := range csr.DNSNames {
					if !approved[cfg.AppID+"/"+n] {
						b.Fatal("name not approved")
					}
				}
				c, err := ca.Issue(pki.Leaf{CSR: csr, Lifetime: 30 * 24 * time.Hour, Attestation: pki.Attestation{
					MRENCLAVE: v.MRENCLAVE, MRSIGNER: v.MRSIGNER, TCBStatus: v.TCBStatus}}, now)
				if err != nil {
					b.Fatal(err)
				}
				if tbs == nil {
					tbs = c.DER
				}
			}, func() []byte { return tbs })
		})
	}
	b.Run("node-P-256", func(b *testing.B) {
		key := benchKey(b, pki.P256)
		raw, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			b.Fatal(err)
		}
		uri := &url.URL{Scheme: "urn", Opaque: "cloister:node:bench:0193c2a4-7d0e-7b1a-9c1e-000000000001"}
		var tbs []byte
		issueVsFloor(b, ca, raw, func() {
			csr, err := pki.CheckCSRKey(raw, pki.P256)
			if err != nil {
				b.Fatal(err)
			}
			c, err := ca.IssueClient(csr, "node 0193c2a4-7d0e-7b1a-9c1e-000000000001", uri, app.NodeCertLifetime, now)
			if err != nil {
				b.Fatal(err)
			}
			if tbs == nil {
				tbs = c.DER
			}
		}, func() []byte { return tbs })
	})
}

// issueVsFloor times issue and the floor b.N times each, taking turns
// (bench.Alternate) so that both meet the machine in the same state: the CSR
// parsed and its signature checked, and one ECDSA signature by the CA's
// issuing key over SHA-256 of a certificate as large as the one issued
// (issued() returns one, once issue has run).
func issueVsFloor(b *testing.B, ca *pki.CA, csrDER []byte, issue func(), issued func() []byte) {
	signer := ca.IssuerSigner()
	issue()
	msg := issued()
	floor := func() {
		csr, err := x509.ParseCertificateRequest(csrDER)
		if err != nil || csr.CheckSignature() != nil {
			b.Fatal("the floor's CSR does not check")
		}
		digest := sha256.Sum256(msg)
		if _, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
	took := bench.Alternate(b, issue, floor)
	ours, floorTime := took[0], took[1]
	b.ReportMetric(float64(ours.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(b.N)/ours.Seconds(), "issues/s/core")
	b.ReportMetric(float64(b.N)/floorTime.Seconds(), "floor-issues/s/core")
	b.ReportMetric(floorTime.Seconds()/ours.Seconds(), "x-floor")
}

func benchKey(b *testing.B, kt pki.KeyType) crypto.Signer {
	b.Helper()
	var key crypto.Signer
	var err error
	switch kt {
	case pki.P256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case pki.P384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case pki.RSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		b.Fatalf("no key of type %s here", kt)
	}
	if err != nil {
		b.Fatal(err)
	}
	return key
}
