// Command cloister-launcher is the entrypoint of an image that Cloister
// converted into a Gramine SGX enclave image (docs/launcher.md).
//
// On an SGX host (/dev/sgx_enclave) it execs Gramine's loader on
// /opt/cloister/app.manifest.sgx, which builds the enclave and runs the
// launcher again inside it as libos.entrypoint. Inside the enclave, or
// where there is no SGX (simulation), it checks the image against the
// launcher's manifest and the trusted-file list that the Gramine manifest
// binds, refuses to start on the first difference, and otherwise execs
// the application with the arguments and environment the manifest fixes.
//
// When the manifest asks for a certificate, the launcher first obtains one
// through the node agent at $NODE_AGENT_BASE_URL: it generates the key,
// has the enclave quoted with REPORTDATA = SHA-256 of the key's
// SubjectPublicKeyInfo and the server's nonce (by the agent's simulated
// quoting enclave, over the MRENCLAVE Gramine would measure, when the
// agent runs with --simulation, else by Gramine's /dev/attestation),
// sends the CSR and quote to certificate/issue, and
// writes the key (0600) and the chain where the manifest says.
//
//	cloister-launcher [--root DIR] [--verify-only] [--version] [--] [args...]
//
// Arguments after the launcher's flags (or after "--") are the
// application's; they replace the manifest's args only if the manifest
// allows command-line arguments. --root is for tests only.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// Exit codes, from sysexits.h.
const (
	exitUsage  = 64 // EX_USAGE: bad flags, or arguments the image does not allow
	exitOSErr  = 71 // EX_OSERR: the checked image could not be started
	exitAttest = 75 // EX_TEMPFAIL: the certificate could not be obtained from the node agent
	exitConfig = 78 // EX_CONFIG: not a Cloister image, or it differs from what was converted
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns only when the launcher does not exec the application.
func run(args []string, stdout, stderr io.Writer) int {
	// Inside a Gramine enclave whose manifest takes the host's command
	// line, the host writes every argument: it must not reach the
	// launcher's flags (--root would have it check and run a tree the host
	// controls, under the approved MRENCLAVE).
	if err := enclaveFlags(attestationDevFS, args); err != nil {
		return fail(stderr, exitUsage, err)
	}
	fl := flag.NewFlagSet("cloister-launcher", flag.ContinueOnError)
	// Parse errors are reported below, with a hint where one helps.
	fl.SetOutput(io.Discard)
	// No environment variable sets the root: the host sets the
	// environment, and could have a clean copy verified while the
	// application runs from the real root. A converted image's entrypoint
	// ends with "--", so `docker run IMAGE args` cannot set --root either.
	root := fl.String("root", "/", "for tests only, never in production: check and run the image whose filesystem is at `DIR`, without chroot (#! interpreters still come from /)")
	verifyOnly := fl.Bool("verify-only", false, "check the image against its trusted-file list and exit")
	keysDir := fl.String("volume-keys-dir", "", "for tests only, never in production: in simulation, write volume keys to `DIR` as the stand-in of Gramine's "+gramineKeysDir)
	showVersion := fl.Bool("version", false, "print the version and exit")
	fl.Usage = func() {} // printed for -h only, below
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: cloister-launcher [--root DIR] [--verify-only] [--version] [--] [application args...]")
			fl.SetOutput(stderr)
			fl.PrintDefaults()
			return 0
		}
		// The flag package has no error type for an unknown flag; its
		// message is the only way to tell.
		if strings.HasPrefix(err.Error(), "flag provided but not defined") {
			return fail(stderr, exitUsage, fmt.Errorf("%v; put the application's arguments after --", err))
		}
		return fail(stderr, exitUsage, fmt.Errorf("%v; run cloister-launcher -h for its flags", err))
	}
	if *showVersion {
		fmt.Fprintln(stdout, "cloister-launcher", buildVersion())
		return 0
	}

	enclaveMode := inEnclave(*root)
	img, err := load(*root, enclaveMode)
	if err != nil {
		return fail(stderr, exitConfig, err)
	}
	// On an SGX host Gramine builds the enclave and checks every file as
	// the application opens it; this launcher runs again inside.
	if onSGXHost(*root) && !*verifyOnly {
		if err := checkArgs(img.manifest, fl.Args()); err != nil {
			return fail(stderr, exitUsage, err)
		}
		return fail(stderr, exitOSErr, execLoader(*root, fl.Args()))
	}
	// Inside the enclave Gramine has checked manifest.json and the list
	// against the measured manifest, and checks every file the
	// application opens; its filesystem shows no symlinks and its tmpfs
	// mounts have their own modes, so the launcher's walk would not match.
	if !enclaveMode {
		if err := verify(*root, img); err != nil {
			return fail(stderr, exitConfig, err)
		}
	}
	if *verifyOnly {
		fmt.Fprintf(stdout, "cloister-launcher: %d trusted files verified\n", img.list.Len())
		return 0
	}

	cmd, err := newCommand(*root, img.list, img.manifest, fl.Args(), os.LookupEnv)
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			return fail(stderr, exitUsage, err)
		}
		return fail(stderr, exitConfig, err)
	}
	// The certificate last, once the image is known to start: each
	// attempt spends a nonce of the server's.
	// Inside an enclave volume keys go to Gramine, and only there.
	if enclaveMode {
		*keysDir = hostPath(*root, gramineKeysDir)
	}
	env, err := attest(*root, img, os.LookupEnv, *keysDir, func(msg string) { fmt.Fprintln(stderr, "cloister-launcher:", msg) })
	if err != nil {
		return fail(stderr, exitAttest, err)
	}
	cmd.env = append(cmd.env, env...)
	if err := cmd.start(); err != nil {
		return fail(stderr, exitOSErr, err)
	}
	return 0 // not reached: start only returns on failure
}

// enclaveFlags refuses launcher flags when dev, Gramine's attestation
// directory, exists: inside an enclave.
func enclaveFlags(dev string, args []string) error {
	if _, err := os.Stat(dev); err == nil && len(args) > 0 && args[0] != "--" {
		return usageError{fmt.Errorf("inside an enclave the launcher takes no flags (got %q): the host's command line reaches it unmeasured", args[0])}
	}
	return nil
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
