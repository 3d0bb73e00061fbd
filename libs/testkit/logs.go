package testkit

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// Logs is a log sink that goroutines write to while a test reads it.
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is what was written so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ServiceLogger returns a logger for the services of t that keeps their
// warnings and errors and prints them when t has failed: what went wrong
// inside a service, beside the assertion that saw it from outside.
// Nothing is printed for a test that passes.
func ServiceLogger(t testing.TB) *slog.Logger {
	t.Helper()
	l := &Logs{}
	t.Cleanup(func() {
		if s := l.String(); t.Failed() && s != "" {
			t.Logf("the services' warnings and errors:\n%s", s)
		}
	})
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
