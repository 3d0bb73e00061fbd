package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// blobUploads takes the built-in registry's chunked blob uploads (POST,
// PATCH..., PUT ?digest=) to files under dir, where go-containerregistry's
// registry would hold each one in memory, copied as it grows: a 200 MB
// push kept most of a gigabyte resident. A finished upload whose digest
// checks is moved into the disk blob handler's store (blobs/sha256/<hex>),
// from which the registry serves it. Cross-repository mounts of blobs it
// has are answered here too; monolithic uploads (POST ?digest=) the
// registry streams itself.
type blobUploads struct {
	dir   string // uploads in progress, one file each
	blobs string // the disk blob handler's directory
	mu    sync.Mutex
	locks map[string]*sync.Mutex // by upload: its chunks one at a time
}

// uploadPathRE matches /v2/<repository>/blobs/uploads/ and
// /v2/<repository>/blobs/uploads/<id>.
var uploadPathRE = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/([0-9a-f]*)$`)

// newBlobUploads prepares dir afresh: uploads a crash cut short are gone.
func newBlobUploads(dir, blobs string) (*blobUploads, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &blobUploads{dir: dir, blobs: blobs, locks: map[string]*sync.Mutex{}}, nil
}

// lock takes upload id's lock: its chunks' offsets must follow each
// other. done forgets the lock once the upload is over.
func (u *blobUploads) lock(id string) (unlock func(done bool)) {
	u.mu.Lock()
	l := u.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		u.locks[id] = l
	}
	u.mu.Unlock()
	l.Lock()
	return func(done bool) {
		if done {
			u.mu.Lock()
			delete(u.locks, id)
			u.mu.Unlock()
		}
		l.Unlock()
	}
}

// serve handles req if it is a step of a chunked upload, and says so.
func (u *blobUploads) serve(w http.ResponseWriter, req *http.Request) bool {
	m := uploadPathRE.FindStringSubmatch(req.URL.Path)
	if m == nil {
		return false
	}
	repo, id := m[1], m[2]
	q := req.URL.Query()
	switch {
	case req.Method == http.MethodPost && id == "" && q.Get("digest") == "" && q.Get("mount") != "":
		// A cross-repository mount. The store's blobs are everyone's (the
		// disk handler ignores repositories), so a blob it has is
		// mounted at once; otherwise the mount becomes an upload, as the
		// distribution spec allows. go-containerregistry's registry
		// ignores mounts: every one would start an upload in its memory.
		if digest := q.Get("mount"); u.has(digest) {
			w.Header().Set("Location", "/v2/"+repo+"/blobs/"+digest)
			w.Header().Set("Docker-Content-Digest", digest)
			w.WriteHeader(http.StatusCreated)
			return true
		}
		u.start(w, repo)
	case req.Method == http.MethodPost && id == "" && q.Get("digest") == "":
		u.start(w, repo)
	case req.Method == http.MethodPatch && id != "":
		u.append(w, req, repo, id)
	case req.Method == http.MethodPut && id != "":
		u.finish(w, req, repo, id, q.Get("digest"))
	default:
		return false
	}
	return true
}

func (u *blobUploads) path(id string) string { return filepath.Join(u.dir, id) }

// has reports whether the store holds the blob of digest (sha256:<hex>).
func (u *blobUploads) has(digest string) bool {
	hexDigest, ok := strings.CutPrefix(digest, "sha256:")
	if _, err := hex.DecodeString(hexDigest); !ok || err != nil || len(hexDigest) != 64 {
		return false
	}
	_, err := os.Stat(filepath.Join(u.blobs, "sha256", hexDigest))
	return err == nil
}

func (u *blobUploads) start(w http.ResponseWriter, repo string) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	f, err := os.OpenFile(u.path(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		registryError(w, http.StatusInternalServerError, "UNKNOWN", "starting the upload: "+err.Error())
		return
	}
	f.Close()
	w.Header().Set("Location", uploadLocation(repo, id))
	w.Header().Set("Docker-Upload-UUID", id)
	w.Header().Set("Range", "0-0")
	w.WriteHeader(http.StatusAccepted)
}

// append adds the request's body to the upload, at the offset its
// Content-Range says when it says one.
func (u *blobUploads) append(w http.ResponseWriter, req *http.Request, repo, id string) {
	unlock := u.lock(id)
	defer unlock(false)
	f, ok := u.open(w, id, os.O_WRONLY|os.O_APPEND)
	if !ok {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		registryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	if cr := req.Header.Get("Content-Range"); cr != "" {
		var start, end int64
		if _, err := fmt.Sscanf(cr, "%d-%d", &start, &end); err != nil || start != fi.Size() {
			w.Header().Set("Range", uploadRange(fi.Size()))
			registryError(w, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID",
				fmt.Sprintf("Content-Range %q does not start at the %d bytes received", cr, fi.Size()))
			return
		}
	}
	n, err := io.Copy(f, req.Body)
	if err != nil {
		registryError(w, http.StatusInternalServerError, "UNKNOWN", "writing the chunk: "+err.Error())
		return
	}
	w.Header().Set("Location", uploadLocation(repo, id))
	w.Header().Set("Docker-Upload-UUID", id)
	w.Header().Set("Range", uploadRange(fi.Size()+n))
	w.WriteHeader(http.StatusAccepted)
}

// finish adds the last chunk, if any, checks the upload's digest, and
// moves it into the blob store.
func (u *blobUploads) finish(w http.ResponseWriter, req *http.Request, repo, id, digest string) {
	hexDigest, ok := strings.CutPrefix(digest, "sha256:")
	if _, err := hex.DecodeString(hexDigest); !ok || err != nil || len(hexDigest) != 64 {
		registryError(w, http.StatusBadRequest, "DIGEST_INVALID", "digest must be sha256:<64 hex digits>")
		return
	}
	unlock := u.lock(id)
	defer unlock(true)
	f, ok := u.open(w, id, os.O_RDWR|os.O_APPEND)
	if !ok {
		return
	}
	if _, err := io.Copy(f, req.Body); err != nil {
		f.Close()
		registryError(w, http.StatusInternalServerError, "UNKNOWN", "writing the last chunk: "+err.Error())
		return
	}
	h := sha256.New()
	_, err := f.Seek(0, io.SeekStart)
	if err == nil {
		_, err = io.Copy(h, f)
	}
	f.Close()
	if err != nil {
		registryError(w, http.StatusInternalServerError, "UNKNOWN", "reading the upload: "+err.Error())
		return
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hexDigest {
		_ = os.Remove(u.path(id))
		registryError(w, http.StatusBadRequest, "DIGEST_INVALID", "the upload's digest is sha256:"+got+", not "+digest)
		return
	}
	err = os.MkdirAll(filepath.Join(u.blobs, "sha256"), 0o700)
	if err == nil {
		err = os.Rename(u.path(id), filepath.Join(u.blobs, "sha256", hexDigest))
	}
	if err != nil {
		registryError(w, http.StatusInternalServerError, "UNKNOWN", "storing the blob: "+err.Error())
		return
	}
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+digest)
	w.Header().Set("Docker-Content-Digest", digest)
	w.WriteHeader(http.StatusCreated)
}

// open opens upload id's file with flag, or answers why it cannot.
func (u *blobUploads) open(w http.ResponseWriter, id string, flag int) (*os.File, bool) {
	f, err := os.OpenFile(u.path(id), flag, 0)
	if errors.Is(err, os.ErrNotExist) {
		registryError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "no such upload")
		return nil, false
	} else if err != nil {
		registryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return nil, false
	}
	return f, true
}

func uploadLocation(repo, id string) string { return "/v2/" + repo + "/blobs/uploads/" + id }

// uploadRange is the Range header of an upload holding n bytes.
func uploadRange(n int64) string {
	if n == 0 {
		return "0-0"
	}
	return fmt.Sprintf("0-%d", n-1)
}

// registryError answers as the distribution spec's errors do.
func registryError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}
