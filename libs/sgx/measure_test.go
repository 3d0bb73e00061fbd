package sgx

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// layoutPattern is the test inputs' bytes: byte i is (i*31 + seed) mod
// 251, a period that no page or chunk boundary shares. It is the
// pattern() of testdata/layout_v1.py.
func layoutPattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*31 + seed) % 251)
	}
	return b
}

// workedExample is the worked example of docs/enclave-layout.md.
func workedExample() Layout {
	return Layout{Launcher: []byte("cloister launcher"), Manifest: []byte(`{"v":1}`), MemorySize: 2 << 20, Threads: 1}
}

const workedExampleMRENCLAVE = "c9bf0bd057c4462354fd695df3ccf65f59bd232c3dd34f6ac41b74d2e5ea7e0b"

func mustMRENCLAVE(t testing.TB, l Layout) [32]byte {
	t.Helper()
	mr, err := l.MRENCLAVE()
	if err != nil {
		t.Fatalf("MRENCLAVE() error: %v", err)
	}
	return mr
}

func TestLayoutWorkedExample(t *testing.T) {
	l := workedExample()
	m, err := l.measure()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sumOf(m)); got != workedExampleMRENCLAVE {
		t.Errorf("MRENCLAVE() = %s, want %s", got, workedExampleMRENCLAVE)
	}
	if m.hashed != 63488 {
		t.Errorf("hashed %d bytes, want 63488", m.hashed)
	}
	if got, want := l.MinMemorySize(), uint64(1339392); got != want {
		t.Errorf("MinMemorySize() = %d, want %d", got, want)
	}

	attrs := map[bool]string{false: "04000000000000000300000000000000", true: "06000000000000000300000000000000"}
	for debug, want := range attrs {
		l.Debug = debug
		a := l.Attributes()
		if got := hex.EncodeToString(a[:]); got != want {
			t.Errorf("Debug %v: Attributes() = %s, want %s", debug, got, want)
		}
		mask := l.AttributeMask()
		if got := hex.EncodeToString(mask[:]); got != strings.Repeat("ff", 16) {
			t.Errorf("Debug %v: AttributeMask() = %s, want all ones", debug, got)
		}
	}

	// The document carries the same numbers.
	doc, err := os.ReadFile("../../docs/enclave-layout.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{workedExampleMRENCLAVE, "= 63488 bytes", "0400000000000000 0300000000000000", "0600000000000000 0300000000000000"} {
		if !bytes.Contains(doc, []byte(s)) {
			t.Errorf("docs/enclave-layout.md does not contain %q", s)
		}
	}
}

func sumOf(m *Measurement) []byte {
	s := m.Sum()
	return s[:]
}

// TestLayoutKnownAnswers checks MRENCLAVE against the independent
// implementation of docs/enclave-layout.md in testdata/layout_v1.py.
// Regenerate the table from the repository root with
//
//	python3 libs/sgx/testdata/layout_v1.py
//
// and replace the rows with its output (the first line is the worked
// example, workedExampleMRENCLAVE).
func TestLayoutKnownAnswers(t *testing.T) {
	tests := []struct {
		name                      string
		launcherLen, launcherSeed int
		manifestLen, manifestSeed int
		memorySize                uint64
		threads                   int
		want                      string
		hashed                    uint64
	}{
		{"tiny launcher, 2 MiB", 1, 7, 0, 0, 2097152, 1, "edd8388be236be4a3a8e7009efa8047991ddc7a85b8b47520745586df42bf30c", 63488},
		{"launcher 5000 B, 3 MiB", 5000, 1, 100, 2, 3145728, 1, "c6b9917ac520d11c2f9a0a7ab346deac8e34c5e700cddae2f58a89745bf80909", 84992},
		{"one page each, 4 threads", 4096, 3, 4088, 4, 4194304, 4, "ed6a70ab3e340d49b679b734f0f6b9db40e433b7aa347160e37c38912d5041bc", 157504},
		{"manifest over a page, 4 threads", 12289, 5, 4089, 6, 8384512, 4, "0e207ce07b99fd01cc35a83508db70d74f47a7e4ff5f600acdc1d3f9b5d8e495", 243456},
		{"256 threads, 80 MiB", 1, 7, 0, 0, 83886080, 256, "936f71d6d8ce08d8a50b09e391955c314fd0a4f911e52b51deca8fd201e83b01", 6547520},
		{"launcher 1 MiB + 1, 1 GiB", 1048577, 8, 3000, 9, 1073741824, 2, "c063c5a0c29848b0e3dff76851369e2e2fe3ab54cb9ab75cac7719375b81cb9e", 18139072},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, debug := range []bool{false, true} {
				l := Layout{
					Launcher:   layoutPattern(tt.launcherLen, tt.launcherSeed),
					Manifest:   layoutPattern(tt.manifestLen, tt.manifestSeed),
					MemorySize: tt.memorySize,
					Threads:    tt.threads,
					Debug:      debug,
				}
				m, err := l.measure()
				if err != nil {
					t.Fatalf("Debug %v: MRENCLAVE() error: %v", debug, err)
				}
				if got := hex.EncodeToString(sumOf(m)); got != tt.want {
					t.Errorf("Debug %v: MRENCLAVE() = %s, want %s", debug, got, tt.want)
				}
				if m.hashed != tt.hashed {
					t.Errorf("Debug %v: hashed %d bytes, want %d", debug, m.hashed, tt.hashed)
				}
			}
		})
	}
}

