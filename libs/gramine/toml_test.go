package gramine

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// vectorDirs lists the folders of testdata made by Gramine's own signer.
func vectorDirs(t testing.TB) []string {
	t.Helper()
	dirs, err := filepath.Glob("testdata/[0-9]*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no vectors in testdata: %v", err)
	}
	return dirs
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTOMLFixedPoint: the writer gives back, byte for byte, what
// Gramine's signer wrote with tomli_w, from its parsed content.
func TestTOMLFixedPoint(t *testing.T) {
	for _, dir := range vectorDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want := readFile(t, filepath.Join(dir, "app.manifest.sgx"))
			tbl, err := ParseTOML(want)
			if err != nil {
				t.Fatalf("ParseTOML = %v", err)
			}
			got, err := MarshalTOML(tbl)
			if err != nil {
				t.Fatalf("MarshalTOML = %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("MarshalTOML(ParseTOML(app.manifest.sgx)) differs:\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
