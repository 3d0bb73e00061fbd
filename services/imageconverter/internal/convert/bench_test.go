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
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cloister-cc/cloister/libs/enclave"
)

// BenchmarkConvert converts an image from one repository of the
// in-process registry to another, beside its floor measured in the same
// run: fetching, decompressing and hashing (SHA-256) every layer of the
// input once, which no conversion can avoid. x-floor is floor time / our
// time (1 is the floor). Each conversion has a new output tag, as a
// user's would, and the real launcher (cmd/cloister-launcher, built
// here) with a Gramine runtime of Gramine's size (benchRuntime): the
// layer they make is built and pushed by the first conversion only, as
// in a deployment, and first-ms is what that first one took.
//
//   - sample: the sample image -dev publishes (samples/hello-https, built
//     here, in one gzipped layer);
//   - 200MB: 200 MB of files in 4 layers, half of every file compressible
//     text and half random bytes, gzipped at the default level.
func BenchmarkConvert(b *testing.B) {
	launcher := goBuild(b, "github.com/cloister-cc/cloister/cmd/cloister-launcher")
	rt := benchRuntime(b)
	b.Run("sample", func(b *testing.B) {
		g := newDiskRegistry(b)
		g.putImage(b, "bench/hello:1", sampleImage(b, goBuild(b, "github.com/cloister-cc/cloister/samples/hello-https")))
		benchConvert(b, g, "bench/hello:1", launcher, rt)
	})
	b.Run("200MB", func(b *testing.B) {
		g := newDiskRegistry(b)
		g.putFilesImage(b, "bench/app:1", 4, 50<<20)
		benchConvert(b, g, "bench/app:1", launcher, rt)
	})
}

// benchConvert converts repoTag of g once, the first conversion, which
// builds the shared layer (first-ms), then again and again, each
// conversion followed by the floor's reading of the same input, and
// reports the means of both.
func benchConvert(b *testing.B, g *benchRegistry, repoTag string, launcher []byte, rt *enclave.Runtime) {
	ctx := context.Background()
	r := request(b, g.ref(repoTag), g.ref("bench/out:first"))
	r.Launcher, r.Runtime = launcher, rt
	runtimeLayers.Clear()
	start := time.Now()
	if _, err := Convert(ctx, r); err != nil {
		b.Fatal(err)
	}
	first := time.Since(start)

	var ours, floorTime time.Duration
	var uncompressed int64
	n := 0
	for b.Loop() {
		r.Output = g.ref(fmt.Sprintf("bench/out:%d", n))
		start := time.Now()
		if _, err := Convert(ctx, r); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		start = time.Now()
		uncompressed = floor(b, g.ref(repoTag))
		floorTime += time.Since(start)
		n++
	}
	ours /= time.Duration(n)
	floorTime /= time.Duration(n)

	mb := float64(uncompressed) / 1e6
	b.ReportMetric(float64(ours.Nanoseconds()), "ns/op")
	b.ReportMetric(mb/ours.Seconds(), "MB/s")
	b.ReportMetric(mb/floorTime.Seconds(), "floor-MB/s")
	b.ReportMetric(floorTime.Seconds()/ours.Seconds(), "x-floor")
	b.ReportMetric(float64(first.Milliseconds()), "first-ms")
}