// TestMeasurementRecords builds the records of a small enclave by hand,
// from the SDM's description, and compares.
func TestMeasurementRecords(t *testing.T) {
	data := layoutPattern(300, 1)
	var want bytes.Buffer
	le := binary.LittleEndian
	rec := func(tag string, fields ...uint64) {
		b := make([]byte, 64)
		copy(b, tag)
		at := 8
		for _, f := range fields {
			le.PutUint64(b[at:], f)
			at += 8
		}
		want.Write(b)
	}
	ecreate := make([]byte, 64)
	copy(ecreate, "ECREATE\x00")
	le.PutUint32(ecreate[8:], 3)
	le.PutUint64(ecreate[12:], 1<<16)
	want.Write(ecreate)
	rec("EADD\x00\x00\x00\x00", 0x2000, 0x203)
	page := make([]byte, PageSize)
	copy(page, data)
	for c := range 16 {
		rec("EEXTEND\x00", 0x2000+uint64(c)*256)
		want.Write(page[c*256 : (c+1)*256])
	}
	rec("EADD\x00\x00\x00\x00", 0x5000, 0x100)

	m := NewMeasurement(3, 1<<16)
	if err := m.AddPage(0x2000, PageReg|PermR|PermW, data, true); err != nil {
		t.Fatal(err)
	}
	if err := m.AddPage(0x5000, PageTCS, []byte("not measured"), false); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Sum(), sha256.Sum256(want.Bytes()); got != want {
		t.Errorf("Sum() = %x, want %x", got, want)
	}
	// Sum does not end the measurement.
	if err := m.AddPage(0x6000, PageReg|PermR, nil, false); err != nil {
		t.Fatal(err)
	}
	rec("EADD\x00\x00\x00\x00", 0x6000, 0x201)
	if got, want := m.Sum(), sha256.Sum256(want.Bytes()); got != want {
		t.Errorf("Sum() after another page = %x, want %x", got, want)
	}
}

func TestMeasurementAddPageRejects(t *testing.T) {
	tests := []struct {
		name   string
		offset uint64
		flags  uint64
		data   []byte
	}{
		{"unaligned", 0x3001, PageReg | PermR, nil},
		{"last page plus one", 1 << 16, PageReg | PermR, nil},
		{"far outside", 1 << 40, PageReg | PermR, nil},
		{"data over a page", 0x3000, PageReg | PermR, make([]byte, PageSize+1)},
		{"PT_SECS", 0x3000, PageSECS | PermR, nil},
		{"PT_VA", 0x3000, 3 << 8, nil},
		{"TCS with permissions", 0x3000, PageTCS | PermR, nil},
		{"W without R", 0x3000, PageReg | PermW, nil},
		{"reserved bit", 0x3000, PageReg | PermR | 1<<3, nil},
		{"high reserved bit", 0x3000, PageReg | PermR | 1<<40, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMeasurement(1, 1<<16)
			if err := m.AddPage(0x2000, PageReg|PermR, nil, true); err != nil {
				t.Fatal(err)
			}
			before := m.Sum()
			if err := m.AddPage(tt.offset, tt.flags, tt.data, true); err == nil {
				t.Errorf("AddPage(%#x, %#x, %d bytes) = nil, want an error", tt.offset, tt.flags, len(tt.data))
			}
			if m.Sum() != before {
				t.Error("a refused page changed the measurement")
			}
			if err := m.AddPage(0x3000, PageReg|PermR, nil, false); err != nil {
				t.Errorf("AddPage after a refused page = %v, want nil", err)
			}
		})
	}
	// The last page of the enclave is fine.
	m := NewMeasurement(1, 1<<16)
	if err := m.AddPage(1<<16-PageSize, PageReg|PermR|PermW|PermX, make([]byte, PageSize), true); err != nil {
		t.Errorf("AddPage(last page) = %v, want nil", err)
	}
}

