// Command cloister-launcher is the entrypoint of an image that Cloister
// converted. It checks the image against the enclave manifest and the
// trusted-file list that the converter wrote under /opt/cloister, refuses
// to start on the first difference, and otherwise execs the application
// with the arguments and environment the manifest fixes.
//
//	cloister-launcher [--root DIR] [--verify-only] [--version] [--] [args...]
//
// Arguments after the launcher's flags (or after "--") are the
// application's; they replace the manifest's args only if the manifest
// allows command-line arguments.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// Exit codes, from sysexits.h.
const (
	exitUsage  = 64 // EX_USAGE: bad flags, or arguments the image does not allow
	exitOSErr  = 71 // EX_OSERR: the checked image could not be started
	exitConfig = 78 // EX_CONFIG: not a Cloister image, or it differs from what was converted
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns only when the launcher does not exec the application.
func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("cloister-launcher", flag.ContinueOnError)
	fl.SetOutput(stderr)
	defRoot := "/"
	if r := os.Getenv("CLOISTER_ROOT"); r != "" {
		defRoot = r
	}
	root := fl.String("root", defRoot, "directory the image's filesystem is at (also $CLOISTER_ROOT); the application runs there without chroot")
	verifyOnly := fl.Bool("verify-only", false, "check the image against its trusted-file list and exit")
	showVersion := fl.Bool("version", false, "print the version and exit")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: cloister-launcher [--root DIR] [--verify-only] [--version] [--] [application args...]")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "cloister-launcher: put the application's arguments after --")
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, "cloister-launcher", buildVersion())
		return 0
	}

	img, err := load(*root)
	if err != nil {
		return fail(stderr, exitConfig, err)
	}
	if err := verify(*root, img.list); err != nil {
		return fail(stderr, exitConfig, err)
	}
	if *verifyOnly {
		fmt.Fprintf(stdout, "cloister-launcher: %d trusted files verified\n", img.list.Len())
		return 0
	}

	cmd, err := newCommand(*root, img.manifest, fl.Args(), os.LookupEnv)
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			return fail(stderr, exitUsage, err)
		}
		return fail(stderr, exitConfig, err)
	}
	if err := cmd.start(); err != nil {
		return fail(stderr, exitOSErr, err)
	}
	return 0 // not reached: start only returns on failure
}

func fail(w io.Writer, code int, err error) int {
	fmt.Fprintln(w, "cloister-launcher:", err)
	return code
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
