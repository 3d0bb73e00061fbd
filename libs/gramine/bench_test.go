package gramine

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

// BenchmarkMeasure computes the Gramine MRENCLAVE of a 1 GiB enclave
// with 16 threads whose manifest lists 10,000 trusted files, from the
// manifest's bytes and a libpal.so (parsing, layout, TCS and TLS pages,
// hashing), beside its floor in the same run: one SHA-256 over as many
// bytes as the measurement hashes (the ECREATE record, each page's EADD
// record and the EEXTEND records with their data of every measured page).
// x-floor is floor time / our time, the fraction of the floor's speed
// (1.0 = at the floor); hashed-MB/s counts the bytes hashed.
func BenchmarkMeasure(b *testing.B) {
	m := testManifest()
	m.EnclaveSize, m.MaxThreads = 1<<30, 16
	m.TrustedFiles = nil
	for i := range 10000 {
		m.TrustedFiles = append(m.TrustedFiles, File{URI: fmt.Sprintf("file:/usr/lib/app/%04d/lib%d.so", i/100, i), SHA256: sha256.Sum256([]byte{byte(i), byte(i >> 8)})})
	}
	manifest, err := m.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	pal := StandInELF("libpal.so")
	first, err := Measure(manifest, pal)
	if err != nil {
		b.Fatal(err)
	}
	hashed := uint64(64) // ECREATE
	for _, a := range first.Areas {
		pages := (a.End - a.Start) / pageSize
		if a.Measured {
			hashed += pages * (64 + pageSize/256*(64+256))
		} else {
			hashed += pages * 64
		}
	}
	buf := make([]byte, 1<<20)
	floorOnce := func() {
		h := sha256.New()
		for left := hashed; left > 0; {
			n := min(left, uint64(len(buf)))
			h.Write(buf[:n])
			left -= n
		}
		h.Sum(nil)
	}
	b.SetBytes(int64(len(manifest)))

	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := Measure(manifest, pal); err != nil {
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
	b.ReportMetric(float64(hashed)*float64(b.N)/ours.Seconds()/1e6, "hashed-MB/s")
	b.ReportMetric(float64(hashed)*float64(b.N)/floor.Seconds()/1e6, "floor-MB/s")
	b.ReportMetric(floor.Seconds()/ours.Seconds(), "x-floor")
}
