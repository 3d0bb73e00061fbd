package main

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/imagefs"
)

// defaultPath is the PATH an entrypoint is looked up in when the manifest
// sets none: the one Docker and containerd use.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// usageError is a command line the image does not accept.
type usageError struct{ error }

// command is the application as the manifest describes it, with its paths
// on the host (under root).
type command struct {
	path   string
	argv   []string
	env    []string
	dir    string
	rwDirs []string
}

// newCommand builds the application's command from the manifest and the
// arguments the launcher got after its own flags. The working directory
// and the program are resolved in the trusted-file list (see resolver),
// never on the live filesystem, so they are files verify has checked.
func newCommand(root string, list *imagefs.List, m *enclave.Manifest, cmdline []string, lookupEnv func(string) (string, bool)) (*command, error) {
	args := m.Args
	if len(cmdline) > 0 {
		if err := checkArgs(m, cmdline); err != nil {
			return nil, err
		}
		args = cmdline
	}
	c := &command{argv: append(slices.Clone(m.Entrypoint), args...)}

	// The environment is the manifest's and nothing else: the host is
	// untrusted, so of its variables only those the manifest names in
	// passthrough_env get through, and never over a fixed (measured) value.
	fixed := map[string]bool{}
	pathEnv := defaultPath
	for _, v := range m.Env {
		c.env = append(c.env, v.Name+"="+v.Value)
		fixed[v.Name] = true
		if v.Name == "PATH" {
			pathEnv = v.Value
		}
	}
	for _, n := range m.PassthroughEnv {
		if v, ok := lookupEnv(n); ok && !fixed[n] {
			c.env = append(c.env, n+"="+v)
		}
	}

	// m.User is not applied here: the converted image keeps its USER, so
	// the runtime starts the launcher as that user, and the launcher is
	// not root (inside an enclave it cannot switch users at all).

	r := &resolver{list: list, unlisted: newUnlisted(m)}
	wd, err := r.workdir(m.WorkingDir)
	if err != nil {
		return nil, fmt.Errorf("working directory %s: %v; it must be a directory of the image or a read-write directory", m.WorkingDir, err)
	}
	c.dir = hostPath(root, wd)
	for _, d := range m.UnmeasuredDirs() {
		c.rwDirs = append(c.rwDirs, hostPath(root, d))
	}

	// PATH comes from the fixed environment only, so the host cannot pick
	// another program by passing a PATH through.
	p, err := lookPath(r, wd, m.Entrypoint[0], pathEnv)
	if err != nil {
		return nil, err
	}
	if err := r.checkInterpreters(root, p, wd); err != nil {
		return nil, fmt.Errorf("entrypoint %s: %v; %s", m.Entrypoint[0], err, onlyListed)
	}
	// The resolved path: exec follows no symlink the list has not
	// vouched for.
	c.path = hostPath(root, p)
	return c, nil
}

// onlyListed ends the errors about a program the list does not vouch for.
const onlyListed = "the launcher runs only programs in the trusted-file list"

// lookPath finds the entrypoint as a container runtime would, but in the
// trusted-file list: a name with a slash is a path (relative to the
// working directory wd), any other name is searched in the absolute
// directories of PATH. It returns the program's resolved image path.
func lookPath(r *resolver, wd, name, pathEnv string) (string, error) {
	if strings.Contains(name, "/") {
		p, err := r.program(wd, name)
		if err != nil {
			return "", entrypointError(name, err)
		}
		return p, nil
	}
	for _, dir := range strings.Split(pathEnv, ":") {
		// A relative PATH entry would depend on the working directory;
		// runtimes differ on it, so it is not searched.
		if !path.IsAbs(dir) {
			continue
		}
		p, err := r.program(wd, dir+"/"+name)
		if err == nil {
			return p, nil
		}
		// Like exec.LookPath, go on past what the image does not have or
		// what is not a program; but a name that leads out of the list
		// stops the search, since the live filesystem may have a program
		// there that the runtime would have run.
		var re *resolveError
		if errors.As(err, &re) && re.kind != notFound {
			return "", entrypointError(name, fmt.Errorf("%s: %w", path.Join(dir, name), err))
		}
	}
	return "", fmt.Errorf("entrypoint %q not found in PATH %s; the manifest names a program the image does not have", name, pathEnv)
}

func entrypointError(name string, err error) error {
	var re *resolveError
	if errors.As(err, &re) && re.kind != notFound {
		return fmt.Errorf("entrypoint %s: %v; %s", name, err, onlyListed)
	}
	return fmt.Errorf("entrypoint %s: %v; the manifest names a program the image does not have", name, err)
}

// checkArgs refuses command-line arguments the manifest does not allow.
func checkArgs(m *enclave.Manifest, cmdline []string) error {
	if len(cmdline) > 0 && !m.AllowCmdlineArgs {
		return usageError{fmt.Errorf("the image does not accept command-line arguments (got %q): its arguments were fixed when it was converted; run it without arguments, or convert it again with allow_cmdline_args", cmdline)}
	}
	return nil
}

// Device files that say where the launcher runs: an SGX host has the
// kernel's SGX driver; inside a Gramine enclave the LibOS provides
// /dev/attestation.
const (
	sgxDevice        = "/dev/sgx_enclave"
	attestationDevFS = "/dev/attestation"
)

// onSGXHost tells whether the launcher runs on an SGX host outside an
// enclave: there Gramine's loader must build the enclave first.
func onSGXHost(root string) bool {
	_, err := os.Stat(hostPath(root, sgxDevice))
	return err == nil && !inEnclave(root)
}

// inEnclave tells whether the launcher runs inside a Gramine enclave.
func inEnclave(root string) bool {
	_, err := os.Stat(hostPath(root, attestationDevFS))
	return err == nil
}

// execLoader replaces the launcher with Gramine's loader, which builds the
// enclave from App.manifest.sgx and App.sig and runs this launcher again
// inside it (libos.entrypoint), with the same arguments when the manifest
// takes them from the command line. It returns only on failure.
func execLoader(root string, cmdline []string) error {
	loader := hostPath(root, enclave.LoaderPath)
	argv := append([]string{enclave.LoaderPath, enclave.LibPALPath, "init", enclave.App, "--"}, cmdline...)
	err := syscall.Exec(loader, argv, os.Environ())
	return fmt.Errorf("starting Gramine's loader %s: %v", enclave.LoaderPath, err)
}

// start creates the read-write directories, changes to the working
// directory and replaces the launcher with the application. It returns
// only on failure.
func (c *command) start() error {
	for _, d := range c.rwDirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating read-write directory: %v; the container's user must be able to create it, or mount a volume there", err)
		}
	}
	// Without chroot: with --root the application runs from inside the
	// root directory, which is what tests need; in an image root is "/".
	if err := os.Chdir(c.dir); err != nil {
		return fmt.Errorf("changing to the working directory: %v", err)
	}
	err := syscall.Exec(c.path, c.argv, c.env)
	return fmt.Errorf("starting %s: %v", c.argv[0], err)
}
