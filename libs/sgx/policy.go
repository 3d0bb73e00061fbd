package sgx

import (
	"fmt"
	"slices"
	"strings"
)

// Policy says which verified quotes are acceptable.
type Policy struct {
	// AcceptStatuses are the converged TCB statuses accepted.
	AcceptStatuses []TCBStatus
	// AllowDebug accepts enclaves launched in debug mode.
	AllowDebug bool
	// MinISVSVN is the lowest enclave security version accepted.
	MinISVSVN uint16
}

// DefaultPolicy accepts only platforms that are up to date (or need only
// software hardening) and refuses debug enclaves.
func DefaultPolicy() Policy {
	return Policy{AcceptStatuses: []TCBStatus{StatusUpToDate, StatusSWHardeningNeeded}}
}

// Check returns nil if r is acceptable, else an *Error saying why not.
func (p Policy) Check(r *Result) error {
	if !slices.Contains(p.AcceptStatuses, r.Status) {
		return failf(ReasonTCB, "TCB status", "%s is not accepted (accepted: %s)", r.Status, joinStatuses(p.AcceptStatuses))
	}
	if r.Debug && !p.AllowDebug {
		return failf(ReasonDebug, "enclave", "launched in debug mode, which this policy refuses")
	}
	if r.ISVSVN < p.MinISVSVN {
		return failf(ReasonTCB, "enclave", "ISVSVN %d is below the minimum %d", r.ISVSVN, p.MinISVSVN)
	}
	return nil
}

// ParseStatuses reads a comma-separated list of TCB status names.
func ParseStatuses(s string) ([]TCBStatus, error) {
	var out []TCBStatus
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		st := TCBStatus(name)
		if !slices.Contains(AllStatuses, st) {
			return nil, fmt.Errorf("unknown TCB status %q; known: %s", name, joinStatuses(AllStatuses))
		}
		out = append(out, st)
	}
	return out, nil
}

// AllStatuses lists every TCB status, best first.
var AllStatuses = []TCBStatus{
	StatusUpToDate, StatusSWHardeningNeeded, StatusConfigurationNeeded, StatusConfigurationAndSWHardeningNeeded,
	StatusOutOfDate, StatusOutOfDateConfigurationNeeded, StatusRevoked,
}

func joinStatuses(ss []TCBStatus) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
