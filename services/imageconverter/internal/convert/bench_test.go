package convert

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BenchmarkConvert converts an image of 512 MiB in 8 layers of one
// pseudo-random file each (so gzip leaves them as big) from one repository
// of the in-process registry to another, beside its floor measured in the
// same run: fetching, decompressing and hashing (SHA-256) every layer once,
// which no conversion can avoid. x-floor is floor time / our
// time (1 would be the floor).
//
// With b.Loop the function body runs once per -count, so the image is
// built once and each iteration is one conversion; -benchtime 2s makes two
// or three of them.
func BenchmarkConvert(b *testing.B) {
	g := newDiskRegistry(b)
	compressed := g.putRandomImage(b, "bench/app:1", 8, 64<<20)
	ctx := context.Background()
	r := request(b, g.ref("bench/app:1"), "")

	n := 0
	for b.Loop() {
		r.Output = g.ref(fmt.Sprintf("bench/app-sgx:%d", n))
		if _, err := Convert(ctx, r); err != nil {
			b.Fatal(err)
		}
		n++
	}
	ours := b.Elapsed() / time.Duration(n)

	floorStart := time.Now()
	uncompressed := floor(b, g.ref("bench/app:1"))
	floorTime := time.Since(floorStart)

	mb := float64(uncompressed) / 1e6
	b.ReportMetric(mb/ours.Seconds(), "MB/s")
	b.ReportMetric(mb/floorTime.Seconds(), "floor-MB/s")
	b.ReportMetric(floorTime.Seconds()/ours.Seconds(), "x-floor")
	b.ReportMetric(float64(compressed)/1e6, "MB-compressed")
}

// childEnv, when set, makes BenchmarkConvertPeakRSS the converting child:
// it holds "<input> <output>".
const childEnv = "CLOISTER_CONVERT_BENCH_CHILD"

// BenchmarkConvertPeakRSS is the converter's peak resident memory on an
// image with 1 GiB of layers (8 of 128 MiB). The conversion runs in a child
// process, this test binary run again, so that the registry and the
// image's generation stay in this one; the child converts from one
// repository of the registry to another and exits, and peak-rss-MiB is its
// maximum resident set as the kernel counts it (getrusage ru_maxrss), which
// includes the runtime and generating the signing key. limit-MiB is the
// figure the converter must stay below. The time per op, which holds the
// child's start and key generation, is not reported: BenchmarkConvert
// measures the time.
func BenchmarkConvertPeakRSS(b *testing.B) {
	if spec := os.Getenv(childEnv); spec != "" {
		convertChild(b, spec)
		return
	}
	g := newDiskRegistry(b)
	g.putRandomImage(b, "bench/big:1", 8, 128<<20)

	var peak int64 // KiB
	n := 0
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkConvertPeakRSS$", "-test.benchtime=1x")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s", childEnv, g.ref("bench/big:1"), g.ref(fmt.Sprintf("bench/big-sgx:%d", n))))
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr // GODEBUG=gctrace=1 shows the child's collections
		if err := cmd.Run(); err != nil {
			b.Fatalf("converting in a child process: %v\n%s", err, out.Bytes())
		}
		peak = max(peak, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
		n++
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(peak)/1024, "peak-rss-MiB")
	b.ReportMetric(150, "limit-MiB")
}

// convertChild is the child process of BenchmarkConvertPeakRSS.
func convertChild(b *testing.B, spec string) {
	in, out, ok := strings.Cut(spec, " ")
	if !ok {
		b.Fatalf("%s=%q, want \"<input> <output>\"", childEnv, spec)
	}
	if _, err := Convert(context.Background(), request(b, in, out)); err != nil {
		b.Fatal(err)
	}
}

// floor fetches every layer of ref once, decompresses it and hashes it,
// and returns how many uncompressed bytes that was.
func floor(b *testing.B, ref string) int64 {
	b.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		b.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		b.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	buf := make([]byte, 128<<10)
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		n, err := io.CopyBuffer(h, rc, buf)
		rc.Close()
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	return total
}

// benchRegistry is a testRegistry whose blobs are files, so that a large
// image costs the benchmark disk rather than memory.
type benchRegistry struct {
	*testRegistry
	blobs diskBlobs
}

func newDiskRegistry(b *testing.B) *benchRegistry {
	blobs := diskBlobs{dir: b.TempDir()}
	g := newRegistry(b)
	// No request has reached it yet: the disk store replaces the memory one.
	g.inner = registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithBlobHandler(blobs))
	return &benchRegistry{testRegistry: g, blobs: blobs}
}

