package sgx

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

const sigStructVectorFile = "intel_launch_enclave.sigstruct.bin"

func sigStructVector(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + sigStructVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sigStructTestKey is one RSA-3072 e=3 key per test binary: generating it
// takes about a second.
var sigStructTestKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return GenerateSigningKey(rand.Reader)
})

func sigStructKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	key, err := sigStructTestKey()
	if err != nil {
		t.Fatalf("GenerateSigningKey: %v", err)
	}
	return key
}

func sigHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sigReversed returns b in reverse order: little-endian ↔ big-endian.
func sigReversed(b []byte) []byte {
	r := slices.Clone(b)
	slices.Reverse(r)
	return r
}

func TestParseSigStructVector(t *testing.T) {
	s, err := ParseSigStruct(sigStructVector(t))
	if err != nil {
		t.Fatalf("ParseSigStruct(vector) = %v, want nil", err)
	}
	mrsigner := s.MRSIGNER()
	tests := []struct {
		name      string
		got, want any
	}{
		{"VENDOR", s.Vendor, uint32(0x8086)},
		{"DATE", s.Date, uint32(0x20150616)},
		{"DateString", s.DateString(), "2015-06-16"},
		{"EXPONENT", s.Exponent, uint32(3)},
		{"ISVPRODID", s.ISVProdID, uint16(0)},
		{"ISVSVN", s.ISVSVN, uint16(1)},
		{"MISCSELECT", s.MiscSelect, uint32(0)},
		{"MISCMASK", s.MiscMask, uint32(0xffffffff)},
		{"ATTRIBUTES", hex.EncodeToString(s.Attributes[:]), "24000000000000000300000000000000"},
		{"ATTRIBUTEMASK", hex.EncodeToString(s.AttributeMask[:]), "ffffffffffffffff1bffffffffffffff"},
		{"ENCLAVEHASH", hex.EncodeToString(s.EnclaveHash[:]), "c0acdca38163ef4d4ef3bd51a4b98f4b00fb8d81045e7c6cd4fdeb3beb3b4574"},
		{"MRSIGNER", hex.EncodeToString(mrsigner[:]), "acb77012053e05a63d413b8bbae8fb6c5d73b3f2996d91c43bbbf90959c0f8d4"},
		{"MRSIGNER is SHA-256 of Modulus", mrsigner, sha256.Sum256(s.Modulus)},
		{"len(Modulus)", len(s.Modulus), 384},
		{"len(Signature)", len(s.Signature), 384},
		{"len(Q1)", len(s.Q1), 384},
		{"len(Q2)", len(s.Q2), 384},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
			}
		})
	}
}

func TestSigStructVerifyVector(t *testing.T) {
	s, err := ParseSigStruct(sigStructVector(t))
	if err != nil {
		t.Fatalf("ParseSigStruct(vector) = %v, want nil", err)
	}
	if err := s.Verify(); err != nil {
		t.Errorf("Verify() = %v, want nil", err)
	}
}

func TestSigStructSignedData(t *testing.T) {
	b := sigStructVector(t)
	s, err := ParseSigStruct(b)
	if err != nil {
		t.Fatalf("ParseSigStruct(vector) = %v, want nil", err)
	}
	d := s.SignedData()
	if len(d) != 256 {
		t.Fatalf("len(SignedData()) = %d, want 256", len(d))
	}
	want := append(slices.Clone(b[0:128]), b[900:1028]...)
	if !bytes.Equal(d, want) {
		t.Errorf("SignedData() = %x, want bytes 0..127 and 900..1027 = %x", d, want)
	}
	// ENCLAVEHASH sits at 960 in the SIGSTRUCT, 128+60 in the signed data.
	if !bytes.Equal(d[188:220], s.EnclaveHash[:]) {
		t.Errorf("SignedData()[188:220] = %x, want ENCLAVEHASH %x", d[188:220], s.EnclaveHash)
	}
	// The result is a copy: changing it changes neither the SIGSTRUCT nor
	// what Verify checks.
	d[0] ^= 0xff
	if err := s.Verify(); err != nil {
		t.Errorf("Verify() after changing SignedData's result = %v, want nil", err)
	}
}

