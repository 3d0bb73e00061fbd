package gramine

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cloister-cc/cloister/libs/sgx"
)

// The numbers of Gramine's Linux-SGX PAL that its signer builds the
// enclave from (pal_linux_defs.h, sgx_arch.h, pal_tcb.h; exported to the
// signer as _graminelibos_offsets).
const (
	pageSize          = sgx.PageSize
	ssaFrameSize      = 4 * pageSize // SSA_FRAME_SIZE
	ssaFrameNum       = 2            // SSA_FRAME_NUM
	tcsSize           = pageSize     // TCS_SIZE
	stackSize         = 0x40000      // ENCLAVE_STACK_SIZE
	sigStackSize      = 0x10000      // ENCLAVE_SIG_STACK_SIZE
	enclaveBase       = 0            // DEFAULT_ENCLAVE_BASE
	heapMin           = 0x10000      // MMAP_MIN_ADDR
	canaryDefault     = 0xbadbadbadbad
	gprSize           = 0xb8 // sizeof(sgx_pal_gpr_t)
	tcsSegLimit       = 0xfff
	maxMeasuredThread = 8192 // far beyond any enclave; bounds the work one manifest can ask for

	// Fields of the TCS (sgx_arch.h).
	tcsOSSA     = 0x10
	tcsNSSA     = 0x1c
	tcsOEntry   = 0x20
	tcsOGSBase  = 0x38
	tcsOFSLimit = 0x40
	tcsOGSLimit = 0x44

	// Fields of struct pal_enclave_tcb, the thread's TLS page (pal_tcb.h):
	// PAL_TCB's self and canary, 256 bytes for the LibOS, then the PAL's.
	tlsSelf           = 0x000
	tlsCanary         = 0x008
	tlsEnclaveSize    = 0x110
	tlsTCSOffset      = 0x118
	tlsInitialStack   = 0x120
	tlsSigStackLow    = 0x130
	tlsSigStackHigh   = 0x138
	tlsSSA            = 0x148
	tlsGPR            = 0x150
	tlsManifestSize   = 0x1a0
	tlsHeapMin        = 0x1a8
	tlsHeapMax        = 0x1b0
	secinfoRegRWX     = sgx.PageReg | sgx.PermR | sgx.PermW | sgx.PermX
	secinfoRegRW      = sgx.PageReg | sgx.PermR | sgx.PermW
	secinfoRegR       = sgx.PageReg | sgx.PermR
	descManifest      = "manifest"
	descSSA           = "ssa"
	descTCS           = "tcs"
	descTLS           = "tls"
	descStack         = "stack"
	descSigStack      = "sig_stack"
	descCode          = "code"
	descData          = "data"
	descFree          = "free"
	minEnclaveSizeLog = 13 // two pages, the least ECREATE takes
)

// ThreadFootprint is the enclave memory each thread takes: its SSA
// frames, TCS, TLS page, stack and signal stack.
const ThreadFootprint = ssaFrameSize*ssaFrameNum + tcsSize + pageSize + stackSize + sigStackSize

// Enclave is everything Gramine's MRENCLAVE depends on: the manifest's
// bytes exactly as signed, the PAL, and three of the manifest's values.
type Enclave struct {
	Manifest   []byte // the .manifest.sgx bytes; a NUL is appended in the enclave
	PAL        *PAL
	Size       uint64 // sgx.enclave_size in bytes: a power of two
	MaxThreads int    // sgx.max_threads
	EDMM       bool   // sgx.edmm_enable: the free area is added at run time, unmeasured
}

// ErrTooSmall is returned, wrapped, when the enclave's areas do not fit
// its size, as the signer's "Enclave size is not large enough".
var ErrTooSmall = errors.New("gramine: enclave too small")

// Area is a range of enclave memory as Gramine's signer lists it with
// --verbose: the ELF segments of the PAL each as their own area.
type Area struct {
	Desc     string `json:"desc"` // manifest, ssa, tcs, tls, stack, sig_stack, code, data or free
	Start    uint64 `json:"start"`
	End      uint64 `json:"end"`
	Flags    uint64 `json:"-"` // SECINFO.FLAGS
	Measured bool   `json:"measured"`
}

