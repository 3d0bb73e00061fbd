package enclave

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/cloister-cc/cloister/libs/imagefs"
)

func sample() Manifest {
	return Manifest{
		AppID:      "app_01hello",
		Entrypoint: []string{"/hello"}, Args: []string{"--port", "8443"},
		Env: []EnvVar{{"Z", "last"}, {"A", "first <&>"}}, PassthroughEnv: []string{"TZ"},
		WorkingDir: "/", User: "65532", RWDirs: []string{"/tmp"}, MemorySize: 256 << 20, Threads: 4, ISVProdID: 7, ISVSVN: 2,
		Certificate:  &Certificate{Domain: "hello.cloister.test", KeyType: "ec-p256", KeyPath: "/run/cloister/key.pem", CertPath: "/run/cloister/cert.pem"},
		TrustedFiles: Digest([]byte("list")), Launcher: Digest([]byte("launcher")),
	}
}

func TestManifestRoundTrip(t *testing.T) {
	b, err := sample().Encode()
	if err != nil {
		t.Fatal(err)
	}
	// The app id follows the version.
	if !bytes.HasPrefix(b, []byte(`{"version":"`+ManifestVersion+`","app_id":"app_01hello","entrypoint":`)) {
		t.Fatalf("Encode = %s", b)
	}
	// Env is sorted, HTML is not escaped, one line.
	if !bytes.Contains(b, []byte(`"env":[{"name":"A","value":"first <&>"},{"name":"Z","value":"last"}]`)) || bytes.Count(b, []byte("\n")) != 1 {
		t.Fatalf("Encode = %s", b)
	}
	m, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := m.Encode()
	if !bytes.Equal(again, b) {
		t.Fatalf("round trip changed the bytes:\n%s\n%s", b, again)
	}
	// nil and empty lists encode the same: one manifest, one encoding.
	s := sample()
	s.RWDirs = nil
	x, _ := s.Encode()
	s.RWDirs = []string{}
	y, _ := s.Encode()
	if !bytes.Equal(x, y) {
		t.Fatal("nil and empty lists encode differently")
	}
}

func TestParseManifestRefuses(t *testing.T) {
	good, _ := sample().Encode()
	for name, b := range map[string][]byte{
		"spaces":         bytes.Replace(good, []byte(`":`), []byte(`": `), 1),
		"unknown field":  bytes.Replace(good, []byte(`{"version"`), []byte(`{"x":1,"version"`), 1),
		"unsorted env":   bytes.Replace(good, []byte(`{"name":"A","value":"first <&>"},{"name":"Z","value":"last"}`), []byte(`{"name":"Z","value":"last"},{"name":"A","value":"first <&>"}`), 1),
		"other version":  bytes.Replace(good, []byte(ManifestVersion), []byte("cloister.manifest/v9"), 1),
		"no newline":     bytes.TrimSuffix(good, []byte("\n")),
		"trailing bytes": append(append([]byte{}, good...), '{', '}'),
		"bad digest":     bytes.Replace(good, []byte(`"launcher":"sha256:`), []byte(`"launcher":"sha512:`), 1),
		"empty":          nil,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseManifest(b); !errors.Is(err, ErrManifest) {
				t.Fatalf("ParseManifest = %v, want ErrManifest", err)
			}
		})
	}
	s := sample()
	s.Entrypoint = nil
	if _, err := s.Encode(); err == nil || !strings.Contains(err.Error(), "entrypoint") {
		t.Fatalf("Encode without entrypoint = %v", err)
	}
}

