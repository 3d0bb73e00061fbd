package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/libs/idempotency"
)

// Client calls Cloister's REST API: a JSON body in, and a JSON answer or
// a problem out. The CLI calls the API over the network with it, the
// console in process (InProcess).
type Client struct {
	// BaseURL is where the API is served, e.g. http://localhost:8080.
	BaseURL string
	// Token, if set, is sent as the bearer token.
	Token string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP Doer
	// MaxReply bounds the answers read: 0 means DefaultMaxReply, a
	// negative number no bound (an answer already in memory, InProcess).
	MaxReply int64
}

// Doer sends a request: an *http.Client, or InProcess.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Error is a problem the API answered with.
type Error struct{ Problem }

func (e *Error) Error() string {
	if e.Detail != "" {
		return e.Detail
	}
	return e.Title
}

// DefaultMaxReply bounds the answers a Client reads from the network.
const DefaultMaxReply = 16 << 20

// Do sends in (if not nil) as JSON to method path and decodes the JSON
// answer into out (if not nil). An answer of 400 or more is an *Error
// holding the problem document (one is made up from the status when the
// body is not one); a failure to reach the API is returned as it is.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	body, err := encode(method, path, in)
	if err != nil {
		return err
	}
	return c.send(ctx, method, path, "", body, out)
}

// DoOnce is Do for a creation that must take effect once: the request
// carries key as its Idempotency-Key, and it is sent again, with the same
// key, while its answer is lost (the API unreachable, the connection
// dropped) or is 503 (the API unavailable for the moment), until ctx
// ends. The API answers a second sending with what the first one made.
func (c *Client) DoOnce(ctx context.Context, method, path, key string, in, out any) error {
	if key == "" {
		return fmt.Errorf("%s %s: an empty idempotency key", method, path)
	}
	body, err := encode(method, path, in)
	if err != nil {
		return err
	}
	pause := 100 * time.Millisecond
	for {
		err := c.send(ctx, method, path, key, body, out)
		var pe *Error
		if err == nil || ctx.Err() != nil || (errors.As(err, &pe) && pe.Status != http.StatusServiceUnavailable) ||
			errors.Is(err, errEncoding) {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// errEncoding marks the failures of this side that sending again cannot mend.
var errEncoding = errors.New("malformed")

func encode(method, path string, in any) ([]byte, error) {
	if in == nil {
		return nil, nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encoding the request to %s %s: %w", method, path, err)
	}
	return b, nil
}

// send sends body (nil: none) to method path, with key as its
// Idempotency-Key when not empty, and decodes the answer as Do says.
func (c *Client) send(ctx context.Context, method, path, key string, body []byte, out any) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, r)
	if err != nil {
		return fmt.Errorf("building the request to %s %s: %w (%w)", method, path, err, errEncoding)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set(idempotency.Header, key)
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	doer := c.HTTP
	if doer == nil {
		doer = http.DefaultClient
	}
	resp, err := doer.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var answer io.Reader = resp.Body
	switch {
	case c.MaxReply == 0:
		answer = io.LimitReader(resp.Body, DefaultMaxReply)
	case c.MaxReply > 0:
		answer = io.LimitReader(resp.Body, c.MaxReply)
	}
	data, err := io.ReadAll(answer)
	if err != nil {
		return fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		var p Problem
		if json.Unmarshal(data, &p) != nil || p.Status == 0 {
			p = Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Detail: strings.TrimSpace(string(data))}
		}
		return &Error{Problem: p}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding the answer to %s %s: %w (%w)", method, path, err, errEncoding)
		}
	}
	return nil
}

// InProcess serves a Client's requests with h in this process, as if
// from remoteAddr (the API's rate limits are per client).
func InProcess(h http.Handler, remoteAddr string) Doer {
	return inProcess{h: h, remoteAddr: remoteAddr}
}

type inProcess struct {
	h          http.Handler
	remoteAddr string
}

func (p inProcess) Do(req *http.Request) (*http.Response, error) {
	req.RemoteAddr = p.remoteAddr
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}
