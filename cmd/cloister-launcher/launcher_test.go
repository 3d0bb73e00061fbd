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
	"github.com/cloister-cc/cloister/libs/gramine"
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
	{"bin", imagefs.TypeDir, 0o755, ""},
	// The script's interpreter must be listed. Without chroot, the kernel
	// runs the host's /bin/sh, so any bytes do here.
	{"bin/sh", imagefs.TypeRegular, 0o755, "stands for /bin/sh\n"},
	{"tmp", imagefs.TypeDir, 0o777 | fs.ModeSticky, ""},
	{"usr", imagefs.TypeDir, 0o755, ""},
	{"usr/bin", imagefs.TypeDir, 0o755, ""},
	{"usr/local", imagefs.TypeDir, 0o755, ""},
	{"usr/local/bin", imagefs.TypeDir, 0o755, ""},
	{"var", imagefs.TypeDir, 0o755, ""},
	{"var/empty", imagefs.TypeDir, 0o700, ""},
}

// fixtureFiles is the number of files in fixture.
const fixtureFiles = 15

// launcherBytes stand for the launcher at /opt/cloister/launcher: the
// check only compares their digest with the manifest's, so any bytes do;
// the program that runs is launcherBin.
var launcherBytes = []byte("not really a launcher: only its digest is checked\n")

// runtimeFiles are what the runtime layer puts in /opt/cloister: the
// launcher and the stand-in Gramine runtime.
var runtimeFiles = []file{
	{"opt", imagefs.TypeDir, 0o755, ""},
	{"opt/cloister", imagefs.TypeDir, 0o755, ""},
	{"opt/cloister/gramine", imagefs.TypeDir, 0o755, ""},
	{"opt/cloister/gramine/libsysdb.so", imagefs.TypeRegular, 0o644, string(gramine.StandInELF("libsysdb.so"))},
	{"opt/cloister/gramine/sgx", imagefs.TypeDir, 0o755, ""},
	{"opt/cloister/gramine/sgx/libpal.so", imagefs.TypeRegular, 0o644, string(gramine.StandInELF("libpal.so"))},
	{"opt/cloister/gramine/sgx/loader", imagefs.TypeRegular, 0o755, "#!/bin/sh\necho stand-in loader \"$@\"\nexit 70\n"},
	{"opt/cloister/launcher", imagefs.TypeRegular, 0o755, string(launcherBytes)},
}

