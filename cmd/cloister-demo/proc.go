package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// stepError is a failure with the output that explains it.
type stepError struct {
	what   string // e.g. the command line
	err    error
	detail string // the command's standard error, a log's tail
}

func (e *stepError) Error() string { return e.what + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// result is what a command printed: its standard output alone, and both
// streams.
type result struct {
	stdout, all string
}

// runCmd runs argv to completion with env and stdin.
func runCmd(ctx context.Context, env []string, stdin string, argv []string) (result, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	// What a terminal shows, near enough: the CLI writes its messages and
	// progress on standard error before its result on standard output,
	// and the two pipes are read concurrently, so their interleaving is
	// not kept.
	r := result{stdout: stdout.String(), all: stderr.String() + stdout.String()}
	if err != nil {
		detail := stderr.String()
		if strings.TrimSpace(detail) == "" {
			detail = stdout.String()
		}
		return r, &stepError{what: "running " + argv[0], err: err, detail: detail}
	}
	return r, nil
}

// proc is a background process: the server, the node agent, the
// enclave's launcher.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // once done is closed
}

// startProc starts argv in dir with env, its output going to out.
func startProc(name, dir string, env []string, out io.Writer, argv []string) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// exitCode is the process's exit code once it exited, -1 for a signal.
func (p *proc) exitCode() int {
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode()
	}
	if p.err == nil {
		return 0
	}
	return -1
}

// stop asks the process to stop (SIGTERM) and kills it if it has not
// within grace. It returns how the process ended.
func (p *proc) stop(grace time.Duration) string {
	if done, _ := p.exited(); done {
		return describeExit(p.err) + " (before it was asked to stop)"
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return describeExit(p.err)
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Sprintf("killed after %s without stopping", grace)
}

func describeExit(err error) string {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return "exited 0"
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return fmt.Sprintf("exited %d", exit.ExitCode())
	default:
		return err.Error()
	}
}

// freeAddr is a loopback address with a port nobody listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// poll calls cond every interval until it is done, fails, or within has
// passed; what names what is awaited, for the error.
func poll(parent context.Context, within time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(parent, within)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		done, err := cond()
		if done && err == nil {
			return nil
		}
		if err != nil {
			last = err
			var fatal fatalError
			if errors.As(err, &fatal) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			why := fmt.Sprintf("gave up after %s", within)
			if parent.Err() != nil {
				why = "stopped: " + context.Cause(parent).Error()
			}
			if last != nil {
				return fmt.Errorf("waiting for %s: %s; the last attempt: %w", what, why, last)
			}
			return fmt.Errorf("waiting for %s: %s", what, why)
		case <-tick.C:
		}
	}
}

// fatalError ends a poll at once.
type fatalError struct{ error }

func (f fatalError) Unwrap() error { return f.error }

// tail is the last n lines of a file, for a failure report.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
