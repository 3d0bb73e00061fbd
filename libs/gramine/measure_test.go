package gramine

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/sgx"
)

// vector is what expected.json records of one run of gramine-sgx-sign.
type vector struct {
	MRENCLAVE string `json:"mrenclave"`
	MRSIGNER  string `json:"mrsigner"`
	Inputs    struct {
		Date string `json:"date"`
	} `json:"inputs"`
	Params struct {
		EnclaveSize string `json:"enclave_size"`
		MaxThreads  int    `json:"max_threads"`
		EDMM        bool   `json:"edmm_enable"`
		Debug       bool   `json:"debug"`
		ISVProdID   uint16 `json:"isvprodid"`
		ISVSVN      uint16 `json:"isvsvn"`
	} `json:"params"`
}

func loadVector(t testing.TB, dir string) vector {
	t.Helper()
	var v vector
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, "expected.json")), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func loadKey(t testing.TB, path string) *rsa.PrivateKey {
	t.Helper()
	blk, _ := pem.Decode(readFile(t, path))
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k.(*rsa.PrivateKey)
}

// oracleAreas returns the memory lines gramine-sgx-sign printed.
func oracleAreas(t testing.TB, dir string) []string {
	t.Helper()
	out := string(readFile(t, filepath.Join(dir, "oracle-output.txt")))
	_, mem, _ := strings.Cut(out, "Memory:\n")
	mem, _, _ = strings.Cut(mem, "Measurement:")
	var lines []string
	for l := range strings.Lines(mem) {
		lines = append(lines, strings.TrimSpace(l))
	}
	return lines
}

// TestVectors holds MRENCLAVE, the memory layout, MRSIGNER and the .sig
// bytes to Gramine's own signer.
func TestVectors(t *testing.T) {
	for _, dir := range vectorDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			v := loadVector(t, dir)
			m, err := Measure(readFile(t, filepath.Join(dir, "app.manifest.sgx")), readFile(t, filepath.Join(dir, "libpal.so")))
			if err != nil {
				t.Fatalf("Measure = %v", err)
			}
			if got := hex.EncodeToString(m.MRENCLAVE[:]); got != v.MRENCLAVE {
				t.Errorf("MRENCLAVE = %s, want %s", got, v.MRENCLAVE)
			}
			var got []string
			for _, a := range m.Areas {
				got = append(got, a.String())
			}
			if want := oracleAreas(t, dir); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("areas:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			p := m.Params
			if FormatSize(p.EnclaveSize) != v.Params.EnclaveSize || p.MaxThreads != v.Params.MaxThreads || p.EDMM != v.Params.EDMM ||
				p.Debug != v.Params.Debug || p.ISVProdID != v.Params.ISVProdID || p.ISVSVN != v.Params.ISVSVN {
				t.Errorf("Params = %+v, want %+v", *p, v.Params)
			}

			date, err := time.Parse(time.DateOnly, v.Inputs.Date)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := m.Sign(loadKey(t, filepath.Join(dir, "signing-key.pem")), date)
			if err != nil {
				t.Fatalf("Sign = %v", err)
			}
			if want := readFile(t, filepath.Join(dir, "app.sig")); !bytes.Equal(sig, want) {
				for i := range sig {
					if sig[i] != want[i] {
						t.Errorf(".sig differs from Gramine's from byte %d: %x, want %x", i, sig[i:min(i+16, len(sig))], want[i:min(i+16, len(want))])
						break
					}
				}
			}
			s, err := sgx.ParseSigStruct(sig)
			if err != nil {
				t.Fatal(err)
			}
			if mrs := s.MRSIGNER(); hex.EncodeToString(mrs[:]) != v.MRSIGNER {
				t.Errorf("MRSIGNER = %x, want %s", mrs, v.MRSIGNER)
			}
		})
	}
}

