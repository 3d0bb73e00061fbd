// Command cloister-demo walks Cloister's user journey in a terminal,
// narrated step by step, with nothing mocked: it starts `cloister server
// -dev`, signs up, creates and approves an application from the sample
// image, enrols a node agent in simulation mode, runs the converted
// image's own launcher against it, and connects to the attested HTTPS
// server with a client that trusts only the account's CA. `make demo`
// builds the binaries and runs it.
//
//	cloister-demo [--bin DIR] [--keep] [--timeout DURATION]
//
// Everything it starts listens on 127.0.0.1 on free ports and keeps its
// data in a temporary directory (removed at the end unless --keep), so
// the user's own Cloister configuration and data are not touched.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"
)

// Exit codes, from sysexits.h.
const (
	exitFailed = 1
	exitUsage  = 64
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// config is what the flags choose.
type config struct {
	bin     string // the directory of cloister, cloister-node-agent, cloister-launcher, hello-https
	keep    bool
	timeout time.Duration
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("cloister-demo", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var cfg config
	fl.StringVar(&cfg.bin, "bin", ".bin", "`DIR` holding cloister, cloister-node-agent, cloister-launcher and hello-https (`make demo` builds them there)")
	fl.BoolVar(&cfg.keep, "keep", false, "keep the demo's directory (data, logs, the unpacked image) instead of removing it")
	fl.DurationVar(&cfg.timeout, "timeout", 2*time.Minute, "give up after this long")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitUsage
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "cloister-demo: unexpected arguments %q\n", fl.Args())
		return exitUsage
	}
	n := &narrator{w: stdout}
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		n.color = os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
			n.width = w
		}
	}
	d, err := newDemo(cfg, n)
	if err != nil {
		fmt.Fprintln(stderr, "cloister-demo:", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	err = d.journey(ctx)
	if err != nil {
		d.report(ctx, err)
	}
	d.cleanup(err == nil)
	if err != nil {
		n.println("")
		n.println(n.paint(styleFail, fmt.Sprintf("The demo failed after %s.", d.elapsed())))
		return exitFailed
	}
	n.println("")
	n.println(n.paint(styleHeading, fmt.Sprintf("Done in %s: from a plain container image to an attested enclave serving HTTPS.", d.elapsed())))
	return 0
}

// report prints what failed, the command's standard error, and the tails
// of the background processes' logs.
func (d *demo) report(ctx context.Context, err error) {
	what := "failed at " + d.n.current()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		what += fmt.Sprintf(" (--timeout %s passed)", d.cfg.timeout)
	case ctx.Err() != nil:
		what += " (interrupted)"
	}
	var detail strings.Builder
	detail.WriteString(err.Error())
	detail.WriteString("\n")
	var se *stepError
	if errors.As(err, &se) && strings.TrimSpace(se.detail) != "" {
		detail.WriteString(strings.TrimRight(se.detail, "\n") + "\n")
	}
	for _, log := range []struct{ name, path string }{{"server", d.serverLog}, {"node agent", d.agentLog}} {
		if t := tail(log.path, 15); t != "" {
			fmt.Fprintf(&detail, "\nlast lines of the %s's log (%s):\n%s\n", log.name, log.path, t)
		}
	}
	d.n.fail(what, detail.String())
	if !d.cfg.keep {
		d.n.note("run it again with --keep to keep the logs and data in the demo's directory")
	}
}

// binaries the demo runs, from --bin.
var binaries = []string{"cloister", "cloister-node-agent", "cloister-launcher", "hello-https"}

func checkBinaries(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("--bin %s: %w", dir, err)
	}
	for _, b := range binaries {
		if info, err := os.Stat(filepath.Join(abs, b)); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			return "", fmt.Errorf("--bin %s has no executable %s; `make demo` builds them all", dir, b)
		}
	}
	return abs, nil
}
