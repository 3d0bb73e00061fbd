package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cloister-cc/cloister/libs/testkit"
)

// BenchmarkDevRegistryRSS is the peak resident memory of `cloister server
// -dev` (every service, the embedded NATS and the built-in registry, in
// one process) after a push of 200 MB to its built-in registry: 4 layers
// of 50 MB that gzip cannot shrink, pushed by go-containerregistry as a
// user's tool would. peak-rss-MiB is the server's VmHWM as the kernel
// counts it; limit-MiB the figure it must stay below. Time is not
// reported.
func BenchmarkDevRegistryRSS(b *testing.B) {
	addr, registry := testkit.FreeAddr(b), testkit.FreeAddr(b)
	server := startServerArgs(b, addr, "-dev", "--data-dir", b.TempDir(), "--node-http", testkit.FreeAddr(b),
		"--registry", registry, "--launcher", launcherBinary(b), "--sample", helloBinary(b))
	img, err := random.Image(50<<20, 4)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		ref, err := name.ParseReference(registry + "/bench/big:" + strconv.Itoa(n))
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(peakRSSKiB(b, server.Process.Pid))/1024, "peak-rss-MiB")
	b.ReportMetric(250, "limit-MiB")
}

// peakRSSKiB is a process's peak resident set (VmHWM), in KiB.
func peakRSSKiB(b *testing.B, pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kib
		}
	}
	b.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}
