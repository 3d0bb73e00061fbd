package sgx

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
)

// SigStructSize is the size of an enclave signature structure (SIGSTRUCT).
const SigStructSize = 1808

// SIGSTRUCT layout (Intel SDM Vol. 3D, "Enclave Signature Structure"):
// byte offsets of each field. Integers are little-endian, and so are the
// 384-byte RSA numbers.
const (
	sigHeader        = 0
	sigVendor        = 16
	sigDate          = 20
	sigHeader2       = 24
	sigSWDefined     = 40
	sigReserved1     = 44
	sigModulus       = 128
	sigExponent      = 512
	sigSignature     = 516
	sigMiscSelect    = 900
	sigMiscMask      = 904
	sigReserved2     = 908
	sigISVFamilyID   = 912
	sigAttributes    = 928
	sigAttributeMask = 944
	sigEnclaveHash   = 960
	sigReserved3     = 992
	sigISVExtProdID  = 1008
	sigISVProdID     = 1024
	sigISVSVN        = 1026
	sigReserved4     = 1028
	sigQ1            = 1040
	sigQ2            = 1424

	sigKeySize   = 384 // bytes of the modulus, signature, Q1 and Q2
	sigKeyBits   = 8 * sigKeySize
	sigExponent3 = 3
)

// The fixed HEADER and HEADER2 values, as stored.
var (
	sigHeaderValue  = []byte{0x06, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0}
	sigHeader2Value = []byte{0x01, 0x01, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 0x01, 0, 0, 0}
)

// sigReserved are the reserved ranges [from, to), which must be zero.
var sigReserved = [][2]int{
	{sigReserved1, sigModulus},
	{sigReserved2, sigISVFamilyID},
	{sigReserved3, sigISVExtProdID},
	{sigReserved4, sigQ1},
}

// Items of SIGSTRUCT errors: the structure as a whole, or the field at
// fault, under its SDM name.
const (
	itemSigStruct          = "SIGSTRUCT"
	itemSigStructHeader    = "SIGSTRUCT HEADER"
	itemSigStructHeader2   = "SIGSTRUCT HEADER2"
	itemSigStructExponent  = "SIGSTRUCT EXPONENT"
	itemSigStructReserved  = "SIGSTRUCT RESERVED"
	itemSigStructModulus   = "SIGSTRUCT MODULUS"
	itemSigStructSignature = "SIGSTRUCT SIGNATURE"
	itemSigStructQ1        = "SIGSTRUCT Q1"
	itemSigStructQ2        = "SIGSTRUCT Q2"
	itemSigningKey         = "SIGSTRUCT signing key"
)

// SigStruct is a parsed SIGSTRUCT, the enclave signature that EINIT
// checks before it launches an enclave.
//
// The fields are copies for reading. The methods work on the bytes given
// to ParseSigStruct, so changing a field changes none of their results;
// on a SigStruct not made by ParseSigStruct, Verify reports it as
// malformed, SignedData returns nil and MRSIGNER the zero array.
type SigStruct struct {
	Vendor        uint32 // 0x8086 for Intel's enclaves, 0 for the others; not checked
	Date          uint32 // BCD yyyymmdd as stored, e.g. 0x20150616
	SWDefined     [4]byte
	Modulus       []byte // 384 bytes, little-endian as stored
	Exponent      uint32 // always 3
	Signature     []byte // 384 bytes, little-endian as stored
	MiscSelect    uint32
	MiscMask      uint32
	ISVFamilyID   [16]byte
	Attributes    [16]byte
	AttributeMask [16]byte
	EnclaveHash   [32]byte // the enclave's MRENCLAVE
	ISVExtProdID  [16]byte
	ISVProdID     uint16
	ISVSVN        uint16
	Q1, Q2        []byte // 384 bytes each, little-endian as stored

	raw []byte
}

