package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBusInitModes: bus init's secrets are their owner's alone, unless
// --compose asks for files any container user can read, in a directory
// made private; a file of the directory that bus init did not write keeps
// its mode.
func TestBusInitModes(t *testing.T) {
	mode := func(p string) os.FileMode {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	plain := filepath.Join(t.TempDir(), "secrets")
	run(t, t.TempDir(), "", "bus", "init", plain)
	if m := mode(filepath.Join(plain, "account.nk")); m != 0o600 {
		t.Errorf("account.nk is %o without --compose, want 600", m)
	}
	if m := mode(filepath.Join(plain, "redis.password")); m != 0o600 {
		t.Errorf("redis.password is %o without --compose, want 600", m)
	}

	compose := t.TempDir()
	if err := os.Chmod(compose, 0o755); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(compose, "notes.txt")
	if err := os.WriteFile(mine, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, t.TempDir(), "", "bus", "init", "--compose", compose)
	if m := mode(compose); m != 0o700 {
		t.Errorf("the directory is %o with --compose, want 700", m)
	}
	for _, f := range []string{"account.nk", "gateway.nk", "assertion.key", "assertion-ca.key", "redis.password", "redis.conf", "nats-auth.conf", "nats-route.password"} {
		if m := mode(filepath.Join(compose, f)); m != 0o644 {
			t.Errorf("%s is %o with --compose, want 644", f, m)
		}
	}
	if m := mode(mine); m != 0o600 {
		t.Errorf("a file bus init did not write became %o", m)
	}
}
