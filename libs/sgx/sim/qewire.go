package sim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

// TargetInfoSize is the size of SGX's TARGETINFO structure.
const TargetInfoSize = 512

// TargetInfo returns the QE's TARGETINFO as an enclave's EREPORT takes it
// (Intel SDM, TARGETINFO): MEASUREMENT (MRENCLAVE) at offset 0, ATTRIBUTES
// at 32, MISCSELECT (zero) at 52, everything else zero; 512 bytes.
//
// SIMULATION: it is informative only. The simulated QE is no enclave, so
// no CPU can target a report to it and Quote does not check that a report
// body was targeted at it; an enclave may use it to make a real EREPORT on
// SGX hardware, but what the simulation quotes is whatever body it is given.
func (q *QE) TargetInfo() []byte {
	ti := make([]byte, TargetInfoSize)
	copy(ti[0:32], qeMRENCLAVE[:])
	a := qeAttributes()
	copy(ti[32:48], a[:])
	return ti
}

// qeFormat names the serialised QE, so that other bytes are refused.
const qeFormat = "cloister-sgx-simulation-qe/v1"

// qeWire is the serialised QE: the PEM PCK chain (PCK certificate, PCK CA,
// root), PEM PKCS#8 keys, and the platform in hex.
type qeWire struct {
	Format         string `json:"format"`
	PCKChain       string `json:"pckChain"`
	PCKKey         string `json:"pckKey"`
	AttestationKey string `json:"attestationKey"`
	Platform       struct {
		FMSPC         string `json:"fmspc"`
		PCEID         string `json:"pceId"`
		TCBComponents string `json:"tcbComponents"`
		PCESVN        uint16 `json:"pcesvn"`
		CPUSVN        string `json:"cpusvn"`
	} `json:"platform"`
}

// ErrBadQE is returned, wrapped, by ParseQE for bytes that are not a
// consistent serialised simulated QE.
var ErrBadQE = errors.New("sim: not a simulated QE")

// MarshalBinary serialises the QE as JSON: its PCK chain (PEM), its PCK
// and attestation keys (PEM PKCS#8) and its platform. The output holds
// private keys in the clear: whoever has it can make quotes that verify
// against the simulation root.
func (q *QE) MarshalBinary() ([]byte, error) {
	w := qeWire{Format: qeFormat, PCKChain: string(bytes.TrimRight(q.certData, "\x00"))}
	for _, k := range []struct {
		key *ecdsa.PrivateKey
		out *string
	}{{q.pckKey, &w.PCKKey}, {q.attKey, &w.AttestationKey}} {
		der, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			return nil, fmt.Errorf("encoding simulated QE key: %w", err)
		}
		*k.out = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	p := q.platform
	w.Platform.FMSPC = hex.EncodeToString(p.FMSPC[:])
	w.Platform.PCEID = hex.EncodeToString(p.PCEID[:])
	w.Platform.TCBComponents = hex.EncodeToString(p.TCBComponents[:])
	w.Platform.PCESVN = p.PCESVN
	w.Platform.CPUSVN = hex.EncodeToString(p.CPUSVN[:])
	return json.Marshal(w)
}

// ParseQE reads what MarshalBinary wrote. It checks that the chain is a
// PCK certificate issued by the simulation PCK CA issued by the simulation
// root, that the PCK key matches the PCK certificate and that the
// attestation key is ECDSA P-256. It does not check dates or revocation:
// the verifier does.
func ParseQE(b []byte) (*QE, error) {
	var w qeWire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadQE, err)
	}
	if w.Format != qeFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrBadQE, w.Format, qeFormat)
	}
	var certs []*x509.Certificate
	var chain bytes.Buffer
	rest := []byte(w.PCKChain)
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PCK chain holds a %q", ErrBadQE, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PCK chain: %w", ErrBadQE, err)
		}
		certs = append(certs, c)
		_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	if len(bytes.TrimSpace(rest)) != 0 || len(certs) != 3 {
		return nil, fmt.Errorf("%w: the PCK chain must be three PEM certificates", ErrBadQE)
	}
	for i, cn := range []string{PCKCommonName, PCKCACommonName, RootCommonName} {
		c := certs[i]
		if c.Subject.CommonName != cn {
			return nil, fmt.Errorf("%w: PCK chain certificate %d is %q, want %q", ErrBadQE, i, c.Subject.CommonName, cn)
		}
		issuer := certs[min(i+1, 2)]
		if err := c.CheckSignatureFrom(issuer); err != nil || !bytes.Equal(c.RawIssuer, issuer.RawSubject) {
			return nil, fmt.Errorf("%w: %q is not issued by %q", ErrBadQE, cn, issuer.Subject.CommonName)
		}
	}
	q := &QE{authData: make([]byte, qeAuthDataSize)}
	for i := range q.authData {
		q.authData[i] = byte(i)
	}
	var err error
	if q.pckCert, q.pckKey, err = parsePair(certPEM(certs[0]), w.PCKKey); err != nil {
		return nil, fmt.Errorf("%w: PCK: %w", ErrBadQE, err)
	}
	if q.attKey, err = parseKey(w.AttestationKey); err != nil {
		return nil, fmt.Errorf("%w: attestation key: %w", ErrBadQE, err)
	}
	point, err := q.attKey.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: attestation key: %w", ErrBadQE, err)
	}
	copy(q.attKeyRaw[:], point[1:])
	chain.WriteByte(0)
	q.certData = chain.Bytes()

	p := &q.platform
	for _, f := range []struct {
		name string
		in   string
		out  []byte
	}{
		{"fmspc", w.Platform.FMSPC, p.FMSPC[:]},
		{"pceId", w.Platform.PCEID, p.PCEID[:]},
		{"tcbComponents", w.Platform.TCBComponents, p.TCBComponents[:]},
		{"cpusvn", w.Platform.CPUSVN, p.CPUSVN[:]},
	} {
		v, err := hex.DecodeString(f.in)
		if err != nil || len(v) != len(f.out) {
			return nil, fmt.Errorf("%w: platform %s must be %d bytes in hex", ErrBadQE, f.name, len(f.out))
		}
		copy(f.out, v)
	}
	p.PCESVN = w.Platform.PCESVN
	return q, nil
}

// parseKey parses a PEM PKCS#8 ECDSA P-256 private key.
func parseKey(text string) (*ecdsa.PrivateKey, error) {
	kb, rest := pem.Decode([]byte(text))
	if kb == nil || kb.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("no single PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, errors.New("key is not ECDSA P-256")
	}
	return key, nil
}
