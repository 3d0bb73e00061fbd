package main

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/cloister-cc/cloister/libs/enclave"
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
// arguments the launcher got after its own flags.
func newCommand(root string, m *enclave.Manifest, cmdline []string, lookupEnv func(string) (string, bool)) (*command, error) {
	args := m.Args
	if len(cmdline) > 0 {
		if !m.AllowCmdlineArgs {
			return nil, usageError{fmt.Errorf("the image does not accept command-line arguments (got %q): its arguments were fixed when it was converted; run it without arguments, or convert it again with allow_cmdline_args", cmdline)}
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

	wd := m.WorkingDir
	if wd == "" {
		wd = "/"
	}
	wd = path.Clean("/" + wd)
	c.dir = hostPath(root, wd)
	for _, d := range m.RWDirs {
		c.rwDirs = append(c.rwDirs, hostPath(root, d))
	}

	// PATH comes from the fixed environment only, so the host cannot pick
	// another program by passing a PATH through.
	p, err := lookPath(root, wd, m.Entrypoint[0], pathEnv)
	if err != nil {
		return nil, err
	}
	c.path = p
	return c, nil
}

// lookPath finds the entrypoint as a container runtime would: a name with
// a slash is a path (relative to the working directory), any other name is
// searched in the absolute directories of PATH. Both are under root.
func lookPath(root, wd, name, pathEnv string) (string, error) {
	if strings.Contains(name, "/") {
		p := path.Clean(name)
		if !path.IsAbs(p) {
			p = path.Join(wd, p)
		}
		if err := executable(hostPath(root, p)); err != nil {
			return "", fmt.Errorf("entrypoint %s: %v; the manifest names a program the image does not have", p, err)
		}
		return hostPath(root, p), nil
	}
	for _, dir := range strings.Split(pathEnv, ":") {
		// A relative PATH entry would depend on the working directory;
		// runtimes differ on it, so it is not searched.
		if !path.IsAbs(dir) {
			continue
		}
		if p := hostPath(root, path.Join(dir, name)); executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("entrypoint %q not found in PATH %s; the manifest names a program the image does not have", name, pathEnv)
}

// executable reports why p is not a program the kernel can run, or nil.
func executable(p string) error {
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return unwrapPath(err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("not a regular file")
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("not executable")
	}
	return nil
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
