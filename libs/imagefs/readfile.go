package imagefs

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ReadFile returns the contents of the regular file name (e.g.
// "/opt/cloister/manifest.json") in the final filesystem of img. It reads
// layers top down and stops after the first one that has name and is not
// hidden by a whiteout or opaque marker above it; the converter's own
// files, in the top layer, cost one layer's read. A hard link is followed
// to its target, which may mean reading its layer a second time.
//
// A missing file is fs.ErrNotExist; a directory, symlink, device or FIFO
// is ErrNotRegular; a file over the maximum size (WithMaxSize) is
// ErrTooLarge.
//
// ReadFile matches names literally: it does not follow symlinks, and a
// path that an upper layer makes go through a symlink is ErrNotRegular.
// When a lower layer turns a parent of name into a symlink and a layer in
// between writes name through it, only TrustedFiles sees where the file
// really went; the paths the converter writes have no such parents.
func ReadFile(ctx context.Context, img v1.Image, name string, opts ...Option) ([]byte, error) {
	o := newOptions(opts)
	p, err := cleanPath(name)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", name, err)
	}
	if p == "" {
		return nil, fmt.Errorf("%q: %w: the root directory", name, ErrNotRegular)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	// A hard link sends the search to its target, from the link's own
	// layer and, in that layer, from the entries before the link.
	start, before := len(layers)-1, -1
	for hops := 0; ; hops++ {
		if hops > maxSymlinks {
			return nil, fmt.Errorf("%q: %w", name, ErrSymlinkLoop)
		}
		h, layer, err := find(ctx, layers, p, start, before, o)
		if err != nil {
			return nil, err
		}
		switch {
		case h == nil:
			return nil, fmt.Errorf("%q: %w", p, fs.ErrNotExist)
		case h.via != "":
			return nil, fmt.Errorf("%q goes through symlink %q: %w", p, h.via, ErrNotRegular)
		case h.typ == tar.TypeLink:
			p, start, before = h.target, layer, h.index
		case h.typ != tar.TypeReg:
			return nil, fmt.Errorf("%q: %w", p, ErrNotRegular)
		case h.tooLarge:
			return nil, fmt.Errorf("%q: %d bytes: %w (%d)", p, h.size, ErrTooLarge, o.maxSize)
		default:
			return h.data, nil
		}
	}
}

// hit is what a layer says about a path: nil when it says nothing, and
// otherwise the entry that is there, or that the path is gone.
type hit struct {
	// typ is the path's tar type, normalised (TypeReg for every kind of
	// regular file); 0 when the layer hides the path without replacing it.
	typ      byte
	data     []byte
	size     int64
	tooLarge bool
	target   string // a hard link's cleaned target
	index    int    // a hard link's index in its layer
	via      string // a parent that the layer made a symlink
}

// find returns the first layer's word on p, reading layers from start
// down; in layer start it considers only entries before index before, if
// before >= 0.
func find(ctx context.Context, layers []v1.Layer, p string, start, before int, o options) (*hit, int, error) {
	for i := start; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		limit := -1
		if i == start {
			limit = before
		}
		h, err := scan(ctx, layers, i, p, limit, o)
		if err != nil {
			return nil, 0, layerError(ctx, i, layers[i], err)
		}
		if h != nil {
			if h.typ == 0 && h.via == "" {
				return nil, i, nil
			}
			return h, i, nil
		}
	}
	return nil, 0, nil
}

// scan reads layer i for what it does to p. Entries in the same layer win
// over its whiteouts whatever their order, as in TrustedFiles; a later
// entry for the same path wins over an earlier one.
func scan(ctx context.Context, layers []v1.Layer, i int, p string, limit int, o options) (*hit, error) {
	var (
		found  *hit
		hidden bool
		via    string
	)
	err := eachEntry(ctx, layers[i], i, len(layers), o.progress, func(k int, h *tar.Header, r io.Reader) error {
		if limit >= 0 && k >= limit {
			return nil
		}
		name, err := cleanPath(h.Name)
		if err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		if name == "" {
			return nil
		}
		dir, base := split(name)
		switch {
		case isMeta(name):
			return nil
		case base == opaqueWhiteout:
			if isAncestor(dir, p) {
				hidden = true
			}
			return nil
		case strings.HasPrefix(base, whiteoutPrefix):
			w := join(dir, base[len(whiteoutPrefix):])
			if w == p || isAncestor(w, p) {
				hidden = true
			}
			return nil
		case isAncestor(name, p):
			// A parent replaced by a non-directory removes p, and
			// whatever lower layers had there.
			if h.Typeflag != tar.TypeDir {
				found, hidden, via = nil, true, ""
				if h.Typeflag == tar.TypeSymlink {
					via = name
				}
			}
			return nil
		case name != p:
			return nil
		}
		found = &hit{typ: h.Typeflag, size: h.Size}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
			found.typ = tar.TypeReg
			if h.Size > o.maxSize {
				found.tooLarge = true
				return nil
			}
			data, err := io.ReadAll(io.LimitReader(r, o.maxSize+1))
			if err != nil {
				return err
			}
			if int64(len(data)) > o.maxSize {
				found.tooLarge = true
				return nil
			}
			found.data = data
		case tar.TypeLink:
			t, err := cleanPath(h.Linkname)
			if err != nil {
				return fmt.Errorf("hard link %q to %q: %w", name, h.Linkname, err)
			}
			found.target, found.index = t, k
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case found != nil:
		return found, nil
	case hidden:
		return &hit{via: via}, nil
	}
	return nil, nil
}
