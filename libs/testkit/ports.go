package testkit

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreeAddr returns a loopback address (127.0.0.1:PORT) free now, for a
// process that binds it later. The port is drawn below the kernel's
// ephemeral range: the ports that others (tests running alongside) get by
// listening on port 0 or dialling out are never these, so nothing takes it
// in between but another caller of FreeAddr, which never gives a port
// twice in one test binary.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	low := ephemeralLow()
	for range 200 {
		port := minFreePort + rand.IntN(low-minFreePort)
		portsMu.Lock()
		taken := portsGiven[port]
		portsGiven[port] = true
		portsMu.Unlock()
		if taken {
			continue
		}
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port on the loopback below the ephemeral range")
	return 0
}

// minFreePort is where FreePort starts: above the well-known services a
// developer's machine may run (5432, 6379, 8080...).
const minFreePort = 10000

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default 32768 when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(b)); err == nil && len(f) == 2 {
		if low, err := strconv.Atoi(f[0]); err == nil && low > minFreePort+1000 {
			return low
		}
	}
	return 32768
}
