package netguard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	g := New(DefaultDeny)
	for addr, denied := range map[string]bool{
		"169.254.169.254":        true, // cloud metadata
		"::ffff:169.254.169.254": true, // the same, IPv4-mapped
		"fe80::1":                true,
		"0.0.0.0":                true,
		"::":                     true,
		"224.0.0.1":              true,
		"255.255.255.255":        true,
		"127.0.0.1":              true, // loopback and private too, unless the operator says otherwise
		"::1":                    true,
		"10.1.2.3":               true,
		"172.16.5.4":             true,
		"192.168.1.1":            true,
		"100.64.0.1":             true,
		"100.100.100.200":        true, // Alibaba's metadata
		"fd00:ec2::254":          true, // AWS's metadata over IPv6
		"fc00::1":                true,
		"172.32.0.1":             false,
		"93.184.216.34":          false,
		"2606:4700::1111":        false,
	} {
		err := g.Check(netip.MustParseAddr(addr))
		var de *DeniedError
		if got := errors.As(err, &de); got != denied {
			t.Errorf("Check(%s) = %v, want denied %v", addr, err, denied)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes([]string{"10.0.0.0/8", " 127.0.0.1 ", "", "fd00::1/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("fd00::/8")}
	if len(got) != len(want) {
		t.Fatalf("ParsePrefixes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ParsePrefixes = %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0/8"} {
		if _, err := ParsePrefixes([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParsePrefixes(%q) = %v, want an error naming it", bad, err)
		}
	}
}

// A request through the guarded transport to a denied address fails
// before anything is sent; one to an allowed address goes through.
func TestTransport(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()

	allowed := &http.Client{Transport: New([]netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}).Transport()}
	resp, err := allowed.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET through a guard that allows loopback: %v", err)
	}
	resp.Body.Close()
	// The default denies loopback, but for an address it is told to allow.
	addr := netip.MustParseAddrPort(srv.Listener.Addr().String())
	resp, err = (&http.Client{Transport: New(DefaultDeny, addr).Transport()}).Get(srv.URL)
	if err != nil {
		t.Fatalf("GET of an allowed address through the default guard: %v", err)
	}
	resp.Body.Close()
	other := netip.AddrPortFrom(addr.Addr(), addr.Port()+1)
	if _, err := (&http.Client{Transport: New(DefaultDeny, other).Transport()}).Get(srv.URL); err == nil {
		t.Fatal("the default guard let loopback through on another port than the one allowed")
	}

	denied := &http.Client{Transport: New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}).Transport()}
	_, err = denied.Get(srv.URL)
	var de *DeniedError
	if !errors.As(err, &de) || de.Network.String() != "127.0.0.0/8" || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("GET through a guard that denies loopback = %v, want a DeniedError naming 127.0.0.1 and 127.0.0.0/8", err)
	}
	if hits != 2 {
		t.Fatalf("the server saw %d requests, want 2 (the denied ones never arrive)", hits)
	}
}
