package enclave

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"

	"github.com/cloister-cc/cloister/libs/gramine"
)

// Secrets is how an application receives its secrets: every secret of
// the application as a file named after it in Dir, an in-enclave tmpfs
// (mode 0400), and those named in Env as environment variables too, set
// by the launcher before it execs the application.
type Secrets struct {
	Dir string      `json:"dir"`
	Env []SecretEnv `json:"env"`
}

// SecretEnv sets the environment variable Name to the value of the
// application's secret Secret.
type SecretEnv struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

// Volume is an encrypted volume: the host directory Path, mounted at the
// same path as a Gramine encrypted mount whose key, KeyName, Cloister
// delivers after attestation.
type Volume struct {
	Path    string `json:"path"`
	KeyName string `json:"key_name"`
}

// DefaultSecretsDir is where an application's secret files are, unless
// it says otherwise.
const DefaultSecretsDir = "/run/cloister/secrets"

var (
	secretNameRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// CheckSecretName tells whether name can name a secret: it is a file
// name in the secrets directory.
func CheckSecretName(name string) error {
	if !secretNameRE.MatchString(name) {
		return fmt.Errorf("secret name %q must be 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-', not starting with '.'", name)
	}
	return nil
}

// CheckEnvName tells whether name can be an environment variable a
// secret is given in.
func CheckEnvName(name string) error {
	if !envNameRE.MatchString(name) {
		return fmt.Errorf("environment variable name %q must be a letter or '_', then letters, digits or '_'", name)
	}
	return nil
}

// CheckVolume tells whether v can be an encrypted volume: its path could
// be a read-write directory, and its key name one Gramine accepts.
func CheckVolume(v Volume) error {
	if err := CheckRWDir(v.Path); err != nil {
		return fmt.Errorf("volume %w", err)
	}
	if err := gramine.CheckKeyName(v.KeyName); err != nil {
		return fmt.Errorf("volume %s: %w", v.Path, err)
	}
	return nil
}

// CheckSecrets checks the secrets and volumes against each other and the
// rest of the manifest.
func (m Manifest) CheckSecrets() error {
	if s := m.Secrets; s != nil {
		if !path.IsAbs(s.Dir) || path.Clean(s.Dir) != s.Dir || s.Dir == "/" {
			return fmt.Errorf("secrets dir %q must be an absolute, clean path other than /", s.Dir)
		}
		for _, d := range m.UnmeasuredDirs() {
			if under(s.Dir, d) || under(d, s.Dir) {
				return fmt.Errorf("secrets dir %s is (or holds) the host's directory %s, so secrets would reach the host's disk", s.Dir, d)
			}
		}
		seen := map[string]bool{}
		for _, e := range s.Env {
			if err := CheckEnvName(e.Name); err != nil {
				return fmt.Errorf("secrets env: %v", err)
			}
			if err := CheckSecretName(e.Secret); err != nil {
				return fmt.Errorf("secrets env %s: %v", e.Name, err)
			}
			if seen[e.Name] || slices.ContainsFunc(m.Env, func(f EnvVar) bool { return f.Name == e.Name }) ||
				slices.Contains(m.PassthroughEnv, e.Name) || slices.Contains(launcherEnv, e.Name) {
				return fmt.Errorf("secrets env: %s is set twice (by a secret and by another secret, a fixed value or the host)", e.Name)
			}
			seen[e.Name] = true
		}
	}
	keys := map[string]bool{}
	for i, v := range m.Volumes {
		if err := CheckVolume(v); err != nil {
			return err
		}
		if keys[v.KeyName] {
			return fmt.Errorf("volume %s: key %s is another volume's", v.Path, v.KeyName)
		}
		keys[v.KeyName] = true
		for _, d := range append(slices.Clone(m.RWDirs), volumePaths(m.Volumes[:i])...) {
			if under(v.Path, d) || under(d, v.Path) {
				return fmt.Errorf("volume %s overlaps %s, another read-write directory or volume", v.Path, d)
			}
		}
	}
	return nil
}

func volumePaths(vs []Volume) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Path
	}
	return out
}

// UnmeasuredDirs are the directories whose contents the host provides:
// the read-write directories and the encrypted volumes (which Gramine
// authenticates with the volume's key, not the measurement).
func (m Manifest) UnmeasuredDirs() []string {
	return append(slices.Clone(m.RWDirs), volumePaths(m.Volumes)...)
}

// RecipientKeySize is the size of the enclave's X25519 public key that
// secrets are encrypted to.
const RecipientKeySize = 32

// bindingLabel starts the hashed input of a v2 key binding, so that it
// cannot be taken for another hash of the same bytes.
const bindingLabel = "cloister/reportdata/v2\x00"

