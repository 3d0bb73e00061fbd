package convert

import (
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
// compressed bytes wait in a temporary file that is unlinked at once, so
// that they cost no memory and leave nothing behind: they are read only
// when a registry does not have the layer yet. Listing it reads nothing:
// it knows its entries (imagefs.ListedLayer).
type sharedLayer struct {
	file           *os.File
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
// entries, streaming it through gzip into an unlinked temporary file.
func newSharedLayer(mt types.MediaType, write func(io.Writer) ([]imagefs.LayerEntry, error)) (*sharedLayer, error) {
	f, err := os.CreateTemp("", "cloister-layer-*")
	if err != nil {
		return nil, fmt.Errorf("a file for the layer: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("a file for the layer: %w", err)
	}
	l, err := writeShared(f, mt, write)
	if err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

func writeShared(f *os.File, mt types.MediaType, write func(io.Writer) ([]imagefs.LayerEntry, error)) (*sharedLayer, error) {
	digest, diffID := sha256.New(), sha256.New()
	zw, err := gzip.NewWriterLevel(io.MultiWriter(f, digest), sharedCompression)
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
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("writing the layer: %w", err)
	}
	l := &sharedLayer{file: f, size: size, mediaType: mt, entries: entries}
	l.digest = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", digest.Sum(nil))}
	l.diffID = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", diffID.Sum(nil))}
	return l, nil
}

func (l *sharedLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *sharedLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *sharedLayer) Size() (int64, error)                { return l.size, nil }
func (l *sharedLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *sharedLayer) Entries() []imagefs.LayerEntry       { return l.entries }
func (l *sharedLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(l.file, 0, l.size)), nil
}

// Uncompressed decompresses the file; nothing in a conversion reads it.
func (l *sharedLayer) Uncompressed() (io.ReadCloser, error) {
	zr, err := gzip.NewReader(io.NewSectionReader(l.file, 0, l.size))
	if err != nil {
		return nil, err
	}
	return zr, nil
}