// goBuild builds the main package pkg of this workspace and returns the
// binary's bytes.
func goBuild(b *testing.B, pkg string) []byte {
	b.Helper()
	out := filepath.Join(b.TempDir(), path.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building %s: %v\n%s", pkg, err, msg)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	return bin
}

// benchRuntime is the stand-in Gramine runtime (Gramine's binaries cannot
// be had here) grown to the size of Gramine's own, about 30 MiB, with
// pseudo-random libraries under runtime/glibc where Gramine keeps its
// patched glibc: a conversion hashes the runtime's files as trusted files,
// so their size is part of its cost.
func benchRuntime(b *testing.B) *enclave.Runtime {
	b.Helper()
	rt := *testRuntime(b)
	rt.Files = slices.Clone(rt.Files)
	rt.Files = append(rt.Files,
		enclave.RuntimeFile{Path: "runtime", Type: tar.TypeDir, Mode: 0o755},
		enclave.RuntimeFile{Path: "runtime/glibc", Type: tar.TypeDir, Mode: 0o755})
	for i := range 14 {
		data := make([]byte, 2<<20)
		rand.NewChaCha8([32]byte{0xc1, byte(i)}).Read(data)
		rt.Files = append(rt.Files, enclave.RuntimeFile{Path: fmt.Sprintf("runtime/glibc/lib%02d.so", i), Type: tar.TypeReg, Mode: 0o644, Data: data})
	}
	slices.SortFunc(rt.Files, func(a, b enclave.RuntimeFile) int { return strings.Compare(a.Path, b.Path) })
	return &rt
}

// sampleImage is the image -dev publishes (cmd/cloister/registry.go):
// one layer holding /hello-https.
func sampleImage(b *testing.B, binary []byte) v1.Image {
	b.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "hello-https", Mode: 0o755, Size: int64(len(binary)), Typeflag: tar.TypeReg}); err != nil {
		b.Fatal(err)
	}
	if _, err := tw.Write(binary); err != nil {
		b.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		b.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		b.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		b.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/hello-https"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		b.Fatal(err)
	}
	return img
}

// childEnv, when set, makes BenchmarkConvertPeakRSS the converting child:
// it holds "<input> <output> <launcher binary>".
const childEnv = "CLOISTER_CONVERT_BENCH_CHILD"

// BenchmarkConvertPeakRSS is the converter's peak resident memory on an
// image with 1 GiB of layers (8 of 128 MiB). The conversion runs in a child
// process, this test binary run again, so that the registry and the
// image's generation stay in this one; the child converts from one
// repository of the registry to another, and peak-rss-MiB is the most it
// ever held resident as the kernel counts it (VmHWM, which it reports),
// the runtime and generating the signing key included. (The child's
// getrusage ru_maxrss would not do: Go starts children with vfork, and
// Linux counts the parent's resident set into the child's maximum.) The
// launcher is the real one and the runtime of Gramine's size, as in
// BenchmarkConvert, since the converter holds both. limit-MiB is the
// figure the converter must stay below. The time per op, which holds the
// child's start and key generation, is not reported: BenchmarkConvert
// measures the time.
func BenchmarkConvertPeakRSS(b *testing.B) {
	if spec := os.Getenv(childEnv); spec != "" {
		convertChild(b, spec)
		return
	}
	launcher := filepath.Join(b.TempDir(), "cloister-launcher")
	if err := os.WriteFile(launcher, goBuild(b, "github.com/cloister-cc/cloister/cmd/cloister-launcher"), 0o600); err != nil {
		b.Fatal(err)
	}
	g := newDiskRegistry(b)
	g.putRandomImage(b, "bench/big:1", 8, 128<<20)

	var peak int64 // KiB
	n := 0
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkConvertPeakRSS$", "-test.benchtime=1x")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s", childEnv, g.ref("bench/big:1"), g.ref(fmt.Sprintf("bench/big-sgx:%d", n)), launcher))
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr // GODEBUG=gctrace=1 shows the child's collections
		if err := cmd.Run(); err != nil {
			b.Fatalf("converting in a child process: %v\n%s", err, out.Bytes())
		}
		var kib int64
		if _, err := fmt.Sscanf(reported(out.String()), "VmHWM: %d kB", &kib); err != nil {
			b.Fatalf("the child's report: %v\n%s", err, out.Bytes())
		}
		peak = max(peak, kib)
		n++
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(peak)/1024, "peak-rss-MiB")
	b.ReportMetric(150, "limit-MiB")
}

// convertChild is the child process of BenchmarkConvertPeakRSS.
func convertChild(b *testing.B, spec string) {
	args := strings.Fields(spec)
	if len(args) != 3 {
		b.Fatalf("%s=%q, want \"<input> <output> <launcher binary>\"", childEnv, spec)
	}
	r := request(b, args[0], args[1])
	var err error
	if r.Launcher, err = os.ReadFile(args[2]); err != nil {
		b.Fatal(err)
	}
	r.Runtime = benchRuntime(b)
	if _, err := Convert(context.Background(), r); err != nil {
		b.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if strings.HasPrefix(line, "VmHWM:") {
			fmt.Print(strings.Join(strings.Fields(line), " ") + "\n")
			return
		}
	}
	b.Fatal("/proc/self/status has no VmHWM")
}

