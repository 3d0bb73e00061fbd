package main

import (
	"testing"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
)

// The same binary always gives the same image, so the same MRENCLAVE
// after conversion; another binary gives another.
func TestSampleImageIsReproducible(t *testing.T) {
	a, err := sampleImage([]byte("binary"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := sampleImage([]byte("binary"))
	c, _ := sampleImage([]byte("other binary"))
	da, _ := a.Digest()
	db, _ := b.Digest()
	dc, _ := c.Digest()
	if da != db || da == dc {
		t.Fatalf("digests %s, %s (same binary) and %s (another)", da, db, dc)
	}
	cf, err := a.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/hello-https" {
		t.Fatalf("config = %s/%s %v", cf.OS, cf.Architecture, cf.Config.Entrypoint)
	}
}

func TestLocalAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:5000":   "127.0.0.1:5000",
		"[::]:5000":      "127.0.0.1:5000",
		":5000":          "127.0.0.1:5000",
		"10.0.0.7:5000":  "10.0.0.7:5000",
		"127.0.0.1:5001": "127.0.0.1:5001",
	} {
		if got := serverconfig.LocalAddr(in); got != want {
			t.Errorf("serverconfig.LocalAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
