package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/imagefs"
)

// launcherBin is the real launcher, built once by TestMain.
var launcherBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cloister-launcher-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	launcherBin = filepath.Join(dir, "cloister-launcher")
	build := exec.Command("go", "build", "-trimpath", "-o", launcherBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the launcher: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// script is the application: it prints its working directory, its
// arguments and the environment it was exec'd with (/proc/$$/environ is
// exactly the envp of execve, before the shell adds PWD and the like).
const script = `#!/bin/sh
echo "pwd=$(pwd)"
for a in "$@"; do echo "arg=$a"; done
tr '\0' '\n' </proc/$$/environ | while IFS= read -r l; do echo "env=$l"; done
`

// file is one file of a test image: data is a regular file's contents or
// a symlink's target.
type file struct {
	path string
	typ  imagefs.Type
	mode fs.FileMode
	data string
}

var fixture = []file{
	{"app", imagefs.TypeDir, 0o755, ""},
	{"app/data.txt", imagefs.TypeRegular, 0o644, "some data\n"},
	{"app/hello", imagefs.TypeRegular, 0o755, script},
	{"app/link", imagefs.TypeSymlink, 0o777, "hello"},
	{"app/odd name", imagefs.TypeRegular, 0o600, "odd\n"},
	{"app/suid", imagefs.TypeRegular, 0o750 | fs.ModeSetuid, "x"},
	{"tmp", imagefs.TypeDir, 0o777 | fs.ModeSticky, ""},
	{"var", imagefs.TypeDir, 0o755, ""},
	{"var/empty", imagefs.TypeDir, 0o700, ""},
}

// launcherBytes stand for the launcher at /opt/cloister/launcher: the
// check only compares their digest with the manifest's, so any bytes do;
// the program that runs is launcherBin.
var launcherBytes = []byte("not really a launcher: only its digest is checked\n")

// newImage writes files, their trusted-file list, a launcher and a
// manifest (edited by edit, if not nil) into a new root directory.
func newImage(t *testing.T, files []file, edit func(*enclave.Manifest)) string {
	t.Helper()
	root := t.TempDir()
	var entries []imagefs.Entry
	for _, f := range files {
		p := filepath.Join(root, f.path)
		e := imagefs.Entry{Path: f.path, Type: f.typ, Mode: f.mode}
		var err error
		switch f.typ {
		case imagefs.TypeDir:
			if err = os.Mkdir(p, 0o700); err == nil {
				err = os.Chmod(p, f.mode)
			}
		case imagefs.TypeRegular:
			if err = os.WriteFile(p, []byte(f.data), 0o600); err == nil {
				err = os.Chmod(p, f.mode)
			}
			e.Size, e.SHA256 = int64(len(f.data)), sha256.Sum256([]byte(f.data))
		case imagefs.TypeSymlink:
			err = os.Symlink(f.data, p)
			e.Target = f.data
		}
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	list, err := imagefs.NewList(entries)
	if err != nil {
		t.Fatal(err)
	}
	lb := list.Encode()
	m := enclave.Manifest{
		Entrypoint:     []string{"hello"},
		Args:           []string{"default-1", "default 2"},
		Env:            []enclave.EnvVar{{Name: "PATH", Value: "/app:/usr/bin:/bin"}, {Name: "GREETING", Value: "hello world"}},
		PassthroughEnv: []string{"PASSED", "UNSET_PASS"},
		WorkingDir:     "/app",
		RWDirs:         []string{"/data/cache"},
		Threads:        1,
		TrustedFiles:   enclave.Digest(lb),
		Launcher:       enclave.Digest(launcherBytes),
	}
	if edit != nil {
		edit(&m)
	}
	mb, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, os.MkdirAll(filepath.Join(root, enclave.Dir), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(root, enclave.TrustedFilesPath), lb, 0o644))
	mustDo(t, os.WriteFile(filepath.Join(root, enclave.LauncherPath), launcherBytes, 0o755))
	mustDo(t, os.WriteFile(filepath.Join(root, enclave.ManifestPath), mb, 0o644))
	return root
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// check is what the launcher does before it execs: load, then verify.
func check(root string) error {
	img, err := load(root)
	if err != nil {
		return err
	}
	return verify(root, img.list)
}

// launch runs the real launcher with args and a host environment of env
// only.
func launch(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(launcherBin, args...)
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

const alteredMsg = "; the image was altered after conversion"

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, root string)
		want   string // in the error; "" for none
	}{
		{"unchanged", func(*testing.T, string) {}, ""},
		{"extra files are allowed", func(t *testing.T, root string) {
			// Unlisted files pass: the runtime and the launcher add some
			// (mounts, /opt/cloister, read-write directories).
			mustDo(t, os.WriteFile(filepath.Join(root, "app/extra"), nil, 0o644))
			mustDo(t, os.Mkdir(filepath.Join(root, "extra"), 0o777))
		}, ""},
		{"altered byte", func(t *testing.T, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "app/data.txt"), []byte("some dATA\n"), 0o644))
		}, "/app/data.txt: SHA-256 differs from the trusted-file list" + alteredMsg},
		{"altered odd name", func(t *testing.T, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "app/odd name"), []byte("eve\n"), 0o600))
		}, "/app/odd name: SHA-256 differs from the trusted-file list" + alteredMsg},
		{"appended byte", func(t *testing.T, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "app/data.txt"), []byte("some data\n\n"), 0o644))
		}, "/app/data.txt: size is 11 bytes, the trusted-file list says 10" + alteredMsg},
		{"changed mode", func(t *testing.T, root string) {
			mustDo(t, os.Chmod(filepath.Join(root, "app/data.txt"), 0o666))
		}, "/app/data.txt: mode is 0666, the trusted-file list says 0644" + alteredMsg},
		{"setuid dropped", func(t *testing.T, root string) {
			mustDo(t, os.Chmod(filepath.Join(root, "app/suid"), 0o750))
		}, "/app/suid: mode is 0750, the trusted-file list says 4750" + alteredMsg},
		{"sticky bit dropped", func(t *testing.T, root string) {
			mustDo(t, os.Chmod(filepath.Join(root, "tmp"), 0o777))
		}, "/tmp: mode is 0777, the trusted-file list says 1777" + alteredMsg},
		{"missing file", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "app/data.txt")))
		}, "/app/data.txt: missing" + alteredMsg},
		{"missing directory", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "var/empty")))
		}, "/var/empty: missing" + alteredMsg},
		{"replaced symlink", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "app/link")))
			mustDo(t, os.Symlink("data.txt", filepath.Join(root, "app/link")))
		}, `/app/link: points to "data.txt", the trusted-file list says "hello"` + alteredMsg},
		{"symlink replaced by a file", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "app/link")))
			mustDo(t, os.WriteFile(filepath.Join(root, "app/link"), []byte(script), 0o755))
		}, "/app/link: is a regular file, the trusted-file list says a symlink" + alteredMsg},
		{"file replaced by a symlink", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "app/data.txt")))
			mustDo(t, os.Symlink("hello", filepath.Join(root, "app/data.txt")))
		}, "/app/data.txt: is a symlink, the trusted-file list says a regular file" + alteredMsg},
		{"file replaced by a FIFO", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "app/data.txt")))
			mustDo(t, syscall.Mkfifo(filepath.Join(root, "app/data.txt"), 0o644))
		}, "/app/data.txt: is a special file, the trusted-file list says a regular file" + alteredMsg},
		{"directory replaced by a file", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "var/empty")))
			mustDo(t, os.WriteFile(filepath.Join(root, "var/empty"), nil, 0o700))
		}, "/var/empty: is a regular file, the trusted-file list says a directory" + alteredMsg},
		{"manifest missing", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, enclave.ManifestPath)))
		}, "not a Cloister image: /opt/cloister/manifest.json not found"},
		{"manifest not canonical", func(t *testing.T, root string) {
			appendTo(t, filepath.Join(root, enclave.ManifestPath), " ")
		}, "/opt/cloister/manifest.json: enclave: invalid manifest: not in canonical form" + alteredMsg},
		{"trusted-file list altered", func(t *testing.T, root string) {
			appendTo(t, filepath.Join(root, enclave.TrustedFilesPath), "d 0777 \"zzz\"\n")
		}, "/opt/cloister/trusted-files: SHA-256 differs from the enclave manifest" + alteredMsg},
		{"trusted-file list missing", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, enclave.TrustedFilesPath)))
		}, "/opt/cloister/trusted-files: missing" + alteredMsg},
		{"launcher altered", func(t *testing.T, root string) {
			appendTo(t, filepath.Join(root, enclave.LauncherPath), "x")
		}, "/opt/cloister/launcher: SHA-256 differs from the enclave manifest" + alteredMsg},
		{"launcher missing", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, enclave.LauncherPath)))
		}, "/opt/cloister/launcher: missing" + alteredMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newImage(t, fixture, nil)
			tt.damage(t, root)

			err := check(root)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("check(root) = %v, want %q", err, tt.want)
			}

			stdout, stderr, code := launch(t, nil, "--root", root, "--verify-only")
			if tt.want == "" {
				if code != 0 || stdout != "cloister-launcher: 9 trusted files verified\n" {
					t.Errorf("--verify-only = %d, %q, %q; want 0 and 9 files verified", code, stdout, stderr)
				}
				return
			}
			if code != exitConfig || stderr != "cloister-launcher: "+err.Error()+"\n" {
				t.Errorf("--verify-only = %d, %q; want %d, %q", code, stderr, exitConfig, tt.want)
			}
		})
	}
}

