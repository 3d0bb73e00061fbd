package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// maxAnswerBytes bounds what the agent reads of any answer of the server.
const maxAnswerBytes = 1 << 20

// statusError is an answer of the server other than 2xx, with its problem
// document (or one made up from the status when the body is not one).
type statusError struct {
	Problem    api.Problem
	RetryAfter time.Duration // from Retry-After, when given in seconds
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Problem.Status, http.StatusText(e.Problem.Status), e.detail())
}

// detail says what the server said, for a person.
func (e *statusError) detail() string {
	if e.Problem.Detail != "" {
		return e.Problem.Detail
	}
	if e.Problem.Title != "" {
		return e.Problem.Title
	}
	return http.StatusText(e.Problem.Status)
}

// answerStatus is the HTTP status of a *statusError in err's chain, or 0.
func answerStatus(err error) int {
	if se, ok := errors.AsType[*statusError](err); ok {
		return se.Problem.Status
	}
	return 0
}

// transient tells whether an attempt that failed with err may succeed
// later: the server could not be reached or is overloaded or unavailable.
func transient(err error) bool {
	switch answerStatus(err) {
	case 0, http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// notSent tells whether err shows that a request never reached the server:
// the connection could not be made. Only then may a request that is not
// idempotent (an issuance, which spends the nonce in its quote) be sent
// again.
func notSent(err error) bool {
	if answerStatus(err) != 0 {
		return false
	}
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "dial"
}

// call sends body (when not nil) as JSON and decodes a 2xx answer into out
// (when not nil; a *json.RawMessage takes the answer as it is). Any other
// status is a *statusError; a failure to reach the server is returned as
// the transport's error.
func call(ctx context.Context, c *http.Client, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return fmt.Errorf("reading the answer of %s %s: %w", method, url, err)
	}
	if len(data) > maxAnswerBytes {
		return fmt.Errorf("the answer of %s %s is larger than %d bytes", method, url, maxAnswerBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answerError(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding the answer of %s %s (is this Cloister's gateway?): %w", method, url, err)
	}
	return nil
}

// answerError reads a problem document from an answer that is not 2xx.
func answerError(resp *http.Response, body []byte) *statusError {
	e := &statusError{}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); strings.HasSuffix(mt, "json") {
		_ = json.Unmarshal(body, &e.Problem) // a body that is no problem leaves it empty
	}
	e.Problem.Status = resp.StatusCode // the status line is what counts
	if e.Problem.Title == "" && e.Problem.Detail == "" {
		e.Problem.Title = http.StatusText(resp.StatusCode)
		if s := strings.TrimSpace(string(body)); s != "" && len(s) <= 200 && !strings.ContainsAny(s, "\x00{<") {
			e.Problem.Detail = s
		}
	}
	if e.Problem.Type == "" {
		e.Problem.Type = "about:blank"
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	return e
}

// newHTTPClient returns a client that trusts roots (the system's when nil)
// and presents cert, when not nil.
func newHTTPClient(roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if cert != nil {
		t.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	}
	// A backstop: every call also has its context's deadline.
	return &http.Client{Transport: t, Timeout: time.Minute}
}

// serverRoots are the roots for the node listener: the --server-ca PEM,
// or the system roots (nil) without one.
func serverRoots(caPEM []byte) (*x509.CertPool, error) {
	if len(caPEM) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, exitWith(exitConfig, "--server-ca holds no PEM certificate")
	}
	return pool, nil
}

// publicRoots are the roots for the public API: the system's, plus the
// --server-ca PEM, since the public API may have a publicly trusted
// certificate or the same private one as the node listener.
func publicRoots(caPEM []byte) *x509.CertPool {
	if len(caPEM) == 0 {
		return nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM(caPEM)
	return pool
}

// backoff is an exponential schedule with jitter: the pause before retry n
// (from 0) is about Min·2ⁿ, at most Max.
type backoff struct{ Min, Max time.Duration }

func (b backoff) delay(n int) time.Duration {
	d := b.Min
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	// ±25 %, so that agents restarted together do not retry in step.
	if j := d / 4; j > 0 {
		d += rand.N(2*j) - j
	}
	return max(b.Min, min(d, b.Max))
}

// sleep pauses for d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
