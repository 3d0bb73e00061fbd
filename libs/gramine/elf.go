package gramine

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
)

// MaxPALSize bounds the libpal.so this package loads: Gramine's is about
// 1 MiB; a stand-in is smaller.
const MaxPALSize = 64 << 20

// ErrELF is returned, wrapped, for a libpal.so that is not an ELF file
// Gramine's signer could load.
var ErrELF = errors.New("gramine: invalid libpal ELF")

// Segment is a PT_LOAD program header of the PAL, as Gramine's signer
// reads it with pyelftools.
type Segment struct {
	Offset, Vaddr, Filesz, Memsz uint64
	Flags                        elf.ProgFlag // PF_R, PF_W, PF_X
}

// PAL is a loaded libpal.so: its bytes, its loadable segments in
// program-header order and its entry point.
type PAL struct {
	data     []byte
	Segments []Segment
	Entry    uint64
}

// LoadPAL reads the program headers of a libpal.so. It refuses what
// Gramine's signer could not measure: a file that is not a 64-bit
// little-endian ELF, no loadable segment, a segment whose file bytes lie
// beyond the end of the file or whose addresses overflow.
func LoadPAL(b []byte) (p *PAL, err error) {
	if len(b) > MaxPALSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d MiB", ErrELF, len(b), MaxPALSize>>20)
	}
	// debug/elf is hardened by Go's own fuzzing; a panic on bytes it was
	// never shown must still be an error here, not a crash of a service.
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("%w: %v", ErrELF, r)
		}
	}()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrELF, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("%w: %s %s, want a 64-bit little-endian ELF", ErrELF, f.Class, f.Data)
	}
	if f.Entry > maxAddress {
		return nil, fmt.Errorf("%w: entry point %#x overflows the address space", ErrELF, f.Entry)
	}
	p = &PAL{data: b, Entry: f.Entry}
	for _, pr := range f.Progs {
		if pr.Type != elf.PT_LOAD {
			continue
		}
		s := Segment{Offset: pr.Off, Vaddr: pr.Vaddr, Filesz: pr.Filesz, Memsz: pr.Memsz, Flags: pr.Flags}
		switch {
		case s.Offset > uint64(len(b)) || s.Filesz > uint64(len(b))-s.Offset:
			return nil, fmt.Errorf("%w: segment at offset %#x with %#x bytes lies beyond the file's %#x bytes", ErrELF, s.Offset, s.Filesz, len(b))
		case s.Vaddr+s.Memsz < s.Vaddr || s.Vaddr+s.Memsz > maxAddress:
			return nil, fmt.Errorf("%w: segment at %#x of %#x bytes overflows the address space", ErrELF, s.Vaddr, s.Memsz)
		}
		p.Segments = append(p.Segments, s)
	}
	if len(p.Segments) == 0 {
		return nil, fmt.Errorf("%w: no loadable segment", ErrELF)
	}
	// Gramine measures every segment's pages, overlaps included; bound
	// the work a hostile PAL can ask for.
	if len(p.Segments) > maxSegments {
		return nil, fmt.Errorf("%w: %d loadable segments, more than %d", ErrELF, len(p.Segments), maxSegments)
	}
	_, span := p.span()
	var pages uint64
	for _, s := range p.Segments {
		pages += (roundup(s.Vaddr+s.Memsz) - rounddown(s.Vaddr)) / pageSize
	}
	if pages > 2*span/pageSize+uint64(len(p.Segments)) {
		return nil, fmt.Errorf("%w: the loadable segments overlap over %d pages of a %d-page image", ErrELF, pages, span/pageSize)
	}
	return p, nil
}

// maxSegments bounds a PAL's loadable segments: Gramine's has four.
const maxSegments = 64

// maxAddress bounds the addresses a segment may reach, so that rounding
// up to a page never overflows.
const maxAddress = 1 << 56

// span returns the page-aligned range the segments cover: the lowest
// rounded-down address and the size up to the highest rounded-up end.
func (p *PAL) span() (mapaddr, size uint64) {
	mapaddr = ^uint64(0)
	var end uint64
	for _, s := range p.Segments {
		mapaddr = min(mapaddr, rounddown(s.Vaddr))
		end = max(end, roundup(s.Vaddr+s.Memsz))
	}
	return mapaddr, end - mapaddr
}

// bytesAt returns the file's bytes from start to end; Gramine's signer
// reads them with seek and read, which stop at the end of the file.
func (p *PAL) bytesAt(start, end uint64) []byte {
	if start >= uint64(len(p.data)) {
		return nil
	}
	return p.data[start:min(end, uint64(len(p.data)))]
}

func rounddown(a uint64) uint64 { return a - a%pageSize }

func roundup(a uint64) uint64 {
	if r := a % pageSize; r != 0 {
		return a + pageSize - r
	}
	return a
}
