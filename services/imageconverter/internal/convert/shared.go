package convert

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cloister-cc/cloister/libs/imagefs"
)

// sharedLayer is a layer every conversion of a deployment shares (the
// launcher and Gramine's runtime, tens of MiB), built once. Its
// compressed bytes wait in a temporary file ($TMPDIR, else /tmp) that is
// unlinked at once, so that they cost no memory and leave nothing behind:
// they are read only when a registry does not have the layer yet. Where
// no temporary file can be made (a read-only root without /tmp), they are
// kept in memory. Listing the layer reads nothing: it knows its entries
// (imagefs.ListedLayer).
type sharedLayer struct {
	blob           io.ReaderAt // the compressed bytes
	file           *os.File    // blob, when it is a file
	size           int64
	digest, diffID v1.Hash
	mediaType      types.MediaType
	entries        []imagefs.LayerEntry
}

var _ imagefs.ListedLayer = (*sharedLayer)(nil)

// sharedCompression is the gzip level of shared layers: built once, but
// while a user waits for their first conversion, and fast compression
// costs Gramine's runtime little in size.
const sharedCompression = gzip.BestSpeed

// newSharedLayer builds the layer whose tar write writes, returning its
// entries, streaming it through gzip into an unlinked temporary file, or
// into memory when there can be none.
func newSharedLayer(mt types.MediaType, write func(io.Writer) ([]imagefs.LayerEntry, error)) (*sharedLayer, error) {
	f, err := unlinkedTemp()
	if err != nil {
		var b bytes.Buffer
		l, err := writeShared(&b, mt, write)
		if err != nil {
			return nil, err
		}
		l.blob = bytes.NewReader(b.Bytes())
		return l, nil
	}
	l, err := writeShared(f, mt, write)
	if err != nil {
		f.Close()
		return nil, err
	}
	l.blob, l.file = f, f
	return l, nil
}

// unlinkedTemp is a new temporary file that has no name any more.
func unlinkedTemp() (*os.File, error) {
	f, err := os.CreateTemp("", "cloister-layer-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeShared writes the layer to w and describes it, its bytes aside.
func writeShared(w io.Writer, mt types.MediaType, write func(io.Writer) ([]imagefs.LayerEntry, error)) (*sharedLayer, error) {
	digest, diffID := sha256.New(), sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, digest)}
	zw, err := gzip.NewWriterLevel(cw, sharedCompression)
	if err != nil {
		return nil, err
	}
	entries, err := write(io.MultiWriter(zw, diffID))
	if err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing the layer: %w", err)
	}
	l := &sharedLayer{size: cw.n, mediaType: mt, entries: entries}
	l.digest = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", digest.Sum(nil))}
	l.diffID = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", diffID.Sum(nil))}
	return l, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// close releases the layer's file, if it has one.
func (l *sharedLayer) close() {
	if l.file != nil {
		l.file.Close()
	}
}

func (l *sharedLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *sharedLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *sharedLayer) Size() (int64, error)                { return l.size, nil }
func (l *sharedLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *sharedLayer) Entries() []imagefs.LayerEntry       { return l.entries }
func (l *sharedLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(l.blob, 0, l.size)), nil
}

// Uncompressed decompresses the layer; nothing in a conversion reads it.
func (l *sharedLayer) Uncompressed() (io.ReadCloser, error) {
	zr, err := gzip.NewReader(io.NewSectionReader(l.blob, 0, l.size))
	if err != nil {
		return nil, err
	}
	return zr, nil
}
