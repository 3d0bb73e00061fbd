package obs_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/cloister-cc/cloister/libs/obs"
)

func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestNewLogger(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  []string // messages emitted, of debug, info, warn, error
	}{
		{slog.LevelDebug, []string{"debug", "info", "warn", "error"}},
		{slog.LevelInfo, []string{"info", "warn", "error"}},
		{slog.LevelWarn, []string{"warn", "error"}},
		{slog.LevelError, []string{"error"}},
	}
	for _, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			var buf bytes.Buffer
			l := obs.NewLogger(&buf, tt.level, "gateway")
			l.Debug("debug")
			l.Info("info")
			l.Warn("warn", obs.KeyAccount, "acc-1")
			l.Error("error")
			lines := logLines(t, &buf)
			var got []string
			for _, m := range lines {
				got = append(got, m["msg"].(string))
				if m[obs.KeyService] != "gateway" {
					t.Errorf("line %v has service %v, want gateway", m, m[obs.KeyService])
				}
				if m["msg"] == "warn" && m[obs.KeyAccount] != "acc-1" {
					t.Errorf("warn line %v lacks %s", m, obs.KeyAccount)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("NewLogger(%v) emitted %v, want %v", tt.level, got, tt.want)
			}
		})
	}
}

func TestNewLoggerTraceContext(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(t.Context())
	ctx, span := tp.Tracer("test").Start(t.Context(), "op")
	defer span.End()

	var buf bytes.Buffer
	l := obs.NewLogger(&buf, slog.LevelInfo, "svc").With("k", "v").WithGroup("g")
	l.InfoContext(ctx, "in span", "a", 1)
	l.InfoContext(t.Context(), "no span")
	lines := logLines(t, &buf)
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2", len(lines))
	}
	group, _ := lines[0]["g"].(map[string]any)
	if group[obs.KeyTraceID] != span.SpanContext().TraceID().String() ||
		group[obs.KeySpanID] != span.SpanContext().SpanID().String() {
		t.Errorf("line in span = %v, want trace_id %s and span_id %s", lines[0],
			span.SpanContext().TraceID(), span.SpanContext().SpanID())
	}
	if _, ok := lines[1]["g"]; ok {
		t.Errorf("line outside a span = %v, want no trace ids", lines[1])
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"debug", slog.LevelDebug, false},
		{"info", slog.LevelInfo, false},
		{"warn", slog.LevelWarn, false},
		{"error", slog.LevelError, false},
		{"WARN", slog.LevelWarn, false},
		{" Info ", slog.LevelInfo, false},
		{"", 0, true},
		{"verbose", 0, true},
		{"warning", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := obs.ParseLevel(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseLevel(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseLevel(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
