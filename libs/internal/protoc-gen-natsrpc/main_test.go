package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates libs/gen from proto/ as `make
// proto` does, with this plugin and protoc-gen-go, and fails on the first
// file that differs from what is committed: a .proto changed without
// `make proto`.
func TestGeneratedCodeIsFresh(t *testing.T) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("protoc is not installed; .ci/run installs it (apt-get install protobuf-compiler)")
		}
		t.Skip("protoc is not installed (apt-get install protobuf-compiler)")
	}
	bin, out := t.TempDir(), t.TempDir()
	for _, b := range [][2]string{{"protoc-gen-go", "google.golang.org/protobuf/cmd/protoc-gen-go"}, {"protoc-gen-natsrpc", "."}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, b[0]), b[1])
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b[0], err, o)
		}
	}
	root := filepath.Join("..", "..", "..")
	var protos []string
	err = filepath.WalkDir(filepath.Join(root, "proto"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && filepath.Ext(p) == ".proto" {
			rel, _ := filepath.Rel(filepath.Join(root, "proto"), p)
			protos = append(protos, rel)
		}
		return err
	})
	if err != nil || len(protos) == 0 {
		t.Fatalf("no protos: %v", err)
	}
	sort.Strings(protos)
	const module = "module=github.com/cloister-cc/cloister/libs/gen"
	args := append([]string{"--plugin=protoc-gen-go=" + filepath.Join(bin, "protoc-gen-go"), "--plugin=protoc-gen-natsrpc=" + filepath.Join(bin, "protoc-gen-natsrpc"),
		"-I", filepath.Join(root, "proto"), "--go_out=" + out, "--go_opt=" + module, "--natsrpc_out=" + out, "--natsrpc_opt=" + module}, protos...)
	if o, err := exec.Command(protoc, args...).CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, o)
	}

	committed := filepath.Join(root, "libs", "gen")
	files := map[string]bool{}
	for _, dir := range []string{out, committed} {
		_ = filepath.WalkDir(filepath.Join(dir, "cloister"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				files[rel] = true
			}
			return nil
		})
	}
	for f := range files {
		want, errW := os.ReadFile(filepath.Join(out, f))
		got, errG := os.ReadFile(filepath.Join(committed, f))
		switch {
		case errW != nil:
			t.Errorf("libs/gen/%s is not generated from proto/: remove it, or run make proto", f)
		case errG != nil:
			t.Errorf("libs/gen/%s is missing: run make proto", f)
		case !bytes.Equal(got, want):
			t.Errorf("libs/gen/%s is stale: run make proto", f)
		}
	}
}
