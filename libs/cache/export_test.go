package cache

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// NewTolerantForTest is Tolerant with its clock and meter provider given,
// so tests can step past the log interval and read the failure count
// without touching globals.
func NewTolerantForTest(c Cache, logger *slog.Logger, now func() time.Time, mp metric.MeterProvider) Cache {
	return newTolerant(c, logger, now, mp)
}

// RemoveExpired runs one pass of the janitor as of now.
func (m *Memory) RemoveExpired(now time.Time) { m.removeExpired(now) }

// MaxEntries reports the bound on entries.
func (m *Memory) MaxEntries() int { return m.max }
