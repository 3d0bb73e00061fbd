package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestRegistryUploadsStreamToDisk: the kept registry takes chunked blob
// uploads into files, checks their digest and serves them; an upload
// whose chunks do not follow each other, or whose digest is wrong, is
// refused and stores nothing.
func TestRegistryUploadsStreamToDisk(t *testing.T) {
	dir := t.TempDir()
	r, err := newPersistentRegistry(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	// A push by go-containerregistry (POST, PATCH, PUT per layer) and a
	// pull of the same image.
	img, err := random.Image(4<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/team/big:1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := pulled.Layers()
	want, _ := img.Layers()
	for i, l := range layers {
		d, _ := l.Digest()
		w, _ := want[i].Digest()
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, _ = io.Copy(h, rc)
		rc.Close()
		if d != w || "sha256:"+hex.EncodeToString(h.Sum(nil)) != w.String() {
			t.Fatalf("layer %d pulled as %s, want %s", i, d, w)
		}
		if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", w.Hex)); err != nil {
			t.Fatalf("layer %d is not in the blob store: %v", i, err)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "uploads")); len(left) != 0 {
		t.Fatalf("%d uploads left behind", len(left))
	}

	do := func(method, path string, header http.Header, body []byte) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	start := func() string {
		resp := do("POST", "/v2/team/chunks/blobs/uploads/", nil, nil)
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") == "" {
			t.Fatalf("starting an upload = %d", resp.StatusCode)
		}
		return resp.Header.Get("Location")
	}
	data := bytes.Repeat([]byte("cloister"), 1000)
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])

	// Two chunks in order, then the digest: stored.
	loc := start()
	if resp := do("PATCH", loc, http.Header{"Content-Range": {"0-3999"}}, data[:4000]); resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != "0-3999" {
		t.Fatalf("first chunk = %d, Range %q", resp.StatusCode, resp.Header.Get("Range"))
	}
	// A chunk that does not start where the upload is: refused.
	if resp := do("PATCH", loc, http.Header{"Content-Range": {"100-199"}}, data[100:200]); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("an overlapping chunk = %d, want 416", resp.StatusCode)
	}
	if resp := do("PATCH", loc, http.Header{"Content-Range": {"4000-7999"}}, data[4000:]); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("second chunk = %d", resp.StatusCode)
	}
	if resp := do("PUT", loc+"?digest="+digest, nil, nil); resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != digest {
		t.Fatalf("finishing = %d, digest %q", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
	}
	if resp := do("HEAD", "/v2/team/chunks/blobs/"+digest, nil, nil); resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(data)) {
		t.Fatalf("HEAD of the uploaded blob = %d, %d bytes", resp.StatusCode, resp.ContentLength)
	}

	// A wrong digest: refused, and nothing stored under either digest.
	loc = start()
	other := sha256.Sum256([]byte("other"))
	if resp := do("PUT", loc+"?digest=sha256:"+hex.EncodeToString(other[:]), nil, []byte("not other")); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a wrong digest = %d, want 400", resp.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", hex.EncodeToString(other[:]))); !os.IsNotExist(err) {
		t.Fatalf("a blob was stored under the wrong digest: %v", err)
	}
	// A mount of a blob the store has is the registry's; of one it has
	// not, an upload of ours, whose chunks are then taken.
	if resp := do("POST", "/v2/team/other/blobs/uploads/?mount="+digest+"&from=team/chunks", nil, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("mounting a blob the store has = %d, want 201", resp.StatusCode)
	}
	if resp := do("HEAD", "/v2/team/other/blobs/"+digest, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD of the mounted blob in its new repository = %d, want 200", resp.StatusCode)
	}
	missing := sha256.Sum256([]byte("missing"))
	resp := do("POST", "/v2/team/other/blobs/uploads/?mount=sha256:"+hex.EncodeToString(missing[:])+"&from=team/chunks", nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("mounting a blob the store has not = %d, want 202 (an upload)", resp.StatusCode)
	}
	if resp := do("PATCH", resp.Header.Get("Location"), nil, []byte("missing")); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a chunk of the upload a failed mount started = %d, want 202", resp.StatusCode)
	}

	// An unknown upload, a bad digest.
	if resp := do("PATCH", "/v2/team/chunks/blobs/uploads/0123abcd", nil, data); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a chunk of an unknown upload = %d, want 404", resp.StatusCode)
	}
	if resp := do("PUT", start()+"?digest=md5:abc", nil, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a digest that is not sha256 = %d, want 400", resp.StatusCode)
	}
}
