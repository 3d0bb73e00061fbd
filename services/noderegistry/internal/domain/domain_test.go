package domain

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/errs"
)

func TestSecrets(t *testing.T) {
	a, ha, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := NewSecret()
	if a == b || !WellFormedSecret(a) || HashSecret(a) != ha || len(ha) != 64 {
		t.Fatalf("NewSecret = %q (%s), %q", a, ha, b)
	}
	for _, s := range []string{"", "cjt_", a[:len(a)-1], "xjt_" + a[4:], a + "A", "cjt_" + strings.Repeat("!", 43)} {
		if WellFormedSecret(s) {
			t.Errorf("WellFormedSecret(%q) = true, want false", s)
		}
	}
}

func TestTokenUsable(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tok := JoinToken{ExpiresAt: now.Add(time.Hour), MaxUses: 2, Uses: 1}
	for _, tc := range []struct {
		name   string
		change func(*JoinToken)
		at     time.Time
		want   string
	}{
		{"usable", func(*JoinToken) {}, now, ""},
		{"unlimited", func(t *JoinToken) { t.MaxUses, t.Uses = 0, 1000 }, now, ""},
		{"used up", func(t *JoinToken) { t.Uses = 2 }, now, "the join token is used up (2 of 2 uses)"},
		{"expired", func(*JoinToken) {}, now.Add(time.Hour), "the join token expired at 2026-01-02T04:04:05Z"},
		{"revoked", func(t *JoinToken) { t.Revoked = true }, now, "the join token is revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := tok
			tc.change(&tk)
			err := tk.Usable(tc.at)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Usable = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want || errs.KindOf(err) != errs.Unauthenticated {
				t.Fatalf("Usable = %v, want unauthenticated %q", err, tc.want)
			}
		})
	}
}

func TestTokenSpec(t *testing.T) {
	s, err := TokenSpec{Name: "rack-1"}.Check()
	if err != nil || s.TTL != DefaultTokenTTL {
		t.Fatalf("Check = %+v, %v; want the default ttl", s, err)
	}
	for _, bad := range []TokenSpec{
		{Name: ""}, {Name: strings.Repeat("a", 65)}, {Name: "a b"},
		{Name: "a", TTL: MaxTokenTTL + time.Second}, {Name: "a", TTL: time.Millisecond},
		{Name: "a", Labels: map[string]string{"-x": "y"}}, {Name: "a", Labels: map[string]string{"x": "\x00"}},
	} {
		if _, err := bad.Check(); errs.KindOf(err) != errs.Invalid {
			t.Errorf("Check(%+v) = %v, want invalid", bad, err)
		}
	}
}

func TestStatusMovesForward(t *testing.T) {
	all := []Status{StatusActive, StatusUnreachable, StatusUntrusted, StatusDeregistered}
	allowed := map[Status][]Status{
		StatusActive:       {StatusActive, StatusUnreachable, StatusUntrusted, StatusDeregistered},
		StatusUnreachable:  {StatusActive, StatusUnreachable, StatusUntrusted, StatusDeregistered},
		StatusUntrusted:    {StatusDeregistered},
		StatusDeregistered: nil,
	}
	for _, from := range all {
		for _, to := range all {
			if got, want := from.CanMoveTo(to), slices.Contains(allowed[from], to); got != want {
				t.Errorf("%s.CanMoveTo(%s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestSpeaks(t *testing.T) {
	n := Node{Status: StatusActive, CertificateSerial: "1a2b"}
	for _, tc := range []struct {
		status Status
		serial string
		ok     bool
	}{
		{StatusActive, "1a2b", true}, {StatusActive, "1A2B", true}, {StatusUnreachable, "01a2b", true},
		{StatusActive, "1a2c", false}, {StatusActive, "", false}, {StatusUntrusted, "1a2b", false}, {StatusDeregistered, "1a2b", false},
	} {
		n.Status = tc.status
		if err := n.Speaks(tc.serial); (err == nil) != tc.ok || err != nil && errs.KindOf(err) != errs.Unauthenticated {
			t.Errorf("%s node Speaks(%q) = %v, want ok %v", tc.status, tc.serial, err, tc.ok)
		}
	}
}

func TestReport(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := Node{Instances: []Instance{{ID: "a", Status: InstanceStatusRunning, StartedAt: t0}, {ID: "b", Status: InstanceStatusRunning, StartedAt: t0}}}
	now := t0.Add(time.Minute)
	running, started, stopped := n.Report([]Instance{{ID: "b"}, {ID: "c", StartedAt: now.Add(time.Hour)}, {ID: "d", Status: InstanceStatusStopped}}, now)
	ids := func(is []Instance) (out []string) {
		for _, i := range is {
			out = append(out, i.ID)
		}
		return out
	}
	if !slices.Equal(ids(running), []string{"b", "c"}) || !slices.Equal(ids(started), []string{"c"}) || !slices.Equal(ids(stopped), []string{"a"}) {
		t.Fatalf("Report = running %v, started %v, stopped %v", ids(running), ids(started), ids(stopped))
	}
	if !running[0].StartedAt.Equal(t0) || !running[1].StartedAt.Equal(now) || !running[0].LastSeen.Equal(now) || stopped[0].Status != InstanceStatusStopped {
		t.Fatalf("Report times = %+v, stopped %+v", running, stopped)
	}
}
