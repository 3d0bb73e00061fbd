package gramine

import (
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/libs/sgx"
)

// ErrManifest is returned, wrapped, for a manifest whose values Gramine's
// signer would refuse or that no enclave can be built from.
var ErrManifest = errors.New("gramine: invalid manifest")

func manifestErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrManifest, fmt.Sprintf(format, args...))
}

// ParseSize reads a size as Gramine does: a number, decimal or 0x
// hexadecimal, followed by K, M or G for KiB, MiB or GiB.
func ParseSize(s string) (uint64, error) {
	num, scale := s, uint64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		num, scale = s[:len(s)-1], 1<<10
	case strings.HasSuffix(s, "M"):
		num, scale = s[:len(s)-1], 1<<20
	case strings.HasSuffix(s, "G"):
		num, scale = s[:len(s)-1], 1<<30
	}
	base, digits := 10, num
	if h, ok := strings.CutPrefix(num, "0x"); ok {
		base, digits = 16, h
	}
	n, err := strconv.ParseUint(digits, base, 64)
	// Python's int(v, 0), which the signer uses, refuses "0256".
	if err != nil || digits == "" || digits[0] == '+' || (base == 10 && len(digits) > 1 && digits[0] == '0') {
		return 0, fmt.Errorf("size %q: want a number followed by K, M or G, such as \"256M\"", s)
	}
	if n > math.MaxUint64/scale {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * scale, nil
}