// TestSigStructTampered changes one byte of the real vector and checks
// that ParseSigStruct, or else Verify, fails with the reason and the item
// of the field at fault.
func TestSigStructTampered(t *testing.T) {
	vector := sigStructVector(t)
	sig := func(item string) *Error { return &Error{Reason: ReasonSignature, Item: item} }
	tests := []struct {
		name   string
		offset int
		xor    byte
		want   *Error
	}{
		// Structure, checked by ParseSigStruct.
		{"HEADER", 0, 0x01, &Error{Reason: ReasonUnsupported, Item: "SIGSTRUCT HEADER"}},
		{"HEADER last byte", 15, 0x01, &Error{Reason: ReasonUnsupported, Item: "SIGSTRUCT HEADER"}},
		{"HEADER2", 24, 0x01, &Error{Reason: ReasonUnsupported, Item: "SIGSTRUCT HEADER2"}},
		{"HEADER2 last byte", 39, 0x01, &Error{Reason: ReasonUnsupported, Item: "SIGSTRUCT HEADER2"}},
		{"EXPONENT", 512, 0x01, &Error{Reason: ReasonUnsupported, Item: "SIGSTRUCT EXPONENT"}},
		{"EXPONENT high byte", 515, 0x01, &Error{Reason: ReasonUnsupported, Item: "SIGSTRUCT EXPONENT"}},
		{"reserved after SWDEFINED", 44, 0x01, &Error{Reason: ReasonMalformed, Item: "SIGSTRUCT RESERVED"}},
		{"reserved before MODULUS", 127, 0x80, &Error{Reason: ReasonMalformed, Item: "SIGSTRUCT RESERVED"}},
		{"reserved after MISCMASK", 908, 0x01, &Error{Reason: ReasonMalformed, Item: "SIGSTRUCT RESERVED"}},
		{"reserved after ENCLAVEHASH", 1007, 0x01, &Error{Reason: ReasonMalformed, Item: "SIGSTRUCT RESERVED"}},
		{"reserved after ISVSVN", 1028, 0x01, &Error{Reason: ReasonMalformed, Item: "SIGSTRUCT RESERVED"}},
		{"reserved before Q1", 1039, 0x01, &Error{Reason: ReasonMalformed, Item: "SIGSTRUCT RESERVED"}},

		// Signed data, checked by the signature.
		{"VENDOR", 16, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"DATE", 20, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"SWDEFINED", 40, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"MISCSELECT", 900, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"MISCMASK", 904, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"ISVFAMILYID", 912, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"ATTRIBUTES debug bit", 928, 0x02, sig("SIGSTRUCT SIGNATURE")},
		{"ATTRIBUTEMASK", 944, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"ENCLAVEHASH first byte", 960, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"ENCLAVEHASH last byte", 991, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"ISVEXTPRODID", 1008, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"ISVPRODID", 1024, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"ISVSVN", 1026, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"ISVSVN high byte", 1027, 0x01, sig("SIGSTRUCT SIGNATURE")},

		// The key and the numbers.
		{"MODULUS middle", 300, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"MODULUS even", 128, 0x01, &Error{Reason: ReasonMalformed, Item: "SIGSTRUCT MODULUS"}},
		{"MODULUS short", 511, 0x80, &Error{Reason: ReasonUnsupported, Item: "SIGSTRUCT MODULUS"}},
		{"SIGNATURE low byte", 516, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"SIGNATURE middle", 700, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"SIGNATURE high byte", 899, 0x01, sig("SIGSTRUCT SIGNATURE")},
		{"Q1 low byte", 1040, 0x01, sig("SIGSTRUCT Q1")},
		{"Q1 high byte", 1423, 0x01, sig("SIGSTRUCT Q1")},
		{"Q2 low byte", 1424, 0x01, sig("SIGSTRUCT Q2")},
		{"Q2 high byte", 1807, 0x01, sig("SIGSTRUCT Q2")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := slices.Clone(vector)
			b[tt.offset] ^= tt.xor
			err := sigStructCheck(b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseSigStruct+Verify(byte %d ^ %#x) = %v, want %v", tt.offset, tt.xor, err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Item != tt.want.Item {
				t.Errorf("error item = %+v, want %q", e, tt.want.Item)
			}
		})
	}
}

// sigStructCheck parses and verifies b.
func sigStructCheck(b []byte) error {
	s, err := ParseSigStruct(b)
	if err != nil {
		return err
	}
	return s.Verify()
}

func TestParseSigStructRejectsLength(t *testing.T) {
	vector := sigStructVector(t)
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"one byte short", vector[:SigStructSize-1]},
		{"one byte long", append(slices.Clone(vector), 0)},
		{"twice", append(slices.Clone(vector), vector...)},
	}
	want := &Error{Reason: ReasonMalformed, Item: "SIGSTRUCT"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSigStruct(tt.b)
			if !errors.Is(err, want) || s != nil {
				t.Errorf("ParseSigStruct(%d bytes) = %v, %v, want nil, %v", len(tt.b), s, err, want)
			}
		})
	}
}

