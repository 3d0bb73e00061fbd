package gramine

import (
	"crypto/sha256"
	"encoding/binary"
)

// StandInELF returns a small 64-bit shared object, made here, that stands
// in for one of Gramine's runtime libraries (libpal.so, libsysdb.so) where
// Gramine itself is not available: in tests and in `cloister server -dev`.
// It is loaded and measured exactly as Gramine's signer loads and measures
// the real one, but holds no code that runs: an enclave built from it does
// nothing. Its three loadable segments (read-only, code, data with a
// zero-filled tail) carry bytes derived from name, so that two stand-ins
// differ.
func StandInELF(name string) []byte {
	const (
		ehSize   = 64
		phSize   = 56
		nProgs   = 3
		textOff  = 0x1000
		dataOff  = 0x2000
		fileSize = 0x2000 + 0x200
	)
	b := make([]byte, fileSize)
	le := binary.LittleEndian
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1 // ELFCLASS64, little-endian, EV_CURRENT
	le.PutUint16(b[16:], 3)    // ET_DYN
	le.PutUint16(b[18:], 62)   // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], textOff) // e_entry: the first byte of code
	le.PutUint64(b[32:], ehSize)  // e_phoff
	le.PutUint16(b[52:], ehSize)
	le.PutUint16(b[54:], phSize)
	le.PutUint16(b[56:], nProgs)

	prog := func(i int, flags uint32, off, filesz, memsz uint64) {
		p := b[ehSize+i*phSize:]
		le.PutUint32(p[0:], 1) // PT_LOAD
		le.PutUint32(p[4:], flags)
		le.PutUint64(p[8:], off)
		le.PutUint64(p[16:], off) // p_vaddr
		le.PutUint64(p[24:], off) // p_paddr
		le.PutUint64(p[32:], filesz)
		le.PutUint64(p[40:], memsz)
		le.PutUint64(p[48:], 0x1000)
	}
	prog(0, 4, 0, 0x400, 0x400)        // R: headers and read-only data
	prog(1, 5, textOff, 0x100, 0x100)  // R+X: "code"
	prog(2, 6, dataOff, 0x200, 0x3000) // R+W: data, then zeros
	copy(b[0x200:], "Cloister stand-in for Gramine's "+name+": it cannot start an enclave\x00")
	fill := sha256.Sum256([]byte(name))
	for i := textOff; i < textOff+0x100; i++ {
		b[i] = fill[i%len(fill)]
	}
	for i := dataOff; i < fileSize; i++ {
		b[i] = fill[(i+7)%len(fill)] ^ 0x5a
	}
	return b
}