// TestMeasurementAddPages checks that a run of EADD-only pages measures
// the same as its pages one by one, wherever the run starts in the
// buffer and however long it is.
func TestMeasurementAddPages(t *testing.T) {
	for _, lead := range []int{0, 1, 3, 200} { // measured pages before the run
		for _, n := range []uint64{0, 1, 2, 255, 256, 257, 1000, 5000} {
			one, run := NewMeasurement(1, 1<<30), NewMeasurement(1, 1<<30)
			for p := range lead {
				data := layoutPattern(PageSize, p)
				for _, m := range []*Measurement{one, run} {
					if err := m.AddPage(uint64(p)*PageSize, PageReg|PermR|PermX, data, true); err != nil {
						t.Fatal(err)
					}
				}
			}
			from := uint64(lead+1) * PageSize
			for p := range n {
				if err := one.AddPage(from+p*PageSize, PageReg|PermR|PermW, nil, false); err != nil {
					t.Fatal(err)
				}
			}
			if err := run.AddPages(from, n, PageReg|PermR|PermW); err != nil {
				t.Fatal(err)
			}
			// Both go on alike.
			for _, m := range []*Measurement{one, run} {
				if err := m.AddPage(from+n*PageSize, PageTCS, []byte{1}, true); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := run.Sum(), one.Sum(); got != want {
				t.Errorf("%d pages, then AddPages(%d) = %x, want %x", lead, n, got, want)
			}
		}
	}
}

func TestMeasurementAddPagesRejects(t *testing.T) {
	tests := []struct {
		name          string
		offset, pages uint64
		flags         uint64
	}{
		{"unaligned", 0x3001, 1, PageReg | PermR},
		{"one page too many", 0x3000, 14, PageReg | PermR},
		{"a huge count", 0x3000, 1 << 62, PageReg | PermR},
		{"bad flags", 0x3000, 1, PageReg | PermW},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMeasurement(1, 1<<16)
			if err := m.AddPages(0x1000, 2, PageReg|PermR); err != nil {
				t.Fatal(err)
			}
			before := m.Sum()
			if err := m.AddPages(tt.offset, tt.pages, tt.flags); err == nil {
				t.Errorf("AddPages(%#x, %d, %#x) = nil, want an error", tt.offset, tt.pages, tt.flags)
			}
			if m.Sum() != before {
				t.Error("a refused run changed the measurement")
			}
			if err := m.AddPages(0x3000, 13, PageReg|PermR); err != nil {
				t.Errorf("AddPages(up to the end) after a refused run = %v, want nil", err)
			}
		})
	}
}

func TestMeasurementDoesNotAllocatePerPage(t *testing.T) {
	m := NewMeasurement(1, 1<<40)
	offset := uint64(0)
	data := layoutPattern(PageSize, 1)
	for _, extend := range []bool{false, true} {
		allocs := testing.AllocsPerRun(1000, func() {
			if err := m.AddPage(offset, PageReg|PermR|PermW, data, extend); err != nil {
				t.Fatal(err)
			}
			offset += PageSize
		})
		if allocs != 0 {
			t.Errorf("AddPage(extend %v): %v allocations per page, want 0", extend, allocs)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := m.AddPages(offset, 1000, PageReg|PermR|PermW); err != nil {
			t.Fatal(err)
		}
		offset += 1000 * PageSize
	})
	if allocs != 0 {
		t.Errorf("AddPages: %v allocations per run, want 0", allocs)
	}
}