// TestStandInELF: the stand-in loads and measures like a PAL, and two
// stand-ins differ.
func TestStandInELF(t *testing.T) {
	man := readFile(t, filepath.Join(vectorDirs(t)[0], "app.manifest.sgx"))
	a, err := Measure(man, StandInELF("libpal.so"))
	if err != nil {
		t.Fatalf("Measure with the stand-in = %v", err)
	}
	b, err := Measure(man, StandInELF("other"))
	if err != nil {
		t.Fatal(err)
	}
	if a.MRENCLAVE == b.MRENCLAVE {
		t.Error("two stand-ins measure the same")
	}
	var descs []string
	for _, ar := range a.Areas {
		descs = append(descs, ar.Desc+":"+ar.Prot())
	}
	if got := strings.Join(descs, " "); !strings.Contains(got, "data:R-- code:R-X data:RW- free:RWX") {
		t.Errorf("areas %s, want the stand-in's three segments", got)
	}
}

// TestLayoutSizes: sizes from 128M to 64G, 1 to 256 threads, EDMM on and
// off: the manifest is at the top, the thread areas are all there, the
// free area (without EDMM) starts at MMAP_MIN_ADDR, and every input
// changes MRENCLAVE.
func TestLayoutSizes(t *testing.T) {
	man := readFile(t, filepath.Join(vectorDirs(t)[0], "app.manifest.sgx"))
	pal, err := LoadPAL(StandInELF("libpal.so"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[32]byte]string{}
	for _, size := range []uint64{128 << 20, 1 << 30, 64 << 30} {
		for _, threads := range []int{1, 16, 256} {
			for _, edmm := range []bool{true, false} {
				if size == 64<<30 && !edmm && threads != 256 {
					continue // 16M unmeasured pages: once is enough
				}
				name := fmt.Sprintf("%s/%d/edmm=%v", FormatSize(size), threads, edmm)
				mr, areas, err := Enclave{Manifest: man, PAL: pal, Size: size, MaxThreads: threads, EDMM: edmm}.Measure()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if prev, dup := seen[mr]; dup {
					t.Errorf("%s and %s measure the same", name, prev)
				}
				seen[mr] = name
				if areas[0].Desc != "manifest" || areas[0].End != size {
					t.Errorf("%s: first area %v, want the manifest at the top", name, areas[0])
				}
				counts := map[string]int{}
				for _, a := range areas {
					counts[a.Desc]++
				}
				if counts["stack"] != threads || counts["sig_stack"] != threads || counts["tcs"] != 1 {
					t.Errorf("%s: areas %v, want %d stacks and signal stacks", name, counts, threads)
				}
				last := areas[len(areas)-1]
				if free := last.Desc == "free"; free == edmm || (free && last.Start != heapMin) {
					t.Errorf("%s: last area %v; want the free area from %#x only without EDMM", name, last, heapMin)
				}
			}
		}
	}
	if _, _, err := (Enclave{Manifest: man, PAL: pal, Size: 2 << 20, MaxThreads: 256}).Measure(); !errors.Is(err, ErrTooSmall) {
		t.Errorf("256 threads in 2M = %v, want ErrTooSmall", err)
	}
	if _, _, err := (Enclave{Manifest: man, PAL: pal, Size: 3 << 28, MaxThreads: 1}).Measure(); err == nil || !strings.Contains(err.Error(), "nearest valid sizes are 512M and 1G") {
		t.Errorf("768M = %v, want the nearest valid sizes", err)
	}
}

// TestLoadPALBounds: a PAL whose segments overlap far more than a real
// one's is refused before it is measured.
func TestLoadPALBounds(t *testing.T) {
	b := StandInELF("libpal.so")
	for i := range 3 { // every segment over the whole 5-page image
		ph := b[64+i*56:]
		binary.LittleEndian.PutUint64(ph[16:], 0)      // p_vaddr
		binary.LittleEndian.PutUint64(ph[40:], 0x5000) // p_memsz
	}
	if _, err := LoadPAL(b); !errors.Is(err, ErrELF) || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("LoadPAL(overlapping segments) = %v, want ErrELF saying they overlap", err)
	}
}
