package sgx

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

// layoutPattern is the test inputs' bytes: byte i is (i*31 + seed) mod
// 251, a period that no page or chunk boundary shares.
func layoutPattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*31 + seed) % 251)
	}
	return b
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
