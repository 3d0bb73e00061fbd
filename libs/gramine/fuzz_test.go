package gramine

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

// FuzzParseTOML: any bytes give a table or an error that says so, and a
// table written back reads back to the same bytes (the writer's output
// is a fixed point, as tomli_w's is).
func FuzzParseTOML(f *testing.F) {
	for _, dir := range vectorDirs(f) {
		f.Add(readFile(f, filepath.Join(dir, "app.manifest.sgx")))
		f.Add(readFile(f, filepath.Join(dir, "app.manifest")))
	}
	f.Add([]byte("a = [ { b = 1 }, { c = \"\\u0001\" } ]\n[[x.y]]\nz = 1.5e300\n[x]\nw = -0.0\n"))
	f.Add([]byte("[sgx]\nenclave_size = \"1M\"\nmax_threads = 2\nedmm_enable = true\n[sgx.cpu_features]\navx512 = \"required\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tbl, err := ParseTOML(b)
		if err != nil {
			if !errors.Is(err, ErrTOML) {
				t.Fatalf("ParseTOML error %v is not ErrTOML", err)
			}
			return
		}
		// The signer's reading of the values must refuse, never panic; a
		// small enclave is measured.
		if p, err := ReadParams(tbl); err == nil && p.EnclaveSize <= 1<<24 {
			_, _, _ = Enclave{Manifest: b, PAL: fuzzPAL, Size: p.EnclaveSize, MaxThreads: p.MaxThreads, EDMM: p.EDMM}.Measure()
		} else if err != nil && !errors.Is(err, ErrManifest) {
			t.Fatalf("ReadParams error %v is not ErrManifest", err)
		}
		out, err := MarshalTOML(tbl)
		if err != nil {
			return // e.g. NaN payloads or values the writer refuses, said so
		}
		again, err := ParseTOML(out)
		if err != nil {
			t.Fatalf("ParseTOML(MarshalTOML(x)) = %v\n%s", err, out)
		}
		out2, err := MarshalTOML(again)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("the writer's output is not a fixed point (%v):\n%s\n---\n%s", err, out, out2)
		}
	})
}

var fuzzPAL, _ = LoadPAL(StandInELF("libpal.so"))

// FuzzLoadPAL: any bytes give a PAL or an ErrELF, and a PAL that loads
// is measured or refused with an error, never a panic.
func FuzzLoadPAL(f *testing.F) {
	for _, dir := range vectorDirs(f) {
		f.Add(readFile(f, filepath.Join(dir, "libpal.so")))
	}
	manifest := readFile(f, filepath.Join(vectorDirs(f)[0], "app.manifest.sgx"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pal, err := LoadPAL(b)
		if err != nil {
			if !errors.Is(err, ErrELF) {
				t.Fatalf("LoadPAL error %v is not ErrELF", err)
			}
			return
		}
		_, _, _ = Enclave{Manifest: manifest, PAL: pal, Size: 1 << 24, MaxThreads: 1, EDMM: true}.Measure()
	})
}