func TestLayoutProperties(t *testing.T) {
	base := Layout{
		Launcher:   layoutPattern(9000, 1),
		Manifest:   layoutPattern(500, 2),
		MemorySize: 6 << 20,
		Threads:    2,
	}
	want := mustMRENCLAVE(t, base)
	if again := mustMRENCLAVE(t, base); again != want {
		t.Fatalf("MRENCLAVE() = %x, then %x", want, again)
	}
	// A copy of the inputs, not the same slices.
	clone := base
	clone.Launcher = bytes.Clone(base.Launcher)
	clone.Manifest = bytes.Clone(base.Manifest)
	if got := mustMRENCLAVE(t, clone); got != want {
		t.Fatalf("MRENCLAVE(copy) = %x, want %x", got, want)
	}

	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	changes := []struct {
		name   string
		change func(*Layout)
	}{
		{"launcher first byte", func(l *Layout) { l.Launcher = flip(l.Launcher, 0) }},
		{"launcher last byte", func(l *Layout) { l.Launcher = flip(l.Launcher, len(l.Launcher)-1) }},
		{"launcher one byte longer", func(l *Layout) { l.Launcher = append(bytes.Clone(l.Launcher), 1) }},
		{"launcher one page longer", func(l *Layout) { l.Launcher = append(bytes.Clone(l.Launcher), make([]byte, PageSize)...) }},
		{"manifest first byte", func(l *Layout) { l.Manifest = flip(l.Manifest, 0) }},
		{"manifest last byte", func(l *Layout) { l.Manifest = flip(l.Manifest, len(l.Manifest)-1) }},
		{"manifest one zero byte longer", func(l *Layout) { l.Manifest = append(bytes.Clone(l.Manifest), 0) }},
		{"memory size + 4096", func(l *Layout) { l.MemorySize += PageSize }},
		{"memory size - 4096", func(l *Layout) { l.MemorySize -= PageSize }},
		{"threads + 1", func(l *Layout) { l.Threads++ }},
		{"threads - 1", func(l *Layout) { l.Threads-- }},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			l := clone
			c.change(&l)
			if got := mustMRENCLAVE(t, l); got == want {
				t.Errorf("MRENCLAVE() = %x, unchanged", got)
			}
			if mustMRENCLAVE(t, base) != want {
				t.Error("the change reached the original inputs")
			}
		})
	}

	// The launcher is measured as the enclave holds it, zero-padded to a
	// page and without its length: trailing zeros within its last page
	// do not change the enclave. The manifest's launcher digest binds
	// the exact file.
	t.Run("launcher one zero byte longer", func(t *testing.T) {
		l := clone
		l.Launcher = append(bytes.Clone(l.Launcher), 0)
		if got := mustMRENCLAVE(t, l); got != want {
			t.Errorf("MRENCLAVE() = %x, want %x: the enclave's pages are the same", got, want)
		}
	})

	t.Run("debug", func(t *testing.T) {
		l := base
		l.Debug = true
		if got := mustMRENCLAVE(t, l); got != want {
			t.Errorf("Debug: MRENCLAVE() = %x, want %x (DEBUG is an attribute, not measured)", got, want)
		}
		if l.Attributes() == base.Attributes() {
			t.Errorf("Debug: Attributes() = %x, the same as without", l.Attributes())
		}
		if l.Attributes()[0] != AttributeMode64|AttributeDebug || base.Attributes()[0] != AttributeMode64 {
			t.Errorf("Attributes() FLAGS = %#x (debug), %#x, want %#x, %#x",
				l.Attributes()[0], base.Attributes()[0], AttributeMode64|AttributeDebug, AttributeMode64)
		}
	})
}

func TestLayoutRegions(t *testing.T) {
	rs, err := workedExample().Regions()
	if err != nil {
		t.Fatal(err)
	}
	type region struct {
		name          string
		offset, pages uint64
		flags         uint64
		extended      bool
	}
	want := []region{
		{"launcher", 0x0, 1, 0x205, true},
		{"manifest", 0x1000, 1, 0x201, true},
		// the guard page at 0x2000 is not added
		{"stack[0]", 0x3000, 64, 0x203, false},
		{"tcs[0]", 0x43000, 1, 0x100, true},
		{"ssa[0]", 0x44000, 2, 0x203, true},
		{"tls[0]", 0x46000, 1, 0x203, true},
		{"heap", 0x47000, 441, 0x203, false},
	}
	if len(rs) != len(want) {
		t.Fatalf("Regions() = %d regions, want %d", len(rs), len(want))
	}
	for i, r := range rs {
		got := region{r.Name, r.Offset, r.Pages, r.Flags, r.Extended}
		if got != want[i] {
			t.Errorf("Regions()[%d] = %+v, want %+v", i, got, want[i])
		}
	}

	tcs, err := hex.DecodeString("0000000000000000" + "0000000000000000" + "0040040000000000" + "00000000" + "02000000" +
		"0000000000000000" + "0000000000000000" + "0060040000000000" + "0060040000000000" + "ff0f0000" + "ff0f0000")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rs[3].Data, tcs) {
		t.Errorf("TCS = %x, want %x", rs[3].Data, tcs)
	}
	manifest := append([]byte{7, 0, 0, 0, 0, 0, 0, 0}, `{"v":1}`...)
	if !bytes.Equal(rs[1].Data, manifest) {
		t.Errorf("manifest page = %x, want %x", rs[1].Data, manifest)
	}
}

