package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// apiClient calls the gateway's REST API.
type apiClient struct {
	addr  string
	token string
	http  *http.Client
}

// apiError is a problem the server answered with.
type apiError struct {
	api.Problem
	hint string
}

func (e *apiError) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	return fmt.Sprintf("%s%s [%d %s]", msg, e.hint, e.Status, e.Code)
}

func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.addr, "/")+path, body)
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s (is the server running? set --addr or $CLOISTER_ADDR): %w", c.addr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading reply: %w", err)
	}
	if resp.StatusCode >= 400 {
		var p api.Problem
		if json.Unmarshal(data, &p) != nil || p.Status == 0 {
			p = api.Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Detail: strings.TrimSpace(string(data))}
		}
		e := &apiError{Problem: p}
		if p.Status == http.StatusUnauthorized && path != "/v1/sessions" {
			e.hint = " (run `cloister login`, or set CLOISTER_TOKEN)"
		}
		return e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding reply: %w", err)
		}
	}
	return nil
}
