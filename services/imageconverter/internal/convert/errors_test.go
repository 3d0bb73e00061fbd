package convert

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestRegistryErrorHidesTheBody: a registry's refusal reaches the user as
// its failure class and HTTP status, never its body, which may be any
// service's page or banner.
func TestRegistryErrorHidesTheBody(t *testing.T) {
	const banner = "Welcome to internal-admin 2.3 (db=10.1.2.3, token=s3cr3t)"
	for _, c := range []struct {
		status int
		reason Reason
	}{{http.StatusForbidden, ReasonUnauthorized}, {http.StatusNotFound, ReasonNotFound}, {http.StatusTeapot, ReasonInvalidImage}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(c.status)
			_, _ = w.Write([]byte(banner))
		}))
		ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/app:1", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		_, err = remote.Get(ref)
		srv.Close()
		if err == nil {
			t.Fatalf("%d: remote.Get succeeded", c.status)
		}
		e := registryError(err, ReasonInvalidImage, "pulling "+ref.String())
		msg := e.Error()
		if e.Reason != c.reason || strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "internal-admin") ||
			!strings.Contains(msg, fmt.Sprintf("(HTTP %d ", c.status)) {
			t.Errorf("%d: registryError = %q (reason %s), want reason %s and the status without the body", c.status, msg, e.Reason, c.reason)
		}
	}
}

// TestRegistryTLSIsFinal: a registry whose certificate is not trusted, or
// that does not speak TLS, fails as registry_tls, not as a transient
// failure retried in vain.
func TestRegistryTLSIsFinal(t *testing.T) {
	untrusted := httptest.NewTLSServer(http.NotFoundHandler())
	defer untrusted.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	for _, c := range []struct{ name, addr, hint string }{
		{"untrusted certificate", untrusted.Listener.Addr().String(), "not trusted"},
		{"plain HTTP", plain.Listener.Addr().String(), "does not speak TLS"},
	} {
		// A registry named as one elsewhere would be, which go-containerregistry
		// reaches over TLS only (it tries plain HTTP on loopback names), and
		// dialled at the test's server.
		ref, err := name.ParseReference("registry.example.com/app:1")
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, c.addr)
		}}
		_, err = remote.Get(ref, remote.WithTransport(tr))
		if err == nil {
			t.Fatalf("%s: remote.Get succeeded", c.name)
		}
		e := registryError(err, ReasonInvalidImage, "pulling "+ref.String())
		if e.Reason != ReasonTLS || e.Transient() || !strings.Contains(e.Error(), c.hint) {
			t.Errorf("%s: registryError = %q (reason %s, transient %v), want registry_tls saying %q", c.name, e.Error(), e.Reason, e.Transient(), c.hint)
		}
	}
}
