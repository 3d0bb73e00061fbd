package testkit

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"testing"
	"time"
)

// TrustingOnly is an HTTPS client for serverName whose only roots are the
// self-signed CA certificates of chainPEM (an account CA's chain, as
// `cloister ca show` prints it): what a relying party that trusts nothing
// else accepts.
func TrustingOnly(t testing.TB, chainPEM, serverName string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	roots := 0
	for rest := []byte(chainPEM); ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if c.IsCA && bytes.Equal(c.RawIssuer, c.RawSubject) {
			pool.AddCert(c)
			roots++
		}
	}
	if roots == 0 {
		t.Fatalf("the chain holds no root certificate:\n%s", chainPEM)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}}}
}
