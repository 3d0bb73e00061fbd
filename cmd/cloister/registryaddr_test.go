package main

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
)

// TestBuiltInRegistryAddrs: the converter may reach the registry this
// process serves, by the address a client dials, and nothing else.
func TestBuiltInRegistryAddrs(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		registry string
		want     []string
	}{
		{"", nil},
		{"127.0.0.1:5000", []string{"127.0.0.1:5000"}},
		{"0.0.0.0:5001", []string{"127.0.0.1:5001"}},
		{"[::1]:5002", []string{"[::1]:5002"}},
		{"localhost:5003", nil}, // resolved: checked below
	} {
		got := builtInRegistryAddrs(ctx, serverconfig.Config{Registry: c.registry})
		if c.registry == "localhost:5003" {
			if len(got) == 0 || !slices.ContainsFunc(got, func(a netip.AddrPort) bool { return a.Addr().IsLoopback() && a.Port() == 5003 }) {
				t.Errorf("builtInRegistryAddrs(localhost:5003) = %v, want the loopback address on 5003", got)
			}
			continue
		}
		var s []string
		for _, a := range got {
			s = append(s, a.String())
		}
		if !slices.Equal(s, c.want) {
			t.Errorf("builtInRegistryAddrs(%q) = %v, want %v", c.registry, s, c.want)
		}
	}
}