// Type is "REG" or "TCS", and Prot "RWX" with "-" for what is missing, as
// the signer prints them.
func (a Area) Type() string {
	if a.Flags&sgx.PageTCS != 0 && a.Flags&sgx.PageReg == 0 {
		return "TCS"
	}
	return "REG"
}

// Prot is the permissions as the signer prints them: "R-X", "RW-"...
func (a Area) Prot() string {
	p := []byte("---")
	if a.Flags&sgx.PermR != 0 {
		p[0] = 'R'
	}
	if a.Flags&sgx.PermW != 0 {
		p[1] = 'W'
	}
	if a.Flags&sgx.PermX != 0 {
		p[2] = 'X'
	}
	return string(p)
}

// String is the line of gramine-sgx-sign --verbose for the area.
func (a Area) String() string {
	s := fmt.Sprintf("%016x-%016x [%s:%s] (%s)", a.Start, a.End, a.Type(), a.Prot(), a.Desc)
	if a.Measured {
		s += " measured"
	}
	return s
}

// area is a memory area while the layout is built, as in the signer.
type area struct {
	desc    string
	addr    uint64
	placed  bool // addr is set
	size    uint64
	flags   uint64
	measure bool
	content []byte
	pal     bool
}

// ValidateSize checks an enclave size as Gramine's loader does: a power
// of two, at least two pages, and within what a 64-bit enclave can have.
func ValidateSize(size uint64) error {
	if size == 0 || size&(size-1) != 0 {
		lo, hi := nearestPowersOfTwo(size)
		switch {
		case hi > MaxEnclaveSize:
			return fmt.Errorf("enclave size %s is not a power of two: the nearest valid size is %s", FormatSize(size), FormatSize(min(lo, MaxEnclaveSize)))
		case lo < 1<<minEnclaveSizeLog:
			return fmt.Errorf("enclave size %s is not a power of two: the nearest valid size is %s", FormatSize(size), FormatSize(max(hi, 1<<minEnclaveSizeLog)))
		}
		return fmt.Errorf("enclave size %s is not a power of two: the nearest valid sizes are %s and %s", FormatSize(size), FormatSize(lo), FormatSize(hi))
	}
	if size < 1<<minEnclaveSizeLog || size > MaxEnclaveSize {
		return fmt.Errorf("enclave size %s is outside %s to %s", FormatSize(size), FormatSize(1<<minEnclaveSizeLog), FormatSize(MaxEnclaveSize))
	}
	return nil
}

// MaxEnclaveSize is the largest sgx.enclave_size this package measures:
// 1 TiB, far above the 64 GiB of today's largest EPC with EDMM.
const MaxEnclaveSize = 1 << 40

func nearestPowersOfTwo(n uint64) (lo, hi uint64) {
	if n < 2 {
		return 1, 2
	}
	lo = 1
	for lo*2 <= n && lo < 1<<62 {
		lo *= 2
	}
	return lo, lo * 2
}

