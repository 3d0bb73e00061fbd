package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for hello.cloister.test and
// its key under dir/run/cloister, where the launcher writes them.
func writePair(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hello.cloister.test"},
		DNSNames: []string{"hello.cloister.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	d := filepath.Join(dir, "run", "cloister")
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServesWithTheLaunchersFiles: with the default (relative) paths,
// started in the directory holding run/cloister, it serves the page over
// TLS with that certificate, and stops cleanly when told.
func TestServesWithTheLaunchersFiles(t *testing.T) {
	dir := t.TempDir()
	cert := writePair(t, dir)
	t.Chdir(dir)
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string {
			if k == "HELLO_ADDR" {
				return addr
			}
			return ""
		}, &logs)
	}()

	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "hello.cloister.test"}}}
	var resp *http.Response
	var err error
	for i := 0; i < 200; i++ {
		if resp, err = client.Get("https://" + addr + "/"); err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("GET /: %v; logs:\n%s", err, logs.String())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, page) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, err = client.Get("https://" + addr + "/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET /etc/passwd = %d, want 404", resp.StatusCode)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code after cancel = %d, want 0; logs:\n%s", code, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop when its context ended")
	}
	if !strings.Contains(logs.String(), "hello.cloister.test") {
		t.Fatalf("the start-up log does not name the certificate's domain:\n%s", logs.String())
	}
}

func TestRefusesToStartWithoutItsCertificate(t *testing.T) {
	t.Chdir(t.TempDir())
	var out bytes.Buffer
	code := run(context.Background(), []string{"--addr", freeAddr(t)}, func(string) string { return "" }, &out)
	if code != exitNoCert || !strings.Contains(out.String(), "cloister-launcher") || !strings.Contains(out.String(), "cert.pem") {
		t.Fatalf("run without a certificate = %d, %q; want %d and a hint about the launcher", code, out.String(), exitNoCert)
	}
}

func TestRejectsStrayArguments(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"serve"}, func(string) string { return "" }, &out); code != exitUsage || !strings.Contains(out.String(), "serve") {
		t.Fatalf("run serve = %d, %q; want %d naming the argument", code, out.String(), exitUsage)
	}
}

// The test-only routes that serve secrets back exist only when the
// environment turns them on, serve only the secrets directory's files by
// plain name, and only the variables listed.
func TestSecretEcho(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api.key"), []byte("k-1"), 0o400); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HELLO_ECHO_SECRETS": "1", "HELLO_SECRETS_DIR": dir, "HELLO_ECHO_ENV": "DB_PASSWORD", "DB_PASSWORD": "hunter2", "OTHER": "x"}
	get := func(h http.Handler, path string) (int, string) {
		req, _ := http.NewRequest("GET", "https://hello.cloister.test"+path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	h := handler(newSecretEcho(func(k string) string { return env[k] }))
	for path, want := range map[string]struct {
		status int
		body   string
	}{
		"/test/secret-file/api.key":      {200, "k-1"},
		"/test/secret-env/DB_PASSWORD":   {200, "hunter2"},
		"/test/secret-env/OTHER":         {404, ""},
		"/test/secret-file/..%2Fapi.key": {404, ""},
		"/test/secret-file/missing":      {404, ""},
	} {
		if status, body := get(h, path); status != want.status || (want.status == 200 && body != want.body) {
			t.Errorf("GET %s = %d %q, want %d %q", path, status, body, want.status, want.body)
		}
	}
	off := handler(newSecretEcho(func(k string) string {
		if k == "HELLO_ECHO_SECRETS" {
			return ""
		}
		return env[k]
	}))
	if status, _ := get(off, "/test/secret-env/DB_PASSWORD"); status != 404 {
		t.Errorf("without HELLO_ECHO_SECRETS=1 the route answers %d, want 404", status)
	}
}
