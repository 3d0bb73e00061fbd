package pki

import (
	"strings"
	"testing"
)

// TestCheckDNSName: the CA issues for DNS names only; an IP address,
// though it is digits and dots, is not one.
func TestCheckDNSName(t *testing.T) {
	for _, ok := range []string{"app.example.com", "a-1.b2.example", "x.y", "1.example.com", "app.123abc"} {
		if err := CheckDNSName(ok); err != nil {
			t.Errorf("CheckDNSName(%q) = %v, want nil", ok, err)
		}
	}
	for _, c := range []struct{ name, says string }{
		{"10.0.0.1", "IP address"},
		{"192.168.1.20", "IP address"},
		{"1.2.3.4.5", "IP address"},
		{"app.example.com.", "label"},
		{"localhost", "DNS name"},
		{"-a.example.com", "label"},
		{"App.Example.com", "lower-case"},
		{"::1", "DNS name"},
	} {
		if err := CheckDNSName(c.name); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("CheckDNSName(%q) = %v, want an error saying %q", c.name, err, c.says)
		}
	}
}
