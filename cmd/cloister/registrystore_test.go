package main

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestPersistentRegistry: what was pushed to the kept registry is there
// after it is opened again, what was deleted is not, and a journal line
// cut short by a crash loses nothing else.
func TestPersistentRegistry(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() string {
		r, err := newPersistentRegistry(dir, logger)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(r)
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	ref := func(host, s string) name.Reference {
		r, err := name.ParseReference(host + s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	host := open()
	kept, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	gone, _ := random.Image(512, 1)
	if err := remote.Write(ref(host, "/team/app:1"), kept); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(host, "/team/app:2"), gone); err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(ref(host, "/team/app:2")); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "journal.jsonl"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"op":"put","repo":"team/ap`)
	f.Close()

	host = open()
	img, err := remote.Image(ref(host, "/team/app:1"))
	if err != nil {
		t.Fatalf("pulling what was pushed before the registry was opened again: %v", err)
	}
	want, _ := kept.Digest()
	if got, err := img.Digest(); err != nil || got != want {
		t.Fatalf("digest after reopening = %v, %v; want %v", got, err, want)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("layers = %d, %v; want 2", len(layers), err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("reading a layer after reopening: %v", err)
		}
		rc.Close()
	}
	if _, err := remote.Image(ref(host, "/team/app:2")); err == nil {
		t.Fatal("a deleted manifest came back after reopening")
	}

	// What is pushed after the cut line is kept too.
	later, _ := random.Image(256, 1)
	if err := remote.Write(ref(host, "/team/app:3"), later); err != nil {
		t.Fatal(err)
	}
	host = open()
	for _, tag := range []string{"1", "3"} {
		if _, err := remote.Image(ref(host, "/team/app:"+tag)); err != nil {
			t.Fatalf("pulling team/app:%s after a third opening: %v", tag, err)
		}
	}
}

// FuzzManifestPath: any request path splits without panic, and a split
// path is the repository and reference it was made of.
func FuzzManifestPath(f *testing.F) {
	for _, s := range []string{"/v2/team/app/manifests/1", "/v2/a/manifests/sha256:00", "/v2//manifests/", "/v2/manifests/x", "/v3/a/manifests/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		repo, ref, ok := manifestPath(p)
		if ok && "/v2/"+repo+"/manifests/"+ref != p {
			t.Fatalf("manifestPath(%q) = %q, %q: not what the path was made of", p, repo, ref)
		}
	})
}