// putRandomImage stores an image of n layers straight into the registry's
// blob files, streaming: each layer is a tar of one file of size
// pseudo-random bytes, gzipped. It returns the layers' compressed size.
func (g *benchRegistry) putRandomImage(b *testing.B, repoTag string, n int, size int64) int64 {
	b.Helper()
	repo, _, _ := strings.Cut(repoTag, ":")
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	cf := v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{Cmd: []string{"/app"}}, RootFS: v1.RootFS{Type: "layers"}}
	var compressed int64
	for i := range n {
		var diffID v1.Hash
		d := g.blobs.write(b, func(w io.Writer) error {
			var err error
			diffID, err = randomLayer(w, i, size)
			return err
		})
		d.MediaType = types.OCILayer
		g.add(repo, d.Digest.String())
		m.Layers = append(m.Layers, d)
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, diffID)
		compressed += d.Size
	}
	raw, err := json.Marshal(cf)
	if err != nil {
		b.Fatal(err)
	}
	m.Config = g.blobs.write(b, func(w io.Writer) error { _, err := w.Write(raw); return err })
	m.Config.MediaType = types.OCIConfigJSON
	g.add(repo, m.Config.Digest.String())
	if raw, err = json.Marshal(m); err != nil {
		b.Fatal(err)
	}
	g.putRaw(b, repoTag, string(m.MediaType), string(raw))
	return compressed
}

// randomLayer writes layer i, gzipped, to w: a tar of one file of size
// bytes from a generator seeded with i. It returns the tar's digest.
func randomLayer(w io.Writer, i int, size int64) (v1.Hash, error) {
	// Random bytes do not compress: every level would store them, as this
	// one does without trying.
	zw, err := gzip.NewWriterLevel(w, gzip.NoCompression)
	if err != nil {
		return v1.Hash{}, err
	}
	diff := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, diff))
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("layer%d/random", i), Mode: 0o644, Size: size}); err != nil {
		return v1.Hash{}, err
	}
	if _, err := io.CopyN(tw, rand.NewChaCha8([32]byte{byte(i)}), size); err != nil {
		return v1.Hash{}, err
	}
	if err := tw.Close(); err != nil {
		return v1.Hash{}, err
	}
	if err := zw.Close(); err != nil {
		return v1.Hash{}, err
	}
	return v1.NewHash(fmt.Sprintf("sha256:%x", diff.Sum(nil)))
}

// diskBlobs is a registry.BlobHandler over a directory, one file per
// digest. registry.NewDiskBlobHandler hashes a blob again at every HEAD
// and GET, which would add the registry's work to both sides of
// BenchmarkConvert's ratio; uploads are verified by the registry as they
// are written (Put).
type diskBlobs struct{ dir string }

var (
	_ registry.BlobStatHandler = diskBlobs{}
	_ registry.BlobPutHandler  = diskBlobs{}
)

func (d diskBlobs) path(h v1.Hash) string { return filepath.Join(d.dir, h.Algorithm+"-"+h.Hex) }

func (d diskBlobs) Stat(_ context.Context, _ string, h v1.Hash) (int64, error) {
	fi, err := os.Stat(d.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, registry.ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (d diskBlobs) Get(_ context.Context, _ string, h v1.Hash) (io.ReadCloser, error) {
	f, err := os.Open(d.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, registry.ErrNotFound
	}
	return f, err
}

// Put stores the blob under the digest of what it reads: rc, which the
// registry gives, fails at its end if that is not h.
func (d diskBlobs) Put(_ context.Context, _ string, _ v1.Hash, rc io.ReadCloser) error {
	_, err := d.store(func(w io.Writer) error { _, err := io.Copy(w, rc); return err })
	return err
}

// write stores the blob that fill writes and returns its descriptor
// (without a media type).
func (d diskBlobs) write(b *testing.B, fill func(io.Writer) error) v1.Descriptor {
	b.Helper()
	desc, err := d.store(fill)
	if err != nil {
		b.Fatal(err)
	}
	return desc
}

func (d diskBlobs) store(fill func(io.Writer) error) (v1.Descriptor, error) {
	f, err := os.CreateTemp(d.dir, "upload-*")
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer os.Remove(f.Name()) // fails once renamed
	h := sha256.New()
	if err := fill(io.MultiWriter(f, h)); err != nil {
		f.Close()
		return v1.Descriptor{}, err
	}
	fi, err := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return v1.Descriptor{}, err
	}
	digest, err := v1.NewHash(fmt.Sprintf("sha256:%x", h.Sum(nil)))
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{Digest: digest, Size: fi.Size()}, os.Rename(f.Name(), d.path(digest))
}