// TestLayoutThreadAreas checks the TCS fields of every thread against
// its own regions, and that each stack has the unadded guard page below
// it and its TCS directly above it.
func TestLayoutThreadAreas(t *testing.T) {
	l := Layout{Launcher: layoutPattern(10000, 1), Manifest: layoutPattern(5000, 2), MemorySize: 8 << 20, Threads: 4}
	rs, err := l.Regions()
	if err != nil {
		t.Fatal(err)
	}
	next := uint64(0)
	for _, r := range rs {
		if r.Offset < next {
			t.Errorf("region %s at %#x overlaps the one before (ends at %#x)", r.Name, r.Offset, next)
		}
		next = r.Offset + r.Pages*PageSize
	}
	if next != l.MemorySize {
		t.Errorf("regions end at %#x, want MemorySize %#x", next, l.MemorySize)
	}
	le := binary.LittleEndian
	for i := range l.Threads {
		below, stack, tcs, ssa, tls := rs[1+4*i], rs[2+4*i], rs[3+4*i], rs[4+4*i], rs[5+4*i]
		if le.Uint64(tcs.Data[tcsOSSA:]) != ssa.Offset || le.Uint32(tcs.Data[tcsNSSA:]) != uint32(ssa.Pages) {
			t.Errorf("thread %d: OSSA %#x NSSA %d, want %#x %d", i, le.Uint64(tcs.Data[tcsOSSA:]), le.Uint32(tcs.Data[tcsNSSA:]), ssa.Offset, ssa.Pages)
		}
		if le.Uint64(tcs.Data[tcsOFSBase:]) != tls.Offset || le.Uint64(tcs.Data[tcsOGSBase:]) != tls.Offset {
			t.Errorf("thread %d: OFSBASE %#x OGSBASE %#x, want %#x", i, le.Uint64(tcs.Data[tcsOFSBase:]), le.Uint64(tcs.Data[tcsOGSBase:]), tls.Offset)
		}
		if end := below.Offset + below.Pages*PageSize; stack.Offset != end+PageSize {
			t.Errorf("thread %d: stack at %#x, want one guard page after %s, which ends at %#x", i, stack.Offset, below.Name, end)
		}
		if end := stack.Offset + stack.Pages*PageSize; tcs.Offset != end {
			t.Errorf("thread %d: TCS at %#x, want it directly above the stack, which ends at %#x", i, tcs.Offset, end)
		}
	}
}

func TestLayoutSECSSize(t *testing.T) {
	tests := []struct{ memory, want uint64 }{
		{2 << 20, 2 << 20},
		{2<<20 + PageSize, 4 << 20},
		{3 << 20, 4 << 20},
		{4<<20 - PageSize, 4 << 20},
		{LayoutMaxMemorySize, LayoutMaxMemorySize},
		{LayoutMaxMemorySize - PageSize, LayoutMaxMemorySize},
	}
	for _, tt := range tests {
		if got := (Layout{MemorySize: tt.memory}).SECSSize(); got != tt.want {
			t.Errorf("SECSSize(%#x) = %#x, want %#x", tt.memory, got, tt.want)
		}
	}
}

