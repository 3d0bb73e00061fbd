package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/imagefs"
)

// maxSymlinks is how many symlinks the kernel follows in one lookup
// before it fails with ELOOP.
const maxSymlinks = 40

// maxInterpreters bounds #! scripts run by #! scripts, as the kernel does
// (it allows "4 levels of binfmt rewrites").
const maxInterpreters = 4

// shebangSize is how much of a file the kernel reads for its #! line
// (BINPRM_BUF_SIZE).
const shebangSize = 256

// resolver follows image paths through the trusted-file list the way the
// kernel follows them through the filesystem: a relative symlink from the
// link's directory, an absolute one from the image root, ".." never above
// the root, at most maxSymlinks links. It reads only the list, which
// verify has matched with the filesystem, so it finds what the kernel
// would; a path that leads where the list does not reach (a read-write
// directory, a path the runtime provides, /opt/cloister) is refused
// rather than taken on the host's word.
type resolver struct {
	list *imagefs.List
	*unlisted
}

// unlisted is what may be on the filesystem without being in the list.
type unlisted struct {
	// rwDirs are the read-write directories; with the paths the runtime
	// provides and /opt/cloister they are enclave.Skipped.
	rwDirs []string
	// dirs are the directories above the skipped paths and the
	// certificate's files, which the runtime or the launcher may create.
	dirs map[string]bool
	// files are the certificate's key and certificate, which the
	// launcher writes.
	files map[string]bool
}

func newUnlisted(m *enclave.Manifest) *unlisted {
	// The secrets directory is an in-enclave tmpfs the launcher fills.
	u := &unlisted{rwDirs: m.UnmeasuredDirs(), dirs: map[string]bool{}, files: map[string]bool{}}
	if m.Secrets != nil {
		u.rwDirs = append(u.rwDirs, m.Secrets.Dir)
	}
	above := func(p string) {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			u.dirs[d] = true
		}
	}
	for _, p := range enclave.Untracked {
		above(p)
	}
	for _, p := range u.rwDirs {
		above(p)
	}
	above(enclave.Dir)
	if c := m.Certificate; c != nil {
		for _, p := range []string{c.KeyPath, c.CertPath} {
			if p != "" {
				p = path.Clean("/" + p)
				u.files[p] = true
				above(p)
			}
		}
	}
	return u
}

func (u *unlisted) skipped(p string) bool { return enclave.Skipped(p, u.rwDirs) }

// resolveError is why a path did not resolve inside the list.
type resolveError struct {
	kind resolveKind
	path string // the component where resolution stopped
	why  string // for uncovered: where path is
}

type resolveKind int

const (
	notFound  resolveKind = iota // the image has no such file (ENOENT, ENOTDIR)
	uncovered                    // the path leads where the list does not reach
	tooManyLinks
	reserved // the path leads into /opt/cloister, which is not the application's
)

func (e *resolveError) Error() string {
	switch e.kind {
	case uncovered:
		return fmt.Sprintf("%s is %s, which the trusted-file list does not cover", e.path, e.why)
	case tooManyLinks:
		return fmt.Sprintf("more than %d symlinks at %s", maxSymlinks, e.path)
	case reserved:
		return fmt.Sprintf("%s is in Cloister's own directory %s, which holds the launcher and Gramine's runtime, not the application", e.path, enclave.Dir)
	}
	return e.path + " is not in the trusted-file list"
}

// resolve returns the physical path of name, resolved from the directory
// start (both image paths), and what it is. The unlisted directories the
// runtime or the launcher may create count as directories; what is below
// them is looked up as usual. With rwOK a read-write directory counts as
// a directory too (for the working directory), but nothing below it
// resolves.
func (r *resolver) resolve(start, name string, rwOK bool) (string, imagefs.Type, error) {
	cur, typ := start, imagefs.TypeDir
	if path.IsAbs(name) {
		cur = "/"
	}
	rest := strings.Split(name, "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if typ != imagefs.TypeDir {
			// "file/x", "file/" and "file/.": ENOTDIR.
			return "", 0, &resolveError{kind: notFound, path: path.Join(cur, c)}
		}
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		if next == enclave.Dir {
			return "", 0, &resolveError{kind: reserved, path: path.Join(next, strings.Join(rest, "/"))}
		}
		if r.skipped(next) || r.files[next] {
			if rwOK && slices.Contains(r.rwDirs, next) {
				cur = next
				continue
			}
			// Name the whole path, unless ".." makes that misleading.
			shown := next
			if !slices.Contains(rest, "..") {
				shown = path.Join(next, strings.Join(rest, "/"))
			}
			return "", 0, &resolveError{kind: uncovered, path: shown, why: r.where(next)}
		}
		e, ok := r.list.Lookup(next)
		if !ok {
			if r.dirs[next] {
				cur = next
				continue
			}
			// walk has made sure there is nothing there.
			return "", 0, &resolveError{kind: notFound, path: next}
		}
		if e.Type == imagefs.TypeSymlink {
			if links++; links > maxSymlinks {
				return "", 0, &resolveError{kind: tooManyLinks, path: next}
			}
			if path.IsAbs(e.Target) {
				cur = "/"
			}
			rest = append(strings.Split(e.Target, "/"), rest...)
			continue
		}
		cur, typ = next, e.Type
	}
	return cur, typ, nil
}

