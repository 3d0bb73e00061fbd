package bench

import (
	"testing"
)

// Every function is called b.N times, in turns of Run.
func TestAlternate(t *testing.T) {
	var calls [2][]int
	seq := 0
	testing.Benchmark(func(b *testing.B) {
		calls = [2][]int{}
		seq = 0
		took := Alternate(b, func() { calls[0] = append(calls[0], seq); seq++ }, func() { calls[1] = append(calls[1], seq); seq++ })
		if len(took) != 2 {
			t.Errorf("%d durations for 2 functions", len(took))
		}
		for i := range calls {
			if len(calls[i]) != b.N {
				t.Errorf("function %d called %d times, want b.N = %d", i, len(calls[i]), b.N)
			}
		}
		// The second function's first call comes after Run (or b.N) calls
		// of the first.
		if len(calls[1]) > 0 && calls[1][0] != min(Run, b.N) {
			t.Errorf("the second function first ran after %d calls, want %d", calls[1][0], min(Run, b.N))
		}
	})
}
