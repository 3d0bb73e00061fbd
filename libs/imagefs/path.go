package imagefs

import (
	"path"
	"strings"
)

// Whiteout names, as the OCI image spec and Docker (after AUFS) write them.
const (
	whiteoutPrefix = ".wh."
	// whiteoutMeta prefixes AUFS bookkeeping files (.wh..wh.plnk,
	// .wh..wh.aufs); like Docker and containerd, we skip them.
	whiteoutMeta   = ".wh..wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// cleanPath turns a tar entry name into a path relative to the image root:
// leading "/" and "./" go, then path.Clean. The root is "". A name that
// climbs out of the root ("../x", "a/../../x", "/../x") is ErrUnsafePath:
// stripping the leading slash first means "/../x" is not quietly read as
// "x", which a runtime applying the layer might not do.
func cleanPath(name string) (string, error) {
	p := name
	for {
		if strings.HasPrefix(p, "/") {
			p = p[1:]
		} else if strings.HasPrefix(p, "./") {
			p = p[2:]
		} else {
			break
		}
	}
	p = path.Clean(p)
	switch {
	case p == ".":
		return "", nil
	case p == ".." || strings.HasPrefix(p, "../"):
		return "", ErrUnsafePath
	case strings.IndexByte(p, 0) >= 0:
		return "", ErrMalformed
	}
	return p, nil
}

// split returns the parent directory ("" for the root) and the last
// element of a cleaned, non-root path.
func split(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// maxTarget is the longest symlink target Linux accepts (PATH_MAX less
// the NUL). Bounding it also bounds the work of resolving a path through
// symlinks: at most maxSymlinks targets of this size.
const maxTarget = 4095

func validTarget(t string) bool {
	return t != "" && len(t) <= maxTarget && strings.IndexByte(t, 0) < 0
}

// isMeta says whether p is AUFS bookkeeping, which runtimes skip: a name
// starting ".wh..wh." other than the opaque marker, or anything below a
// top-level directory so named (".wh..wh.plnk/1234.5678").
func isMeta(p string) bool {
	_, base := split(p)
	if base == opaqueWhiteout {
		first, _, _ := strings.Cut(p, "/")
		return strings.HasPrefix(first, whiteoutMeta) && first != opaqueWhiteout
	}
	return strings.HasPrefix(base, whiteoutMeta) || strings.HasPrefix(p, whiteoutMeta)
}

func join(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

// isAncestor says whether directory a holds p somewhere below it.
func isAncestor(a, p string) bool {
	return a == "" || len(p) > len(a) && p[len(a)] == '/' && strings.HasPrefix(p, a)
}