func appendTo(t *testing.T, name, s string) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	mustDo(t, err)
	_, err = f.WriteString(s)
	mustDo(t, err)
	mustDo(t, f.Close())
}

func TestVerifyReportsFirstMismatchInListOrder(t *testing.T) {
	files := []file{{"many", imagefs.TypeDir, 0o755, ""}}
	for i := range 300 {
		files = append(files, file{fmt.Sprintf("many/f%03d", i), imagefs.TypeRegular, 0o644, strings.Repeat("x", 1000+i)})
	}
	root := newImage(t, files, nil)
	// Damage every file from f040 on, the later ones first, so that a
	// worker pool that reported the first mismatch it found would often
	// name another file.
	for i := 299; i >= 40; i-- {
		appendTo(t, filepath.Join(root, fmt.Sprintf("many/f%03d", i)), "!")
	}
	want := "/many/f040: size is 1041 bytes, the trusted-file list says 1040" + alteredMsg
	for range 20 {
		if err := check(root); err == nil || err.Error() != want {
			t.Fatalf("check(root) = %v, want %q", err, want)
		}
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(*enclave.Manifest)
		rootEnv  bool // pass the root in CLOISTER_ROOT instead of --root
		args     []string
		wantArgs []string
		wantCode int
		wantErr  string
	}{
		{name: "manifest args", wantArgs: []string{"default-1", "default 2"}},
		{name: "root from CLOISTER_ROOT", rootEnv: true, wantArgs: []string{"default-1", "default 2"}},
		{
			name: "command line replaces args", edit: func(m *enclave.Manifest) { m.AllowCmdlineArgs = true },
			args: []string{"one", "-two", "--three"}, wantArgs: []string{"one", "-two", "--three"},
		},
		{
			name: "command line after --", edit: func(m *enclave.Manifest) { m.AllowCmdlineArgs = true },
			args: []string{"--", "--root", "x"}, wantArgs: []string{"--root", "x"},
		},
		{
			name: "absolute entrypoint with fixed args", edit: func(m *enclave.Manifest) { m.Entrypoint = []string{"/app/hello", "fixed"} },
			wantArgs: []string{"fixed", "default-1", "default 2"},
		},
		{
			name: "entrypoint relative to the working directory", edit: func(m *enclave.Manifest) { m.Entrypoint = []string{"./hello"} },
			wantArgs: []string{"default-1", "default 2"},
		},
		{
			name: "command line refused", args: []string{"one"},
			wantCode: exitUsage, wantErr: `cloister-launcher: the image does not accept command-line arguments (got ["one"])`,
		},
		{
			name: "unknown flag", args: []string{"-x"},
			wantCode: exitUsage, wantErr: "cloister-launcher: put the application's arguments after --",
		},
		{
			name: "entrypoint not found", edit: func(m *enclave.Manifest) { m.Entrypoint = []string{"nope"} },
			wantCode: exitConfig, wantErr: `cloister-launcher: entrypoint "nope" not found in PATH /app:/usr/bin:/bin`,
		},
		{
			name: "entrypoint not executable", edit: func(m *enclave.Manifest) { m.Entrypoint = []string{"/app/data.txt"} },
			wantCode: exitConfig, wantErr: "cloister-launcher: entrypoint /app/data.txt: not executable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newImage(t, fixture, tt.edit)
			// HOST_ONLY is not in the manifest: it must not reach the
			// application, and neither must CLOISTER_ROOT.
			env := []string{"PASSED=from host", "HOST_ONLY=secret", "GREETING=from host"}
			args := append([]string{"--root", root}, tt.args...)
			if tt.rootEnv {
				env, args = append(env, "CLOISTER_ROOT="+root), tt.args
			}
			stdout, stderr, code := launch(t, env, args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("launcher = %d, stderr %q; want %d, %q", code, stderr, tt.wantCode, tt.wantErr)
			}
			if tt.wantCode != 0 {
				return
			}
			var pwd string
			var gotArgs, gotEnv []string
			for l := range strings.Lines(stdout) {
				k, v, _ := strings.Cut(strings.TrimSuffix(l, "\n"), "=")
				switch k {
				case "pwd":
					pwd = v
				case "arg":
					gotArgs = append(gotArgs, v)
				case "env":
					gotEnv = append(gotEnv, v)
				}
			}
			// The fixed variables (sorted by the manifest), then the
			// passed-through ones the host sets; a fixed one is never
			// overridden by the host.
			wantEnv := []string{"GREETING=hello world", "PATH=/app:/usr/bin:/bin", "PASSED=from host"}
			if !slices.Equal(gotArgs, tt.wantArgs) || !slices.Equal(gotEnv, wantEnv) {
				t.Errorf("application got args %q, env %q; want %q, %q (stdout %q)", gotArgs, gotEnv, tt.wantArgs, wantEnv, stdout)
			}
			wantPwd, err := filepath.EvalSymlinks(filepath.Join(root, "app"))
			mustDo(t, err)
			if pwd != wantPwd {
				t.Errorf("application ran in %q, want %q", pwd, wantPwd)
			}
			if fi, err := os.Stat(filepath.Join(root, "data/cache")); err != nil || !fi.IsDir() {
				t.Errorf("read-write directory /data/cache: %v, want a directory", err)
			}
		})
	}
}

