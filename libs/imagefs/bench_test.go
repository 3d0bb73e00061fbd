package imagefs

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// BenchmarkTrustedFiles lists a 64 MiB image beside its floor in the same
// run: opening each layer once (Uncompressed, which decompresses) and
// SHA-256 over its uncompressed bytes, the least any listing must do. The
// ratio floor/ours is reported as x-floor (1 would be the
// floor).
//
//   - random: random.Image, four layers of one 16 MiB file each, stored
//     uncompressed: the floor is SHA-256 alone.
//   - gzip-files: four gzip layers of 16 MiB each in files of 4-64 KiB of
//     compressible text: the floor adds gunzip, and we add a tar header
//     and a tree node per file.
func BenchmarkTrustedFiles(b *testing.B) {
	b.Run("random", func(b *testing.B) {
		img, err := random.Image(16<<20, 4, random.WithSource(rand.NewSource(3)))
		if err != nil {
			b.Fatal(err)
		}
		benchTrustedFiles(b, img)
	})
	b.Run("gzip-files", func(b *testing.B) {
		rng := rand.New(rand.NewSource(4))
		var ls []v1.Layer
		for i := range 4 {
			var ents []ent
			for n, j := 0, 0; n < 16<<20; j++ {
				body := make([]byte, 4<<10+rng.Intn(60<<10))
				for k := range body {
					body[k] = "etaoinshrdlu \n"[rng.Intn(14)]
				}
				ents = append(ents, reg(fmt.Sprintf("l%d/d%d/f%d", i, j%64, j), 0o644, string(body)))
				n += len(body)
			}
			ls = append(ls, gzLayer(b, tarBytes(b, ents...)))
		}
		img, err := mutate.AppendLayers(empty.Image, ls...)
		if err != nil {
			b.Fatal(err)
		}
		benchTrustedFiles(b, img)
	})
}

func benchTrustedFiles(b *testing.B, img v1.Image) {
	layers, err := img.Layers()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	floorOnce := func() int64 {
		var total int64
		for _, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				b.Fatal(err)
			}
			h := sha256.New()
			n, err := io.CopyBuffer(h, rc, buf)
			if err != nil {
				b.Fatal(err)
			}
			rc.Close()
			h.Sum(nil)
			total += n
		}
		return total
	}
	size := floorOnce()
	b.SetBytes(size)
	ctx := context.Background()

	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := TrustedFiles(ctx, img); err != nil {
			b.Fatal(err)
		}
	}
	ours := time.Since(start)
	b.StopTimer()

	floorStart := time.Now()
	for range b.N {
		floorOnce()
	}
	floor := time.Since(floorStart)
	b.ReportMetric(float64(size)*float64(b.N)/floor.Seconds()/1e6, "floor-MB/s")
	b.ReportMetric(floor.Seconds()/ours.Seconds(), "x-floor")
}
