package main

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit"
)

// BenchmarkConvertWait is what `cloister image convert --wait` adds to a
// conversion: from the moment the server records the image converted
// (its updated_at) to the moment the CLI process has exited, as a user
// waits for it, with `cloister server -dev` converting its sample. Each
// iteration converts a new tag. added-ms is the mean of that delay,
// added-max-ms its largest, limit-ms the figure it must stay below, and
// server-ms the conversion as the server saw it (created_at to
// updated_at). Time per op is the whole command.
func BenchmarkConvertWait(b *testing.B) {
	cfgDir, addr, registry := b.TempDir(), testkit.FreeAddr(b), testkit.FreeAddr(b)
	b.Setenv("CLOISTER_ADDR", "http://"+addr)
	startServerArgs(b, addr, "-dev", "--data-dir", b.TempDir(), "--launcher", launcherBinary(b), "--node-http", testkit.FreeAddr(b),
		"--registry", registry, "--sample", helloBinary(b))
	journeyAccount(b, cfgDir)
	run(b, cfgDir, "", "app", "create", "hello", "--input-image", registry+"/samples/hello-https:1",
		"--output-image", registry+"/samples/hello-sgx", "--domain", "hello.cloister.test")

	var added, addedMax, server time.Duration
	n := 0
	for b.Loop() {
		out := run(b, cfgDir, "", "image", "convert", "--app", "hello", "--tag", strconv.Itoa(n), "--wait", "-o", "json")
		exited := time.Now()
		var im struct {
			Status    string
			CreatedAt time.Time `json:"created_at"`
			UpdatedAt time.Time `json:"updated_at"`
		}
		if err := json.Unmarshal([]byte(out), &im); err != nil || im.Status != "converted" {
			b.Fatalf("image convert --wait = %s (%v)", out, err)
		}
		d := exited.Sub(im.UpdatedAt)
		added += d
		addedMax = max(addedMax, d)
		server += im.UpdatedAt.Sub(im.CreatedAt)
		n++
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	b.ReportMetric(ms(added/time.Duration(n)), "added-ms")
	b.ReportMetric(ms(addedMax), "added-max-ms")
	b.ReportMetric(50, "limit-ms")
	b.ReportMetric(ms(server/time.Duration(n)), "server-ms")
}
