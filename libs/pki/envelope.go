// Package pki holds Cloister's key material handling. This file: envelope
// encryption of secrets at rest. Each secret is sealed with its own random
// data key (AES-256-GCM), and the data key is sealed with the deployment's
// key-encryption key (KEK), so rotating the KEK means rewrapping data keys
// only, and no two secrets share a key.
package pki

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KEK is a 256-bit key-encryption key.
type KEK struct{ aead cipher.AEAD }

// KEKSize is the length of a key-encryption key in bytes.
const KEKSize = 32

// NewKEK returns a KEK from 32 bytes of key.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != KEKSize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes, not %d", KEKSize, len(key))
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return &KEK{aead: aead}, nil
}

// ParseKEK reads a KEK written as base64 (standard or URL alphabet), as
// CLOISTER_MASTER_KEY holds it.
func ParseKEK(s string) (*KEK, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return NewKEK(b)
		}
	}
	return nil, errors.New("key-encryption key is not base64")
}

// LoadOrCreateKEKFile reads a base64 KEK from path, creating the file with
// a fresh random key (mode 0600) if it does not exist. `cloister server
// -dev` keeps its KEK this way in its data directory.
func LoadOrCreateKEKFile(path string) (*KEK, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return ParseKEK(string(b))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading key-encryption key: %w", err)
	}
	key := make([]byte, KEKSize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// O_EXCL: if another process created it meanwhile, use theirs.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateKEKFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("creating key-encryption key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return NewKEK(key)
}

// Envelope is a sealed secret, safe to store: JSON with base64 fields.
type Envelope struct {
	Version    int    `json:"v"`
	WrappedKey []byte `json:"wrapped_key"` // the data key, sealed by the KEK
	KeyNonce   []byte `json:"key_nonce"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

// ErrOpen is returned when an envelope cannot be opened: another KEK, other
// associated data, or tampered bytes. It says no more, on purpose.
var ErrOpen = errors.New("pki: envelope cannot be opened with this key and context")

// Seal encrypts plaintext under a fresh data key. aad binds the envelope to
// its context (e.g. "ca-key/<account>"): opened with other aad, it fails.
func (k *KEK) Seal(plaintext, aad []byte) ([]byte, error) {
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, err
	}
	data, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	env := Envelope{Version: 1, KeyNonce: nonce(k.aead), Nonce: nonce(data)}
	env.WrappedKey = k.aead.Seal(nil, env.KeyNonce, dek, aad)
	env.Ciphertext = data.Seal(nil, env.Nonce, plaintext, aad)
	clear(dek)
	return json.Marshal(env)
}

// Open decrypts an envelope made by Seal with the same KEK and aad.
func (k *KEK) Open(sealed, aad []byte) ([]byte, error) {
	var env Envelope
	if err := json.Unmarshal(sealed, &env); err != nil || env.Version != 1 ||
		len(env.KeyNonce) != k.aead.NonceSize() || len(env.Nonce) != 12 {
		return nil, ErrOpen
	}
	dek, err := k.aead.Open(nil, env.KeyNonce, env.WrappedKey, aad)
	if err != nil || len(dek) != 32 {
		return nil, ErrOpen
	}
	defer clear(dek)
	data, err := newGCM(dek)
	if err != nil {
		return nil, ErrOpen
	}
	plaintext, err := data.Open(nil, env.Nonce, env.Ciphertext, aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plaintext, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func nonce(a cipher.AEAD) []byte {
	n := make([]byte, a.NonceSize())
	_, _ = rand.Read(n) // crypto/rand.Read does not fail on supported platforms
	return n
}