// TestSigStructFieldsAreCopies checks that ParseSigStruct does not keep
// the caller's slice and that changing the exported fields changes
// neither MRSIGNER nor what Verify checks.
func TestSigStructFieldsAreCopies(t *testing.T) {
	b := sigStructVector(t)
	s, err := ParseSigStruct(b)
	if err != nil {
		t.Fatalf("ParseSigStruct(vector) = %v, want nil", err)
	}
	want := s.MRSIGNER()
	b[960] ^= 0xff // ENCLAVEHASH in the caller's slice
	s.Modulus[0] ^= 0xff
	s.Signature[0] ^= 0xff
	s.Q1[0] ^= 0xff
	s.Q2[0] ^= 0xff
	if err := s.Verify(); err != nil {
		t.Errorf("Verify() = %v, want nil", err)
	}
	if got := s.MRSIGNER(); got != want {
		t.Errorf("MRSIGNER() = %x, want %x", got, want)
	}
}

func TestSigStructNotParsed(t *testing.T) {
	var s SigStruct
	want := &Error{Reason: ReasonMalformed, Item: "SIGSTRUCT"}
	if err := s.Verify(); !errors.Is(err, want) {
		t.Errorf("Verify() of a zero SigStruct = %v, want %v", err, want)
	}
	if d := s.SignedData(); d != nil {
		t.Errorf("SignedData() of a zero SigStruct = %x, want nil", d)
	}
	if m := s.MRSIGNER(); m != [32]byte{} {
		t.Errorf("MRSIGNER() of a zero SigStruct = %x, want zeros", m)
	}
}

func TestSigStructDateString(t *testing.T) {
	tests := []struct {
		date uint32
		want string
	}{
		{0x20150616, "2015-06-16"},
		{0x20241231, "2024-12-31"},
		{0x20240229, "2024-02-29"},
		{0x20230229, ""}, // not a leap year
		{0x20151306, ""}, // month 13
		{0x2015061a, ""}, // not BCD
		{0x00000000, ""},
		{0xffffffff, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%08x", tt.date), func(t *testing.T) {
			s := SigStruct{Date: tt.date}
			if got := s.DateString(); got != tt.want {
				t.Errorf("DateString() of DATE %#08x = %q, want %q", tt.date, got, tt.want)
			}
		})
	}
}

func TestSigStructDate(t *testing.T) {
	tests := []struct {
		t    time.Time
		want uint32
	}{
		{time.Date(2015, 6, 16, 0, 0, 0, 0, time.UTC), 0x20150616},
		{time.Date(2025, 7, 1, 23, 59, 59, 0, time.UTC), 0x20250701},
		{time.Date(1999, 12, 31, 12, 0, 0, 0, time.UTC), 0x19991231},
	}
	for _, tt := range tests {
		t.Run(tt.t.Format(time.DateOnly), func(t *testing.T) {
			got := SigStructDate(tt.t)
			if got != tt.want {
				t.Errorf("SigStructDate(%v) = %#08x, want %#08x", tt.t, got, tt.want)
			}
			if s := (SigStruct{Date: got}); s.DateString() != tt.t.Format(time.DateOnly) {
				t.Errorf("DateString() of SigStructDate(%v) = %q, want %q", tt.t, s.DateString(), tt.t.Format(time.DateOnly))
			}
		})
	}
}

func TestGenerateSigningKey(t *testing.T) {
	key := sigStructKey(t)
	if key.E != 3 {
		t.Errorf("E = %d, want 3", key.E)
	}
	if n := key.N.BitLen(); n != 3072 {
		t.Errorf("N has %d bits, want 3072", n)
	}
	if len(key.Primes) != 2 {
		t.Fatalf("%d primes, want 2", len(key.Primes))
	}
	three := big.NewInt(3)
	for i, p := range key.Primes {
		pm1 := new(big.Int).Sub(p, big.NewInt(1))
		if g := new(big.Int).GCD(nil, nil, three, pm1); g.Cmp(big.NewInt(1)) != 0 {
			t.Errorf("gcd(3, p%d-1) = %v, want 1", i+1, g)
		}
	}
	if err := key.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}

