package snp

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/cloister-cc/cloister/libs/tee"
)

// Policy says which verified reports are acceptable. AMD publishes no
// TCB status as Intel does: the least TCB accepted is the policy's.
type Policy struct {
	// AllowDebug accepts a VM whose guest policy lets the host debug it.
	AllowDebug bool
	// MinTCB is the least REPORTED_TCB accepted, level by level.
	MinTCB TCB
	// Measurements, if not empty, are the launch measurements accepted.
	Measurements [][48]byte
	// HostData, if set, is the HOST_DATA the VM must have been launched with.
	HostData *[32]byte
}

// Check returns nil if r is acceptable, else a *tee.Error saying why not.
func (p Policy) Check(r *Result) error {
	if r.Debug && !p.AllowDebug {
		return failf(tee.ReasonDebug, "guest policy", "the VM may be debugged by the host (policy 0x%x), which this policy refuses", r.Policy)
	}
	if !r.ReportedTCB.AtLeast(p.MinTCB) {
		return failf(tee.ReasonTCB, "report", "REPORTED_TCB %v is below the minimum %v", r.ReportedTCB, p.MinTCB)
	}
	if len(p.Measurements) > 0 && !containsMeasurement(p.Measurements, r.Measurement) {
		return failf(tee.ReasonPolicy, "measurement", "%x is not one this policy allows", r.Measurement)
	}
	if p.HostData != nil && *p.HostData != r.HostData {
		return failf(tee.ReasonPolicy, "host data", "%x, not the %x this policy asks for", r.HostData, *p.HostData)
	}
	return nil
}

func containsMeasurement(ms [][48]byte, m [48]byte) bool {
	for _, a := range ms {
		if bytes.Equal(a[:], m[:]) {
			return true
		}
	}
	return false
}

// ParseTCB reads a TCB_VERSION as AMD's tools print it: hex, with or
// without 0x.
func ParseTCB(s string) (TCB, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "0x"), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("TCB %q: want 16 hex digits, as 0x7308000000000003", s)
	}
	return TCB(v), nil
}

// ParseMeasurement reads a launch measurement: 96 hex digits.
func ParseMeasurement(s string) ([48]byte, error) {
	var m [48]byte
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(m) {
		return m, fmt.Errorf("measurement %q: want 96 hex digits", s)
	}
	copy(m[:], b)
	return m, nil
}
