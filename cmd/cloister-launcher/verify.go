package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/gramine"
	"github.com/cloister-cc/cloister/libs/imagefs"
)

// maxListSize bounds the trusted-file list read into memory: about two
// million files.
const maxListSize = 256 << 20

// altered is how every difference from the converted image ends: there is
// nothing to repair on the node, the image has to be pulled or converted
// again.
const altered = "the image was altered after conversion"

// image is what the converter wrote under /opt/cloister, checked against
// the manifest's digests.
type image struct {
	manifest *enclave.Manifest
	list     *imagefs.List
	// gramine is the Gramine manifest, App.manifest.sgx: its bytes are
	// what MRENCLAVE measures, and it binds the launcher's manifest and
	// the trusted-file list by their SHA-256.
	gramine []byte
}

// load reads the Gramine manifest, the launcher's manifest and the
// trusted-file list under root and checks that the Gramine manifest binds
// the other two and that the list's and the launcher's digests are the
// manifest's. Inside an enclave the Gramine manifest is not a file the
// enclave may open: Gramine itself checks the other two against it.
func load(root string, enclaveMode bool) (*image, error) {
	var (
		gb  []byte
		gm  *gramine.Table
		err error
	)
	if !enclaveMode {
		gb, err = readFile(root, enclave.GramineManifestPath, gramine.MaxManifestSize)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("not a Cloister image: %s not found; run an image that `cloister` converted", enclave.GramineManifestPath)
		}
		if err != nil {
			return nil, err
		}
		if gm, err = gramine.ParseTOML(gb); err != nil {
			return nil, fmt.Errorf("%s: %v; %s", enclave.GramineManifestPath, err, altered)
		}
	}
	mb, err := readFile(root, enclave.ManifestPath, enclave.MaxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("not a Cloister image: %s not found; run an image that `cloister` converted", enclave.ManifestPath)
	}
	if err != nil {
		return nil, err
	}
	if err := bound(gm, enclave.ManifestPath, mb); err != nil {
		return nil, err
	}
	m, err := enclave.ParseManifest(mb)
	if err != nil {
		return nil, fmt.Errorf("%s: %v; %s", enclave.ManifestPath, err, altered)
	}

	lb, err := readFile(root, enclave.TrustedFilesPath, maxListSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: missing; %s", enclave.TrustedFilesPath, altered)
	}
	if err != nil {
		return nil, err
	}
	// The digest first: the list is only parsed once the manifests vouch
	// for it.
	if err := bound(gm, enclave.TrustedFilesPath, lb); err != nil {
		return nil, err
	}
	if enclave.Digest(lb) != m.TrustedFiles {
		return nil, fmt.Errorf("%s: SHA-256 differs from the enclave manifest; %s", enclave.TrustedFilesPath, altered)
	}
	list, err := imagefs.ParseList(lb)
	if err != nil {
		return nil, fmt.Errorf("%s: %v; convert the image again", enclave.TrustedFilesPath, err)
	}

	// What the launcher leaves unchecked depends on the read-write
	// directories: they must be what the converter accepts.
	for _, d := range m.RWDirs {
		if err := enclave.CheckRWDir(d); err != nil {
			return nil, fmt.Errorf("%s: read-write directory %v; convert the image again", enclave.ManifestPath, err)
		}
	}

	d, err := digestFile(root, enclave.LauncherPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: missing; %s", enclave.LauncherPath, altered)
	}
	if err != nil {
		return nil, err
	}
	if d != m.Launcher {
		return nil, fmt.Errorf("%s: SHA-256 differs from the enclave manifest; %s, or it was started with another launcher", enclave.LauncherPath, altered)
	}
	return &image{manifest: m, list: list, gramine: gb}, nil
}

// bound checks that the Gramine manifest lists the image file name as a
// trusted file with data's SHA-256: that binds it to MRENCLAVE. Without a
// manifest (inside the enclave) Gramine has checked it.
func bound(gm *gramine.Table, name string, data []byte) error {
	if gm == nil {
		return nil
	}
	want, ok := gramine.TrustedFile(gm, gramine.URI(name))
	if !ok {
		return fmt.Errorf("%s: the Gramine manifest does not list it as a trusted file; %s", name, altered)
	}
	if sha256.Sum256(data) != want {
		return fmt.Errorf("%s: SHA-256 differs from the Gramine manifest's; %s", name, altered)
	}
	return nil
}

