package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// ---------------------------------------------------------------------
// The node listener's self-signed certificate (--node-tls-self-signed),
// which docker-compose.yml shares with the node agent.

func TestServerNodeTLSSelfSigned(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "shared", "node-tls.crt"), filepath.Join(dir, "private", "node-tls.key")
	now := time.Now()
	hosts := []string{"gateway", "LocalHost", "127.0.0.1", "::1", "gateway"}
	cert, err := selfSignedNodeCertificate(certPath, keyPath, hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Concat(cert.Leaf.DNSNames, ipStrings(cert.Leaf.IPAddresses)), []string{"gateway", "localhost", "127.0.0.1", "::1"}; !slices.Equal(got, want) {
		t.Errorf("selfSignedNodeCertificate(%q) names %q, want %q", hosts, got, want)
	}
	for p, want := range map[string]os.FileMode{certPath: 0o644, keyPath: 0o600, filepath.Dir(keyPath): 0o700 | os.ModeDir, filepath.Dir(certPath): 0o755 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, want)
		}
	}
	// The certificate on disk is what a node agent trusts: it verifies
	// for every name, as the agent's TLS client does.
	pemBytes, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("%s holds no PEM certificate", certPath)
	}
	for _, name := range []string{"gateway", "localhost", "127.0.0.1", "::1"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("Verify(%s) = %v, want nil", name, err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "node-agent"}); err == nil {
		t.Error("Verify(node-agent) = nil, want an error: the certificate does not name it")
	}

	serial := func(c tls.Certificate) string { return c.Leaf.SerialNumber.String() }
	for _, tc := range []struct {
		name  string
		hosts []string
		at    time.Time
		same  bool
	}{
		{"same hosts in another order", []string{"::1", "127.0.0.1", "localhost", "gateway"}, now.Add(time.Hour), true},
		{"other hosts", []string{"gateway", "localhost"}, now.Add(time.Hour), false},
		{"about to expire", []string{"gateway", "localhost"}, now.Add(365*24*time.Hour - time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := serial(cert)
			if cert, err = selfSignedNodeCertificate(certPath, keyPath, tc.hosts, tc.at); err != nil {
				t.Fatal(err)
			}
			if got := serial(cert) == before; got != tc.same {
				t.Errorf("selfSignedNodeCertificate(%q) at %v kept the certificate: %v, want %v", tc.hosts, tc.at.Sub(now), got, tc.same)
			}
			if onDisk, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil || serial(onDisk) != serial(cert) {
				t.Errorf("the files hold another certificate than the one returned (%v)", err)
			}
		})
	}

	// -dev's certificate keeps its names and its place in the data dir.
	dataDir := t.TempDir()
	dev, err := selfSignedNodeCertificate(filepath.Join(dataDir, "node-tls.crt"), filepath.Join(dataDir, "node-tls.key"), serverconfig.DevNodeHosts, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Concat(dev.Leaf.DNSNames, ipStrings(dev.Leaf.IPAddresses)); !slices.Equal(got, []string{"localhost", "127.0.0.1", "::1"}) {
		t.Errorf("-dev's certificate names %q, want localhost, 127.0.0.1 and ::1", got)
	}
}

// TestServerNodeListenerSelfSigned runs the gateway alone, as compose
// does: outside -dev, --node-tls-self-signed makes its node listener's
// certificate at --node-tls-cert (shared) and --node-tls-key (private),
// and a client trusting that file alone reaches it as `gateway`.
func TestServerNodeListenerSelfSigned(t *testing.T) {
	n := testkit.StartNATS(t)
	dir, addr, nodeAddr := t.TempDir(), testkit.FreeAddr(t), testkit.FreeAddr(t)
	certPath, keyPath := filepath.Join(dir, "node-tls", "node-tls.crt"), filepath.Join(dir, "data", "node-tls.key")
	startServerArgs(t, addr, "--services=gateway", "--nats-url", n.URL, "--nats-credentials", n.CredentialsDir(t), "--node-http", nodeAddr, "--registry=",
		"--node-tls-self-signed=gateway,localhost", "--node-tls-cert", certPath, "--node-tls-key", keyPath)

	pemBytes, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("%s holds no PEM certificate", certPath)
	}
	// The listener asks for a client certificate (any, at the handshake);
	// a throwaway self-signed one will do.
	client, err := selfSignedNodeCertificate(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"), []string{"client"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dial := func(name string) error {
		conn, err := tls.Dial("tcp", nodeAddr, &tls.Config{RootCAs: roots, ServerName: name, Certificates: []tls.Certificate{client}})
		if err == nil {
			conn.Close()
		}
		return err
	}
	if err := dial("gateway"); err != nil {
		t.Fatalf("TLS to the node listener as gateway = %v, want nil", err)
	}
	if err := dial("cloister.example.com"); err == nil {
		t.Fatal("TLS to the node listener as cloister.example.com = nil, want a certificate error")
	}
}
