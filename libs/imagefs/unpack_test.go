package imagefs

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tarOf builds a tar from entries; a nil body makes a directory, a body
// starting with "->" a symlink, "=>" a hard link.
func tarOf(t testing.TB, entries ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e[0], Mode: 0o755}
		switch {
		case strings.HasSuffix(e[0], "/"):
			hdr.Typeflag = tar.TypeDir
		case strings.HasPrefix(e[1], "->"):
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e[1][2:]
		case strings.HasPrefix(e[1], "=>"):
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, e[1][2:]
		default:
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, int64(len(e[1])), 0o4755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e[1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func unpackInto(t testing.TB, dir string, b []byte) error {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	return unpackTar(context.Background(), bytes.NewReader(b), root, 1<<20)
}

func TestUnpackLaysOutTheFilesystem(t *testing.T) {
	dir := t.TempDir()
	b := tarOf(t,
		[2]string{"usr/", ""},
		[2]string{"usr/bin/app", "v1"},
		[2]string{"./usr/bin/app", "v2"}, // the last entry wins
		[2]string{"bin", "->usr/bin"},
		[2]string{"etc/alias", "=>usr/bin/app"},
	)
	if err := unpackInto(t, dir, b); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "bin", "app"))
	if err != nil || string(got) != "v2" {
		t.Fatalf("bin/app through the symlink = %q, %v; want v2", got, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "usr", "bin", "app"))
	if err != nil || fi.Mode() != 0o755 {
		t.Fatalf("usr/bin/app mode = %v, %v; want 0755 (no set-id bit)", fi, err)
	}
	if a, _ := os.ReadFile(filepath.Join(dir, "etc", "alias")); string(a) != "v2" {
		t.Fatalf("hard link = %q, want v2", a)
	}
}

func TestUnpackStaysInside(t *testing.T) {
	for name, b := range map[string][]byte{
		"write through a symlink": tarOf(t, [2]string{"out", "->../../"}, [2]string{"out/pwned", "x"}),
		"hard link outside":       tarOf(t, [2]string{"x", "=>../../../etc/passwd"}),
	} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "a", "b")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			err := unpackInto(t, dir, b)
			if _, serr := os.Stat(filepath.Join(parent, "pwned")); serr == nil {
				t.Fatal("an entry was written outside the directory")
			}
			if name == "write through a symlink" && err == nil {
				t.Fatal("unpacking through a symlink that leaves the directory did not fail")
			}
		})
	}
	// "../" in a name is cleaned to stay under the root.
	dir := t.TempDir()
	if err := unpackInto(t, dir, tarOf(t, [2]string{"../../escape", "x"})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err != nil {
		t.Fatalf("../../escape was not written as /escape: %v", err)
	}
}

func TestUnpackHasABudget(t *testing.T) {
	err := unpackInto(t, t.TempDir(), tarOf(t, [2]string{"big", strings.Repeat("x", 2<<20)}))
	if err == nil || !strings.Contains(err.Error(), "/big") || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("unpacking 2 MiB with a 1 MiB budget = %v, want an error naming /big and the limit", err)
	}
}

func FuzzUnpackTar(f *testing.F) {
	f.Add(tarOf(f, [2]string{"a/", ""}, [2]string{"a/b", "x"}, [2]string{"c", "->a"}, [2]string{"d", "=>a/b"}))
	f.Add(tarOf(f, [2]string{"l", "->/"}, [2]string{"l/x", "y"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "root")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = unpackInto(t, dir, b)
		entries, err := os.ReadDir(parent)
		if err != nil || len(entries) != 1 {
			t.Fatalf("the parent directory holds %d entries (%v), want only root", len(entries), err)
		}
	})
}