// ParseSigStruct parses a SIGSTRUCT. It checks the structure only: the
// length, the fixed HEADER and HEADER2, EXPONENT 3 (ReasonUnsupported
// otherwise) and that the reserved bytes are zero (ReasonMalformed
// otherwise); Verify checks the signature.
//
// The reserved bytes are outside the signed data, so no signature vouches
// for them; requiring them to be zero leaves one encoding for each signed
// content and no room to carry unsigned data next to a valid signature.
func ParseSigStruct(b []byte) (*SigStruct, error) {
	if len(b) != SigStructSize {
		return nil, failf(ReasonMalformed, itemSigStruct, "%d bytes, want %d", len(b), SigStructSize)
	}
	if h := b[sigHeader:sigVendor]; !bytes.Equal(h, sigHeaderValue) {
		return nil, failf(ReasonUnsupported, itemSigStructHeader, "%x, want %x", h, sigHeaderValue)
	}
	if h := b[sigHeader2:sigSWDefined]; !bytes.Equal(h, sigHeader2Value) {
		return nil, failf(ReasonUnsupported, itemSigStructHeader2, "%x, want %x", h, sigHeader2Value)
	}
	le := binary.LittleEndian
	if e := le.Uint32(b[sigExponent:]); e != sigExponent3 {
		return nil, failf(ReasonUnsupported, itemSigStructExponent, "%d, want 3", e)
	}
	for _, r := range sigReserved {
		for i := r[0]; i < r[1]; i++ {
			if b[i] != 0 {
				return nil, failf(ReasonMalformed, itemSigStructReserved,
					"byte %d (reserved bytes %d to %d) is 0x%02x, want zero", i, r[0], r[1]-1, b[i])
			}
		}
	}

	raw := bytes.Clone(b)
	s := &SigStruct{
		Vendor:     le.Uint32(raw[sigVendor:]),
		Date:       le.Uint32(raw[sigDate:]),
		Modulus:    bytes.Clone(raw[sigModulus:sigExponent]),
		Exponent:   sigExponent3,
		Signature:  bytes.Clone(raw[sigSignature:sigMiscSelect]),
		MiscSelect: le.Uint32(raw[sigMiscSelect:]),
		MiscMask:   le.Uint32(raw[sigMiscMask:]),
		ISVProdID:  le.Uint16(raw[sigISVProdID:]),
		ISVSVN:     le.Uint16(raw[sigISVSVN:]),
		Q1:         bytes.Clone(raw[sigQ1:sigQ2]),
		Q2:         bytes.Clone(raw[sigQ2:SigStructSize]),
		raw:        raw,
	}
	copy(s.SWDefined[:], raw[sigSWDefined:])
	copy(s.ISVFamilyID[:], raw[sigISVFamilyID:])
	copy(s.Attributes[:], raw[sigAttributes:])
	copy(s.AttributeMask[:], raw[sigAttributeMask:])
	copy(s.EnclaveHash[:], raw[sigEnclaveHash:])
	copy(s.ISVExtProdID[:], raw[sigISVExtProdID:])
	return s, nil
}

// MRSIGNER is the identity of the enclave's signer that SGX reports: the
// SHA-256 of the modulus exactly as stored (little-endian).
func (s *SigStruct) MRSIGNER() [32]byte {
	if len(s.raw) != SigStructSize {
		return [32]byte{}
	}
	return sha256.Sum256(s.raw[sigModulus:sigExponent])
}

// MRSIGNEROf is the MRSIGNER of enclaves signed with pub: SHA-256 of its
// modulus as a SIGSTRUCT stores it (384 bytes, little-endian).
func MRSIGNEROf(pub *rsa.PublicKey) [32]byte {
	b := make([]byte, sigExponent-sigModulus)
	sigPutNumber(b, pub.N)
	return sha256.Sum256(b)
}

// SignedData returns the 256 bytes the signature covers: bytes 0 to 127
// (HEADER to the first reserved field) followed by bytes 900 to 1027
// (MISCSELECT to ISVSVN).
func (s *SigStruct) SignedData() []byte {
	if len(s.raw) != SigStructSize {
		return nil
	}
	return sigSignedData(s.raw)
}

func sigSignedData(b []byte) []byte {
	d := make([]byte, 0, sigModulus+sigReserved4-sigMiscSelect)
	d = append(d, b[:sigModulus]...)
	return append(d, b[sigMiscSelect:sigReserved4]...)
}