// readFile reads the image file name (an absolute path in the image),
// refusing one larger than limit.
func readFile(root, name string, limit int64) ([]byte, error) {
	f, err := os.Open(hostPath(root, name))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, unwrapPath(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, unwrapPath(err))
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes; %s", name, limit, altered)
	}
	return b, nil
}

// digestFile returns the enclave.Digest form of a file's SHA-256, reading
// it in a stream.
func digestFile(root, name string) (string, error) {
	f, err := os.Open(hostPath(root, name))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", name, unwrapPath(err))
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", name, unwrapPath(err))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// mismatchError says how a file differs from the trusted-file list.
type mismatchError struct {
	path string // in the image: "/app/hello"
	what string
}

func (e *mismatchError) Error() string {
	return fmt.Sprintf("%s: %s; %s", e.path, e.what, altered)
}

// verify checks the filesystem at root against the image's trusted-file
// list, as docs/trusted-files.md says: first every entry of the list, then
// that nothing else is there (walk).
func verify(root string, img *image) error {
	if err := verifyEntries(root, img.list); err != nil {
		return err
	}
	return walk(root, img.list, img.manifest)
}

// verifyEntries checks every entry of list against the filesystem at
// root. Files are hashed by GOMAXPROCS workers, but the error is always
// the one of the first bad entry in list order.
func verifyEntries(root string, list *imagefs.List) error {
	type job struct {
		i int
		e imagefs.Entry
	}
	jobs := make(chan job)
	// first is the index of the first bad entry found so far. Entries are
	// handed out in order and only those after first are skipped, so every
	// entry before the first bad one is checked, whatever the timing.
	var first atomic.Int64
	first.Store(int64(list.Len()))
	var mu sync.Mutex
	errs := map[int]error{}

	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), list.Len())) {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			for j := range jobs {
				if int64(j.i) > first.Load() {
					continue
				}
				err := verifyEntry(root, j.e, buf)
				if err == nil {
					continue
				}
				mu.Lock()
				errs[j.i] = err
				mu.Unlock()
				lower(&first, int64(j.i))
			}
		})
	}
	i := 0
	for e := range list.All() {
		if int64(i) > first.Load() {
			break
		}
		jobs <- job{i, e}
		i++
	}
	close(jobs)
	wg.Wait()
	return errs[int(first.Load())]
}

// walk refuses the first file under root, in lexical order, that the list
// does not have, so that nothing can be added where the application might
// find it (a program earlier on PATH, /etc/ld.so.preload). It does not
// follow symlinks. Left out are what enclave.Skipped says (the paths the
// runtime provides, the read-write directories, /opt/cloister), and what
// the launcher or the runtime create: the directories above those paths,
// and the certificate's key and certificate files and the directories
// above them.
func walk(root string, list *imagefs.List, m *enclave.Manifest) error {
	u := newUnlisted(m)
	root = filepath.Clean(root)
	return filepath.WalkDir(root, func(hp string, d fs.DirEntry, err error) error {
		name := filepath.ToSlash(hp[len(root):])
		if !strings.HasPrefix(name, "/") {
			name = "/" + name
		}
		if err != nil {
			return &mismatchError{path: displayPath(name[1:]), what: fmt.Sprintf("cannot be checked (%v)", unwrapPath(err))}
		}
		switch {
		case name == "/": // the root is not listed
		case u.skipped(name):
			if d.IsDir() {
				return filepath.SkipDir
			}
		case listed(list, name):
		case d.IsDir() && u.dirs[name], d.Type().IsRegular() && u.files[name]:
			// Made at run time; what is below such a directory is
			// checked like the rest.
		default:
			return &mismatchError{path: displayPath(name[1:]), what: "not in the trusted-file list"}
		}
		return nil
	})
}