func FuzzParseManifest(f *testing.F) {
	good, _ := sample().Encode()
	f.Add(good)
	f.Add([]byte(`{"version":"cloister.manifest/v1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if !errors.Is(err, ErrManifest) {
				t.Fatalf("error %v is not ErrManifest", err)
			}
			return
		}
		again, err := m.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted bytes do not re-encode to themselves: %v", err)
		}
	})
}

func TestTrustedLeavesOutReadWriteDirs(t *testing.T) {
	all, err := imagefs.NewList([]imagefs.Entry{
		{Path: "app", Type: imagefs.TypeDir, Mode: 0o755},
		{Path: "app/bin", Type: imagefs.TypeRegular, Mode: 0o755},
		{Path: "data", Type: imagefs.TypeDir, Mode: 0o755},
		{Path: "data/seed", Type: imagefs.TypeRegular, Mode: 0o644},
		{Path: "database", Type: imagefs.TypeRegular, Mode: 0o644},
		{Path: "etc", Type: imagefs.TypeDir, Mode: 0o755},
		{Path: "etc/hosts", Type: imagefs.TypeRegular, Mode: 0o644},
		{Path: "etc/passwd", Type: imagefs.TypeRegular, Mode: 0o644},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Trusted(all, []string{"/data"})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for e := range got.All() {
		paths = append(paths, e.Path)
	}
	if strings.Join(paths, ",") != "app,app/bin,database,etc,etc/passwd" {
		t.Fatalf("Trusted = %v, want all but /data and below and /etc/hosts", paths)
	}
	for _, bad := range []string{"/usr", "/usr/local/bin", "/lib64", "/etc/app", "/opt", "/", "relative", "/data/../usr"} {
		if _, err := Trusted(all, []string{bad}); err == nil {
			t.Errorf("Trusted with read-write directory %q succeeded", bad)
		}
	}
	for _, good := range []string{"/data", "/tmp", "/var/lib/app", "/run/cloister", "/home/app"} {
		if err := CheckRWDir(good); err != nil {
			t.Errorf("CheckRWDir(%q) = %v", good, err)
		}
	}
}

func listOf(t *testing.T, entries ...imagefs.Entry) *imagefs.List {
	t.Helper()
	l, err := imagefs.NewList(entries)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestGramineSymlinks: a file reached through a symlink is a trusted file
// by that path too, with its target's hash; links that lead nowhere add
// nothing; a key directory behind a symlink is refused.
func TestGramineSymlinks(t *testing.T) {
	sh, lib := sha256.Sum256([]byte("sh")), sha256.Sum256([]byte("lib"))
	dir := func(p string) imagefs.Entry { return imagefs.Entry{Path: p, Type: imagefs.TypeDir, Mode: 0o755} }
	reg := func(p string, sum [32]byte) imagefs.Entry {
		return imagefs.Entry{Path: p, Type: imagefs.TypeRegular, Mode: 0o755, Size: 2, SHA256: sum}
	}
	link := func(p, target string) imagefs.Entry {
		return imagefs.Entry{Path: p, Type: imagefs.TypeSymlink, Mode: 0o777, Target: target}
	}
	listed := listOf(t,
		link("bin", "usr/bin"), dir("etc"), link("etc/alt-sh", "../usr/bin/sh"), link("etc/dangling", "/nowhere"),
		link("etc/loop", "loop"), link("lib64", "/usr/lib"),
		dir("opt"), dir("opt/cloister"), dir("opt/cloister/gramine"), reg("opt/cloister/gramine/libsysdb.so", lib),
		dir("srv"), link("srv/tls", "/data"),
		dir("usr"), dir("usr/bin"), reg("usr/bin/sh", sh), dir("usr/lib"), dir("usr/lib/x"), reg("usr/lib/x/libc.so", lib))
	m := testManifest()
	g, err := Gramine(&m, GramineInputs{Listed: listed, Config: []byte("{}"), TrustedFiles: []byte("list")})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][32]byte{}
	for _, f := range g.TrustedFiles {
		got[f.URI] = f.SHA256
	}
	for uri, want := range map[string][32]byte{"file:/usr/bin/sh": sh, "file:/bin/sh": sh, "file:/etc/alt-sh": sh,
		"file:/lib64/x/libc.so": lib, "file:/usr/lib/x/libc.so": lib} {
		if got[uri] != want {
			t.Errorf("trusted file %s = %x, want %x", uri, got[uri], want)
		}
	}
	for _, uri := range []string{"file:/etc/dangling", "file:/etc/loop", "file:/srv/tls"} {
		if _, ok := got[uri]; ok {
			t.Errorf("%s, which leads to no file, is a trusted file", uri)
		}
	}

	m.Certificate.KeyPath = "/srv/tls/key.pem"
	if _, err := Gramine(&m, GramineInputs{Listed: listed}); !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), "/srv/tls is a symlink") {
		t.Errorf("a key behind a symlink: Gramine = %v, want a refusal naming the symlink", err)
	}
}
