package convert

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// BenchmarkConvert converts an image of 512 MiB in 8 random layers
// (random bytes, so gzip leaves them as big) from one repository of the
// in-process registry to another, beside its floor measured in the same
// run: fetching, decompressing and hashing (SHA-256) every layer once,
// which no conversion can avoid. x-floor-throughput is floor time / our
// time (1 would be the floor). The image is built once, outside the timed
// loop; run it with -benchtime 1x.
//
// MB-peak-RSS is the process's peak resident memory during the timed
// loop, which includes the registry's copy of the image; MB-RSS-growth is
// how far it rose above the resident memory before the loop, which is
// what the conversion itself needs.
func BenchmarkConvert(b *testing.B) {
	const layers, layerSize = 8, 64 << 20
	g := newRegistry(b)
	img, err := random.Image(layerSize, layers)
	if err != nil {
		b.Fatal(err)
	}
	if img, err = mutate.Config(img, v1.Config{Cmd: []string{"/app"}}); err != nil {
		b.Fatal(err)
	}
	g.put(b, "bench/app:1", img)
	m, err := img.Manifest()
	if err != nil {
		b.Fatal(err)
	}
	var compressed int64
	for _, l := range m.Layers {
		compressed += l.Size
	}
	img = nil
	runtime.GC()
	debug.FreeOSMemory()

	ctx := context.Background()
	r := request(b, g.ref("bench/app:1"), "")
	resetPeakRSS(b)
	before := procStatus(b, "VmRSS")

	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		r.Output = g.ref(fmt.Sprintf("bench/app-sgx:%d", n))
		if _, err := Convert(ctx, r); err != nil {
			b.Fatal(err)
		}
		n++
	}
	ours := time.Since(start) / time.Duration(n)
	b.StopTimer()
	peak := procStatus(b, "VmHWM")

	floorStart := time.Now()
	uncompressed := floor(b, g.ref("bench/app:1"))
	floorTime := time.Since(floorStart)

	mb := float64(uncompressed) / 1e6
	b.ReportMetric(mb/ours.Seconds(), "MB/s")
	b.ReportMetric(mb/floorTime.Seconds(), "floor-MB/s")
	b.ReportMetric(floorTime.Seconds()/ours.Seconds(), "x-floor-throughput")
	b.ReportMetric(float64(peak)/1e6, "MB-peak-RSS")
	b.ReportMetric(float64(peak-before)/1e6, "MB-RSS-growth")
	b.ReportMetric(float64(compressed)/1e6, "MB-compressed")
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

// resetPeakRSS resets VmHWM to the current resident size (Linux: "5" to
// /proc/self/clear_refs).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset the peak RSS: %v", err)
	}
}

// procStatus returns a /proc/self/status field in bytes, or 0 where there
// is none.
func procStatus(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok || k != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			b.Fatalf("/proc/self/status %s: %v", field, err)
		}
		return kb << 10
	}
	return 0
}
