// Package netguard keeps a server's outgoing connections away from
// networks it must not reach on a user's behalf. The image converter
// pulls from any registry a user names: without a guard, a user could
// point it at the cloud metadata service (169.254.169.254) or other
// internal addresses (server-side request forgery).
//
// The check runs in the dialer's Control hook, on the address actually
// dialled after name resolution, so neither DNS tricks (a name that
// resolves to a denied address, or rebinds between checks) nor HTTP
// redirects get around it.
package netguard

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"
)

// DefaultDeny are the networks the converter may not reach unless an
// operator says otherwise: loopback, the private networks (RFC 1918,
// RFC 4193 unique local, 100.64.0.0/10 shared address space), where a
// deployment's own services and cloud metadata (169.254.169.254,
// fd00:ec2::254, 100.100.100.200) answer, link-local, "this" network,
// multicast and reserved space, in IPv4 and IPv6. A registry on one of
// them is allowed by replacing the list (--registry-deny), and the
// built-in registry of -dev by its address (New's allow).
var DefaultDeny = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// DeniedError is a connection the guard refused.
type DeniedError struct {
	Addr    netip.Addr
	Network netip.Prefix
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("connecting to %s is not allowed: it is in the denied network %s", e.Addr, e.Network)
}

// Guard refuses connections to its denied networks.
type Guard struct {
	deny  []netip.Prefix
	allow []netip.AddrPort
}

// New returns a guard that denies the given networks but for the
// addresses (with their port) in allow: -dev's built-in registry.
func New(deny []netip.Prefix, allow ...netip.AddrPort) *Guard {
	return &Guard{deny: slices.Clone(deny), allow: slices.Clone(allow)}
}

// ParsePrefixes reads networks in CIDR notation (a bare address is one
// host), as a flag gives them.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a network (CIDR) nor an address", s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a network in CIDR notation (such as 10.0.0.0/8)", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Check returns a *DeniedError if addr is in a denied network.
func (g *Guard) Check(addr netip.Addr) error {
	addr = addr.Unmap() // ::ffff:169.254.169.254 is 169.254.169.254
	for _, p := range g.deny {
		if p.Contains(addr) {
			return &DeniedError{Addr: addr, Network: p}
		}
	}
	return nil
}

// Control is a net.Dialer Control hook: it checks the address about to
// be dialled.
func (g *Guard) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("netguard: cannot read the address %q: %w", address, err)
	}
	if slices.Contains(g.allow, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())) {
		return nil
	}
	return g.Check(ap.Addr())
}

// Transport is a clone of http.DefaultTransport whose connections are
// guarded (a proxy from the environment is dialled, and so checked, like
// any other address).
func (g *Guard) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: g.Control}
	t.DialContext = d.DialContext
	return t
}
