package sgx

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
)

// PageSize is the size of an enclave page.
const PageSize = 4096

// SECINFO.FLAGS bits (Intel SDM Vol. 3D, "Security Information
// (SECINFO)"): the permissions in bits 0..2 and the page type in bits
// 8..15. A page's flags are a type or-ed with its permissions, e.g.
// PageReg|PermR|PermX; a TCS page has no permissions.
const (
	PermR uint64 = 1 << 0
	PermW uint64 = 1 << 1
	PermX uint64 = 1 << 2

	PageSECS uint64 = 0 << 8 // PT_SECS: never EADDed, listed for completeness
	PageTCS  uint64 = 1 << 8 // PT_TCS
	PageReg  uint64 = 2 << 8 // PT_REG

	pagePerms = PermR | PermW | PermX
	pageType  = 0xff << 8
)

// Sizes of the records that make up a measurement (Intel SDM Vol. 3D,
// the "Operation" of ECREATE, EADD and EEXTEND): every record is one
// 64-byte SHA-256 block, and EEXTEND's is followed by the 256 bytes it
// measures.
const (
	recordSize   = 64
	extendChunk  = 256
	extendRecord = recordSize + extendChunk
	pageRecords  = recordSize + PageSize/extendChunk*extendRecord // EADD and 16 EEXTENDs

	// measureBuffer holds the records not yet hashed: at least one
	// whole page's, and large enough that hashing runs in long writes.
	measureBuffer = 16 << 10
)

// Measurement computes an MRENCLAVE the way the processor does while an
// enclave is built: ECREATE starts it (NewMeasurement), every EADD and
// EEXTEND extends it (AddPage, or AddPages for a run of EADD-only
// pages), and EINIT finalises it (Sum).
//
// A Measurement does not allocate per page, so an enclave of many
// gigabytes of EADD-only pages costs little more than the hashing of
// their 64-byte records.
type Measurement struct {
	h      hash.Hash
	size   uint64 // SECS.SIZE
	n      int    // bytes of buf not yet hashed
	hashed uint64 // bytes hashed in all, for the benchmark's floor
	buf    [measureBuffer]byte
}

// NewMeasurement starts the measurement of an enclave of size bytes (the
// SECS.SIZE, a power of two of at least two pages) whose SSA frames are
// ssaFrameSize pages: the ECREATE record is "ECREATE\0", SSAFRAMESIZE as
// a uint32 and SIZE as a uint64, little-endian, then 44 zero bytes.
// NewMeasurement does not check size: AddPage and AddPages refuse
// pages beyond it.
func NewMeasurement(ssaFrameSize uint32, size uint64) *Measurement {
	m := &Measurement{h: sha256.New(), size: size}
	r := m.record(recordSize)
	copy(r, "ECREATE\x00")
	binary.LittleEndian.PutUint32(r[8:], ssaFrameSize)
	binary.LittleEndian.PutUint64(r[12:], size)
	return m
}

// AddPage measures the EADD of the page at offset (from the enclave's
// base) with the given SECINFO.FLAGS and, when extend is true, the
// EEXTEND of each of its 16 chunks of 256 bytes, in order. data is the
// page's contents, at most PageSize bytes, zero-padded to a page; it is
// only read when extend is true.
//
// Offsets must be page aligned and within the enclave, in any order (a
// loader may add pages top down, as Gramine's does), and
// flags must be a type EADD accepts (PT_REG, or PT_TCS with no
// permissions) with no reserved bit and no W without R.
func (m *Measurement) AddPage(offset, secinfoFlags uint64, data []byte, extend bool) error {
	if len(data) > PageSize {
		return fmt.Errorf("sgx: measuring page at %#x: %d bytes of data, want at most %d", offset, len(data), PageSize)
	}
	if err := m.check(offset, 1, secinfoFlags); err != nil {
		return err
	}

	n := recordSize
	if extend {
		n = pageRecords
	}
	r := m.record(n)
	putEADD(r, offset, secinfoFlags)
	if !extend {
		return nil
	}
	r = r[recordSize:]
	for c := uint64(0); c < PageSize/extendChunk; c++ {
		copy(r, "EEXTEND\x00")
		binary.LittleEndian.PutUint64(r[8:], offset+c*extendChunk)
		clear(r[16:recordSize])
		chunk := r[recordSize:extendRecord]
		k := 0
		if from := int(c) * extendChunk; from < len(data) {
			k = copy(chunk, data[from:])
		}
		clear(chunk[k:])
		r = r[extendRecord:]
	}
	return nil
}

