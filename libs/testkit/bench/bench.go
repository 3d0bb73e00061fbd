// Package bench helps benchmarks print a figure beside its floor
// measured in the same run.
package bench

import (
	"testing"
	"time"
)

// Run is how many calls of one function run before the next one's.
const Run = 64

// Alternate calls each of fns b.N times, taking turns in runs of Run, so
// that every one meets the machine in the same state (its clock, the
// other core's load, the collector's pace), and returns the time each
// took in all. It resets the benchmark's timer first and stops it after.
func Alternate(b *testing.B, fns ...func()) []time.Duration {
	b.Helper()
	took := make([]time.Duration, len(fns))
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(Run, b.N-done)
		for i, fn := range fns {
			start := time.Now()
			for range n {
				fn()
			}
			took[i] += time.Since(start)
		}
		done += n
	}
	b.StopTimer()
	return took
}
