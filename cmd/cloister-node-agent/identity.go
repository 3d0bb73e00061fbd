package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The files of a node's identity in the data directory. node.json is
// written last: an identity is present when it is.
const (
	keyFile   = "key.pem"   // the node's private key, PKCS #8, mode 0600
	chainFile = "chain.pem" // the node's certificate, the issuing CA, the root
	nodeFile  = "node.json" // nodeRecord
)

// nodeRecord is node.json.
type nodeRecord struct {
	ID         string    `json:"id"`
	Account    string    `json:"account"`
	Name       string    `json:"name"`
	Server     string    `json:"server"` // the public API it enrolled with
	EnrolledAt time.Time `json:"enrolled_at"`
}

// identity is who the node is to the gateway: its key and its certificate.
type identity struct {
	record nodeRecord
	chain  []*x509.Certificate // the node's certificate first
	cert   tls.Certificate     // what the node presents in mTLS
}

func (id *identity) leaf() *x509.Certificate { return id.chain[0] }

// newKey returns a fresh node key and a CSR for it, PEM.
func newKey(name string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating the node key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the CSR: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// newIdentity checks a chain the server returned for key and makes the
// identity: the chain verifies up to its root for client authentication,
// the certificate is key's, and it names the node as
// urn:cloister:node:<account>:<node>.
func newIdentity(key *ecdsa.PrivateKey, chainPEM []byte, name string, now time.Time) (*identity, error) {
	chain, err := parseChain(chainPEM)
	if err != nil {
		return nil, err
	}
	if len(chain) > 1 {
		opts := x509.VerifyOptions{Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(), CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		opts.Roots.AddCert(chain[len(chain)-1])
		for _, c := range chain[1 : len(chain)-1] {
			opts.Intermediates.AddCert(c)
		}
		if _, err := chain[0].Verify(opts); err != nil {
			return nil, fmt.Errorf("verifying the node's certificate chain: %w", err)
		}
	}
	if !key.PublicKey.Equal(chain[0].PublicKey) {
		return nil, errors.New("the node's certificate is not for the node's key")
	}
	account, node, err := nodeURI(chain[0])
	if err != nil {
		return nil, err
	}
	return assemble(nodeRecord{ID: node, Account: account, Name: name}, key, chain), nil
}

func assemble(rec nodeRecord, key *ecdsa.PrivateKey, chain []*x509.Certificate) *identity {
	id := &identity{record: rec, chain: chain, cert: tls.Certificate{PrivateKey: key, Leaf: chain[0]}}
	// Present the certificate and the CAs under it, not the root: the
	// listener has it.
	for i, c := range chain {
		if i == 0 || i < len(chain)-1 {
			id.cert.Certificate = append(id.cert.Certificate, c.Raw)
		}
	}
	return id
}

func parseChain(chainPEM []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d of the node's chain: %w", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("the node's chain holds no certificate")
	}
	return chain, nil
}

// nodeURI reads the account and node ids from the certificate's URI
// urn:cloister:node:<account>:<node>.
func nodeURI(c *x509.Certificate) (account, node string, err error) {
	for _, u := range c.URIs {
		rest, ok := strings.CutPrefix(u.Opaque, "cloister:node:")
		if u.Scheme != "urn" || !ok {
			continue
		}
		account, node, ok = strings.Cut(rest, ":")
		if ok && account != "" && node != "" && !strings.Contains(node, ":") {
			return account, node, nil
		}
	}
	return "", "", errors.New("the node's certificate has no URI urn:cloister:node:<account>:<node>")
}

// loadIdentity reads the identity in dir. It returns nil and no error
// when dir holds none (no node.json).
func loadIdentity(dir string, now time.Time) (*identity, error) {
	recBytes, err := os.ReadFile(filepath.Join(dir, nodeFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	damaged := func(err error) error {
		return exitWith(exitConfig, "the node identity in %s is damaged (%w); move the directory away and enrol again with a new join token", dir, err)
	}
	if err != nil {
		return nil, damaged(err)
	}
	var rec nodeRecord
	if err := json.Unmarshal(recBytes, &rec); err != nil {
		return nil, damaged(fmt.Errorf("reading %s: %w", nodeFile, err))
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, damaged(err)
	}
	chainPEM, err := os.ReadFile(filepath.Join(dir, chainFile))
	if err != nil {
		return nil, damaged(err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, damaged(err)
	}
	// The chain is not verified again: its root may have been rotated
	// since, and the gateway decides whether the certificate still counts.
	chain, err := parseChain(chainPEM)
	if err != nil {
		return nil, damaged(err)
	}
	if !key.PublicKey.Equal(chain[0].PublicKey) {
		return nil, damaged(errors.New("the certificate is not for the key"))
	}
	account, node, err := nodeURI(chain[0])
	if err != nil {
		return nil, damaged(err)
	}
	if account != rec.Account || node != rec.ID {
		return nil, damaged(fmt.Errorf("%s names node %s of account %s, the certificate node %s of account %s", nodeFile, rec.ID, rec.Account, node, account))
	}
	if now.After(chain[0].NotAfter) {
		return nil, exitWith(exitDeregistered, "the node's certificate expired at %s; move %s away and enrol again with a new join token",
			chain[0].NotAfter.UTC().Format(time.RFC3339), dir)
	}
	return assemble(rec, key, chain), nil
}

func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s holds no PKCS #8 private key", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", keyFile, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T, not an ECDSA key", keyFile, k)
	}
	return ek, nil
}

// save writes the identity into dir, each file atomically, node.json last.
func (id *identity) save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(id.cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("encoding the node key: %w", err)
	}
	var chainPEM []byte
	for _, c := range id.chain {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	rec, err := json.MarshalIndent(id.record, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", nodeFile, err)
	}
	for _, f := range []struct {
		name string
		data []byte
		perm fs.FileMode
	}{
		{keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{chainFile, chainPEM, 0o644},
		{nodeFile, append(rec, '\n'), 0o644},
	} {
		if err := writeFileAtomic(dir, f.name, f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic replaces dir/name with data: it writes a temporary file
// in dir, syncs it, renames it over name and syncs dir, so that a crash
// leaves either the old file or the new one.
func writeFileAtomic(dir, name string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("renaming %s into place: %w", name, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