// layout places the areas as Gramine's signer does: from the top of the
// enclave down, the manifest (with its NUL), the SSA frames, TCSs, TLS
// pages, stacks and signal stacks of every thread and the PAL; then, unless
// EDMM, the free area from MMAP_MIN_ADDR up to the lowest of them. It
// fills the TCS and TLS pages.
func (e Enclave) layout() ([]*area, error) {
	if err := ValidateSize(e.Size); err != nil {
		return nil, err
	}
	if e.MaxThreads < 1 || e.MaxThreads > maxMeasuredThread {
		return nil, fmt.Errorf("max_threads %d, want 1 to %d", e.MaxThreads, maxMeasuredThread)
	}
	if e.PAL == nil {
		return nil, fmt.Errorf("no libpal")
	}
	if uint64(len(e.Manifest)) >= e.Size {
		return nil, fmt.Errorf("the manifest's %d bytes do not fit the enclave's %s", len(e.Manifest), FormatSize(e.Size))
	}
	threads := uint64(e.MaxThreads)
	manifest := make([]byte, len(e.Manifest)+1) // the in-enclave manifest is NUL-terminated
	copy(manifest, e.Manifest)

	areas := []*area{
		{desc: descManifest, size: roundup(uint64(len(manifest))), flags: secinfoRegR, measure: true, content: manifest},
		{desc: descSSA, size: threads * ssaFrameSize * ssaFrameNum, flags: secinfoRegRW, measure: true},
		{desc: descTCS, size: threads * tcsSize, flags: sgx.PageTCS, measure: true},
		{desc: descTLS, size: threads * pageSize, flags: secinfoRegRW, measure: true},
	}
	for range threads {
		areas = append(areas, &area{desc: descStack, size: stackSize, flags: secinfoRegRW, measure: true})
	}
	for range threads {
		areas = append(areas, &area{desc: descSigStack, size: sigStackSize, flags: secinfoRegRW, measure: true})
	}
	mapaddr, palSize := e.PAL.span()
	pal := &area{desc: "pal", size: palSize, flags: sgx.PageReg, measure: true, pal: true}
	if mapaddr > 0 { // a PAL linked at a fixed address stays there
		pal.addr, pal.placed = mapaddr, true
	}
	if pal.placed && (pal.addr >= e.Size || palSize > e.Size-pal.addr) {
		return nil, fmt.Errorf("the PAL, linked at %#x, lies outside the enclave's %s", pal.addr, FormatSize(e.Size))
	}
	areas = append(areas, pal)

	last := enclaveBase + e.Size
	for _, a := range areas {
		if a.placed {
			continue
		}
		if a.size > last || last-a.size < heapMin {
			return nil, fmt.Errorf("%w: an enclave of %s is not large enough for %d threads and this manifest and PAL", ErrTooSmall, FormatSize(e.Size), e.MaxThreads)
		}
		a.addr, a.placed = last-a.size, true
		last = a.addr
	}
	if err := e.fillThreads(areas, pal, uint64(len(manifest))); err != nil {
		return nil, err
	}
	if e.EDMM {
		return areas, nil
	}

	// The signer's free areas, gap by gap; with the PAL placed like the
	// rest there is one, from MMAP_MIN_ADDR to the lowest area.
	var free []*area
	for _, a := range areas {
		if end := a.addr + a.size; end < last {
			free = append(free, &area{desc: descFree, addr: end, placed: true, size: last - end, flags: secinfoRegRWX})
			last = a.addr
		}
	}
	if last > heapMin {
		free = append(free, &area{desc: descFree, addr: heapMin, placed: true, size: last - heapMin, flags: secinfoRegRWX})
	}
	return append(areas, free...), nil
}

// fillThreads writes each thread's TCS and TLS page, after checking, as
// the signer does, that only the free area lies in the heap's range.
func (e Enclave) fillThreads(areas []*area, pal *area, manifestSize uint64) error {
	heapMax := pal.addr
	find := func(desc string) []*area {
		var out []*area
		for _, a := range areas {
			if a.desc == desc {
				out = append(out, a)
			}
		}
		return out
	}
	for _, a := range areas {
		if a.addr+a.size > heapMin && a.addr < heapMax {
			return fmt.Errorf("the %s area at %#x lies in the heap's range, below the PAL at %#x", a.desc, a.addr, heapMax)
		}
	}
	ssa, tcs, tls := find(descSSA)[0], find(descTCS)[0], find(descTLS)[0]
	stacks, sigStacks := find(descStack), find(descSigStack)
	tcs.content = make([]byte, tcs.size)
	tls.content = make([]byte, tls.size)
	le := binary.LittleEndian
	for t := range uint64(e.MaxThreads) {
		ssaAddr := ssa.addr + ssaFrameSize*ssaFrameNum*t
		c := tcs.content[t*tcsSize:]
		le.PutUint64(c[tcsOSSA:], ssaAddr-enclaveBase)
		le.PutUint32(c[tcsNSSA:], ssaFrameNum)
		le.PutUint64(c[tcsOEntry:], pal.addr+e.PAL.Entry-enclaveBase)
		le.PutUint64(c[tcsOGSBase:], tls.addr-enclaveBase+pageSize*t)
		le.PutUint32(c[tcsOFSLimit:], tcsSegLimit)
		le.PutUint32(c[tcsOGSLimit:], tcsSegLimit)

		l := tls.content[t*pageSize:]
		le.PutUint64(l[tlsSelf:], tls.addr+pageSize*t)
		le.PutUint64(l[tlsCanary:], canaryDefault)
		le.PutUint64(l[tlsEnclaveSize:], e.Size)
		le.PutUint64(l[tlsTCSOffset:], tcs.addr-enclaveBase+tcsSize*t)
		le.PutUint64(l[tlsInitialStack:], stacks[t].addr+stacks[t].size)
		le.PutUint64(l[tlsSigStackLow:], sigStacks[t].addr)
		le.PutUint64(l[tlsSigStackHigh:], sigStacks[t].addr+sigStacks[t].size)
		le.PutUint64(l[tlsSSA:], ssaAddr)
		le.PutUint64(l[tlsGPR:], ssaAddr+ssaFrameSize-gprSize)
		le.PutUint64(l[tlsManifestSize:], manifestSize)
		le.PutUint64(l[tlsHeapMin:], heapMin)
		le.PutUint64(l[tlsHeapMax:], heapMax)
	}
	return nil
}