// AddPages measures the EADD, and no EEXTEND, of n consecutive pages
// from offset with the same SECINFO.FLAGS: the same as n calls of
// AddPage with extend false, in a fraction of the time. It is for runs
// of pages whose contents are not measured, such as stacks and heaps.
func (m *Measurement) AddPages(offset, n, secinfoFlags uint64) error {
	if n == 0 {
		return nil
	}
	if err := m.check(offset, n, secinfoFlags); err != nil {
		return err
	}

	for n > 0 {
		k := min(n, uint64(len(m.buf)-m.n)/recordSize)
		if k == 0 {
			m.flush()
			continue
		}
		r := m.record(int(k) * recordSize)
		// One record, copied over the rest in doubling runs; then only
		// the offsets differ.
		putEADD(r, offset, secinfoFlags)
		for done := recordSize; done < len(r); done *= 2 {
			copy(r[done:], r[:done])
		}
		for i := uint64(1); i < k; i++ {
			binary.LittleEndian.PutUint64(r[i*recordSize+8:], offset+i*PageSize)
		}
		offset += k * PageSize
		n -= k
	}
	return nil
}

// putEADD writes the EADD record of the page at offset into r.
func putEADD(r []byte, offset, secinfoFlags uint64) {
	copy(r, "EADD\x00\x00\x00\x00")
	binary.LittleEndian.PutUint64(r[8:], offset)
	binary.LittleEndian.PutUint64(r[16:], secinfoFlags)
	clear(r[24:recordSize])
}

// check refuses to add n pages from offset with secinfoFlags.
func (m *Measurement) check(offset, n, secinfoFlags uint64) error {
	switch {
	case offset%PageSize != 0:
		return fmt.Errorf("sgx: measuring page at %#x: offset not page aligned", offset)
	case offset >= m.size || (m.size-offset)/PageSize < n:
		return fmt.Errorf("sgx: measuring %d pages at %#x: outside the enclave's %#x bytes", n, offset, m.size)
	}
	if err := checkSecInfo(secinfoFlags); err != nil {
		return fmt.Errorf("sgx: measuring page at %#x: %w", offset, err)
	}
	return nil
}

// checkSecInfo refuses SECINFO.FLAGS that EADD would fault on.
func checkSecInfo(f uint64) error {
	if f&^(pagePerms|pageType) != 0 {
		return fmt.Errorf("SECINFO flags %#x: reserved bits set", f)
	}
	switch f & pageType {
	case PageReg:
		if f&PermW != 0 && f&PermR == 0 {
			return fmt.Errorf("SECINFO flags %#x: writable but not readable", f)
		}
	case PageTCS:
		if f&pagePerms != 0 {
			return fmt.Errorf("SECINFO flags %#x: a TCS page with permissions", f)
		}
	default:
		return fmt.Errorf("SECINFO flags %#x: page type %d, want PT_REG or PT_TCS", f, f&pageType>>8)
	}
	return nil
}

// record returns the next n bytes of the buffer, hashing what it holds
// first if they do not fit. n is at most len(m.buf).
func (m *Measurement) record(n int) []byte {
	if m.n+n > len(m.buf) {
		m.flush()
	}
	r := m.buf[m.n : m.n+n]
	m.n += n
	return r
}

func (m *Measurement) flush() {
	m.h.Write(m.buf[:m.n])
	m.hashed += uint64(m.n)
	m.n = 0
}

// Sum returns the MRENCLAVE of the pages added so far, as EINIT would
// record it. The measurement can go on afterwards.
func (m *Measurement) Sum() [32]byte {
	m.flush()
	var out [32]byte
	m.h.Sum(out[:0])
	return out
}
