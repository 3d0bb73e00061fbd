package imagefs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// ent is one tar entry of a test layer.
type ent struct {
	name string
	typ  byte
	mode int64
	body string
	link string
}

func reg(name string, mode int64, body string) ent {
	return ent{name: name, typ: tar.TypeReg, mode: mode, body: body}
}
func dir(name string, mode int64) ent { return ent{name: name, typ: tar.TypeDir, mode: mode} }
func sym(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func hard(name, target string) ent {
	return ent{name: name, typ: tar.TypeLink, mode: 0o644, link: target}
}
func wh(name string) ent { return reg(name, 0o644, "") }

func tarBytes(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("writing %q: %v", e.name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// gzLayer is a gzip-compressed layer, as a registry would serve it:
// Uncompressed decompresses.
func gzLayer(t testing.TB, raw []byte) v1.Layer {
	t.Helper()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	gz := z.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func image(t testing.TB, layers ...[]ent) v1.Image {
	t.Helper()
	ls := make([]v1.Layer, len(layers))
	for i, ents := range layers {
		ls[i] = gzLayer(t, tarBytes(t, ents...))
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// countingImage counts, per layer, how often Uncompressed is called and
// how many bytes are read from it.
type countingImage struct {
	v1.Image
	opens []atomic.Int32
	read  []atomic.Int64
}

func counting(t testing.TB, img v1.Image) *countingImage {
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return &countingImage{Image: img, opens: make([]atomic.Int32, len(ls)), read: make([]atomic.Int64, len(ls))}
}

func (c *countingImage) Layers() ([]v1.Layer, error) {
	ls, err := c.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = &countingLayer{Layer: l, opens: &c.opens[i], read: &c.read[i]}
	}
	return out, nil
}

func (c *countingImage) openCounts() []int32 {
	n := make([]int32, len(c.opens))
	for i := range c.opens {
		n[i] = c.opens[i].Load()
	}
	return n
}

type countingLayer struct {
	v1.Layer
	opens *atomic.Int32
	read  *atomic.Int64
}

func (l *countingLayer) Uncompressed() (io.ReadCloser, error) {
	l.opens.Add(1)
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	return &countingReader{ReadCloser: rc, n: l.read}, nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	k, err := r.ReadCloser.Read(p)
	r.n.Add(int64(k))
	return k, err
}

func F(p string, mode fs.FileMode, body string) Entry {
	return Entry{Path: p, Type: TypeRegular, Mode: mode, Size: int64(len(body)), SHA256: sha256.Sum256([]byte(body))}
}
func D(p string, mode fs.FileMode) Entry { return Entry{Path: p, Type: TypeDir, Mode: mode} }
func L(p, target string) Entry           { return Entry{Path: p, Type: TypeSymlink, Mode: 0o777, Target: target} }

func mustList(t testing.TB, es ...Entry) *List {
	t.Helper()
	l, err := NewList(es)
	if err != nil {
		t.Fatalf("NewList: %v", err)
	}
	return l
}

func diffLists(t *testing.T, got, want *List) {
	t.Helper()
	g, w := slices.Collect(got.All()), slices.Collect(want.All())
	if slices.Equal(g, w) {
		return
	}
	t.Errorf("list differs\n got:\n%s\nwant:\n%s", got.Encode(), want.Encode())
}

const (
	hostsV1 = "127.0.0.1 localhost\n"
	hostsV2 = "10.0.0.1 changed\n"
)

// handMade is three layers that exercise every rule at least once.
func handMade(t testing.TB) v1.Image {
	return image(t,
		[]ent{ // layer 0
			dir("./", 0o755),
			dir("./etc/", 0o755),
			reg("./etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"),
			reg("./etc/old", 0o644, "old"),
			reg("./etc/hosts", 0o644, hostsV1),
			dir("usr/", 0o755),
			dir("usr/bin/", 0o755),
			reg("usr/bin/tool", 0o755, "tool v1"),
			reg("usr/bin/su", 0o4755, "su"),
			hard("usr/bin/tool-link", "usr/bin/tool"),
			sym("bin", "usr/bin"),
			dir("tmp/", 0o1777),
			dir("var/", 0o755),
			dir("var/cache/", 0o755),
			reg("var/cache/a", 0o644, "a"),
			dir("var/cache/sub/", 0o755),
			reg("var/cache/sub/b", 0o644, "b"),
			dir("opt/", 0o755),
			dir("opt/app/", 0o750),
			reg("opt/app/old1", 0o644, "old1"),
			dir("opt/app/sub/", 0o755),
			reg("opt/app/sub/old2", 0o644, "old2"),
			reg("opt/app/keep", 0o644, "keep v1"),
			reg("conf", 0o644, "conf is a file"),
			dir("srv/", 0o755),
			reg("srv/x", 0o644, "srv/x"),
			reg("/root-file", 0o600, "abs"),
			reg("implicit/dir/file", 0o644, "i"),
			dir("dev/", 0o755),
			{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
			reg("weird name\nwith newline", 0o644, "w"),
			reg("naïve \"q\" \\", 0o644, "n"),
		},
		[]ent{ // layer 1
			wh("etc/.wh.old"),
			wh("var/.wh.cache"),
			reg("opt/app/new-before", 0o644, "nb"),
			reg("opt/app/keep", 0o644, "keep v2"),
			wh("opt/app/.wh..wh..opq"),
			reg("opt/app/new-after", 0o644, "na"),
			dir("conf/", 0o755),
			reg("conf/x", 0o644, "x"),
			hard("etc/hosts-link", "/etc/hosts"),
			reg("usr/bin/tool", 0o700, "tool v2"),
			reg("bin/late", 0o755, "late"),
		},
		[]ent{ // layer 2
			reg("etc/hosts", 0o644, hostsV2),
			reg("srv", 0o600, "srv is a file now"),
			reg("usr/bin/sgid", 0o2755, "sgid"),
		},
	)
}

func handMadeWant(t testing.TB) *List {
	return mustList(t,
		L("bin", "usr/bin"),
		D("conf", 0o755),
		F("conf/x", 0o644, "x"),
		D("dev", 0o755), // dev/null, a device, is not listed
		D("etc", 0o755),
		F("etc/hosts", 0o644, hostsV2),
		F("etc/hosts-link", 0o644, hostsV1), // linked in layer 1, before layer 2 replaced etc/hosts
		F("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"),
		D("implicit", 0o755),
		D("implicit/dir", 0o755),
		F("implicit/dir/file", 0o644, "i"),
		F("naïve \"q\" \\", 0o644, "n"),
		D("opt", 0o755),
		D("opt/app", 0o750),
		F("opt/app/keep", 0o644, "keep v2"),
		F("opt/app/new-after", 0o644, "na"),
		F("opt/app/new-before", 0o644, "nb"),
		F("root-file", 0o600, "abs"),
		F("srv", 0o600, "srv is a file now"),
		D("tmp", 0o777|fs.ModeSticky),
		D("usr", 0o755),
		D("usr/bin", 0o755),
		F("usr/bin/late", 0o755, "late"), // written as bin/late, through the symlink
		F("usr/bin/sgid", 0o755|fs.ModeSetgid, "sgid"),
		F("usr/bin/su", 0o755|fs.ModeSetuid, "su"),
		F("usr/bin/tool", 0o700, "tool v2"),
		F("usr/bin/tool-link", 0o755, "tool v1"),
		D("var", 0o755),
		F("weird name\nwith newline", 0o644, "w"),
	)
}

func TestTrustedFilesHandMade(t *testing.T) {
	img := counting(t, handMade(t))
	got, err := TrustedFiles(context.Background(), img)
	if err != nil {
		t.Fatalf("TrustedFiles = %v", err)
	}
	diffLists(t, got, handMadeWant(t))
	if n := img.openCounts(); !slices.Equal(n, []int32{1, 1, 1}) {
		t.Errorf("Uncompressed calls per layer = %v, want [1 1 1]", n)
	}

	golden := filepath.Join("testdata", "handmade.list")
	if *update {
		if err := os.WriteFile(golden, got.Encode(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), want) {
		t.Errorf("Encode() =\n%s\nwant (%s):\n%s", got.Encode(), golden, want)
	}
}

// listedLayer is a layer with its entries given, as a ListedLayer; it
// cannot be read.
type listedLayer struct {
	v1.Layer
	entries []LayerEntry
}

func (l listedLayer) Entries() []LayerEntry { return l.entries }
func (l listedLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, errors.New("a listed layer is not read")
}

// A ListedLayer's entries stand for its tar: right ones give the list
// reading gives, and a wrong sum shows in the list, which proves the
// contents were not read. Its entries count against the limit.
func TestTrustedFilesListedLayer(t *testing.T) {
	ents := []ent{dir("etc/", 0o755), reg("etc/a", 0o644, "alpha"), reg("etc/b", 0o600, "beta"), sym("etc/c", "a"), wh("etc/.wh.old")}
	layer := gzLayer(t, tarBytes(t, ents...))
	bottom := gzLayer(t, tarBytes(t, dir("etc/", 0o700), reg("etc/old", 0o644, "gone")))
	var listed []LayerEntry
	tr := tar.NewReader(bytes.NewReader(tarBytes(t, ents...)))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, LayerEntry{Header: *h, SHA256: sha256.Sum256(body)})
	}
	list := func(top v1.Layer, opts ...Option) (*List, error) {
		t.Helper()
		img, err := mutate.AppendLayers(empty.Image, bottom, top)
		if err != nil {
			t.Fatal(err)
		}
		return TrustedFiles(context.Background(), img, opts...)
	}
	want, err := list(layer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := list(listedLayer{layer, listed})
	if err != nil {
		t.Fatalf("TrustedFiles = %v", err)
	}
	diffLists(t, got, want)

	lie := slices.Clone(listed)
	lie[1].SHA256 = sha256.Sum256([]byte("not alpha"))
	if got, err = list(listedLayer{layer, lie}); err != nil {
		t.Fatal(err)
	}
	if e, _ := got.Lookup("etc/a"); e.SHA256 != lie[1].SHA256 || e.Size != 5 {
		t.Errorf("etc/a = %+v, want the listed sum and the header's size 5", e)
	}
	if _, err := list(listedLayer{layer, listed}, WithMaxEntries(6)); !errors.Is(err, ErrTooManyEntries) {
		t.Errorf("7 entries with a limit of 6 = %v, want ErrTooManyEntries", err)
	}
}

// The entries of all layers count against the limit; at the limit the
// list is made, one more names the entry and the limit.
func TestTrustedFilesMaxEntries(t *testing.T) {
	img := handMade(t)
	full, err := TrustedFiles(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	layers, _ := img.Layers()
	for i, l := range layers {
		if err := eachEntry(context.Background(), l, i, len(layers), nil, func(int, *tar.Header, io.Reader) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := TrustedFiles(context.Background(), img, WithMaxEntries(n)); err != nil || got.Len() != full.Len() {
		t.Fatalf("TrustedFiles with the limit at the %d entries = %v, want the list", n, err)
	}
	_, err = TrustedFiles(context.Background(), img, WithMaxEntries(n-1))
	if !errors.Is(err, ErrTooManyEntries) || !strings.Contains(err.Error(), fmt.Sprint(n-1)) {
		t.Fatalf("TrustedFiles with a limit of %d = %v, want ErrTooManyEntries naming the limit", n-1, err)
	}
}

func TestTrustedFilesRules(t *testing.T) {
	tests := []struct {
		name   string
		layers [][]ent
		want   []Entry
	}{
		{
			name: "whiteouts spare entries of their own layer, before or after them",
			layers: [][]ent{
				{dir("a/", 0o755), reg("a/x", 0o644, "x0"), reg("a/y", 0o644, "y0"), reg("a/z", 0o644, "z0")},
				{reg("a/x", 0o644, "x1"), wh("a/.wh.x"), wh("a/.wh.y"), wh("a/.wh.z"), reg("a/z", 0o644, "z1")},
			},
			want: []Entry{D("a", 0o755), F("a/x", 0o644, "x1"), F("a/z", 0o644, "z1")},
		},
		{
			name: "whiteout of a directory keeps what its own layer put below it",
			layers: [][]ent{
				{dir("d/", 0o700), reg("d/old", 0o644, "old"), dir("d/s/", 0o700), reg("d/s/old", 0o644, "old")},
				{reg("d/s/new", 0o644, "new"), wh(".wh.d")},
			},
			// d and d/s now exist only as parents of d/s/new: implicit, 0755.
			want: []Entry{D("d", 0o755), D("d/s", 0o755), F("d/s/new", 0o644, "new")},
		},
		{
			name: "opaque root",
			layers: [][]ent{
				{reg("a", 0o644, "a"), dir("b/", 0o755), reg("b/c", 0o644, "c")},
				{reg("b/d", 0o644, "d"), wh(".wh..wh..opq"), reg("e", 0o644, "e")},
			},
			want: []Entry{D("b", 0o755), F("b/d", 0o644, "d"), F("e", 0o644, "e")},
		},
		{
			name: "opaque directory that the same layer redeclares",
			layers: [][]ent{
				{dir("o/", 0o700), reg("o/x", 0o644, "x"), dir("o/k/", 0o755), reg("o/k/y", 0o644, "y")},
				{dir("o/", 0o711), dir("o/k/", 0o755), wh("o/.wh..wh..opq")},
			},
			want: []Entry{D("o", 0o711), D("o/k", 0o755)},
		},
		{
			name: "directory over directory keeps the contents and takes the new mode",
			layers: [][]ent{
				{dir("d/", 0o700), reg("d/x", 0o644, "x")},
				{dir("d/", 0o755)},
			},
			want: []Entry{D("d", 0o755), F("d/x", 0o644, "x")},
		},
		{
			name: "file replaced by a directory and directory by a file",
			layers: [][]ent{
				{reg("f", 0o644, "f"), dir("d/", 0o755), reg("d/x", 0o644, "x")},
				{dir("f/", 0o755), reg("f/y", 0o644, "y"), reg("d", 0o600, "d")},
			},
			want: []Entry{F("d", 0o600, "d"), D("f", 0o755), F("f/y", 0o644, "y")},
		},
		{
			name: "later entry for the same path in one layer wins",
			layers: [][]ent{
				{reg("x", 0o644, "first"), reg("./x", 0o600, "second")},
			},
			want: []Entry{F("x", 0o600, "second")},
		},
		{
			name: "hard link keeps the target's contents as of its own layer",
			layers: [][]ent{
				{reg("f", 0o755, "v1")},
				{hard("g", "./f"), wh(".wh.f")},
				{reg("f", 0o644, "v2")},
			},
			want: []Entry{F("f", 0o644, "v2"), F("g", 0o755, "v1")},
		},
		{
			name: "hard link to a symlink is the same symlink",
			layers: [][]ent{
				{sym("s", "/etc/target"), hard("h", "s")},
			},
			want: []Entry{L("h", "/etc/target"), L("s", "/etc/target")},
		},
		{
			name: "entries below symlinked parents land where the symlinks point",
			layers: [][]ent{
				{dir("usr/", 0o755), dir("usr/lib/", 0o755), sym("lib", "usr/lib"), sym("lib64", "/usr/lib"),
					sym("usr/lib/up", "../../../../etc")},
				{reg("lib/a", 0o644, "a"), reg("lib64/b", 0o644, "b"), reg("usr/lib/up/c", 0o644, "c")},
			},
			want: []Entry{
				D("etc", 0o755), F("etc/c", 0o644, "c"), // ".." stops at the root
				L("lib", "usr/lib"), L("lib64", "/usr/lib"),
				D("usr", 0o755), D("usr/lib", 0o755), F("usr/lib/a", 0o644, "a"), F("usr/lib/b", 0o644, "b"),
				L("usr/lib/up", "../../../../etc"),
			},
		},
		{
			name: "devices and fifos replace what was there and are not listed",
			layers: [][]ent{
				{reg("f", 0o644, "f"), dir("d/", 0o755), reg("d/x", 0o644, "x")},
				{{name: "f", typ: tar.TypeBlock, mode: 0o600}, {name: "d", typ: tar.TypeFifo, mode: 0o600}},
			},
			want: nil,
		},
		{
			name: "AUFS bookkeeping is skipped",
			layers: [][]ent{
				{dir(".wh..wh.plnk/", 0o700), reg(".wh..wh.plnk/12.34", 0o644, "x"), reg(".wh..wh.aufs", 0o600, ""),
					reg("a/.wh..wh.meta", 0o644, "")},
			},
			want: nil,
		},
		{
			name: "modes keep setuid, setgid and sticky bits and drop the rest",
			layers: [][]ent{
				{reg("x", 0o107755, "x"), reg("y", 0o1000, "y"), reg("z", 0, "")},
			},
			want: []Entry{F("x", 0o755|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky, "x"), F("y", fs.ModeSticky, "y"), F("z", 0, "")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TrustedFiles(context.Background(), image(t, tt.layers...))
			if err != nil {
				t.Fatalf("TrustedFiles = %v", err)
			}
			diffLists(t, got, mustList(t, tt.want...))
		})
	}
}

func TestTrustedFilesErrors(t *testing.T) {
	base := []ent{dir("d/", 0o755), reg("f", 0o644, "f")}
	tests := []struct {
		name  string
		layer []ent
		want  error
		msg   []string // the error names these
	}{
		{"dot-dot escape", []ent{reg("../escape", 0o644, "x")}, ErrUnsafePath, []string{`"../escape"`}},
		{"dot-dot escape inside", []ent{reg("a/../../x", 0o644, "x")}, ErrUnsafePath, []string{`"a/../../x"`}},
		{"dot-dot after the leading slash", []ent{reg("/../x", 0o644, "x")}, ErrUnsafePath, []string{`"/../x"`}},
		{"hard link to a missing target", []ent{hard("d/l", "missing/t")}, ErrLinkTarget, []string{`"d/l"`, `"missing/t"`}},
		{"hard link to a directory", []ent{hard("l", "d")}, ErrLinkTarget, []string{`"l"`, `"d"`}},
		{"hard link out of the root", []ent{hard("l", "../f")}, ErrUnsafePath, []string{`"l"`, `"../f"`}},
		{"hard link to a path whited out before it", []ent{wh(".wh.f"), hard("l", "f")}, ErrLinkTarget, []string{`"l"`, `"f"`}},
		{"whiteout of dot-dot", []ent{wh("d/.wh...")}, ErrMalformed, []string{`"d/.wh..."`}},
		{"whiteout of dot", []ent{wh("d/.wh..")}, ErrMalformed, []string{`"d/.wh.."`}},
		{"entry below a file", []ent{reg("f/x", 0o644, "x")}, ErrNotDir, []string{`"f/x"`}},
		{"symlink loop", []ent{sym("a", "b"), sym("b", "a/"), reg("a/x", 0o644, "x")}, ErrSymlinkLoop, []string{`"a/x"`}},
		{"empty symlink target", []ent{sym("s", "")}, ErrMalformed, []string{`"s"`}},
		{"symlink target over PATH_MAX", []ent{sym("s", strings.Repeat("a/", 2048))}, ErrMalformed, []string{`"s"`}},
		{"unknown tar type", []ent{{name: "v", typ: 'V'}}, ErrMalformed, []string{`"v"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := image(t, base, tt.layer)
			ls, _ := img.Layers()
			digest, _ := ls[1].Digest()
			_, err := TrustedFiles(context.Background(), img)
			if !errors.Is(err, tt.want) {
				t.Fatalf("TrustedFiles = %v, want %v", err, tt.want)
			}
			for _, s := range append(tt.msg, "layer 1", digest.String()) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("TrustedFiles = %q, want it to name %s", err, s)
				}
			}
		})
	}
}

// extractNaively flattens img with go-containerregistry's own
// mutate.Extract and hashes every regular file and notes every directory.
func extractNaively(t *testing.T, img v1.Image) map[string]Entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]Entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := strings.TrimPrefix(h.Name, "./")
		switch h.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[p] = F(p, fileMode(h.Mode), string(b))
		case tar.TypeDir:
			files[p] = D(p, fileMode(h.Mode))
		}
	}
	return files
}

func TestTrustedFilesRandomImage(t *testing.T) {
	img, err := random.Image(256<<10, 6, random.WithSource(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	c := counting(t, img)
	got, err := TrustedFiles(context.Background(), c)
	if err != nil {
		t.Fatalf("TrustedFiles = %v", err)
	}
	want := extractNaively(t, img)
	if got.Len() != 6 || len(want) != 6 {
		t.Fatalf("TrustedFiles has %d entries and extraction %d, want 6 (one file per layer)", got.Len(), len(want))
	}
	for e := range got.All() {
		if w, ok := want[e.Path]; !ok || w != e {
			t.Errorf("TrustedFiles has %+v, extraction %+v", e, w)
		}
	}
	for i, n := range c.openCounts() {
		if n != 1 {
			t.Errorf("layer %d: Uncompressed called %d times, want 1", i, n)
		}
	}
}

// TestTrustedFilesAgainstDisk compares random layered images full of
// whiteouts, opaque directories and replacements with what applying their
// layers to a real directory, one entry at a time, leaves there. The
// layers stay within what both read alike: every parent is declared in
// the layer that needs it, and no layer whites out what it writes itself.
func TestTrustedFilesAgainstDisk(t *testing.T) {
	names := []string{"a", "b", "c"}
	for seed := range int64(300) {
		rng := rand.New(rand.NewSource(seed))
		var layers [][]ent
		for range 1 + rng.Intn(4) {
			var ents []ent
			touched := map[string]bool{}
			declared := map[string]bool{}
			var declare func(p string)
			declare = func(p string) {
				if p == "" || declared[p] {
					return
				}
				d, _ := split(p)
				declare(d)
				declared[p], touched[p] = true, true
				ents = append(ents, dir(p+"/", 0o700+int64(rng.Intn(0o100))))
			}
			for range 1 + rng.Intn(6) {
				d := ""
				for range rng.Intn(3) {
					d = join(d, names[rng.Intn(len(names))])
				}
				p := join(d, names[rng.Intn(len(names))])
				if touched[p] || declared[p] {
					continue
				}
				// No parent of p may be something other than a directory in
				// this layer, and nothing below p may be touched already.
				clash := false
				for q := d; q != ""; q, _ = split(q) {
					if touched[q] && !declared[q] {
						clash = true
					}
				}
				for q := range touched {
					if isAncestor(p, q) {
						clash = true
					}
				}
				if clash {
					continue
				}
				declare(d)
				_, base := split(p)
				switch rng.Intn(5) {
				case 0:
					ents = append(ents, wh(join(d, whiteoutPrefix+base)))
				case 1:
					declare(p)
					ents = append(ents, wh(join(p, opaqueWhiteout)))
				case 2:
					declare(p)
				default:
					ents = append(ents, reg(p, 0o400+int64(rng.Intn(0o400)), fmt.Sprintf("%d %s", seed, p)))
				}
				touched[p] = true
			}
			layers = append(layers, ents)
		}
		img := image(t, layers...)
		got, err := TrustedFiles(context.Background(), img)
		if err != nil {
			t.Fatalf("seed %d: TrustedFiles = %v", seed, err)
		}
		want := extractToDisk(t, layers)
		if !slices.Equal(slices.Collect(got.All()), slices.Collect(want.All())) {
			t.Fatalf("seed %d: layers %+v\n got:\n%s\ndisk:\n%s", seed, layers, got.Encode(), want.Encode())
		}
		// ReadFile, reading top down, must agree on every path any layer
		// names.
		for _, ents := range layers {
			for _, e := range ents {
				p := strings.TrimSuffix(e.name, "/")
				if d, base := split(p); strings.HasPrefix(base, whiteoutPrefix) {
					p = join(d, strings.TrimPrefix(base, whiteoutPrefix))
				}
				b, err := ReadFile(context.Background(), img, p)
				switch w, ok := want.Lookup(p); {
				case ok && w.Type == TypeRegular:
					if err != nil || sha256.Sum256(b) != w.SHA256 {
						t.Fatalf("seed %d: ReadFile(%q) = %q, %v, want the contents listed\n%s", seed, p, b, err, want.Encode())
					}
				case ok && !errors.Is(err, ErrNotRegular), !ok && !errors.Is(err, fs.ErrNotExist):
					t.Fatalf("seed %d: ReadFile(%q) = %q, %v, want no regular file\n%s", seed, p, b, err, want.Encode())
				}
			}
		}
	}
}

// extractToDisk applies layers of regular files, directories, whiteouts and
// opaque markers to a temporary directory, each entry as it comes, and
// lists the result.
func extractToDisk(t *testing.T, layers [][]ent) *List {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, ents := range layers {
		for _, e := range ents {
			p := filepath.Join(root, filepath.FromSlash(strings.TrimSuffix(e.name, "/")))
			d, base := filepath.Split(p)
			switch {
			case base == opaqueWhiteout:
				kids, err := os.ReadDir(d)
				must(err)
				for _, k := range kids {
					must(os.RemoveAll(filepath.Join(d, k.Name())))
				}
			case strings.HasPrefix(base, whiteoutPrefix):
				must(os.RemoveAll(filepath.Join(d, base[len(whiteoutPrefix):])))
			case e.typ == tar.TypeDir:
				if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
					must(os.Remove(p))
				}
				if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
					t.Fatal(err)
				}
				must(os.Chmod(p, fs.FileMode(e.mode)))
			default:
				must(os.RemoveAll(p))
				must(os.WriteFile(p, []byte(e.body), 0o600))
				must(os.Chmod(p, fs.FileMode(e.mode)))
			}
		}
	}
	var es []Entry
	must(filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		must(err)
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		must(err)
		if d.IsDir() {
			es = append(es, D(filepath.ToSlash(rel), fi.Mode().Perm()))
			return nil
		}
		b, err := os.ReadFile(p)
		must(err)
		es = append(es, F(filepath.ToSlash(rel), fi.Mode().Perm(), string(b)))
		return nil
	}))
	return mustList(t, es...)
}

// bigImage has one uncompressed layer per size, each one regular file of
// that many random bytes.
func bigImage(t testing.TB, sizes ...int) v1.Image {
	rng := rand.New(rand.NewSource(2))
	var ls []v1.Layer
	for i, n := range sizes {
		body := make([]byte, n)
		rng.Read(body)
		ls = append(ls, static.NewLayer(tarBytes(t, reg(fmt.Sprintf("f%d", i), 0o644, string(body))), types.OCIUncompressedLayer))
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestTrustedFilesCancel(t *testing.T) {
	t.Run("before the walk", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		img := counting(t, bigImage(t, 1<<20))
		if _, err := TrustedFiles(ctx, img); !errors.Is(err, context.Canceled) {
			t.Fatalf("TrustedFiles = %v, want context.Canceled", err)
		}
		if n := img.openCounts(); n[0] != 0 {
			t.Errorf("Uncompressed calls = %v, want none", n)
		}
	})
	t.Run("within a layer", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		img := counting(t, bigImage(t, 16<<20))
		_, err := TrustedFiles(ctx, img, WithProgress(func(int, int, int64) { cancel() }))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("TrustedFiles = %v, want context.Canceled", err)
		}
		if n := img.read[0].Load(); n > 4<<20 {
			t.Errorf("read %d bytes of a 16 MiB layer after cancelling at the first MiB", n)
		}
	})
	t.Run("between layers", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		img := counting(t, bigImage(t, 100, 100))
		_, err := TrustedFiles(ctx, img, WithProgress(func(layer, _ int, _ int64) {
			if layer == 0 {
				cancel()
			}
		}))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("TrustedFiles = %v, want context.Canceled", err)
		}
		if n := img.openCounts(); !slices.Equal(n, []int32{1, 0}) {
			t.Errorf("Uncompressed calls = %v, want [1 0]", n)
		}
	})
}

func TestTrustedFilesProgress(t *testing.T) {
	sizes := []int{5<<20 + 123, 10, 3 << 20}
	img := bigImage(t, sizes...)
	ls, _ := img.Layers()
	type call struct {
		layer, layers int
		bytes         int64
	}
	var calls []call
	if _, err := TrustedFiles(context.Background(), img, WithProgress(func(layer, layers int, n int64) {
		calls = append(calls, call{layer, layers, n})
	})); err != nil {
		t.Fatal(err)
	}
	byLayer := map[int][]int64{}
	for _, c := range calls {
		if c.layers != len(sizes) {
			t.Errorf("progress layers = %d, want %d", c.layers, len(sizes))
		}
		byLayer[c.layer] = append(byLayer[c.layer], c.bytes)
	}
	for i, l := range ls {
		rc, _ := l.Uncompressed()
		total, _ := io.Copy(io.Discard, rc)
		got := byLayer[i]
		if len(got) == 0 || got[len(got)-1] != total || !slices.IsSorted(got) {
			t.Errorf("layer %d: progress %v, want rising to %d", i, got, total)
		}
		if max := int(total>>20) + 2; len(got) > max {
			t.Errorf("layer %d: %d progress calls for %d bytes, want at most %d", i, len(got), total, max)
		}
	}
}

func TestReadFile(t *testing.T) {
	tests := []struct {
		path  string
		want  string
		err   error
		opens []int32 // Uncompressed calls per layer
	}{
		{path: "etc/hosts", want: hostsV2, opens: []int32{0, 0, 1}},
		{path: "/etc/passwd", want: "root:x:0:0:root:/root:/bin/sh\n", opens: []int32{1, 1, 1}},
		{path: "opt/app/keep", want: "keep v2", opens: []int32{0, 1, 1}},
		{path: "etc/hosts-link", want: hostsV1, opens: []int32{1, 2, 1}}, // the link's layer again, then the target's
		{path: "usr/bin/tool-link", want: "tool v1", opens: []int32{2, 1, 1}},
		{path: "bin/late", want: "late"},
		{path: "./root-file", want: "abs"},
		{path: "weird name\nwith newline", want: "w"},
		{path: "etc/old", err: fs.ErrNotExist, opens: []int32{0, 1, 1}}, // whited out in layer 1
		{path: "var/cache/sub/b", err: fs.ErrNotExist, opens: []int32{0, 1, 1}},
		{path: "opt/app/old1", err: fs.ErrNotExist, opens: []int32{0, 1, 1}}, // opaque in layer 1
		{path: "opt/app/sub/old2", err: fs.ErrNotExist},
		{path: "srv/x", err: fs.ErrNotExist, opens: []int32{0, 0, 1}}, // srv is a file from layer 2
		{path: "nowhere", err: fs.ErrNotExist, opens: []int32{1, 1, 1}},
		{path: "conf", err: ErrNotRegular},
		{path: "bin", err: ErrNotRegular},
		{path: "dev/null", err: ErrNotRegular},
		{path: "/", err: ErrNotRegular},
		{path: "../etc/passwd", err: ErrUnsafePath},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			img := counting(t, handMade(t))
			got, err := ReadFile(context.Background(), img, tt.path)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ReadFile(%q) = %q, %v, want %v", tt.path, got, err, tt.err)
				}
			} else if err != nil || string(got) != tt.want {
				t.Fatalf("ReadFile(%q) = %q, %v, want %q", tt.path, got, err, tt.want)
			}
			if n := img.openCounts(); tt.opens != nil && !slices.Equal(n, tt.opens) {
				t.Errorf("ReadFile(%q): Uncompressed calls per layer = %v, want %v", tt.path, n, tt.opens)
			}
		})
	}

	t.Run("max size", func(t *testing.T) {
		img := handMade(t)
		if _, err := ReadFile(context.Background(), img, "etc/hosts", WithMaxSize(int64(len(hostsV2)-1))); !errors.Is(err, ErrTooLarge) {
			t.Errorf("ReadFile over the limit = %v, want ErrTooLarge", err)
		}
		if got, err := ReadFile(context.Background(), img, "etc/hosts", WithMaxSize(int64(len(hostsV2)))); err != nil || string(got) != hostsV2 {
			t.Errorf("ReadFile at the limit = %q, %v, want %q", got, err, hostsV2)
		}
	})

	t.Run("agrees with TrustedFiles", func(t *testing.T) {
		img := handMade(t)
		list, err := TrustedFiles(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		for e := range list.All() {
			if e.Type != TypeRegular || e.Path == "usr/bin/late" { // written through the "bin" symlink
				continue
			}
			b, err := ReadFile(context.Background(), img, e.Path)
			if err != nil || sha256.Sum256(b) != e.SHA256 {
				t.Errorf("ReadFile(%q) = %q, %v, want the listed contents", e.Path, b, err)
			}
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := ReadFile(ctx, handMade(t), "etc/hosts"); !errors.Is(err, context.Canceled) {
			t.Errorf("ReadFile = %v, want context.Canceled", err)
		}
	})
}

func TestListRoundTrip(t *testing.T) {
	for name, l := range map[string]*List{
		"empty":     mustList(t),
		"hand-made": handMadeWant(t),
		"odd names": mustList(t,
			D(" ", 0o777|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky),
			F(" /\"\\\t\r\n\x7f\xff\u00e9\U0001F600\ufffd", 0, ""),
			L("\xc3\x28", "/a b/../\"c\""),
			F("a", 0o644|fs.ModeSetuid, strings.Repeat("x", 1000)),
		),
	} {
		t.Run(name, func(t *testing.T) {
			b := l.Encode()
			got, err := ParseList(b)
			if err != nil {
				t.Fatalf("ParseList(Encode()) = %v\n%s", err, b)
			}
			diffLists(t, got, l)
			if got.Digest() != sha256.Sum256(b) || got.Digest() != l.Digest() {
				t.Errorf("Digest() = %x, want SHA-256 of Encode() %x", got.Digest(), sha256.Sum256(b))
			}
			if bytes.Count(b, []byte("\n")) != l.Len()+1 {
				t.Errorf("Encode() has %d lines, want one per entry plus the header:\n%s", bytes.Count(b, []byte("\n")), b)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	l := handMadeWant(t)
	for _, name := range []string{"etc/hosts", "/etc/hosts", "./etc/hosts", "etc//hosts", "etc/hosts/"} {
		if e, ok := l.Lookup(name); !ok || e != F("etc/hosts", 0o644, hostsV2) {
			t.Errorf("Lookup(%q) = %+v, %v, want etc/hosts", name, e, ok)
		}
	}
	for _, name := range []string{"", "/", "etc/old", "../etc/hosts", "etc/hosts/x"} {
		if e, ok := l.Lookup(name); ok {
			t.Errorf("Lookup(%q) = %+v, want nothing", name, e)
		}
	}
	if e, ok := l.Lookup("bin"); !ok || e.Type != TypeSymlink || e.Target != "usr/bin" {
		t.Errorf("Lookup(bin) = %+v, %v, want the symlink to usr/bin", e, ok)
	}
}

func TestNewListRejects(t *testing.T) {
	sum := sha256.Sum256(nil)
	tests := map[string][]Entry{
		"duplicate":              {F("a", 0, ""), F("a", 0, "")},
		"missing parent":         {F("a/b", 0, "")},
		"parent not a directory": {F("a", 0, ""), F("a/b", 0, "")},
		"leading slash":          {F("/a", 0, "")},
		"dot slash":              {F("./a", 0, "")},
		"unclean":                {D("a", 0), F("a//b", 0, "")},
		"dot-dot":                {F("..", 0, "")},
		"empty path":             {F("", 0, "")},
		"NUL in path":            {F("a\x00", 0, "")},
		"type bits in mode":      {D("a", fs.ModeDir|0o755)},
		"symlink mode":           {{Path: "a", Type: TypeSymlink, Mode: 0o755, Target: "b"}},
		"symlink without target": {{Path: "a", Type: TypeSymlink, Mode: 0o777}},
		"directory with a hash":  {{Path: "a", Type: TypeDir, SHA256: sum}},
		"negative size":          {{Path: "a", Type: TypeRegular, Size: -1}},
		"regular with a target":  {{Path: "a", Type: TypeRegular, Target: "b"}},
		"unknown type":           {{Path: "a"}},
	}
	for name, es := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := NewList(es); !errors.Is(err, ErrInvalidList) {
				t.Errorf("NewList(%+v) = %v, want ErrInvalidList", es, err)
			}
		})
	}
}

func TestParseListRejects(t *testing.T) {
	const h = "cloister-trusted-files v1\n"
	const z = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" // SHA-256 of nothing
	tests := map[string]string{
		"empty input":               "",
		"other header":              "cloister-trusted-files v2\n",
		"no final newline":          h + `d 0755 "a"`,
		"CRLF":                      h + "d 0755 \"a\"\r\n",
		"unsorted":                  h + "d 0755 \"b\"\nd 0755 \"a\"\n",
		"duplicate":                 h + "d 0755 \"a\"\nd 0755 \"a\"\n",
		"missing parent":            h + "f 0644 0 " + z + " \"a/b\"\n",
		"unquoted path":             h + "d 0755 a\n",
		"backquoted path":           h + "d 0755 `a`\n",
		"escape where none is due":  h + "d 0755 \"\\x61\"\n",
		"raw non-ASCII":             h + "d 0755 \"é\"\n",
		"upper-case hex escape":     h + "d 0755 \"\\xFF\"\n",
		"upper-case hash":           h + "f 0644 0 " + strings.ToUpper(z) + " \"a\"\n",
		"short hash":                h + "f 0644 0 " + z[:62] + " \"a\"\n",
		"plus size":                 h + "f 0644 +0 " + z + " \"a\"\n",
		"leading zero size":         h + "f 0644 00 " + z + " \"a\"\n",
		"negative size":             h + "f 0644 -1 " + z + " \"a\"\n",
		"three-digit mode":          h + "d 755 \"a\"\n",
		"five-digit mode":           h + "d 10755 \"a\"\n",
		"non-octal mode":            h + "d 0855 \"a\"\n",
		"two spaces":                h + "d  0755 \"a\"\n",
		"trailing space":            h + "d 0755 \"a\" \n",
		"symlink without target":    h + "l \"a\"\n",
		"symlink with empty target": h + "l \"a\" \"\"\n",
		"unknown type":              h + "c 0755 \"a\"\n",
		"blank line":                h + "\n",
		"dot-dot path":              h + "d 0755 \"..\"\n",
		"absolute path":             h + "d 0755 \"/a\"\n",
		"dir with a size":           h + "d 0755 0 \"a\"\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if l, err := ParseList([]byte(in)); !errors.Is(err, ErrInvalidList) {
				t.Errorf("ParseList(%q) = %v, %v, want ErrInvalidList", in, l, err)
			}
		})
	}
}

func FuzzParseList(f *testing.F) {
	f.Add(handMadeWant(f).Encode())
	f.Add(mustList(f).Encode())
	f.Add([]byte("cloister-trusted-files v1\nl \"a\" \"\\xff\\u00e9\"\n"))
	f.Add([]byte("cloister-trusted-files v1\nd 7777 \"a\"\nf 4755 12 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 \"a/b c\"\n"))
	f.Add([]byte("cloister-trusted-files v1\nd 0755 \"a\\nd 0755 \\\"b\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseList(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidList) {
				t.Fatalf("ParseList = %v, want ErrInvalidList", err)
			}
			return
		}
		if !bytes.Equal(l.Encode(), b) {
			t.Fatalf("Encode(ParseList(b)) != b:\n%q\n%q", l.Encode(), b)
		}
		if _, err := NewList(slices.Collect(l.All())); err != nil {
			t.Fatalf("NewList(ParseList(b).All()) = %v", err)
		}
		for e := range l.All() {
			if got, ok := l.Lookup(e.Path); !ok || got != e {
				t.Fatalf("Lookup(%q) = %+v, %v, want %+v", e.Path, got, ok, e)
			}
		}
	})
}
