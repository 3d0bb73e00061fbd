// Command hello-https is Cloister's sample application: a static HTTPS
// server that serves one page with the key and certificate chain that
// cloister-launcher wrote before starting it.
//
//	hello-https [--addr ADDR] [--cert FILE] [--key FILE]
//
// The default paths are relative to the working directory, which is / in
// the image, so they name /run/cloister/{cert,key}.pem there (the paths
// Cloister's applications use unless told otherwise), and the same files
// under the root directory when the launcher runs an extracted image in a
// test. $HELLO_ADDR sets the address when --addr is not given.
package main

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

//go:embed index.html
var page []byte

// Exit codes, from sysexits.h.
const (
	exitUsage  = 64
	exitNoCert = 66 // EX_NOINPUT: the key or the certificate is missing
	exitSrv    = 69 // EX_UNAVAILABLE: the address cannot be served
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fl := flag.NewFlagSet("hello-https", flag.ContinueOnError)
	fl.SetOutput(stderr)
	defAddr := getenv("HELLO_ADDR")
	if defAddr == "" {
		defAddr = ":8443"
	}
	addr := fl.String("addr", defAddr, "`address` to serve HTTPS on [$HELLO_ADDR]")
	certFile := fl.String("cert", "run/cloister/cert.pem", "PEM certificate chain, leaf first (written by cloister-launcher)")
	keyFile := fl.String("key", "run/cloister/key.pem", "PEM private key of the certificate (written by cloister-launcher)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitUsage
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "hello-https: unexpected arguments %q\n", fl.Args())
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "hello-https: loading the certificate: %v; start the image through cloister-launcher, which writes them once the enclave is attested\n", err)
		return exitNoCert
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "hello-https: %v\n", err)
		return exitSrv
	}
	srv := &http.Server{
		Handler:           handler(newSecretEcho(getenv)),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	log.Info("serving HTTPS", "addr", ln.Addr().String(), "subject", subject(cert))
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "hello-https: %v\n", err)
		return exitSrv
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return 0
}

// handler serves the page at / and 404 elsewhere; with echo, the
// test-only routes too.
func handler(echo *secretEcho) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		_, _ = w.Write(page)
	})
	if echo != nil {
		mux.HandleFunc("GET /test/secret-file/{name}", echo.file)
		mux.HandleFunc("GET /test/secret-env/{name}", echo.env)
	}
	return mux
}

// secretEcho serves an application's secrets back, for Cloister's own
// end-to-end test of their delivery, and only when the image fixes
// HELLO_ECHO_SECRETS=1 in its measured environment (an approver sees it):
// never in production. It serves the files of dir by name and the
// variables named in names.
type secretEcho struct {
	dir    string
	names  []string
	getenv func(string) string
}

// newSecretEcho is the echo the environment asks for, or nil.
func newSecretEcho(getenv func(string) string) *secretEcho {
	if getenv("HELLO_ECHO_SECRETS") != "1" {
		return nil
	}
	dir := getenv("HELLO_SECRETS_DIR")
	if dir == "" {
		dir = "run/cloister/secrets"
	}
	var names []string
	for _, n := range strings.Split(getenv("HELLO_ECHO_ENV"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return &secretEcho{dir: dir, names: names, getenv: getenv}
}

func (e *secretEcho) file(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		http.NotFound(w, r)
		return
	}
	b, err := os.ReadFile(filepath.Join(e.dir, name))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(b)
}

func (e *secretEcho) env(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !slices.Contains(e.names, name) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, e.getenv(name))
}

func subject(c tls.Certificate) string {
	if c.Leaf == nil {
		return ""
	}
	if len(c.Leaf.DNSNames) > 0 {
		return c.Leaf.DNSNames[0]
	}
	return c.Leaf.Subject.CommonName
}
