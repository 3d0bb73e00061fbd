package main

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/registry"
)

// The built-in registry of -dev keeps what is pushed to it in the data
// directory, so that a restart finds the images it converted before.
// go-containerregistry's registry stores blobs on disk when asked
// (registry.NewDiskBlobHandler) but keeps manifests in memory only: a
// journal of the manifests pushed and deleted, replayed in order at
// start, gives them back.

// maxManifestSize bounds a manifest the journal keeps (registries commonly
// refuse more than 4 MiB).
const maxManifestSize = 4 << 20

// journalEntry is one line of the journal: a manifest put under a
// reference (tag or digest) of a repository, or deleted.
type journalEntry struct {
	Op          string `json:"op"` // "put" or "delete"
	Repo        string `json:"repo"`
	Ref         string `json:"ref"`
	ContentType string `json:"content_type,omitempty"`
	Digest      string `json:"digest,omitempty"` // sha256 hex of the manifest, under manifests/
}

// persistentRegistry is the registry with its state kept under dir.
type persistentRegistry struct {
	inner   http.Handler
	uploads *blobUploads
	dir     string
	mu      sync.Mutex // orders journal appends
}

// newPersistentRegistry opens (creating if needed) the registry kept under
// dir and replays its journal. Entries that no longer apply (a blob gone
// missing) are logged and skipped: the rest still serves.
func newPersistentRegistry(dir string, logger *slog.Logger) (*persistentRegistry, error) {
	for _, d := range []string{filepath.Join(dir, "blobs"), filepath.Join(dir, "manifests")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating the registry's store: %w", err)
		}
	}
	uploads, err := newBlobUploads(filepath.Join(dir, "uploads"), filepath.Join(dir, "blobs"))
	if err != nil {
		return nil, fmt.Errorf("creating the registry's store: %w", err)
	}
	r := &persistentRegistry{dir: dir, uploads: uploads, inner: registry.New(registry.Logger(log.New(io.Discard, "", 0)),
		registry.WithBlobHandler(registry.NewDiskBlobHandler(filepath.Join(dir, "blobs"))))}
	n, err := r.replay(logger)
	if err != nil {
		return nil, err
	}
	if err := r.endLine(); err != nil {
		return nil, err
	}
	if n > 0 {
		logger.Info("built-in registry restored its manifests", "entries", n, "store", dir)
	}
	return r, nil
}

func (r *persistentRegistry) journalPath() string { return filepath.Join(r.dir, "journal.jsonl") }

// endLine ends a last journal line cut short by a crash, so that the next
// entry starts a line of its own.
func (r *persistentRegistry) endLine() error {
	b, err := os.ReadFile(r.journalPath())
	if errors.Is(err, os.ErrNotExist) || err == nil && (len(b) == 0 || b[len(b)-1] == '\n') {
		return nil
	} else if err != nil {
		return fmt.Errorf("reading the registry's journal: %w", err)
	}
	f, err := os.OpenFile(r.journalPath(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte{'\n'}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// replay applies the journal to the in-memory manifests, in order.
func (r *persistentRegistry) replay(logger *slog.Logger) (int, error) {
	f, err := os.Open(r.journalPath())
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("reading the registry's journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		var e journalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// A line cut short by a crash while it was written.
			logger.Warn("built-in registry: skipping an unreadable journal line", "error", err)
			continue
		}
		req, err := e.request(r.dir)
		if err == nil {
			w := &recorder{header: http.Header{}}
			r.inner.ServeHTTP(w, req)
			if w.status >= 300 {
				err = fmt.Errorf("%d %s", w.status, bytes.TrimSpace(w.body.Bytes()))
			}
		}
		if err != nil {
			logger.Warn("built-in registry: a journal entry no longer applies", "repo", e.Repo, "ref", e.Ref, "op", e.Op, "error", err)
			continue
		}
		n++
	}
	return n, sc.Err()
}

// request is the registry request that applies e again.
func (e journalEntry) request(dir string) (*http.Request, error) {
	path := "/v2/" + e.Repo + "/manifests/" + e.Ref
	if e.Op == "delete" {
		return http.NewRequest(http.MethodDelete, path, nil)
	}
	body, err := os.ReadFile(filepath.Join(dir, "manifests", e.Digest))
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPut, path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", e.ContentType)
	return req, nil
}

// ServeHTTP serves the registry, journaling each manifest it accepts or
// deletes.
func (r *persistentRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.uploads.serve(w, req) {
		return
	}
	repo, ref, ok := manifestPath(req.URL.Path)
	if !ok || (req.Method != http.MethodPut && req.Method != http.MethodDelete) {
		r.inner.ServeHTTP(w, req)
		return
	}
	var body []byte
	if req.Method == http.MethodPut {
		var err error
		if body, err = io.ReadAll(io.LimitReader(req.Body, maxManifestSize+1)); err != nil || len(body) > maxManifestSize {
			http.Error(w, "the manifest is unreadable or larger than 4 MiB", http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	rec := &recorder{header: w.Header()}
	r.inner.ServeHTTP(rec, req)
	if cmp.Or(rec.status, http.StatusOK) < 300 {
		e := journalEntry{Op: "delete", Repo: repo, Ref: ref}
		if req.Method == http.MethodPut {
			sum := sha256.Sum256(body)
			e = journalEntry{Op: "put", Repo: repo, Ref: ref, ContentType: req.Header.Get("Content-Type"), Digest: hex.EncodeToString(sum[:])}
		}
		if err := r.record(e, body); err != nil {
			// The registry took it, but it would not survive a restart:
			// the pusher must know.
			http.Error(w, "the registry could not keep the manifest: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.WriteHeader(cmp.Or(rec.status, http.StatusOK))
	_, _ = w.Write(rec.body.Bytes())
}

// record keeps a manifest's bytes and appends e to the journal, synced.
func (r *persistentRegistry) record(e journalEntry, body []byte) error {
	if e.Op == "put" {
		path := filepath.Join(r.dir, "manifests", e.Digest)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if err := writeFileAtomic(path, body, 0o600); err != nil {
				return err
			}
		}
	}
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := os.OpenFile(r.journalPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// manifestPath splits /v2/<repo>/manifests/<ref>.
func manifestPath(p string) (repo, ref string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/manifests/")
	if i <= 0 {
		return "", "", false
	}
	repo, ref = rest[:i], rest[i+len("/manifests/"):]
	return repo, ref, ref != "" && !strings.Contains(ref, "/")
}

// recorder holds a response of the registry until it is known to be kept.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