// Verify checks the signature: the RSA-3072 PKCS#1 v1.5
// SHA-256 signature over SignedData with the stored modulus and exponent
// 3, then Q1 and Q2, the quotients that let an enclave compute S³ mod M
// without division. It fails with ReasonSignature and the item
// "SIGSTRUCT SIGNATURE", "SIGSTRUCT Q1" or "SIGSTRUCT Q2", or, when the
// modulus cannot be an RSA-3072 modulus, with item "SIGSTRUCT MODULUS".
func (s *SigStruct) Verify() error {
	if len(s.raw) != SigStructSize {
		return failf(ReasonMalformed, itemSigStruct, "not made by ParseSigStruct")
	}
	m := sigNumber(s.raw[sigModulus:sigExponent])
	if m.BitLen() != sigKeyBits {
		return failf(ReasonUnsupported, itemSigStructModulus, "%d bits, want %d", m.BitLen(), sigKeyBits)
	}
	if m.Bit(0) == 0 {
		return failf(ReasonMalformed, itemSigStructModulus, "even")
	}

	sig := sigNumber(s.raw[sigSignature:sigMiscSelect])
	digest := sha256.Sum256(sigSignedData(s.raw))
	key := &rsa.PublicKey{N: m, E: sigExponent3}
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig.FillBytes(make([]byte, sigKeySize))); err != nil {
		return fail(ReasonSignature, itemSigStructSignature, err)
	}

	// The signature verified, so S < M and both quotients fit 384 bytes.
	q1, q2 := sigQuotients(sig, m)
	if sigNumber(s.raw[sigQ1:sigQ2]).Cmp(q1) != 0 {
		return failf(ReasonSignature, itemSigStructQ1, "not floor(S² / M)")
	}
	if sigNumber(s.raw[sigQ2:SigStructSize]).Cmp(q2) != 0 {
		return failf(ReasonSignature, itemSigStructQ2, "not floor((S³ - Q1·S·M) / M)")
	}
	return nil
}

// sigQuotients returns Q1 = floor(S² / M) and Q2 = floor((S³ - Q1·S·M) / M).
// With S² = Q1·M + R, S³ - Q1·S·M is R·S, so Q2 = floor(R·S / M).
func sigQuotients(sig, m *big.Int) (q1, q2 *big.Int) {
	q1, r := new(big.Int).QuoRem(new(big.Int).Mul(sig, sig), m, new(big.Int))
	q2 = new(big.Int).Quo(r.Mul(r, sig), m)
	return q1, q2
}

// DateString returns DATE as "2015-06-16", or "" when it is not a valid
// BCD date.
func (s *SigStruct) DateString() string {
	t, err := time.Parse("20060102", fmt.Sprintf("%08x", s.Date))
	if err != nil {
		return ""
	}
	return t.Format(time.DateOnly)
}

// SigStructDate encodes t's date (in t's location) as SIGSTRUCT's DATE, BCD
// yyyymmdd: 16 June 2015 is 0x20150616. Years after 9999 do not fit.
func SigStructDate(t time.Time) uint32 {
	var d uint32
	for _, c := range t.Format("20060102") {
		d = d<<4 | uint32(c-'0')
	}
	return d
}

// SigStructFields are the signer's choices in a SIGSTRUCT: everything but
// the fixed headers, the key, the signature and Q1, Q2.
type SigStructFields struct {
	Vendor        uint32 // 0 unless the enclave is Intel's (0x8086)
	Date          uint32 // BCD yyyymmdd, see SigStructDate
	SWDefined     [4]byte
	MiscSelect    uint32
	MiscMask      uint32
	ISVFamilyID   [16]byte
	Attributes    [16]byte
	AttributeMask [16]byte
	EnclaveHash   [32]byte
	ISVExtProdID  [16]byte
	ISVProdID     uint16
	ISVSVN        uint16
}