func TestSignSigStruct(t *testing.T) {
	key := sigStructKey(t)
	fields := SigStructFields{
		Vendor:        0,
		Date:          0x20250701,
		SWDefined:     [4]byte{1, 2, 3, 4},
		MiscSelect:    0x01,
		MiscMask:      0xfffffffe,
		ISVFamilyID:   [16]byte{0: 0xfa, 15: 0xf1},
		Attributes:    [16]byte{0: 0x04, 8: 0x03},
		AttributeMask: [16]byte{0: 0xfd, 1: 0xff, 8: 0xff},
		EnclaveHash:   sha256.Sum256([]byte("enclave")),
		ISVExtProdID:  [16]byte{0: 0xe0, 15: 0xe1},
		ISVProdID:     0x1234,
		ISVSVN:        0xbeef,
	}
	b, err := SignSigStruct(fields, key)
	if err != nil {
		t.Fatalf("SignSigStruct = %v, want nil", err)
	}
	if len(b) != SigStructSize {
		t.Fatalf("len(SignSigStruct) = %d, want %d", len(b), SigStructSize)
	}
	s, err := ParseSigStruct(b)
	if err != nil {
		t.Fatalf("ParseSigStruct(SignSigStruct) = %v, want nil", err)
	}
	if err := s.Verify(); err != nil {
		t.Fatalf("Verify() = %v, want nil", err)
	}

	modulusLE := sigReversed(key.N.FillBytes(make([]byte, 384)))
	got := SigStructFields{
		Vendor: s.Vendor, Date: s.Date, SWDefined: s.SWDefined, MiscSelect: s.MiscSelect,
		MiscMask: s.MiscMask, ISVFamilyID: s.ISVFamilyID, Attributes: s.Attributes,
		AttributeMask: s.AttributeMask, EnclaveHash: s.EnclaveHash, ISVExtProdID: s.ISVExtProdID,
		ISVProdID: s.ISVProdID, ISVSVN: s.ISVSVN,
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"fields", got, fields},
		{"HEADER", hex.EncodeToString(b[0:16]), "06000000e10000000000010000000000"},
		{"HEADER2", hex.EncodeToString(b[24:40]), "01010000600000006000000001000000"},
		{"EXPONENT", s.Exponent, uint32(3)},
		{"MODULUS little-endian", hex.EncodeToString(s.Modulus), hex.EncodeToString(modulusLE)},
		{"MRSIGNER", s.MRSIGNER(), sha256.Sum256(modulusLE)},
		{"DateString", s.DateString(), "2025-07-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
			}
		})
	}

	t.Run("signature is S^3 = EM mod M", func(t *testing.T) {
		// Independently of crypto/rsa: S^3 mod M, big-endian, is the
		// PKCS#1 v1.5 encoding 00 01 ff..ff 00 DigestInfo(SHA-256) digest.
		sig := new(big.Int).SetBytes(sigReversed(s.Signature))
		em := new(big.Int).Exp(sig, big.NewInt(3), key.N).FillBytes(make([]byte, 384))
		digest := sha256.Sum256(s.SignedData())
		prefix := sigHex(t, "3031300d060960864801650304020105000420")
		want := append([]byte{0x00, 0x01}, bytes.Repeat([]byte{0xff}, 384-3-len(prefix)-32)...)
		want = append(append(append(want, 0x00), prefix...), digest[:]...)
		if !bytes.Equal(em, want) {
			t.Errorf("S^3 mod M = %x, want %x", em, want)
		}
	})

	t.Run("Q1 and Q2 by their definition", func(t *testing.T) {
		sig := new(big.Int).SetBytes(sigReversed(s.Signature))
		m := key.N
		q1 := new(big.Int).Div(new(big.Int).Mul(sig, sig), m)
		s3 := new(big.Int).Mul(new(big.Int).Mul(sig, sig), sig)
		q2 := new(big.Int).Div(new(big.Int).Sub(s3, new(big.Int).Mul(new(big.Int).Mul(q1, sig), m)), m)
		if got := new(big.Int).SetBytes(sigReversed(s.Q1)); got.Cmp(q1) != 0 {
			t.Errorf("Q1 = %x, want %x", got, q1)
		}
		if got := new(big.Int).SetBytes(sigReversed(s.Q2)); got.Cmp(q2) != 0 {
			t.Errorf("Q2 = %x, want %x", got, q2)
		}
	})

	t.Run("deterministic", func(t *testing.T) {
		again, err := SignSigStruct(fields, key)
		if err != nil || !bytes.Equal(again, b) {
			t.Errorf("SignSigStruct again = %x, %v, want the same bytes, nil", again, err)
		}
	})

	t.Run("tampered", func(t *testing.T) {
		for _, offset := range []int{960, 1026, 516, 1040, 1424} {
			c := slices.Clone(b)
			c[offset] ^= 0x01
			if err := sigStructCheck(c); ReasonOf(err) != ReasonSignature {
				t.Errorf("ParseSigStruct+Verify(byte %d flipped) = %v, want reason %q", offset, err, ReasonSignature)
			}
		}
	})
}