// newImage writes files, their trusted-file list, a launcher and a
// manifest (edited by edit, if not nil) into a new root directory.
func newImage(t *testing.T, files []file, edit func(*enclave.Manifest)) string {
	t.Helper()
	root := t.TempDir()
	files = append(slices.Clone(files), runtimeFiles...)
	for _, f := range files {
		p := filepath.Join(root, f.path)
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
		case imagefs.TypeSymlink:
			err = os.Symlink(f.data, p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	lb := listOf(t, files).Encode()
	m := enclave.Manifest{
		Entrypoint:     []string{"hello"},
		Args:           []string{"default-1", "default 2"},
		Env:            []enclave.EnvVar{{Name: "PATH", Value: "/app:/usr/bin:/bin"}, {Name: "GREETING", Value: "hello world"}},
		PassthroughEnv: []string{"PASSED", "UNSET_PASS"},
		WorkingDir:     "/app",
		RWDirs:         []string{"/data/cache"},
		MemorySize:     64 << 20,
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
	g, err := enclave.Gramine(&m, enclave.GramineInputs{Listed: listOf(t, files), Config: mb, TrustedFiles: lb})
	mustDo(t, err)
	gb, err := g.Marshal()
	mustDo(t, err)
	mustDo(t, os.WriteFile(filepath.Join(root, enclave.TrustedFilesPath), lb, 0o644))
	mustDo(t, os.WriteFile(filepath.Join(root, enclave.ManifestPath), mb, 0o644))
	mustDo(t, os.WriteFile(filepath.Join(root, enclave.GramineManifestPath), gb, 0o644))
	return root
}

// listOf is the trusted-file list of files.
func listOf(t *testing.T, files []file) *imagefs.List {
	t.Helper()
	var entries []imagefs.Entry
	for _, f := range files {
		e := imagefs.Entry{Path: f.path, Type: f.typ, Mode: f.mode}
		switch f.typ {
		case imagefs.TypeRegular:
			e.Size, e.SHA256 = int64(len(f.data)), sha256.Sum256([]byte(f.data))
		case imagefs.TypeSymlink:
			e.Target = f.data
		}
		entries = append(entries, e)
	}
	list, err := imagefs.NewList(entries)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// check is what the launcher does before it execs: load, then verify.
func check(root string) error {
	img, err := load(root, false)
	if err != nil {
		return err
	}
	return verify(root, img)
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
	// certificate puts the key and certificate in /run/tls, which the
	// image does not have.
	certificate := func(m *enclave.Manifest) {
		m.Certificate = &enclave.Certificate{Domain: "app.example", KeyType: "ecdsa-p256", KeyPath: "/run/tls/key.pem", CertPath: "/run/tls/cert.pem"}
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, root string)
		want   string // in the error; "" for none
		edit   func(*enclave.Manifest)
	}{
		{"unchanged", func(*testing.T, string) {}, "", nil},
		{"unlisted file", func(t *testing.T, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "app/extra"), nil, 0o644))
			mustDo(t, os.Mkdir(filepath.Join(root, "extra"), 0o777))
		}, "/app/extra: not in the trusted-file list" + alteredMsg, nil},
		{"a file added to the runtime", func(t *testing.T, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "opt/cloister/gramine/sgx/extra.so"), nil, 0o644))
		}, "/opt/cloister/gramine/sgx/extra.so: not in the trusted-file list" + alteredMsg, nil},
		{"the runtime's libpal.so replaced", func(t *testing.T, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "opt/cloister/gramine/sgx/libpal.so"), gramine.StandInELF("evil"), 0o644))
		}, "/opt/cloister/gramine/sgx/libpal.so: ", nil},
		{"Gramine manifest altered", func(t *testing.T, root string) {
			p := filepath.Join(root, enclave.GramineManifestPath)
			b, err := os.ReadFile(p)
			mustDo(t, err)
			mustDo(t, os.WriteFile(p, bytes.Replace(b, []byte("file:/opt/cloister/manifest.json\"\nsha256 = \""), []byte("file:/opt/cloister/manifest.json\"\nsha256 = \"0"), 1), 0o644))
		}, "/opt/cloister/manifest.json: ", nil},
		{"Gramine manifest missing", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, enclave.GramineManifestPath)))
		}, "not a Cloister image: /opt/cloister/app.manifest.sgx not found", nil},
		{"unlisted directory", func(t *testing.T, root string) {
			mustDo(t, os.Mkdir(filepath.Join(root, "extra"), 0o777))
		}, "/extra: not in the trusted-file list" + alteredMsg, nil},
		{"unlisted symlink", func(t *testing.T, root string) {
			mustDo(t, os.Symlink("/app/hello", filepath.Join(root, "usr/bin/hello")))
		}, "/usr/bin/hello: not in the trusted-file list" + alteredMsg, nil},
		{"ld.so.preload", func(t *testing.T, root string) {
			// /etc is not listed, but the runtime may create it for
			// /etc/hosts; what is in it is still checked.
			mustDo(t, os.Mkdir(filepath.Join(root, "etc"), 0o755))
			mustDo(t, os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("127.0.0.1 localhost\n"), 0o644))
			mustDo(t, os.WriteFile(filepath.Join(root, "etc/ld.so.preload"), []byte("/tmp/evil.so\n"), 0o644))
		}, "/etc/ld.so.preload: not in the trusted-file list" + alteredMsg, nil},
		{"untracked, read-write and launcher paths are not checked", func(t *testing.T, root string) {
			for _, d := range []string{"proc/1", "dev/pts", "sys/kernel", "etc", "data/cache/sub"} {
				mustDo(t, os.MkdirAll(filepath.Join(root, d), 0o755))
			}
			for _, f := range []string{"proc/1/environ", "dev/null", "sys/kernel/x", "etc/hosts", "etc/hostname", "etc/resolv.conf", "data/cache/sub/prog"} {
				mustDo(t, os.WriteFile(filepath.Join(root, f), []byte("#!/bin/sh\n"), 0o755))
			}
			mustDo(t, os.Symlink("/proc/self/mounts", filepath.Join(root, "etc/mtab")))
			mustDo(t, os.Symlink("/usr", filepath.Join(root, "data/cache/usr")))
		}, "", nil},
		{"directory above a read-write directory replaced by a symlink", func(t *testing.T, root string) {
			mustDo(t, os.Symlink("usr", filepath.Join(root, "data")))
		}, "/data: not in the trusted-file list" + alteredMsg, nil},
		{"certificate paths are not checked", func(t *testing.T, root string) {
			mustDo(t, os.MkdirAll(filepath.Join(root, "run/tls"), 0o700))
			mustDo(t, os.WriteFile(filepath.Join(root, "run/tls/key.pem"), nil, 0o600))
			mustDo(t, os.WriteFile(filepath.Join(root, "run/tls/cert.pem"), nil, 0o644))
		}, "", certificate},
		{"other files beside the certificate", func(t *testing.T, root string) {
			mustDo(t, os.MkdirAll(filepath.Join(root, "run/tls"), 0o700))
			mustDo(t, os.WriteFile(filepath.Join(root, "run/tls/cert.pem"), nil, 0o644))
			mustDo(t, os.WriteFile(filepath.Join(root, "run/tls/chain.pem"), nil, 0o644))
		}, "/run/tls/chain.pem: not in the trusted-file list" + alteredMsg, certificate},
		{"certificate path replaced by a symlink", func(t *testing.T, root string) {
			mustDo(t, os.MkdirAll(filepath.Join(root, "run/tls"), 0o700))
			mustDo(t, os.Symlink("/app/hello", filepath.Join(root, "run/tls/key.pem")))
		}, "/run/tls/key.pem: not in the trusted-file list" + alteredMsg, certificate},
		{"read-write directory the converter refuses", func(t *testing.T, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "usr/local/bin/hello"), []byte(script), 0o755))
		}, `/opt/cloister/manifest.json: read-write directory "/usr/local" cannot be writable`, func(m *enclave.Manifest) { m.RWDirs = []string{"/usr/local"} }},
		{"altered byte", func(t *testing.T, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "app/data.txt"), []byte("some dATA\n"), 0o644))
		}, "/app/data.txt: SHA-256 differs from the trusted-file list" + alteredMsg, nil},
		{"altered odd name", func(t *testing.T, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "app/odd name"), []byte("eve\n"), 0o600))
		}, "/app/odd name: SHA-256 differs from the trusted-file list" + alteredMsg, nil},
		{"appended byte", func(t *testing.T, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "app/data.txt"), []byte("some data\n\n"), 0o644))
		}, "/app/data.txt: size is 11 bytes, the trusted-file list says 10" + alteredMsg, nil},
		{"changed mode", func(t *testing.T, root string) {
			mustDo(t, os.Chmod(filepath.Join(root, "app/data.txt"), 0o666))
		}, "/app/data.txt: mode is 0666, the trusted-file list says 0644" + alteredMsg, nil},
		{"setuid dropped", func(t *testing.T, root string) {
			mustDo(t, os.Chmod(filepath.Join(root, "app/suid"), 0o750))
		}, "/app/suid: mode is 0750, the trusted-file list says 4750" + alteredMsg, nil},
		{"sticky bit dropped", func(t *testing.T, root string) {
			mustDo(t, os.Chmod(filepath.Join(root, "tmp"), 0o777))
		}, "/tmp: mode is 0777, the trusted-file list says 1777" + alteredMsg, nil},
		{"missing file", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "app/data.txt")))
		}, "/app/data.txt: missing" + alteredMsg, nil},
		{"missing directory", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "var/empty")))
		}, "/var/empty: missing" + alteredMsg, nil},
		{"replaced symlink", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "app/link")))
			mustDo(t, os.Symlink("data.txt", filepath.Join(root, "app/link")))
		}, `/app/link: points to "data.txt", the trusted-file list says "hello"` + alteredMsg, nil},
		{"symlink replaced by a file", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "app/link")))
			mustDo(t, os.WriteFile(filepath.Join(root, "app/link"), []byte(script), 0o755))
		}, "/app/link: is a regular file, the trusted-file list says a symlink" + alteredMsg, nil},
		{"file replaced by a symlink", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "app/data.txt")))
			mustDo(t, os.Symlink("hello", filepath.Join(root, "app/data.txt")))
		}, "/app/data.txt: is a symlink, the trusted-file list says a regular file" + alteredMsg, nil},
		{"file replaced by a FIFO", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "app/data.txt")))
			mustDo(t, syscall.Mkfifo(filepath.Join(root, "app/data.txt"), 0o644))
		}, "/app/data.txt: is a special file, the trusted-file list says a regular file" + alteredMsg, nil},
		{"directory replaced by a file", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, "var/empty")))
			mustDo(t, os.WriteFile(filepath.Join(root, "var/empty"), nil, 0o700))
		}, "/var/empty: is a regular file, the trusted-file list says a directory" + alteredMsg, nil},
		{"manifest missing", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, enclave.ManifestPath)))
		}, "not a Cloister image: /opt/cloister/manifest.json not found", nil},
		{"manifest not canonical", func(t *testing.T, root string) {
			appendTo(t, filepath.Join(root, enclave.ManifestPath), " ")
		}, "/opt/cloister/manifest.json: SHA-256 differs from the Gramine manifest's" + alteredMsg, nil},
		{"trusted-file list altered", func(t *testing.T, root string) {
			appendTo(t, filepath.Join(root, enclave.TrustedFilesPath), "d 0777 \"zzz\"\n")
		}, "/opt/cloister/trusted-files: SHA-256 differs from the Gramine manifest's" + alteredMsg, nil},
		{"trusted-file list missing", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, enclave.TrustedFilesPath)))
		}, "/opt/cloister/trusted-files: missing" + alteredMsg, nil},
		{"launcher altered", func(t *testing.T, root string) {
			appendTo(t, filepath.Join(root, enclave.LauncherPath), "x")
		}, "/opt/cloister/launcher: SHA-256 differs from the enclave manifest" + alteredMsg, nil},
		{"launcher missing", func(t *testing.T, root string) {
			mustDo(t, os.Remove(filepath.Join(root, enclave.LauncherPath)))
		}, "/opt/cloister/launcher: missing" + alteredMsg, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newImage(t, fixture, tt.edit)
			tt.damage(t, root)

			err := check(root)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("check(root) = %v, want %q", err, tt.want)
			}

			stdout, stderr, code := launch(t, nil, "--root", root, "--verify-only")
			if tt.want == "" {
				if want := fmt.Sprintf("cloister-launcher: %d trusted files verified\n", fixtureFiles+len(runtimeFiles)); code != 0 || stdout != want {
					t.Errorf("--verify-only = %d, %q, %q; want 0, %q", code, stdout, stderr, want)
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
	// evil is a program where the trusted-file list does not reach: in
	// the read-write directory.
	evil := func(t *testing.T, root string) {
		mustDo(t, os.MkdirAll(filepath.Join(root, "data/cache"), 0o755))
		mustDo(t, os.WriteFile(filepath.Join(root, "data/cache/evil"), []byte(script), 0o755))
	}
	defArgs := []string{"default-1", "default 2"}
	tests := []struct {
		name     string
		files    []file // besides fixture
		edit     func(*enclave.Manifest)
		damage   func(t *testing.T, root string)
		noRoot   bool // no --root
		args     []string
		wantArgs []string
		wantPwd  string // under root; "app" if empty
		wantCode int
		wantErr  string
		notErr   string // not in stderr
	}{
		{name: "manifest args", wantArgs: defArgs},
		{
			// The launcher checks / (no Cloister image on a test host), not
			// the directory CLOISTER_ROOT names.
			name: "CLOISTER_ROOT is ignored", noRoot: true,
			wantCode: exitConfig, wantErr: "cloister-launcher: not a Cloister image: /opt/cloister/app.manifest.sgx not found",
		},
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
			wantCode: exitUsage, wantErr: "cloister-launcher: flag provided but not defined: -x; put the application's arguments after --\n",
		},
		{
			name: "flag without its value", args: []string{"--root"},
			wantCode: exitUsage, wantErr: "cloister-launcher: flag needs an argument: -root; run cloister-launcher -h for its flags\n", notErr: "after --",
		},
		{
			name: "malformed flag value", args: []string{"--verify-only=maybe"},
			wantCode: exitUsage, wantErr: `cloister-launcher: invalid boolean value "maybe" for -verify-only`, notErr: "after --",
		},
		{
			name: "unlisted program earlier on PATH",
			edit: func(m *enclave.Manifest) { m.Env[0].Value = "/usr/local/bin:/app" }, // PATH
			damage: func(t *testing.T, root string) {
				mustDo(t, os.WriteFile(filepath.Join(root, "usr/local/bin/hello"), []byte(script), 0o755))
			},
			wantCode: exitConfig, wantErr: "cloister-launcher: /usr/local/bin/hello: not in the trusted-file list; the image was altered after conversion\n",
		},
		{
			name: "symlink entrypoint to a listed program", edit: func(m *enclave.Manifest) { m.Entrypoint = []string{"/app/link"} },
			wantArgs: defArgs,
		},
		{
			name:     "symlink on PATH to a listed program",
			files:    []file{{"usr/bin/hi", imagefs.TypeSymlink, 0o777, "../../app/link"}},
			edit:     func(m *enclave.Manifest) { m.Entrypoint = []string{"hi"} },
			wantArgs: defArgs,
		},
		{
			name:  "symlink entrypoint into a read-write directory",
			files: []file{{"app/run", imagefs.TypeSymlink, 0o777, "/data/cache/evil"}},
			edit:  func(m *enclave.Manifest) { m.Entrypoint = []string{"/app/run"} }, damage: evil,
			wantCode: exitConfig, wantErr: "cloister-launcher: entrypoint /app/run: /data/cache/evil is in the read-write directory /data/cache, which the trusted-file list does not cover; the launcher runs only programs in the trusted-file list\n",
		},
		{
			// The search stops there: the runtime would have run it.
			name:     "symlink on PATH into a read-write directory",
			files:    []file{{"app/run", imagefs.TypeSymlink, 0o777, "/data/cache/evil"}, {"usr/bin/run", imagefs.TypeRegular, 0o755, script}},
			edit:     func(m *enclave.Manifest) { m.Entrypoint = []string{"run"} },
			damage:   evil,
			wantCode: exitConfig, wantErr: "cloister-launcher: entrypoint run: /app/run: /data/cache/evil is in the read-write directory /data/cache",
		},
		{
			name:     "symlink entrypoint to a file the image does not have",
			files:    []file{{"app/run", imagefs.TypeSymlink, 0o777, "../nowhere/run"}},
			edit:     func(m *enclave.Manifest) { m.Entrypoint = []string{"/app/run"} },
			wantCode: exitConfig, wantErr: "cloister-launcher: entrypoint /app/run: /nowhere is not in the trusted-file list; the manifest names a program the image does not have\n",
		},
		{
			name:     "entrypoint in a read-write directory",
			edit:     func(m *enclave.Manifest) { m.Entrypoint = []string{"/data/cache/evil"} },
			damage:   evil,
			wantCode: exitConfig, wantErr: "cloister-launcher: entrypoint /data/cache/evil: /data/cache/evil is in the read-write directory /data/cache, which the trusted-file list does not cover; the launcher runs only programs in the trusted-file list\n",
		},
		{
			name:     "entrypoint in /opt/cloister",
			edit:     func(m *enclave.Manifest) { m.Entrypoint = []string{enclave.LauncherPath} },
			wantCode: exitConfig, wantErr: "cloister-launcher: entrypoint /opt/cloister/launcher: /opt/cloister/launcher is in Cloister's own directory /opt/cloister, which holds the launcher and Gramine's runtime, not the application",
		},
		{
			name:     "script with an unlisted interpreter",
			files:    []file{{"app/script", imagefs.TypeRegular, 0o755, "#!/usr/bin/python3 -u\nprint('hi')\n"}},
			edit:     func(m *enclave.Manifest) { m.Entrypoint = []string{"/app/script"} },
			wantCode: exitConfig, wantErr: "cloister-launcher: entrypoint /app/script: /app/script: #! interpreter /usr/bin/python3: /usr/bin/python3 is not in the trusted-file list; the launcher runs only programs in the trusted-file list\n",
		},
		{
			name: "script with an interpreter in a read-write directory",
			files: []file{
				{"app/script", imagefs.TypeRegular, 0o755, "#!/app/sh\n"},
				{"app/sh", imagefs.TypeSymlink, 0o777, "/data/cache/evil"},
			},
			edit: func(m *enclave.Manifest) { m.Entrypoint = []string{"/app/script"} }, damage: evil,
			wantCode: exitConfig, wantErr: "cloister-launcher: entrypoint /app/script: /app/script: #! interpreter /app/sh: /data/cache/evil is in the read-write directory /data/cache",
		},
		{
			name: "working directory symlinked to a listed directory", files: []file{{"work", imagefs.TypeSymlink, 0o777, "app/../var/../app"}},
			edit: func(m *enclave.Manifest) { m.WorkingDir = "/work"; m.Entrypoint = []string{"./hello"} }, wantArgs: defArgs,
		},
		{
			name: "working directory is a read-write directory", edit: func(m *enclave.Manifest) { m.WorkingDir = "/data/cache" },
			wantArgs: defArgs, wantPwd: "data/cache",
		},
		{
			name: "working directory symlinked outside the list", files: []file{{"work", imagefs.TypeSymlink, 0o777, "/proc/1/root"}},
			edit:     func(m *enclave.Manifest) { m.WorkingDir = "/work" },
			wantCode: exitConfig, wantErr: "cloister-launcher: working directory /work: /proc/1/root is provided by the container runtime, which the trusted-file list does not cover; it must be a directory of the image or a read-write directory\n",
		},
		{
			name: "working directory below a read-write directory", edit: func(m *enclave.Manifest) { m.WorkingDir = "/data/cache/sub" },
			wantCode: exitConfig, wantErr: "cloister-launcher: working directory /data/cache/sub: /data/cache/sub is in the read-write directory /data/cache",
		},
		{
			name: "working directory is a file", edit: func(m *enclave.Manifest) { m.WorkingDir = "/app/link" },
			wantCode: exitConfig, wantErr: "cloister-launcher: working directory /app/link: not a directory",
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
			root := newImage(t, append(slices.Clone(fixture), tt.files...), tt.edit)
			if tt.damage != nil {
				tt.damage(t, root)
			}
			// HOST_ONLY is not in the manifest: it must not reach the
			// application, and neither must CLOISTER_ROOT.
			env := []string{"PASSED=from host", "HOST_ONLY=secret", "GREETING=from host", "CLOISTER_ROOT=" + root}
			args := append([]string{"--root", root}, tt.args...)
			if tt.noRoot {
				args = tt.args
			}
			stdout, stderr, code := launch(t, env, args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) || tt.notErr != "" && strings.Contains(stderr, tt.notErr) {
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
			if tt.wantPwd == "" {
				tt.wantPwd = "app"
			}
			wantPwd, err := filepath.EvalSymlinks(filepath.Join(root, tt.wantPwd))
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
	root := newImage(t, []file{
		{"bin", imagefs.TypeDir, 0o755, ""},
		{"bin/app", imagefs.TypeRegular, 0o755, ""},
		{"w", imagefs.TypeDir, 0o755, ""},
	}, func(m *enclave.Manifest) {
		m.Entrypoint = []string{"/bin/app"}
		m.Args = nil
		m.Env = []enclave.EnvVar{{Name: "A", Value: "fixed"}}
		m.PassthroughEnv = []string{"A", "B"}
		m.WorkingDir = "/../../w"
		m.RWDirs = []string{"/d"}
	})
	img, err := load(root, false)
	mustDo(t, err)
	host := map[string]string{"A": "host", "B": "host", "C": "host"}
	c, err := newCommand(root, img.list, img.manifest, nil, func(k string) (string, bool) { v, ok := host[k]; return v, ok })
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

// resolveFiles is an image for the resolver: symlinks of every kind.
var resolveFiles = []file{
	{"abs", imagefs.TypeSymlink, 0o777, "/usr/bin/env"},
	{"bin", imagefs.TypeSymlink, 0o777, "usr/bin"},
	{"dangling", imagefs.TypeSymlink, 0o777, "nowhere"},
	{"data", imagefs.TypeDir, 0o755, ""},
	{"loop1", imagefs.TypeSymlink, 0o777, "loop2"},
	{"loop2", imagefs.TypeSymlink, 0o777, "/loop1"},
	{"rel", imagefs.TypeSymlink, 0o777, "../../usr/bin/env"},
	{"tokey", imagefs.TypeSymlink, 0o777, "run/tls/key.pem"},
	{"toopt", imagefs.TypeSymlink, 0o777, "/opt/cloister/launcher"},
	{"toproc", imagefs.TypeSymlink, 0o777, "/proc/self/exe"},
	{"torw", imagefs.TypeSymlink, 0o777, "data/rw"},
	{"usr", imagefs.TypeDir, 0o755, ""},
	{"usr/bin", imagefs.TypeDir, 0o755, ""},
	{"usr/bin/data", imagefs.TypeRegular, 0o644, ""},
	{"usr/bin/env", imagefs.TypeRegular, 0o755, ""},
	{"usr/bin/here", imagefs.TypeSymlink, 0o777, "."},
	{"usr/bin/sh", imagefs.TypeRegular, 0o755, "#!/bin/env\n"},
}

func TestResolve(t *testing.T) {
	r := &resolver{list: listOf(t, resolveFiles), unlisted: newUnlisted(&enclave.Manifest{
		RWDirs:      []string{"/data/rw", "/srv/rw"},
		Certificate: &enclave.Certificate{KeyPath: "/run/tls/key.pem", CertPath: "/run/tls/cert.pem"},
	})}
	tests := []struct {
		start, name string
		want        string
		err         string
	}{
		{"/", "/usr/bin/env", "/usr/bin/env", ""},
		{"/", "/bin/env", "/usr/bin/env", ""},
		{"/", "/abs", "/usr/bin/env", ""},
		{"/", "/rel", "/usr/bin/env", ""}, // ".." stops at the root
		{"/", "/usr/bin/here/here/./env", "/usr/bin/env", ""},
		{"/", "/bin/../bin/env", "/usr/bin/env", ""},
		{"/usr", "bin/env", "/usr/bin/env", ""},
		{"/usr/bin", "../../bin/sh", "/usr/bin/sh", ""},
		// ".." is taken after the symlink, as the kernel does: /bin/.. is
		// /usr, not /.
		{"/", "/bin/../usr/bin/env", "", "/usr/usr is not in the trusted-file list"},
		{"/", "/usr/bin/env/", "", "/usr/bin/env is not in the trusted-file list"},
		{"/", "/usr/bin/env/x", "", "/usr/bin/env/x is not in the trusted-file list"},
		{"/", "/dangling", "", "/nowhere is not in the trusted-file list"},
		{"/", "/loop1", "", "more than 40 symlinks at /loop1"},
		{"/", "/torw", "", "/data/rw is in the read-write directory /data/rw, which the trusted-file list does not cover"},
		{"/", "/data/rw/x", "", "/data/rw/x is in the read-write directory /data/rw, which the trusted-file list does not cover"},
		{"/", "/toproc", "", "/proc/self/exe is provided by the container runtime, which the trusted-file list does not cover"},
		// /opt is not listed, but the runtime creates it for
		// /opt/cloister: the launcher and Gramine's runtime are not programs
		// the application may run.
		{"/", "/toopt", "", "/opt/cloister/launcher is in Cloister's own directory /opt/cloister, which holds the launcher and Gramine's runtime, not the application"},
		{"/", "/tokey", "", "/run/tls/key.pem is the certificate's key or certificate, which the launcher writes, which the trusted-file list does not cover"},
		{"/", "/run/tls/other", "", "/run/tls/other is not in the trusted-file list"},
		{"/", "/srv/rw/x", "", "/srv/rw/x is in the read-write directory /srv/rw, which the trusted-file list does not cover"},
		{"/", "/usr/bin/data", "", "not executable"},
		{"/", "/usr/bin", "", "not a regular file"},
		{"/", "/", "", "not a regular file"},
	}
	for _, tt := range tests {
		got, err := r.program(tt.start, tt.name)
		if got != tt.want || tt.err == "" && err != nil || tt.err != "" && (err == nil || err.Error() != tt.err) {
			t.Errorf("program(%q, %q) = %q, %v; want %q, %q", tt.start, tt.name, got, err, tt.want, tt.err)
		}
	}

	// A working directory may be a listed directory, a read-write
	// directory or the root, but nothing below a read-write directory.
	for _, tt := range []struct{ name, want, err string }{
		{"", "/", ""},
		{"/usr/bin/here", "/usr/bin", ""},
		{"/torw", "/data/rw", ""},
		{"/srv/rw", "/srv/rw", ""},
		{"/srv/rw/..", "", "/srv is not in the trusted-file list"},
		{"/data/rw/x", "", "/data/rw/x is in the read-write directory /data/rw, which the trusted-file list does not cover"},
		{"/toproc", "", "/proc/self/exe is provided by the container runtime, which the trusted-file list does not cover"},
		{"/usr/bin/env", "", "not a directory"},
	} {
		got, err := r.workdir(tt.name)
		if got != tt.want || tt.err == "" && err != nil || tt.err != "" && (err == nil || err.Error() != tt.err) {
			t.Errorf("workdir(%q) = %q, %v; want %q, %q", tt.name, got, err, tt.want, tt.err)
		}
	}
}

func TestShebang(t *testing.T) {
	long := "#!/" + strings.Repeat("x", 300)
	tests := []struct{ data, want, err string }{
		{"#!/bin/sh\necho\n", "/bin/sh", ""},
		{"#! \t/bin/sh -e -u\n", "/bin/sh", ""},
		{"#!/usr/bin/env\tpython3\n", "/usr/bin/env", ""},
		{"#!/bin/sh", "/bin/sh", ""},
		{"#!/bin/sh\x00junk\n", "/bin/sh", ""},
		{"#!/bin/sh " + strings.Repeat("a", 300), "/bin/sh", ""},
		{"\x7fELF\x02\x01", "", ""},
		{"echo no shebang\n", "", ""},
		{"", "", ""},
		{"#!\n/bin/sh\n", "", "its #! line names no interpreter"},
		{"#!   \n", "", "its #! line names no interpreter"},
		{long, "", "its #! line is longer than 255 bytes"},
	}
	root := t.TempDir()
	for _, tt := range tests {
		mustDo(t, os.WriteFile(filepath.Join(root, "f"), []byte(tt.data), 0o755))
		got, err := shebang(root, "/f")
		if got != tt.want || tt.err == "" && err != nil || tt.err != "" && (err == nil || err.Error() != tt.err) {
			t.Errorf("shebang(%q) = %q, %v; want %q, %q", tt.data, got, err, tt.want, tt.err)
		}
	}
}

func TestCheckInterpreters(t *testing.T) {
	files := []file{
		{"app", imagefs.TypeDir, 0o755, ""},
		{"app/a", imagefs.TypeRegular, 0o755, "#!/app/b\n"},
		{"app/b", imagefs.TypeRegular, 0o755, "#!/app/c\n"},
		{"app/c", imagefs.TypeRegular, 0o755, "#!/app/d\n"},
		{"app/d", imagefs.TypeRegular, 0o755, "#!/app/e\n"},
		{"app/e", imagefs.TypeRegular, 0o755, "#!/app/bin\n"},
		{"app/bin", imagefs.TypeRegular, 0o755, "\x7fELF"},
		{"app/loop", imagefs.TypeRegular, 0o755, "#!/app/loop\n"},
		{"app/rel", imagefs.TypeRegular, 0o755, "#!bin\n"},
		{"app/text", imagefs.TypeRegular, 0o755, "#!/app/data\n"},
		{"app/data", imagefs.TypeRegular, 0o644, ""},
	}
	root := newImage(t, files, nil)
	r := &resolver{list: listOf(t, files), unlisted: newUnlisted(&enclave.Manifest{})}
	tests := []struct{ prog, wd, err string }{
		{"/app/bin", "/", ""},
		{"/app/b", "/", ""}, // four interpreters: b, c, d, e, then bin
		{"/app/rel", "/app", ""},
		{"/app/a", "/", "/app/e: more than 4 nested #! interpreters"},
		{"/app/loop", "/", "/app/loop: more than 4 nested #! interpreters"},
		{"/app/rel", "/", "/app/rel: #! interpreter bin: /bin is not in the trusted-file list"},
		{"/app/text", "/", "/app/text: #! interpreter /app/data: not executable"},
	}
	for _, tt := range tests {
		err := r.checkInterpreters(root, tt.prog, tt.wd)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || err.Error() != tt.err) {
			t.Errorf("checkInterpreters(%q, wd %q) = %v, want %q", tt.prog, tt.wd, err, tt.err)
		}
	}
}

func TestVersion(t *testing.T) {
	stdout, _, code := launch(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(stdout, "cloister-launcher ") {
		t.Errorf("--version = %d, %q; want 0, cloister-launcher <version>", code, stdout)
	}
}

// TestSGXHost: on an SGX host the launcher hands over to Gramine's loader
// (here the stand-in's, which says how it was called), refusing first the
// arguments the manifest does not take.
func TestSGXHost(t *testing.T) {
	for _, tc := range []struct {
		name      string
		allowArgs bool
		args      []string
		wantCode  int
		wantOut   string
		wantErr   string
	}{
		{"no arguments", false, nil, 70, "stand-in loader /opt/cloister/gramine/sgx/libpal.so init /opt/cloister/app --\n", ""},
		{"arguments passed on", true, []string{"a", "b c"}, 70, "stand-in loader /opt/cloister/gramine/sgx/libpal.so init /opt/cloister/app -- a b c\n", ""},
		{"arguments refused", false, []string{"a"}, exitUsage, "", "does not accept command-line arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newImage(t, fixture, func(m *enclave.Manifest) { m.AllowCmdlineArgs = tc.allowArgs })
			mustDo(t, os.MkdirAll(filepath.Join(root, "dev"), 0o755))
			mustDo(t, os.WriteFile(filepath.Join(root, "dev/sgx_enclave"), nil, 0o644))
			stdout, stderr, code := launch(t, []string{"PATH=/usr/bin:/bin"}, append([]string{"--root", root, "--"}, tc.args...)...)
			if code != tc.wantCode || stdout != tc.wantOut || !strings.Contains(stderr, tc.wantErr) {
				t.Fatalf("launcher = %d, %q, %q; want %d, %q and an error containing %q", code, stdout, stderr, tc.wantCode, tc.wantOut, tc.wantErr)
			}
		})
	}
}

// TestEnclaveFlags: inside an enclave, where the host may write the whole
// command line, no launcher flag gets through.
func TestEnclaveFlags(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "attestation")
	for _, args := range [][]string{{"--root", "/data"}, {"--verify-only"}, {"-root=/x", "--"}} {
		if err := enclaveFlags(dev, args); err != nil {
			t.Errorf("outside an enclave, enclaveFlags(%q) = %v, want nil", args, err)
		}
	}
	mustDo(t, os.Mkdir(dev, 0o755))
	for _, args := range [][]string{{"--root", "/data"}, {"--verify-only"}, {"-root=/x", "--"}, {"app-arg"}} {
		if err := enclaveFlags(dev, args); err == nil || !strings.Contains(err.Error(), "takes no flags") {
			t.Errorf("inside an enclave, enclaveFlags(%q) = %v, want a refusal", args, err)
		}
	}
	for _, args := range [][]string{nil, {"--"}, {"--", "--root", "/data"}} {
		if err := enclaveFlags(dev, args); err != nil {
			t.Errorf("inside an enclave, enclaveFlags(%q) = %v, want nil", args, err)
		}
	}
}
