package main

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/cloister-cc/cloister/libs/enclave"
)

// gramineKeysDir is where Gramine takes the keys of its encrypted mounts:
// writing 16 bytes to <dir>/<key_name> sets the key the mount of that
// key_name uses from then on.
const gramineKeysDir = gramineDir + "/keys"

// recipientKey is the X25519 key the enclave's secrets are sealed to, made
// fresh for each start when the manifest takes secrets or volumes; nil
// otherwise. Its private half never leaves the enclave's memory.
func recipientKey(m *enclave.Manifest) (*ecdh.PrivateKey, error) {
	if m.Secrets == nil && len(m.Volumes) == 0 {
		return nil, nil
	}
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("making the key the secrets are sealed to: %v", err)
	}
	return k, nil
}

// provide opens the bundle sealed to key for the certificate in chainPEM
// and gives the application what its manifest asks for: every secret as
// a file of the secrets directory (mode 0400; files of an earlier start
// removed first), the secrets named in secret env as environment
// variables (returned as NAME=value), and each volume's key written to
// keysDir/<key_name>, Gramine's /dev/attestation/keys inside an enclave.
// keysDir is empty in simulation without a stand-in: no Gramine mounts
// the volumes, so their keys go nowhere (warn says so).
func provide(root string, m *enclave.Manifest, key *ecdh.PrivateKey, chainPEM string, sealed []byte, keysDir string, warn func(string)) ([]string, error) {
	b := enclave.Bundle{}
	if len(sealed) > 0 {
		serial, err := leafSerial(chainPEM)
		if err != nil {
			return nil, err
		}
		if b, err = enclave.OpenBundle(key, enclave.BundleInfo(m.AppID, serial), sealed); err != nil {
			return nil, fmt.Errorf("the secrets that came with the certificate: %v; check the node agent and the server", err)
		}
	}
	defer func() {
		for _, v := range b.Secrets {
			clear(v)
		}
		for _, v := range b.VolumeKeys {
			clear(v)
		}
	}()
	var env []string
	if s := m.Secrets; s != nil {
		for _, e := range s.Env {
			v, ok := b.Secrets[e.Secret]
			if !ok {
				return nil, fmt.Errorf("the application takes secret %s as %s, but it has no secret of that name: set it with `cloister secret set %s %s`",
					e.Secret, e.Name, m.AppID, e.Secret)
			}
			env = append(env, e.Name+"="+string(v))
		}
		if err := clearDir(root, s.Dir); err != nil {
			return nil, err
		}
		for name, v := range b.Secrets {
			if err := writeSecret(root, path.Join(s.Dir, name), v, 0o400); err != nil {
				return nil, err
			}
		}
	}
	for _, v := range m.Volumes {
		k, ok := b.VolumeKeys[v.KeyName]
		if !ok {
			return nil, fmt.Errorf("the server sent no key for volume %s (key %s); the application cannot start without it", v.Path, v.KeyName)
		}
		if keysDir == "" {
			warn(fmt.Sprintf("simulation: volume %s is not encrypted (no Gramine), and its key %s is not installed", v.Path, v.KeyName))
			continue
		}
		if err := writeKey(filepath.Join(keysDir, v.KeyName), k); err != nil {
			return nil, fmt.Errorf("installing the key of volume %s: %v", v.Path, err)
		}
	}
	return env, nil
}

// leafSerial is the serial of the chain's first certificate, as the CA
// names it (lower-case hex).
func leafSerial(chainPEM string) (string, error) {
	blk, _ := pem.Decode([]byte(chainPEM))
	if blk == nil {
		return "", errors.New("the certificate chain has no PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("the issued certificate: %v", err)
	}
	return c.SerialNumber.Text(16), nil
}

// clearDir removes the files of the image directory dir under root, if
// it exists: an earlier start's secrets, one of which may since have been
// deleted.
func clearDir(root, dir string) error {
	p := hostPath(root, dir)
	entries, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the secrets directory %s: %v", dir, unwrapPath(err))
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(p, e.Name())); err != nil {
			return fmt.Errorf("clearing the secrets directory %s: %v", dir, unwrapPath(err))
		}
	}
	return nil
}

// writeKey writes a key to a file in place: Gramine's keys are pseudo
// files, which take a write but not a rename.
func writeKey(name string, k []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return unwrapPath(err)
	}
	_, err = f.Write(k)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