func TestNewCommand(t *testing.T) {
	m := &enclave.Manifest{
		Entrypoint:     []string{"/bin/app"},
		Env:            []enclave.EnvVar{{Name: "A", Value: "fixed"}},
		PassthroughEnv: []string{"A", "B"},
		WorkingDir:     "/../../w",
		RWDirs:         []string{"/../d"},
	}
	root := t.TempDir()
	mustDo(t, os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(root, "bin/app"), nil, 0o755))
	host := map[string]string{"A": "host", "B": "host", "C": "host"}
	c, err := newCommand(root, m, nil, func(k string) (string, bool) { v, ok := host[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	// ".." never leaves the root; a passed-through name never overrides a
	// fixed one.
	want := command{
		path: filepath.Join(root, "bin/app"), argv: []string{"/bin/app"}, env: []string{"A=fixed", "B=host"},
		dir: filepath.Join(root, "w"), rwDirs: []string{filepath.Join(root, "d")},
	}
	if c.path != want.path || !slices.Equal(c.argv, want.argv) || !slices.Equal(c.env, want.env) || c.dir != want.dir || !slices.Equal(c.rwDirs, want.rwDirs) {
		t.Errorf("newCommand = %+v, want %+v", *c, want)
	}
}

func TestVersion(t *testing.T) {
	stdout, _, code := launch(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(stdout, "cloister-launcher ") {
		t.Errorf("--version = %d, %q; want 0, cloister-launcher <version>", code, stdout)
	}
}
