package testkit

import (
	"os"
	"os/exec"
	"testing"
)

// Tool returns the path of a program a test needs (openssl, redis-server).
// When it is not installed the test is skipped on a developer's machine,
// but fails when CI is set: CI must never pass by skipping.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed (set CI to make this fail): %v", name, err)
	}
	return p
}