// KeyBinding is the first half of an enclave's REPORTDATA: SHA-256 of
// the certificate key's SubjectPublicKeyInfo (spkiHash) alone when the
// enclave takes no secrets (v1), and otherwise SHA-256 of a label, that
// hash and the X25519 key secrets are to be encrypted to (v2). Either
// way the quote vouches for both keys.
func KeyBinding(spkiHash [32]byte, recipient []byte) [32]byte {
	if recipient == nil {
		return spkiHash
	}
	h := sha256.New()
	h.Write([]byte(bindingLabel))
	h.Write(spkiHash[:])
	h.Write(recipient)
	return [32]byte(h.Sum(nil))
}

// Bundle is what an attested enclave is given besides its certificate:
// the values of its application's secrets and the keys of its volumes, by
// name. It travels sealed (SealBundle) from the image converter to the
// launcher; the node agent and the host see ciphertext.
type Bundle struct {
	Secrets    map[string][]byte `json:"secrets"`
	VolumeKeys map[string][]byte `json:"volume_keys"`
}

// Limits of a bundle.
const (
	MaxSecretSize   = 64 << 10
	MaxSecrets      = 100
	VolumeKeySize   = 16 // Gramine's encrypted files take a 128-bit key
	MaxSealedBundle = 16 << 20
)

// ErrBundle is returned, wrapped, for a bundle that cannot be opened or
// read.
var ErrBundle = errors.New("enclave: invalid secrets bundle")

// BundleInfo is the HPKE info of the bundle sealed for the certificate
// serial of application appID: a bundle opens only as what it was sealed
// for.
func BundleInfo(appID, serial string) []byte {
	return []byte("cloister/secrets/v1\x00" + appID + "\x00" + serial)
}

// The HPKE suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
var (
	suiteKDF  = hpke.HKDFSHA256
	suiteAEAD = hpke.AES256GCM
)

// SealBundle encrypts the bundle to the enclave's X25519 public key
// (RFC 9180 base mode): the encapsulated key, then the ciphertext.
func SealBundle(recipient, info []byte, b Bundle) ([]byte, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	pub, err := ecdh.X25519().NewPublicKey(recipient)
	if err != nil {
		return nil, fmt.Errorf("%w: the recipient key is not an X25519 public key: %v", ErrBundle, err)
	}
	pk, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	return hpke.Seal(pk, suiteKDF(), suiteAEAD(), info, plain)
}

// OpenBundle decrypts and reads what SealBundle sealed to priv's public
// key with the same info.
func OpenBundle(priv *ecdh.PrivateKey, info, sealed []byte) (Bundle, error) {
	if len(sealed) > MaxSealedBundle {
		return Bundle{}, fmt.Errorf("%w: larger than %d bytes", ErrBundle, MaxSealedBundle)
	}
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return Bundle{}, err
	}
	plain, err := hpke.Open(k, suiteKDF(), suiteAEAD(), info, sealed)
	if err != nil {
		return Bundle{}, fmt.Errorf("%w: it does not open with this enclave's key for this certificate", ErrBundle)
	}
	return ParseBundle(plain)
}

// ParseBundle reads a bundle's plaintext: JSON with no unknown fields,
// names and sizes within the limits.
func ParseBundle(plain []byte) (Bundle, error) {
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return Bundle{}, fmt.Errorf("%w: %v", ErrBundle, err)
	}
	if dec.More() {
		return Bundle{}, fmt.Errorf("%w: data after the bundle", ErrBundle)
	}
	if err := b.check(); err != nil {
		return Bundle{}, err
	}
	return b, nil
}

func (b Bundle) check() error {
	if len(b.Secrets) > MaxSecrets {
		return fmt.Errorf("%w: %d secrets, at most %d", ErrBundle, len(b.Secrets), MaxSecrets)
	}
	for name, v := range b.Secrets {
		if err := CheckSecretName(name); err != nil {
			return fmt.Errorf("%w: %v", ErrBundle, err)
		}
		if len(v) > MaxSecretSize {
			return fmt.Errorf("%w: secret %s is larger than %d bytes", ErrBundle, name, MaxSecretSize)
		}
	}
	for name, k := range b.VolumeKeys {
		if err := gramine.CheckKeyName(name); err != nil {
			return fmt.Errorf("%w: %v", ErrBundle, err)
		}
		if len(k) != VolumeKeySize {
			return fmt.Errorf("%w: volume key %s has %d bytes, want %d", ErrBundle, name, len(k), VolumeKeySize)
		}
	}
	return nil
}