// FormatSize writes n with the largest of G, M and K that divides it, as
// manifests write sizes ("256M", "1G"), or in bytes.
func FormatSize(n uint64) string {
	for _, u := range []struct {
		shift  uint
		suffix string
	}{{30, "G"}, {20, "M"}, {10, "K"}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatUint(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatUint(n, 10)
}

// Params are the manifest's values that the enclave's measurement and
// SIGSTRUCT depend on, read as Gramine's signer reads them.
type Params struct {
	EnclaveSize uint64
	MaxThreads  int
	EDMM        bool
	Debug       bool
	ISVProdID   uint16
	ISVSVN      uint16
	// Attributes are SIGSTRUCT's: FLAGS (MODE64BIT, DEBUG), XFRM and
	// their masks, and MISCSELECT.
	Flags, XFRM, FlagsMask, XFRMMask uint64
	MiscSelect, MiscMask             uint32
}

// SGX's attribute bits as Gramine names them (sgx_arch.h).
const (
	flagDebug     = 0x2
	flagMode64Bit = 0x4
	miscExinfo    = 0x1

	xfrmLegacy   = 0x3
	xfrmAVX      = 0x4
	xfrmMPX      = 0x18
	xfrmAVX512   = 0xe4 // Gramine's value: the three AVX-512 state bits and AVX's
	xfrmPKRU     = 0x200
	xfrmAMX      = 0x60000
	xfrmMask     = 0xfffffffffff9ff1b
	flagsMask    = math.MaxUint64
	miscMaskFull = math.MaxUint32
)

// ReadParams reads the values the measurement and SIGSTRUCT depend on
// from a parsed manifest, with the signer's rules: sgx.enclave_size and
// sgx.max_threads are required; sgx.debug, sgx.edmm_enable and
// sgx.use_exinfo count only when true; sgx.cpu_features sets XFRM and its
// mask (and cannot be mixed with the deprecated sgx.require_*).
func ReadParams(m *Table) (*Params, error) {
	s, ok := m.Table("sgx")
	if !ok {
		return nil, manifestErrorf("no [sgx] table")
	}
	var p Params
	size, ok := get[string](s, "enclave_size")
	if !ok {
		return nil, manifestErrorf("sgx.enclave_size must be a string such as \"256M\"")
	}
	n, err := ParseSize(size)
	if err != nil {
		return nil, manifestErrorf("sgx.enclave_size: %v", err)
	}
	if err := ValidateSize(n); err != nil {
		return nil, manifestErrorf("sgx.enclave_size: %v", err)
	}
	p.EnclaveSize = n
	threads, ok := get[int64](s, "max_threads")
	if !ok || threads < 1 || threads > maxMeasuredThread {
		return nil, manifestErrorf("sgx.max_threads must be an integer from 1 to %d", maxMeasuredThread)
	}
	p.MaxThreads = int(threads)
	if v, set := s.Get("edmm_enable"); set {
		b, ok := v.(bool)
		if !ok {
			return nil, manifestErrorf("sgx.edmm_enable must be true or false")
		}
		p.EDMM = b
	}
	p.Debug = isTrue(s, "debug")
	for _, f := range []struct {
		key string
		dst *uint16
	}{{"isvprodid", &p.ISVProdID}, {"isvsvn", &p.ISVSVN}} {
		raw, set := s.Get(f.key) // unset is 0, as the signer's defaults make it
		if !set {
			continue
		}
		v, ok := raw.(int64)
		if !ok || v < 0 || v > math.MaxUint16 {
			return nil, manifestErrorf("sgx.%s must be an integer from 0 to 65535", f.key)
		}
		*f.dst = uint16(v)
	}

	p.Flags = flagMode64Bit
	if p.Debug {
		p.Flags |= flagDebug
	}
	if isTrue(s, "use_exinfo") {
		p.MiscSelect = miscExinfo
	}
	p.FlagsMask, p.MiscMask = flagsMask, miscMaskFull
	if p.XFRM, p.XFRMMask, err = readXFRM(s); err != nil {
		return nil, err
	}
	return &p, nil
}

func readXFRM(s *Table) (xfrm, mask uint64, err error) {
	xfrm, mask = xfrmLegacy, xfrmMask
	deprecated := []struct {
		key  string
		bits uint64
	}{{"require_avx", xfrmAVX}, {"require_avx512", xfrmAVX512}, {"require_mpx", xfrmMPX}, {"require_pkru", xfrmPKRU}, {"require_amx", xfrmAMX}}
	v, set := s.Get("cpu_features")
	if !set {
		for _, d := range deprecated {
			if isTrue(s, d.key) {
				xfrm |= d.bits
			}
		}
		return xfrm, mask, nil
	}
	cf, ok := v.(*Table)
	if !ok {
		return 0, 0, manifestErrorf("sgx.cpu_features must be a table")
	}
	for _, d := range deprecated {
		if _, set := s.Get(d.key); set {
			return 0, 0, manifestErrorf("sgx.cpu_features cannot coexist with sgx.%s", d.key)
		}
	}
	features := []struct {
		key        string
		bits       uint64
		hardenedOn bool // "unspecified" is refused: the feature must be decided
	}{{"avx", xfrmAVX, false}, {"avx512", xfrmAVX512, false}, {"amx", xfrmAMX, false}, {"mpx", xfrmMPX, true}, {"pkru", xfrmPKRU, true}}
	for _, f := range features {
		v, set := cf.Get(f.key)
		if !set {
			continue
		}
		switch v {
		case "required":
			xfrm |= f.bits
			mask |= f.bits
		case "disabled":
			xfrm &^= f.bits
			mask |= f.bits
		case "unspecified":
			if f.hardenedOn {
				return 0, 0, manifestErrorf("sgx.cpu_features.%s must be \"required\" or \"disabled\"", f.key)
			}
		default:
			return 0, 0, manifestErrorf("sgx.cpu_features.%s has the disallowed value %v", f.key, v)
		}
	}
	return xfrm, mask, nil
}

// get returns s[key] when it is set and of type T.
func get[T any](s *Table, key string) (T, bool) {
	v, ok := s.Get(key)
	if !ok {
		var zero T
		return zero, false
	}
	t, ok := v.(T)
	return t, ok
}

// isTrue is the signer's `manifest_sgx.get(key) is True`.
func isTrue(s *Table, key string) bool {
	b, ok := get[bool](s, key)
	return ok && b
}

// Measurement is a Gramine enclave's measurement and what it was
// computed from.
type Measurement struct {
	MRENCLAVE [32]byte
	Params    *Params
	Areas     []Area
}

// Measure computes the MRENCLAVE of the enclave that Gramine builds from
// the .manifest.sgx bytes (exactly as given: they are what is measured)
// and the libpal.so.
func Measure(manifest, libpal []byte) (*Measurement, error) {
	t, err := ParseTOML(manifest)
	if err != nil {
		return nil, err
	}
	p, err := ReadParams(t)
	if err != nil {
		return nil, err
	}
	pal, err := LoadPAL(libpal)
	if err != nil {
		return nil, err
	}
	mr, areas, err := Enclave{Manifest: manifest, PAL: pal, Size: p.EnclaveSize, MaxThreads: p.MaxThreads, EDMM: p.EDMM}.Measure()
	if err != nil {
		return nil, err
	}
	return &Measurement{MRENCLAVE: mr, Params: p, Areas: areas}, nil
}

// SigStructFields are the fields of the SIGSTRUCT Gramine's signer makes
// for a measurement, dated date (in its own location).
func (m *Measurement) SigStructFields(date time.Time) sgx.SigStructFields {
	p := m.Params
	f := sgx.SigStructFields{
		Date:        sgx.SigStructDate(date),
		MiscSelect:  p.MiscSelect,
		MiscMask:    p.MiscMask,
		EnclaveHash: m.MRENCLAVE,
		ISVProdID:   p.ISVProdID,
		ISVSVN:      p.ISVSVN,
	}
	le := binary.LittleEndian
	le.PutUint64(f.Attributes[:8], p.Flags)
	le.PutUint64(f.Attributes[8:], p.XFRM)
	le.PutUint64(f.AttributeMask[:8], p.FlagsMask)
	le.PutUint64(f.AttributeMask[8:], p.XFRMMask)
	return f
}

// Sign returns the .sig (SIGSTRUCT) of the enclave, signed with key, an
// RSA-3072 key with exponent 3, as gramine-sgx-sign writes it.
func (m *Measurement) Sign(key *rsa.PrivateKey, date time.Time) ([]byte, error) {
	return sgx.SignSigStruct(m.SigStructFields(date), key)
}