func TestLayoutErrors(t *testing.T) {
	ok := Layout{Launcher: []byte{0xf4}, MemorySize: 2 << 20, Threads: 1}
	least := ok.MinMemorySize() // 327 pages: 1,339,392 bytes, "2 MiB" rounded up
	tests := []struct {
		name   string
		change func(*Layout)
		field  string
		msg    string // part of the message
	}{
		{"no launcher", func(l *Layout) { l.Launcher = nil }, "launcher", "empty"},
		{"0 threads", func(l *Layout) { l.Threads = 0 }, "threads", "1 to 256"},
		{"negative threads", func(l *Layout) { l.Threads = -1 }, "threads", "1 to 256"},
		{"257 threads", func(l *Layout) { l.Threads = 257 }, "threads", "1 to 256"},
		{"memory not in pages", func(l *Layout) { l.MemorySize += 1 }, "memory_size", "multiple of 4096"},
		{"memory 0", func(l *Layout) { l.MemorySize = 0 }, "memory_size", "minimum of 2 MiB"},
		{"memory one page short", func(l *Layout) { l.MemorySize = least - PageSize }, "memory_size", "minimum of 2 MiB"},
		{"memory over 64 GiB", func(l *Layout) { l.MemorySize = 64<<30 + PageSize }, "memory_size", "maximum of 64 GiB"},
		{"256 threads in 64 MiB", func(l *Layout) { l.Threads = 256; l.MemorySize = 64 << 20 }, "memory_size", "minimum of 71 MiB"},
		{"launcher fills the memory", func(l *Layout) { l.Launcher = make([]byte, 2<<20) }, "memory_size", "minimum of 4 MiB"},
		{"manifest fills the memory", func(l *Layout) { l.Manifest = make([]byte, 2<<20) }, "memory_size", "minimum of 4 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := ok
			tt.change(&l)
			_, err := l.MRENCLAVE()
			var le *LayoutError
			if !errors.As(err, &le) {
				t.Fatalf("MRENCLAVE() = %v, want a *LayoutError", err)
			}
			if le.Field != tt.field {
				t.Errorf("MRENCLAVE() field = %q, want %q", le.Field, tt.field)
			}
			if !strings.Contains(err.Error(), tt.field+": ") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("MRENCLAVE() = %q, want it to name %q and say %q", err, tt.field, tt.msg)
			}
			if _, err := l.Regions(); err == nil {
				t.Error("Regions() = nil error, want one")
			}
		})
	}

	// The exact minimum and maximum are fine.
	for _, memory := range []uint64{least, LayoutMaxMemorySize} {
		l := ok
		l.MemorySize = memory
		if err := l.Validate(); err != nil {
			t.Errorf("Validate(memory %d) = %v, want nil", memory, err)
		}
	}
	l := ok
	l.Threads = LayoutMaxThreads
	l.MemorySize = l.MinMemorySize()
	if _, err := l.MRENCLAVE(); err != nil {
		t.Errorf("MRENCLAVE(256 threads, minimum memory) = %v, want nil", err)
	}
}

// BenchmarkLayoutMRENCLAVE measures the MRENCLAVE of an 8 MiB launcher
// in 256 MiB with 4 threads, in MB/s of launcher, beside its floor in the
// same run: one SHA-256 over as many bytes as the measurement hashes
// (the launcher's pages with their EEXTEND headers, and the 64-byte EADD
// record of each of the 65,536 pages). MB/s and floor-MB/s are of
// launcher bytes; hashed-MB/s counts every byte hashed. The ratio
// floor/ours is reported as x-floor-throughput (1 would be the floor).
func BenchmarkLayoutMRENCLAVE(b *testing.B) {
	l := Layout{
		Launcher:   layoutPattern(8<<20, 1),
		Manifest:   layoutPattern(4000, 2),
		MemorySize: 256 << 20,
		Threads:    4,
	}
	m, err := l.measure()
	if err != nil {
		b.Fatal(err)
	}
	m.flush()
	floorInput := layoutPattern(int(m.hashed), 3)
	b.SetBytes(int64(len(l.Launcher)))

	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := l.MRENCLAVE(); err != nil {
			b.Fatal(err)
		}
	}
	ours := time.Since(start)
	b.StopTimer()

	floorStart := time.Now()
	for range b.N {
		sha256.Sum256(floorInput)
	}
	floor := time.Since(floorStart)
	launcherMB := float64(len(l.Launcher)) * float64(b.N) / 1e6
	b.ReportMetric(launcherMB/floor.Seconds(), "floor-MB/s")
	b.ReportMetric(float64(m.hashed)*float64(b.N)/1e6/ours.Seconds(), "hashed-MB/s")
	b.ReportMetric(floor.Seconds()/ours.Seconds(), "x-floor-throughput")
}