// where says why the launcher does not check p (enclave.Skipped).
func (r *resolver) where(p string) string {
	for _, d := range r.rwDirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return "in the read-write directory " + d
		}
	}
	if slices.Contains(enclave.TopLayerPaths, p) {
		return "one of the manifests the Gramine manifest binds, in " + enclave.Dir
	}
	if r.files[p] {
		return "the certificate's key or certificate, which the launcher writes"
	}
	return "provided by the container runtime"
}

// workdir resolves the working directory name: a listed directory, a
// read-write directory, or the root.
func (r *resolver) workdir(name string) (string, error) {
	wd, typ, err := r.resolve("/", "/"+name, true)
	switch {
	case err != nil:
		return "", err
	case typ != imagefs.TypeDir:
		return "", errors.New("not a directory")
	case wd == "/" || slices.Contains(r.rwDirs, wd):
		return wd, nil
	}
	if _, ok := r.list.Lookup(wd); !ok {
		return "", &resolveError{kind: notFound, path: wd}
	}
	return wd, nil
}

var (
	errNotRegular    = errors.New("not a regular file")
	errNotExecutable = errors.New("not executable")
)

// program resolves name from the directory start to a program the
// launcher may exec: a listed regular file with an execute bit.
func (r *resolver) program(start, name string) (string, error) {
	p, typ, err := r.resolve(start, name, false)
	if err != nil {
		return "", err
	}
	if typ != imagefs.TypeRegular {
		return "", errNotRegular
	}
	if e, _ := r.list.Lookup(p); e.Mode&0o111 == 0 {
		return "", errNotExecutable
	}
	return p, nil
}

// checkInterpreters follows the #! lines from the program prog (an image
// path), as the kernel will when it execs prog: each interpreter must be
// a program of the list too. A relative interpreter is resolved from the
// working directory wd, as the kernel does.
func (r *resolver) checkInterpreters(root, prog, wd string) error {
	for n := 0; ; n++ {
		interp, err := shebang(root, prog)
		if err != nil {
			return fmt.Errorf("%s: %v", prog, err)
		}
		if interp == "" {
			return nil
		}
		if n == maxInterpreters {
			return fmt.Errorf("%s: more than %d nested #! interpreters", prog, maxInterpreters)
		}
		ip, err := r.program(wd, interp)
		if err != nil {
			return fmt.Errorf("%s: #! interpreter %s: %v", prog, interp, err)
		}
		prog = ip
	}
}

// shebang returns the interpreter the #! line of the image file name
// names, parsed as the kernel does (fs/binfmt_script.c), or "" if the
// file does not start with #!.
func shebang(root, name string) (string, error) {
	// O_NOFOLLOW and O_NONBLOCK, as in verifyEntry.
	f, err := os.OpenFile(hostPath(root, name), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("cannot be read (%v)", unwrapPath(err))
	}
	defer f.Close()
	buf := make([]byte, shebangSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("cannot be read (%v)", unwrapPath(err))
	}
	buf = buf[:n]
	if len(buf) < 2 || buf[0] != '#' || buf[1] != '!' {
		return "", nil
	}
	line, _, found := strings.Cut(string(buf[2:]), "\n")
	truncated := !found && n == shebangSize
	if truncated {
		line = line[:len(line)-1] // the kernel keeps the last byte for a NUL
	}
	line = strings.TrimLeft(line, " \t")
	i := strings.IndexAny(line, " \t\x00")
	if i < 0 {
		if truncated {
			return "", fmt.Errorf("its #! line is longer than %d bytes", shebangSize-1)
		}
		i = len(line)
	}
	if i == 0 {
		return "", errors.New("its #! line names no interpreter")
	}
	return line[:i], nil
}