// SignSigStruct returns the SIGSTRUCT of f signed with key, which must be
// an RSA-3072 key with exponent 3 (see GenerateSigningKey); any other key
// fails with ReasonUnsupported. The result is checked with ParseSigStruct
// and Verify before it is returned.
func SignSigStruct(f SigStructFields, key *rsa.PrivateKey) ([]byte, error) {
	if key == nil || key.N == nil {
		return nil, failf(ReasonUnsupported, itemSigningKey, "no key")
	}
	if key.N.BitLen() != sigKeyBits {
		return nil, failf(ReasonUnsupported, itemSigningKey, "%d-bit modulus, want %d", key.N.BitLen(), sigKeyBits)
	}
	if key.E != sigExponent3 {
		return nil, failf(ReasonUnsupported, itemSigningKey, "exponent %d, want 3", key.E)
	}

	b := make([]byte, SigStructSize)
	le := binary.LittleEndian
	copy(b[sigHeader:], sigHeaderValue)
	le.PutUint32(b[sigVendor:], f.Vendor)
	le.PutUint32(b[sigDate:], f.Date)
	copy(b[sigHeader2:], sigHeader2Value)
	copy(b[sigSWDefined:], f.SWDefined[:])
	sigPutNumber(b[sigModulus:sigExponent], key.N)
	le.PutUint32(b[sigExponent:], sigExponent3)
	le.PutUint32(b[sigMiscSelect:], f.MiscSelect)
	le.PutUint32(b[sigMiscMask:], f.MiscMask)
	copy(b[sigISVFamilyID:], f.ISVFamilyID[:])
	copy(b[sigAttributes:], f.Attributes[:])
	copy(b[sigAttributeMask:], f.AttributeMask[:])
	copy(b[sigEnclaveHash:], f.EnclaveHash[:])
	copy(b[sigISVExtProdID:], f.ISVExtProdID[:])
	le.PutUint16(b[sigISVProdID:], f.ISVProdID)
	le.PutUint16(b[sigISVSVN:], f.ISVSVN)

	digest := sha256.Sum256(sigSignedData(b))
	sigBE, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return nil, fmt.Errorf("signing SIGSTRUCT: %w", err)
	}
	sig := new(big.Int).SetBytes(sigBE)
	sigPutNumber(b[sigSignature:sigMiscSelect], sig)
	q1, q2 := sigQuotients(sig, key.N)
	sigPutNumber(b[sigQ1:sigQ2], q1)
	sigPutNumber(b[sigQ2:SigStructSize], q2)

	// A key whose private half does not match N signs garbage: catch it
	// here rather than at EINIT.
	s, err := ParseSigStruct(b)
	if err == nil {
		err = s.Verify()
	}
	if err != nil {
		return nil, fmt.Errorf("checking the signed SIGSTRUCT: %w", err)
	}
	return b, nil
}

// GenerateSigningKey generates an RSA-3072 key with public exponent 3, the
// only kind SIGSTRUCT takes (crypto/rsa.GenerateKey always uses 65537).
// Each prime p has gcd(3, p-1) = 1, so that 3 is invertible. random is
// passed to crypto/rand.Prime, which since Go 1.26 ignores it unless
// GODEBUG=cryptocustomrand=1; nil means crypto/rand.Reader. It takes about
// a second.
func GenerateSigningKey(random io.Reader) (*rsa.PrivateKey, error) {
	if random == nil {
		random = rand.Reader
	}
	three := big.NewInt(3)
	prime := func(other *big.Int) (*big.Int, error) {
		for {
			// rand.Prime sets the top two bits, so the product of two
			// 1536-bit primes has exactly 3072 bits.
			p, err := rand.Prime(random, sigKeyBits/2)
			if err != nil {
				return nil, err
			}
			// p mod 3 == 2 is gcd(3, p-1) == 1 for a prime p > 3.
			if new(big.Int).Mod(p, three).Int64() == 2 && (other == nil || p.Cmp(other) != 0) {
				return p, nil
			}
		}
	}
	p, err := prime(nil)
	if err != nil {
		return nil, fmt.Errorf("generating a prime: %w", err)
	}
	q, err := prime(p)
	if err != nil {
		return nil, fmt.Errorf("generating a prime: %w", err)
	}

	one := big.NewInt(1)
	n := new(big.Int).Mul(p, q)
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	d := new(big.Int).ModInverse(three, phi)
	if d == nil || n.BitLen() != sigKeyBits {
		return nil, errors.New("generating a signing key: unusable primes")
	}
	key := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: n, E: sigExponent3},
		D:         d,
		Primes:    []*big.Int{p, q},
	}
	key.Precompute()
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("validating the signing key: %w", err)
	}
	return key, nil
}

// sigNumber reads a little-endian number.
func sigNumber(le []byte) *big.Int {
	be := make([]byte, len(le))
	for i, c := range le {
		be[len(le)-1-i] = c
	}
	return new(big.Int).SetBytes(be)
}

// sigPutNumber writes x little-endian, filling dst; x must fit.
func sigPutNumber(dst []byte, x *big.Int) {
	x.FillBytes(dst)
	for i, j := 0, len(dst)-1; i < j; i, j = i+1, j-1 {
		dst[i], dst[j] = dst[j], dst[i]
	}
}
