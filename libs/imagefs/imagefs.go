// Package imagefs reads the final filesystem of a container image (all
// layers applied, whiteouts honoured) without unpacking it: TrustedFiles
// lists every file with its mode, size and SHA-256, streaming each layer
// once; ReadFile fetches one file's contents. The converter records the
// list in the enclave image, and the launcher checks the filesystem
// against it before running the application. docs/trusted-files.md
// describes the rules and the list's canonical encoding.
package imagefs

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// progressStep is how many bytes pass between two progress reports.
const progressStep = 1 << 20

// DefaultMaxSize bounds ReadFile unless WithMaxSize says otherwise.
const DefaultMaxSize = 16 << 20

// DefaultMaxEntries bounds the layer entries TrustedFiles applies unless
// WithMaxEntries says otherwise: memory grows with them, and the list of
// a million files is about 100 MiB, within what the launcher reads.
const DefaultMaxEntries = 1 << 20

// Option changes how TrustedFiles and ReadFile work.
type Option func(*options)

type options struct {
	progress   func(layer, layers int, bytes int64)
	maxSize    int64
	maxEntries int
}

// WithProgress has fn called as layers stream: layer is the index of the
// layer being read (0 is the bottom one), layers how many the image has,
// and bytes how many uncompressed bytes of that layer have been read so
// far. It is called about every MiB and once at the end of each layer,
// from the caller's goroutine; a slow fn slows the walk.
func WithProgress(fn func(layer, layers int, bytes int64)) Option {
	return func(o *options) { o.progress = fn }
}

// WithMaxSize bounds the size of the file ReadFile returns (DefaultMaxSize
// without it). A larger file is ErrTooLarge and is never held in memory.
func WithMaxSize(n int64) Option {
	return func(o *options) { o.maxSize = n }
}

// WithMaxEntries bounds the entries, over all layers, that TrustedFiles
// applies (DefaultMaxEntries without it); more is ErrTooManyEntries.
func WithMaxEntries(n int) Option {
	return func(o *options) { o.maxEntries = n }
}

func newOptions(opts []Option) options {
	o := options{maxSize: DefaultMaxSize, maxEntries: DefaultMaxEntries}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// ListedLayer is a layer whose entries its caller already knows: one it
// built itself and hashed as it built it, such as the converter's runtime
// layer, which every conversion lists again. TrustedFiles applies its
// Entries as it would the tar's and never reads the layer. A layer read
// from anywhere else must not implement it: nothing checks what Entries
// says against the layer's bytes.
type ListedLayer interface {
	v1.Layer
	// Entries are the layer's tar headers in order, each regular file's
	// with the SHA-256 of its contents.
	Entries() []LayerEntry
}

// LayerEntry is one entry of a ListedLayer.
type LayerEntry struct {
	Header tar.Header
	SHA256 [32]byte // of a regular file's contents
}

// TrustedFiles lists the final filesystem of img. It reads the layers
// bottom to top, each exactly once through Uncompressed and to its end (so
// that a verifying reader checks the layer's digest) unless it is a
// ListedLayer, and applies them as
// a container runtime would: later layers replace earlier entries, ".wh."
// whiteouts and ".wh..wh..opq" opaque markers hide what lower layers wrote,
// hard links take their target's contents as it stood when the link was
// made. Memory grows with the number of files, not with their size.
//
// The walk stops when ctx is done, between layers or within one; errors
// name the layer (index and digest) and the entry.
func TrustedFiles(ctx context.Context, img v1.Image, opts ...Option) (*List, error) {
	o := newOptions(opts)
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	a := applier{tree: newTree(), hash: sha256.New(), buf: make([]byte, 128<<10)}
	entries := 0
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		apply := func(h *tar.Header, r io.Reader) error {
			if entries++; entries > o.maxEntries {
				return fmt.Errorf("entry %q: %w (%d)", h.Name, ErrTooManyEntries, o.maxEntries)
			}
			return a.apply(i, h, r)
		}
		var err error
		if listed, ok := l.(ListedLayer); ok {
			for _, e := range listed.Entries() {
				a.known = &e.SHA256
				if err = apply(&e.Header, nil); err != nil {
					break
				}
			}
			a.known = nil
		} else {
			err = eachEntry(ctx, l, i, len(layers), o.progress, func(_ int, h *tar.Header, r io.Reader) error { return apply(h, r) })
		}
		if err != nil {
			return nil, layerError(ctx, i, l, err)
		}
	}
	return a.tree.list(), nil
}

// applier applies the entries of layers, in order, to a tree.
type applier struct {
	tree  *tree
	hash  hash.Hash
	buf   []byte
	known *[32]byte // the current entry's sum, from a ListedLayer
}