// Measure computes MRENCLAVE as Gramine's signer does and lists the areas
// as its --verbose output does, in the order they are measured.
func (e Enclave) Measure() ([32]byte, []Area, error) {
	areas, err := e.layout()
	if err != nil {
		return [32]byte{}, nil, fmt.Errorf("laying out the enclave: %w", err)
	}
	m := sgx.NewMeasurement(ssaFrameSize/pageSize, e.Size)
	var list []Area
	for _, a := range areas {
		if a.pal {
			segs, err := e.measurePAL(m, a)
			if err != nil {
				return [32]byte{}, nil, err
			}
			list = append(list, segs...)
			continue
		}
		if !a.measure {
			if err := m.AddPages(a.addr-enclaveBase, a.size/pageSize, a.flags); err != nil {
				return [32]byte{}, nil, fmt.Errorf("measuring the %s area: %w", a.desc, err)
			}
		} else {
			for off := uint64(0); off < a.size; off += pageSize {
				var data []byte
				if off < uint64(len(a.content)) {
					data = a.content[off:min(off+pageSize, uint64(len(a.content)))]
				}
				if err := m.AddPage(a.addr+off-enclaveBase, a.flags, data, true); err != nil {
					return [32]byte{}, nil, fmt.Errorf("measuring the %s area: %w", a.desc, err)
				}
			}
		}
		list = append(list, Area{Desc: a.desc, Start: a.addr, End: a.addr + a.size, Flags: a.flags, Measured: a.measure})
	}
	return m.Sum(), list, nil
}

// measurePAL adds the PAL's loadable segments page by page, each with
// the permissions of its program header, file bytes where the segment has
// them and zeros around them, as the signer's load_file does.
func (e Enclave) measurePAL(m *sgx.Measurement, a *area) ([]Area, error) {
	mapaddr, _ := e.PAL.span()
	base := a.addr - mapaddr
	var list []Area
	for _, s := range e.PAL.Segments {
		flags := a.flags
		if s.Flags&4 != 0 { // PF_R
			flags |= sgx.PermR
		}
		if s.Flags&2 != 0 { // PF_W
			flags |= sgx.PermW
		}
		if s.Flags&1 != 0 { // PF_X
			flags |= sgx.PermX
		}
		desc := descData
		if flags&sgx.PermX != 0 {
			desc = descCode
		}
		addr := base + s.Vaddr
		fAddr := rounddown(s.Offset)
		mAddr := rounddown(addr)
		mSize := roundup(addr+s.Memsz) - mAddr
		list = append(list, Area{Desc: desc, Start: mAddr, End: mAddr + mSize, Flags: flags, Measured: true})

		page := make([]byte, pageSize)
		for p := mAddr; p < mAddr+mSize; p += pageSize {
			start := p - mAddr + fAddr
			end := start + pageSize
			var lead, trail uint64 // zero bytes before and after the file's
			if start < s.Offset {
				lead = min(s.Offset-start, pageSize)
			}
			if fileEnd := s.Offset + s.Filesz; end > fileEnd {
				trail = min(end-fileEnd, pageSize)
			}
			clear(page)
			var data []byte
			if start+lead < end-trail {
				data = e.PAL.bytesAt(start+lead, end-trail)
			}
			if lead+uint64(len(data))+trail != pageSize {
				return nil, fmt.Errorf("measuring the PAL: %w: the segment at offset %#x does not fill its page at %#x", ErrELF, s.Offset, p)
			}
			copy(page[lead:], data)
			if err := m.AddPage(p-enclaveBase, flags, page, true); err != nil {
				return nil, fmt.Errorf("measuring the PAL's %s segment: %w", desc, err)
			}
		}
	}
	return list, nil
}