func TestSignSigStructRejectsKey(t *testing.T) {
	key := sigStructKey(t)
	wrongE := *key
	wrongE.E = 65537
	key2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// A 3072-bit key with E=3 whose private exponent is not the inverse
	// of 3: its signatures do not verify.
	wrongD := *key
	wrongD.D = new(big.Int).Add(key.D, big.NewInt(2))
	wrongD.Precomputed = rsa.PrecomputedValues{}

	tests := []struct {
		name string
		key  *rsa.PrivateKey
		want Reason
	}{
		{"nil", nil, ReasonUnsupported},
		{"no modulus", &rsa.PrivateKey{PublicKey: rsa.PublicKey{E: 3}}, ReasonUnsupported},
		{"2048-bit", key2048, ReasonUnsupported},
		{"exponent 65537", &wrongE, ReasonUnsupported},
		{"wrong private exponent", &wrongD, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := SignSigStruct(SigStructFields{}, tt.key)
			if err == nil || b != nil {
				t.Fatalf("SignSigStruct = %d bytes, %v, want nil, an error", len(b), err)
			}
			if tt.want != "" && ReasonOf(err) != tt.want {
				t.Errorf("SignSigStruct = %v, want reason %q", err, tt.want)
			}
		})
	}
}

// FuzzParseSigStruct checks that no input makes ParseSigStruct or the
// methods of what it returns panic, and that a parsed SIGSTRUCT reads
// back as its bytes.
//
// Each input is tried twice: as a whole SIGSTRUCT, and as an edit of the
// real vector (a big-endian uint16 offset, then the bytes to write there,
// which may run past the end). The empty edit is the vector itself. Edits
// reach Verify's Q1 and Q2 checks, which arbitrary bytes never do, and
// they stay short: the fuzzer minimizes each new input in time quadratic
// in its length, which for 1808-byte inputs takes all of a 30-second run.
func FuzzParseSigStruct(f *testing.F) {
	vector := sigStructVector(f)
	edit := func(offset uint16, b ...byte) []byte { return append([]byte{byte(offset >> 8), byte(offset)}, b...) }
	for _, seed := range [][]byte{
		nil,                             // the vector
		edit(0, 0x07),                   // HEADER
		edit(44, 0x01),                  // reserved
		edit(512, 0x01, 0x00, 0x01),     // EXPONENT 65539
		edit(960, 0xff),                 // ENCLAVEHASH
		edit(1040, 0x00),                // Q1
		edit(1807, 0xff),                // Q2
		edit(1800, make([]byte, 16)...), // past the end
		make([]byte, 64),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sigStructFuzzOne(t, b)
		edited := slices.Clone(vector)
		if len(b) >= 2 {
			offset := (int(b[0])<<8 | int(b[1])) % (SigStructSize + 1)
			patch := b[2:]
			if grow := offset + len(patch) - len(edited); grow > 0 {
				edited = append(edited, make([]byte, grow)...)
			}
			copy(edited[offset:], patch)
		}
		sigStructFuzzOne(t, edited)
	})
}

func sigStructFuzzOne(t *testing.T, b []byte) {
	s, err := ParseSigStruct(b)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || (e.Reason != ReasonMalformed && e.Reason != ReasonUnsupported) {
			t.Fatalf("ParseSigStruct = %v, want a malformed or unsupported *Error", err)
		}
		return
	}
	if err := s.Verify(); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Verify() = %v, want an *Error", err)
		}
	}
	if d, want := s.SignedData(), append(slices.Clone(b[:128]), b[900:1028]...); !bytes.Equal(d, want) {
		t.Fatalf("SignedData() = %x, want %x", d, want)
	}
	if m := s.MRSIGNER(); m != sha256.Sum256(b[128:512]) {
		t.Fatalf("MRSIGNER() = %x, want SHA-256 of bytes 128..511", m)
	}
	_ = s.DateString()
}

func TestMRSIGNEROf(t *testing.T) {
	key := sigStructKey(t)
	raw, err := SignSigStruct(SigStructFields{}, key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSigStruct(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := MRSIGNEROf(&key.PublicKey), s.MRSIGNER(); got != want {
		t.Fatalf("MRSIGNEROf = %x, want the SIGSTRUCT's %x", got, want)
	}
}
