package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/services/gateway"
)

// serveNodes starts the gateway's node listener, where node agents call
// with their client certificates, sending its end to errc. With -dev and
// no address given, an address in use only disables it (nil server).
func serveNodes(cfg serverconfig.Config, gw *gateway.Gateway, logger *slog.Logger, errc chan<- error) (*http.Server, error) {
	var (
		cert     tls.Certificate
		certPath = cfg.NodeTLSCert
		err      error
	)
	selfSigned := cfg.NodeTLSCert == "" || len(cfg.NodeTLSSelfSigned) > 0
	if selfSigned {
		// -dev, or --node-tls-self-signed (validate).
		hosts, keyPath := cfg.NodeTLSSelfSigned, cfg.NodeTLSKey
		if len(hosts) == 0 {
			hosts = serverconfig.DevNodeHosts
		}
		if certPath == "" {
			certPath, keyPath = filepath.Join(cfg.DataDir, "node-tls.crt"), filepath.Join(cfg.DataDir, "node-tls.key")
		}
		if cert, err = selfSignedNodeCertificate(certPath, keyPath, hosts, time.Now()); err != nil {
			return nil, err
		}
	} else {
		cert, err = tls.LoadX509KeyPair(cfg.NodeTLSCert, cfg.NodeTLSKey)
		if err != nil {
			return nil, fmt.Errorf("--node-tls-cert and --node-tls-key: %w", err)
		}
	}
	ln, err := net.Listen("tcp", cfg.NodeHTTP)
	if err != nil && cfg.Dev && !cfg.NodeHTTPGiven {
		logger.Warn("the node listener's default address is in use: node agents cannot reach this server; choose one with --node-http",
			"address", cfg.NodeHTTP, "error", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listening on --node-http %s: %w", cfg.NodeHTTP, err)
	}
	srv := &http.Server{Handler: obs.HTTPMiddleware("gateway-node", gw.NodeHandler()), TLSConfig: gw.NodeTLSConfig(cert),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
		ErrorLog: log.New(nodeServerLog{logger}, "", 0)}
	logger.Info("node listener serving: node agents call the gateway here with their client certificate",
		"https", "https://"+ln.Addr().String(), "server_certificate", certPath)
	if selfSigned {
		logger.Info("the node listener's certificate is self-signed: give it to node agents with --server-ca", "path", certPath,
			"hosts", strings.Join(slices.Concat(cert.Leaf.DNSNames, ipStrings(cert.Leaf.IPAddresses)), ","))
	}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("node listener: %w", err)
		}
	}()
	return srv, nil
}

// nodeServerLog takes the node listener's http.Server messages: refused
// TLS handshakes (no client certificate, a scanner) are the caller's
// problem and go to debug; anything else is a warning.
type nodeServerLog struct{ l *slog.Logger }

func (w nodeServerLog) Write(p []byte) (int, error) {
	msg, level := strings.TrimSpace(string(p)), slog.LevelWarn
	if strings.Contains(msg, "TLS handshake error") {
		level = slog.LevelDebug
	}
	w.l.Log(context.Background(), level, msg, "listener", "node")
	return len(p), nil
}

// nodeTLSNames splits hosts into a certificate's DNS names (lower case)
// and IP addresses, each sorted and without duplicates, as strings.
func nodeTLSNames(hosts []string) (dns, ips []string) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip.String())
		} else {
			dns = append(dns, strings.ToLower(h))
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(dns))), slices.Compact(slices.Sorted(slices.Values(ips)))
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// selfSignedNodeCertificate returns the node listener's self-signed server
// certificate for hosts, kept at certPath and keyPath: made on first
// start, when it is about to expire, or when it names other hosts. The
// certificate is readable by all (node agents trust it with --server-ca,
// and compose shares its directory with them); the key is the owner's.
func selfSignedNodeCertificate(certPath, keyPath string, hosts []string, now time.Time) (tls.Certificate, error) {
	dns, ips := nodeTLSNames(hosts)
	if cert, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && cert.Leaf != nil && now.Add(24*time.Hour).Before(cert.Leaf.NotAfter) {
		haveDNS, haveIPs := nodeTLSNames(slices.Concat(cert.Leaf.DNSNames, ipStrings(cert.Leaf.IPAddresses)))
		if slices.Equal(haveDNS, dns) && slices.Equal(haveIPs, ips) {
			return cert, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating the node listener's key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "cloister node listener (self-signed)"},
		DNSNames:              dns,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating the node listener's certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("creating the directory of the node listener's key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o755); err != nil {
		return tls.Certificate{}, fmt.Errorf("creating the directory of the node listener's certificate: %w", err)
	}
	// The key first: a certificate on disk always has its key beside it.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// writeFileAtomic replaces path with data, readable as perm: readers see
// the old file or the new one, never a part, and a crash after it returns
// keeps the new one (synced before the rename).
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
