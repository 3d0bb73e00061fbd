package sgx

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// The numbers of the Cloister enclave layout v1 (docs/enclave-layout.md).
const (
	// LayoutSSAFrameSize is SECS.SSAFRAMESIZE in pages. One page holds
	// the GPRSGX area and the XSAVE area of XFRM x87|SSE (576 bytes) with
	// MISCSELECT 0.
	LayoutSSAFrameSize = 1
	// LayoutMaxMemorySize bounds MemorySize, and so SECS.SIZE, at 64 GiB.
	LayoutMaxMemorySize = 64 << 30
	// LayoutMaxThreads bounds Threads: one TCS each.
	LayoutMaxThreads = 256
	// LayoutMinHeap is the least heap a layout leaves after the thread
	// areas.
	LayoutMinHeap = 1 << 20

	// A thread area, from its lowest page: one guard page that is not
	// added, the stack, the TCS, NSSA SSA frames and one TLS page. The
	// stack grows down, so an overflow faults on the guard page and an
	// underflow on the TCS, which enclave code cannot access.
	layoutGuardPages = 1
	layoutStackPages = 64
	layoutSSAFrames  = 2
	layoutTLSPages   = 1
	layoutThreadArea = layoutGuardPages + layoutStackPages + 1 + layoutSSAFrames*LayoutSSAFrameSize + layoutTLSPages

	// layoutManifestPrefix is the size of the manifest's length prefix.
	layoutManifestPrefix = 8
	// layoutSegLimit is TCS.FSLIMIT and TCS.GSLIMIT: EADD requires the
	// low 12 bits set; 64-bit mode ignores the limits.
	layoutSegLimit = 0xfff
)

// The fields of a TCS (Intel SDM Vol. 3D, "Thread Control Structure
// (TCS)"): byte offsets within the page.
const (
	tcsStage   = 0
	tcsFlags   = 8
	tcsOSSA    = 16
	tcsCSSA    = 24
	tcsNSSA    = 28
	tcsOEntry  = 32
	tcsAEP     = 40
	tcsOFSBase = 48
	tcsOGSBase = 56
	tcsFSLimit = 64
	tcsGSLimit = 68
	tcsSize    = 72 // the bytes v1 writes; the rest of the page is zero
)

// Layout is the input of the Cloister enclave layout v1: everything
// MRENCLAVE depends on. Its methods are pure functions of these fields.
type Layout struct {
	Launcher   []byte // the launcher binary, measured as opaque bytes
	Manifest   []byte // the canonical enclave manifest bytes
	MemorySize uint64 // bytes; the enclave's committed memory
	Threads    int    // 1..LayoutMaxThreads
	// Debug sets the DEBUG attribute. Like every attribute it is outside
	// MRENCLAVE: a debug and a production build of the same input have
	// the same MRENCLAVE and differ in ATTRIBUTES and in their SIGSTRUCTs.
	Debug bool
}

// LayoutError is a Layout field that no enclave can be built from.
type LayoutError struct {
	Field string // "launcher", "memory_size" or "threads", as in the enclave manifest
	Msg   string
}

func (e *LayoutError) Error() string { return "sgx: enclave layout: " + e.Field + ": " + e.Msg }