// reported is the child's VmHWM line in its output.
func reported(out string) string {
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "VmHWM:") {
			return line
		}
	}
	return ""
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

// putImage pushes img to repoTag.
func (g *benchRegistry) putImage(b *testing.B, repoTag string, img v1.Image) {
	b.Helper()
	ref, err := name.ParseReference(g.ref(repoTag))
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		b.Fatal(err)
	}
}

// putRandomImage stores an image of n layers, each a tar of one file of
// size pseudo-random bytes (randomLayer).
func (g *benchRegistry) putRandomImage(b *testing.B, repoTag string, n int, size int64) {
	g.putLayers(b, repoTag, n, func(w io.Writer, i int) (v1.Hash, error) { return randomLayer(w, i, size) })
}

// putFilesImage stores an image of n layers, each of files of 64 KiB
// adding up to size bytes (filesLayer).
func (g *benchRegistry) putFilesImage(b *testing.B, repoTag string, n int, size int64) {
	g.putLayers(b, repoTag, n, func(w io.Writer, i int) (v1.Hash, error) { return filesLayer(w, i, size) })
}

// putLayers stores an image of n layers straight into the registry's blob
// files, streaming: layer writes layer i, gzipped, and returns the digest
// of its tar.
func (g *benchRegistry) putLayers(b *testing.B, repoTag string, n int, layer func(w io.Writer, i int) (v1.Hash, error)) {
	b.Helper()
	repo, _, _ := strings.Cut(repoTag, ":")
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	cf := v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{Cmd: []string{"/app"}}, RootFS: v1.RootFS{Type: "layers"}}
	for i := range n {
		var diffID v1.Hash
		d := g.blobs.write(b, func(w io.Writer) error {
			var err error
			diffID, err = layer(w, i)
			return err
		})
		d.MediaType = types.OCILayer
		g.add(repo, d.Digest.String())
		m.Layers = append(m.Layers, d)
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, diffID)
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
}

// randomLayer writes layer i, gzipped, to w: a tar of one file of size
// bytes from a generator seeded with i. It returns the tar's digest.
func randomLayer(w io.Writer, i int, size int64) (v1.Hash, error) {
	// Random bytes do not compress: every level would store them, as this
	// one does without trying.
	return gzipTar(w, gzip.NoCompression, func(tw *tar.Writer) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("layer%d/random", i), Mode: 0o644, Size: size}); err != nil {
			return err
		}
		_, err := io.CopyN(tw, rand.NewChaCha8([32]byte{byte(i)}), size)
		return err
	})
}

// filesLayer writes layer i, gzipped at the default level, to w: a tar of
// files of 64 KiB, size bytes in all, in directories of 100. Each file is
// half lines of text, which compress as source and configuration do, and
// half random bytes, which do not, as in compiled code and images.
func filesLayer(w io.Writer, i int, size int64) (v1.Hash, error) {
	const fileSize = 64 << 10
	rng := rand.NewChaCha8([32]byte{0xf1, byte(i)})
	data := make([]byte, fileSize)
	return gzipTar(w, gzip.DefaultCompression, func(tw *tar.Writer) error {
		for f := range size / fileSize {
			if f%100 == 0 {
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: fmt.Sprintf("layer%d/d%03d/", i, f/100), Mode: 0o755}); err != nil {
					return err
				}
			}
			text := data[:0] // written over data's first half and a little more
			for line := 0; len(text) < fileSize/2; line++ {
				text = fmt.Appendf(text, "layer %d file %d line %d: the quick brown fox jumps over the lazy dog\n", i, f, line)
			}
			rng.Read(data[fileSize/2:])
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("layer%d/d%03d/f%05d", i, f/100, f), Mode: 0o644, Size: fileSize}); err != nil {
				return err
			}
			if _, err := tw.Write(data[:fileSize]); err != nil {
				return err
			}
		}
		return nil
	})
}

// gzipTar writes the tar that fill writes, gzipped at level, to w, and
// returns the tar's digest.
func gzipTar(w io.Writer, level int, fill func(*tar.Writer) error) (v1.Hash, error) {
	zw, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return v1.Hash{}, err
	}
	diff := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, diff))
	if err := fill(tw); err != nil {
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
