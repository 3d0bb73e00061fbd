package enclave

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cloister-cc/cloister/libs/testkit/bench"
)

// BenchmarkSealBundle seals the secrets of an enclave (20 secrets of 4
// KiB and 2 volume keys) to its key and opens them again, as the image
// converter and the launcher do at each start, beside its floor in the
// same run: HPKE sealing and opening the same JSON bytes, without
// encoding, decoding or checking the bundle. x-floor is floor time / our
// time, the fraction of the floor's speed (1.0 = at the floor).
func BenchmarkSealBundle(b *testing.B) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	bundle := Bundle{Secrets: map[string][]byte{}, VolumeKeys: map[string][]byte{
		"data": bytes.Repeat([]byte{1}, VolumeKeySize), "logs": bytes.Repeat([]byte{2}, VolumeKeySize)}}
	for i := range 20 {
		bundle.Secrets[fmt.Sprintf("secret-%02d", i)] = bytes.Repeat([]byte{byte(i)}, 4<<10)
	}
	info := BundleInfo("app", "0a")
	plain, err := json.Marshal(bundle)
	if err != nil {
		b.Fatal(err)
	}
	pub := priv.PublicKey().Bytes()
	hpkePub, _ := hpke.NewDHKEMPublicKey(priv.PublicKey())
	hpkePriv, _ := hpke.NewDHKEMPrivateKey(priv)
	ours := func() {
		sealed, err := SealBundle(pub, info, bundle)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := OpenBundle(priv, info, sealed); err != nil {
			b.Fatal(err)
		}
	}
	floor := func() {
		sealed, err := hpke.Seal(hpkePub, hpke.HKDFSHA256(), hpke.AES256GCM(), info, plain)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := hpke.Open(hpkePriv, hpke.HKDFSHA256(), hpke.AES256GCM(), info, sealed); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(plain)))
	took := bench.Alternate(b, ours, floor)
	b.ReportMetric(float64(took[0].Nanoseconds())/float64(b.N), "ns/start")
	b.ReportMetric(took[1].Seconds()/took[0].Seconds(), "x-floor")
}