func layoutErrorf(field, format string, args ...any) *LayoutError {
	return &LayoutError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Region is a run of pages that a layout adds with the same SECINFO
// flags. Pages that no region holds (each thread's guard page, and the
// range from MemorySize to SECS.SIZE) are never added.
type Region struct {
	Name     string // "launcher", "manifest", "stack[i]", "tcs[i]", "ssa[i]", "tls[i]" or "heap"
	Offset   uint64 // from the enclave's base; page aligned
	Pages    uint64
	Flags    uint64 // SECINFO.FLAGS: PageReg or PageTCS with PermR, PermW, PermX
	Extended bool   // every 256-byte chunk is EEXTENDed, not only EADDed
	// Data is the region's contents from its first byte, zero-padded
	// to Pages*PageSize; nil for zero pages.
	Data []byte
}

// SECSSize is SECS.SIZE: the smallest power of two at least MemorySize
// (at least two pages, as ECREATE requires).
func (l Layout) SECSSize() uint64 {
	if l.MemorySize <= 2*PageSize {
		return 2 * PageSize
	}
	return 1 << bits.Len64(l.MemorySize-1)
}

// Attributes are the enclave's ATTRIBUTES at ECREATE, and the ones its
// SIGSTRUCT carries: FLAGS MODE64BIT, with DEBUG when Debug, and not
// INIT, which EINIT sets; XFRM x87|SSE (3). Both are little-endian
// uint64s.
func (l Layout) Attributes() [16]byte {
	flags := uint64(AttributeMode64)
	if l.Debug {
		flags |= AttributeDebug
	}
	var a [16]byte
	binary.LittleEndian.PutUint64(a[:8], flags)
	binary.LittleEndian.PutUint64(a[8:], layoutXFRM)
	return a
}

// layoutXFRM is x87 (bit 0) and SSE (bit 1): the XSAVE features that
// every enclave must enable.
const layoutXFRM = 0x3

// AttributeMask is the ATTRIBUTEMASK a SIGSTRUCT of this layout carries:
// every bit of FLAGS and XFRM. EINIT then launches the enclave only with
// exactly Attributes(): a production signature cannot launch a debug
// enclave nor the other way round, no loader can add PROVISIONKEY, KSS
// or any future flag, and XFRM is exactly x87|SSE, which the one-page SSA
// frame holds. The mask is outside MRENCLAVE, so relaxing it later (to
// let the loader enable AVX, say) needs a new signature, not a new
// measurement.
func (l Layout) AttributeMask() [16]byte {
	var m [16]byte
	for i := range m {
		m[i] = 0xff
	}
	return m
}

// MinMemorySize is the least MemorySize the layout of l's launcher,
// manifest and thread count fits in: the launcher, the manifest, the
// thread areas and LayoutMinHeap of heap.
func (l Layout) MinMemorySize() uint64 {
	return l.heapPage()*PageSize + LayoutMinHeap
}

// heapPage is the page number where the heap starts: the first page
// after the thread areas.
func (l Layout) heapPage() uint64 {
	threads := uint64(max(l.Threads, 0))
	return pagesFor(uint64(len(l.Launcher))) +
		pagesFor(layoutManifestPrefix+uint64(len(l.Manifest))) +
		threads*layoutThreadArea
}

func pagesFor(n uint64) uint64 { return (n + PageSize - 1) / PageSize }

// Validate reports the first field of l that no layout can be built
// from, as a *LayoutError.
func (l Layout) Validate() error {
	switch {
	case len(l.Launcher) == 0:
		return layoutErrorf("launcher", "empty")
	case l.Threads < 1 || l.Threads > LayoutMaxThreads:
		return layoutErrorf("threads", "%d, want 1 to %d", l.Threads, LayoutMaxThreads)
	case l.MemorySize%PageSize != 0:
		return layoutErrorf("memory_size", "%d bytes is not a multiple of %d", l.MemorySize, PageSize)
	case l.MemorySize > LayoutMaxMemorySize:
		return layoutErrorf("memory_size", "%d bytes is above the maximum of %d GiB", l.MemorySize, LayoutMaxMemorySize>>30)
	}
	if least := l.MinMemorySize(); l.MemorySize < least {
		return layoutErrorf("memory_size", "%d bytes is below the minimum of %d MiB for this launcher, manifest and thread count",
			l.MemorySize, (least+1<<20-1)>>20)
	}
	return nil
}

// Regions lists the pages of the layout in the order they are added and
// measured, from offset 0.
func (l Layout) Regions() ([]Region, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	rs := make([]Region, 0, 3+4*l.Threads)
	add := func(r Region) { rs = append(rs, r) }

	page := uint64(0) // the next region's first page
	launcherPages := pagesFor(uint64(len(l.Launcher)))
	add(Region{Name: "launcher", Offset: 0, Pages: launcherPages, Flags: PageReg | PermR | PermX, Extended: true, Data: l.Launcher})
	page += launcherPages

	manifest := make([]byte, layoutManifestPrefix+len(l.Manifest))
	binary.LittleEndian.PutUint64(manifest, uint64(len(l.Manifest)))
	copy(manifest[layoutManifestPrefix:], l.Manifest)
	manifestPages := pagesFor(uint64(len(manifest)))
	add(Region{Name: "manifest", Offset: page * PageSize, Pages: manifestPages, Flags: PageReg | PermR, Extended: true, Data: manifest})
	page += manifestPages

	for i := range l.Threads {
		stack := page + layoutGuardPages // the guard page below it is not added
		tcs := stack + layoutStackPages
		ssa := tcs + 1
		tls := ssa + layoutSSAFrames*LayoutSSAFrameSize
		add(Region{Name: fmt.Sprintf("stack[%d]", i), Offset: stack * PageSize, Pages: layoutStackPages, Flags: PageReg | PermR | PermW})
		add(Region{Name: fmt.Sprintf("tcs[%d]", i), Offset: tcs * PageSize, Pages: 1, Flags: PageTCS, Extended: true,
			Data: layoutTCS(ssa*PageSize, tls*PageSize)})
		add(Region{Name: fmt.Sprintf("ssa[%d]", i), Offset: ssa * PageSize, Pages: layoutSSAFrames * LayoutSSAFrameSize, Flags: PageReg | PermR | PermW, Extended: true})
		add(Region{Name: fmt.Sprintf("tls[%d]", i), Offset: tls * PageSize, Pages: layoutTLSPages, Flags: PageReg | PermR | PermW, Extended: true})
		page = tls + layoutTLSPages
	}

	add(Region{Name: "heap", Offset: page * PageSize, Pages: l.MemorySize/PageSize - page, Flags: PageReg | PermR | PermW})
	return rs, nil
}

// layoutTCS is the first tcsSize bytes of a thread's TCS: STAGE, FLAGS,
// CSSA, OENTRY (the launcher's first byte) and AEP are zero.
func layoutTCS(ossa, tls uint64) []byte {
	t := make([]byte, tcsSize)
	le := binary.LittleEndian
	le.PutUint64(t[tcsOSSA:], ossa)
	le.PutUint32(t[tcsNSSA:], layoutSSAFrames)
	le.PutUint64(t[tcsOFSBase:], tls)
	le.PutUint64(t[tcsOGSBase:], tls)
	le.PutUint32(t[tcsFSLimit:], layoutSegLimit)
	le.PutUint32(t[tcsGSLimit:], layoutSegLimit)
	return t
}

// MRENCLAVE is the measurement of the enclave the layout builds.
func (l Layout) MRENCLAVE() ([32]byte, error) {
	m, err := l.measure()
	if err != nil {
		return [32]byte{}, err
	}
	return m.Sum(), nil
}

func (l Layout) measure() (*Measurement, error) {
	rs, err := l.Regions()
	if err != nil {
		return nil, err
	}
	m := NewMeasurement(LayoutSSAFrameSize, l.SECSSize())
	for _, r := range rs {
		if !r.Extended {
			if err := m.AddPages(r.Offset, r.Pages, r.Flags); err != nil {
				return nil, fmt.Errorf("measuring %s: %w", r.Name, err)
			}
			continue
		}
		for p := range r.Pages {
			var data []byte
			if from := p * PageSize; from < uint64(len(r.Data)) {
				data = r.Data[from:min(from+PageSize, uint64(len(r.Data)))]
			}
			if err := m.AddPage(r.Offset+p*PageSize, r.Flags, data, r.Extended); err != nil {
				return nil, fmt.Errorf("measuring %s: %w", r.Name, err)
			}
		}
	}
	return m, nil
}