func listed(list *imagefs.List, name string) bool {
	_, ok := list.Lookup(name)
	return ok
}

// lower sets a to v if v is smaller.
func lower(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v >= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// modeBits are the bits of a mode the list records.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

func verifyEntry(root string, e imagefs.Entry, buf []byte) error {
	bad := func(format string, args ...any) error {
		return &mismatchError{path: displayPath(e.Path), what: fmt.Sprintf(format, args...)}
	}
	p := hostPath(root, e.Path)
	// Lstat: a symlink at the path itself is never followed. Its parents
	// are real directories in a matching image, since the list resolves
	// symlinked parents.
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return bad("missing")
	}
	if err != nil {
		return bad("cannot be checked (%v)", unwrapPath(err))
	}
	if got := kind(fi.Mode()); got != e.Type {
		return bad("is a %s, the trusted-file list says a %s", kindName(got), kindName(e.Type))
	}
	switch e.Type {
	case imagefs.TypeSymlink:
		target, err := os.Readlink(p)
		if err != nil {
			return bad("cannot be checked (%v)", unwrapPath(err))
		}
		if target != e.Target {
			return bad("points to %s, the trusted-file list says %s", strconv.Quote(target), strconv.Quote(e.Target))
		}
		return nil
	case imagefs.TypeDir:
		return checkMode(fi, e, bad)
	}

	// O_NOFOLLOW and O_NONBLOCK: if the file is swapped for a symlink or a
	// FIFO after the Lstat, open fails or returns at once instead of
	// following the link or blocking.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return bad("cannot be read (%v)", unwrapPath(err))
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return bad("cannot be checked (%v)", unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return bad("is a %s, the trusted-file list says a %s", kindName(kind(fi.Mode())), kindName(e.Type))
	}
	if err := checkMode(fi, e, bad); err != nil {
		return err
	}
	if fi.Size() != e.Size {
		return bad("size is %d bytes, the trusted-file list says %d", fi.Size(), e.Size)
	}
	h := sha256.New()
	// At most one byte more than listed: a file that grows while it is
	// read cannot keep the check going.
	n, err := io.CopyBuffer(h, io.LimitReader(f, e.Size+1), buf)
	if err != nil {
		return bad("cannot be read (%v)", unwrapPath(err))
	}
	if n != e.Size || [32]byte(h.Sum(nil)) != e.SHA256 {
		return bad("SHA-256 differs from the trusted-file list")
	}
	return nil
}

func checkMode(fi fs.FileInfo, e imagefs.Entry, bad func(string, ...any) error) error {
	if got := fi.Mode() & modeBits; got != e.Mode {
		return bad("mode is %s, the trusted-file list says %s", octal(got), octal(e.Mode))
	}
	return nil
}

// octal writes a mode as the list does: 0755, 4755, 1777.
func octal(m fs.FileMode) string {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return fmt.Sprintf("%04o", u)
}

// kind is the list's type of a file mode; 0 for anything the list never
// holds (devices, FIFOs, sockets).
func kind(m fs.FileMode) imagefs.Type {
	switch {
	case m.IsRegular():
		return imagefs.TypeRegular
	case m.IsDir():
		return imagefs.TypeDir
	case m&fs.ModeSymlink != 0:
		return imagefs.TypeSymlink
	}
	return 0
}

func kindName(t imagefs.Type) string {
	switch t {
	case imagefs.TypeRegular:
		return "regular file"
	case imagefs.TypeDir:
		return "directory"
	case imagefs.TypeSymlink:
		return "symlink"
	}
	return "special file"
}

// hostPath is where the image path name (absolute or relative to the
// image root) is under root. Cleaning it as an absolute path first keeps
// ".." from leaving root.
func hostPath(root, name string) string {
	return filepath.Join(root, filepath.Clean("/"+name))
}

// displayPath is a listed path as an operator knows it, quoted if it holds
// characters that would garble a log line.
func displayPath(p string) string {
	s := "/" + p
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return strconv.QuoteToASCII(s)
	}
	return s
}

// unwrapPath drops the host path from an *fs.PathError: messages name
// files as the image has them.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
