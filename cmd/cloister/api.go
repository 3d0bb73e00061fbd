package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// apiClient calls the gateway's REST API through the shared api.Client,
// with the CLI's timeout and its advice on the errors a user can fix.
type apiClient struct{ api.Client }

// apiError is a problem the server answered with, and what to do about it.
type apiError struct {
	problem *api.Error
	hint    string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s%s [%d %s]", e.problem.Error(), e.hint, e.problem.Status, e.problem.Code)
}

func (e *apiError) Unwrap() error { return e.problem }

func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := c.Do(ctx, method, path, in, out)
	var pe *api.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		e := &apiError{problem: pe}
		if pe.Status == http.StatusUnauthorized && path != "/v1/sessions" {
			e.hint = " (run `cloister login`, or set CLOISTER_TOKEN)"
		}
		return e
	case errors.As(err, new(*url.Error)):
		return fmt.Errorf("calling %s (is the server running? set --addr or $CLOISTER_ADDR): %w", c.BaseURL, err)
	default:
		return err
	}
}
