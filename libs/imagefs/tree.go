package imagefs

import (
	"cmp"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// maxSymlinks bounds the symlinks followed resolving one path, as Linux's
// 40 does.
const maxSymlinks = 40

// implicitDirMode is the mode of a directory no entry describes: a parent
// that a layer needs but does not list, as Docker and containerd create it.
const implicitDirMode fs.FileMode = 0o755

// node is one path of the filesystem being built. Memory per file is this
// struct and a map slot; nothing of a file's contents is kept.
type node struct {
	typ    Type
	mode   fs.FileMode
	size   int64
	sum    [32]byte
	target string
	// layer is the index of the layer that last wrote this path (or, for
	// an implicit directory, needed it). Whiteouts and opaque markers of
	// layer N remove only what layers below N wrote.
	layer int
	kids  map[string]*node // directories only
}

type tree struct {
	root *node
}

func newTree() *tree {
	return &tree{root: &node{typ: TypeDir, mode: implicitDirMode, layer: -1}}
}

// dir resolves p (cleaned, "" for the root) to a directory, following
// symlinks met on the way as the kernel does inside a chroot: an absolute
// target starts again at the image root and ".." never climbs above it.
// This is where Docker and containerd put a layer's "lib/x" when a lower
// layer made "lib" a symlink to "usr/lib". With create, missing
// directories are made implicit, belonging to layer.
func (t *tree) dir(p string, create bool, layer int) (*node, error) {
	stack := []*node{t.root}
	parts := strings.Split(p, "/")
	for hops := 0; len(parts) > 0; {
		c := parts[0]
		parts = parts[1:]
		cur := stack[len(stack)-1]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		n := cur.kids[c]
		if n == nil {
			if !create {
				return nil, fs.ErrNotExist
			}
			n = &node{typ: TypeDir, mode: implicitDirMode, layer: layer}
			cur.add(c, n)
		}
		switch n.typ {
		case TypeDir:
			stack = append(stack, n)
		case TypeSymlink:
			if hops++; hops > maxSymlinks {
				return nil, fmt.Errorf("%q: %w", p, ErrSymlinkLoop)
			}
			if strings.HasPrefix(n.target, "/") {
				stack = stack[:1]
			}
			parts = append(strings.Split(n.target, "/"), parts...)
		default:
			return nil, fmt.Errorf("%q: %w", p, ErrNotDir)
		}
	}
	return stack[len(stack)-1], nil
}

func (n *node) add(name string, c *node) {
	if n.kids == nil {
		n.kids = make(map[string]*node)
	}
	n.kids[name] = c
}

// put writes n at p. A directory over a directory keeps the lower one's
// contents and takes the new mode; anything else replaces what was there,
// with everything below it.
func (t *tree) put(p string, n *node) error {
	dir, base := split(p)
	d, err := t.dir(dir, true, n.layer)
	if err != nil {
		return err
	}
	if old := d.kids[base]; old != nil && old.typ == TypeDir && n.typ == TypeDir {
		old.mode, old.layer = n.mode, n.layer
		return nil
	}
	d.add(base, n)
	return nil
}

// get returns what is at p, without following a symlink at p itself (as
// link(2) does not).
func (t *tree) get(p string) (*node, error) {
	dir, base := split(p)
	d, err := t.dir(dir, false, 0)
	if err != nil {
		return nil, err
	}
	n := d.kids[base]
	if n == nil {
		return nil, fs.ErrNotExist
	}
	return n, nil
}

// whiteout applies ".wh.<base>" in dir, found in layer: it removes what
// lower layers put at dir/base, and everything below it.
func (t *tree) whiteout(dir, base string, layer int) error {
	d, err := t.dir(dir, true, layer)
	if err != nil {
		return err
	}
	if n := d.kids[base]; n != nil && !n.prune(layer) {
		delete(d.kids, base)
	}
	return nil
}

// opaque applies ".wh..wh..opq" in dir, found in layer: it removes what
// lower layers put below dir, keeping dir itself.
func (t *tree) opaque(dir string, layer int) error {
	d, err := t.dir(dir, true, layer)
	if err != nil {
		return err
	}
	d.pruneKids(layer)
	return nil
}

// prune removes from n's subtree what layers below layer wrote, and says
// whether n itself stays: it does if layer wrote it, or wrote something
// below it. Because of this, a whiteout or opaque marker has the same
// effect wherever it sits in its layer's tar: entries of the same layer,
// before or after it, survive, as the OCI image spec requires. A lower
// directory kept only because the layer wrote below it becomes the
// implicit directory it would have been had the marker come first.
func (n *node) prune(layer int) bool {
	if n.typ != TypeDir {
		return n.layer == layer
	}
	kept := n.pruneKids(layer)
	if n.layer == layer {
		return true
	}
	if kept {
		n.mode, n.layer = implicitDirMode, layer
	}
	return kept
}

func (n *node) pruneKids(layer int) (kept bool) {
	for name, c := range n.kids {
		if c.prune(layer) {
			kept = true
		} else {
			delete(n.kids, name)
		}
	}
	return kept
}

// list flattens the tree into a List. Device nodes and FIFOs are left out.
func (t *tree) list() *List {
	var es []Entry
	var walk func(prefix string, n *node)
	walk = func(prefix string, n *node) {
		for name, c := range n.kids {
			p := join(prefix, name)
			switch c.typ {
			case TypeRegular:
				es = append(es, Entry{Path: p, Type: TypeRegular, Mode: c.mode, Size: c.size, SHA256: c.sum})
			case TypeSymlink:
				es = append(es, Entry{Path: p, Type: TypeSymlink, Mode: symlinkMode, Target: c.target})
			case TypeDir:
				es = append(es, Entry{Path: p, Type: TypeDir, Mode: c.mode})
				walk(p, c)
			}
		}
	}
	walk("", t.root)
	slices.SortFunc(es, func(a, b Entry) int { return cmp.Compare(a.Path, b.Path) })
	return &List{entries: es}
}