func (a *applier) apply(layer int, h *tar.Header, r io.Reader) error {
	p, err := cleanPath(h.Name)
	if err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, err)
	}
	if p == "" {
		// The root itself ("./"): its mode is not a file's, and the
		// launcher does not own it.
		if h.Typeflag == tar.TypeDir {
			return nil
		}
		return fmt.Errorf("entry %q: %w: the root is not a directory", h.Name, ErrMalformed)
	}
	dir, base := split(p)
	switch {
	case isMeta(p):
	case base == opaqueWhiteout:
		err = a.tree.opaque(dir, layer)
	case strings.HasPrefix(base, whiteoutPrefix):
		name := base[len(whiteoutPrefix):]
		if name == "" || name == "." || name == ".." {
			return fmt.Errorf("entry %q: %w: whiteout of %q", h.Name, ErrMalformed, name)
		}
		err = a.tree.whiteout(dir, name, layer)
	default:
		err = a.entry(layer, p, h, r)
	}
	if err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, err)
	}
	return nil
}

func (a *applier) entry(layer int, p string, h *tar.Header, r io.Reader) error {
	n := &node{layer: layer, mode: fileMode(h.Mode)}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		n.typ = TypeRegular
		if a.known != nil {
			n.size, n.sum = h.Size, *a.known
			break
		}
		a.hash.Reset()
		size, err := io.CopyBuffer(a.hash, r, a.buf)
		if err != nil {
			return err
		}
		n.size = size
		a.hash.Sum(n.sum[:0])
	case tar.TypeDir:
		n.typ = TypeDir
	case tar.TypeSymlink:
		if !validTarget(h.Linkname) {
			return fmt.Errorf("%w: symlink target is empty, longer than %d bytes or holds a NUL byte", ErrMalformed, maxTarget)
		}
		n.typ, n.mode, n.target = TypeSymlink, symlinkMode, h.Linkname
	case tar.TypeLink:
		target, err := cleanPath(h.Linkname)
		if err != nil {
			return fmt.Errorf("hard link %q to %q: %w", p, h.Linkname, err)
		}
		t, err := a.tree.get(target)
		if err != nil || t.typ == TypeDir {
			return fmt.Errorf("hard link %q to %q: %w", p, target, ErrLinkTarget)
		}
		// The link shares the target's inode as it is now: a later layer
		// replacing the target does not change what the link holds.
		*n = *t
		n.layer = layer
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		n.typ = typeOther
	default:
		return fmt.Errorf("%w: tar type %q", ErrMalformed, h.Typeflag)
	}
	return a.tree.put(p, n)
}

// eachEntry streams layer l once, calling fn for every entry with the
// entry's index in the layer and a reader of its contents, then reads the
// layer to its end so that a verifying reader checks its digest.
func eachEntry(ctx context.Context, l v1.Layer, layer, layers int, progress func(int, int, int64), fn func(int, *tar.Header, io.Reader) error) (err error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("opening: %w", err)
	}
	defer func() {
		if cerr := rc.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing: %w", cerr)
		}
	}()
	m := &meter{ctx: ctx, r: rc, next: progressStep}
	if progress != nil {
		m.report = func(n int64) { progress(layer, layers, n) }
	}
	tr := tar.NewReader(m)
	for i := 0; ; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m.cause(fmt.Errorf("reading tar: %w", err))
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if err := fn(i, h, tr); err != nil {
			return m.cause(err)
		}
	}
	if _, err := io.Copy(io.Discard, m); err != nil {
		return m.cause(fmt.Errorf("reading past the tar's end: %w", err))
	}
	if m.report != nil {
		m.report(m.n)
	}
	return nil
}

// meter counts the bytes read from a layer, reports progress and stops
// the read when ctx is done, so cancellation takes effect within a layer.
type meter struct {
	ctx    context.Context
	r      io.Reader
	n      int64
	next   int64
	report func(int64)
}

func (m *meter) Read(p []byte) (int, error) {
	if err := m.ctx.Err(); err != nil {
		return 0, err
	}
	k, err := m.r.Read(p)
	m.n += int64(k)
	if m.report != nil && m.n >= m.next {
		m.report(m.n)
		m.next = m.n + progressStep
	}
	return k, err
}

// cause returns ctx's error if ctx is done, since archive/tar may turn a
// failed read into an error of its own.
func (m *meter) cause(err error) error {
	if cerr := m.ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return cerr
	}
	return err
}

// layerError names the layer in err. It asks for the digest only on a
// failure that is not a cancellation: for some layers (daemon, random)
// Digest compresses the whole layer.
func layerError(ctx context.Context, i int, l v1.Layer, err error) error {
	if ctx.Err() == nil {
		if d, derr := l.Digest(); derr == nil {
			return fmt.Errorf("layer %d (%s): %w", i, d, err)
		}
	}
	return fmt.Errorf("layer %d: %w", i, err)
}
