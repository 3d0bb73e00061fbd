package pki

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func testKEK(t testing.TB, b byte) *KEK {
	k, err := NewKEK(bytes.Repeat([]byte{b}, KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := testKEK(t, 1)
	secret := []byte("-----BEGIN PRIVATE KEY----- not really")
	sealed, err := k.Seal(secret, []byte("sim-root"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) || bytes.Contains(sealed, []byte(base64.StdEncoding.EncodeToString(secret))) {
		t.Fatal("the sealed envelope contains the secret")
	}
	got, err := k.Open(sealed, []byte("sim-root"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	again, _ := k.Seal(secret, []byte("sim-root"))
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of one secret are equal; keys or nonces repeat")
	}

	var env Envelope
	_ = json.Unmarshal(sealed, &env)
	tamper := func(f func(*Envelope)) []byte {
		e := env
		e.WrappedKey, e.Ciphertext = bytes.Clone(env.WrappedKey), bytes.Clone(env.Ciphertext)
		f(&e)
		b, _ := json.Marshal(e)
		return b
	}
	tests := []struct {
		name   string
		kek    *KEK
		sealed []byte
		aad    string
	}{
		{"other KEK", testKEK(t, 2), sealed, "sim-root"},
		{"other context", k, sealed, "ca-key/x"},
		{"flipped ciphertext", k, tamper(func(e *Envelope) { e.Ciphertext[0] ^= 1 }), "sim-root"},
		{"flipped wrapped key", k, tamper(func(e *Envelope) { e.WrappedKey[0] ^= 1 }), "sim-root"},
		{"other version", k, tamper(func(e *Envelope) { e.Version = 2 }), "sim-root"},
		{"garbage", k, []byte("{"), "sim-root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.kek.Open(tt.sealed, []byte(tt.aad)); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open = %v, want ErrOpen", err)
			}
		})
	}
}

func TestKEKFromEnvAndFile(t *testing.T) {
	if _, err := ParseKEK("not base64!"); err == nil {
		t.Fatal("ParseKEK(garbage) = nil error")
	}
	if _, err := ParseKEK(base64.StdEncoding.EncodeToString(make([]byte, 16))); err == nil {
		t.Fatal("ParseKEK(16 bytes) = nil error")
	}
	path := filepath.Join(t.TempDir(), "sub", "master.key")
	k1, err := LoadOrCreateKEKFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", info.Mode(), err)
	}
	sealed, _ := k1.Seal([]byte("x"), nil)
	k2, err := LoadOrCreateKEKFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.Open(sealed, nil); err != nil || string(got) != "x" {
		t.Fatalf("a KEK loaded again from its file cannot open what the first sealed: %q, %v", got, err)
	}
}

func FuzzOpen(f *testing.F) {
	k := testKEK(f, 1)
	sealed, _ := k.Seal([]byte("secret"), nil)
	f.Add(sealed)
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := k.Open(b, nil)
		switch {
		case err == nil && !bytes.Equal(got, []byte("secret")):
			t.Fatalf("Open accepted a forged envelope: %q", got) // only our own envelope can open
		case err != nil && !errors.Is(err, ErrOpen):
			t.Fatalf("Open = %v, want ErrOpen", err)
		}
	})
}
