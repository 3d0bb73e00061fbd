package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

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

// Error ends with the status and the problem's code, and its reason when
// it has one (what a script can tell one 400 from another by).
func (e *apiError) Error() string {
	code := e.problem.Code
	if r := e.problem.Reason; r != "" && r != code {
		code += " " + r
	}
	return fmt.Sprintf("%s%s [%d %s]", e.problem.Error(), e.hint, e.problem.Status, code)
}

func (e *apiError) Unwrap() error { return e.problem }

// callTimeout bounds one command's call, its resendings included.
const callTimeout = 30 * time.Second

func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return c.advise(path, c.Do(ctx, method, path, in, out))
}

// doOnce sends a creation with an idempotency key (newIdempotencyKey's,
// unless the user gave one) and sends it again while its answer is lost
// or the API unavailable, so that it takes effect once.
func (c *apiClient) doOnce(ctx context.Context, method, path, key string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return c.advise(path, c.DoOnce(ctx, method, path, key, in, out))
}

// newIdempotencyKey is a fresh key for one command's creation.
func newIdempotencyKey() string {
	return uuid.NewString()
}

// idempotencyKeyFlag adds --idempotency-key to a command that creates.
func idempotencyKeyFlag(cmd *cobra.Command, key *string) {
	cmd.Flags().StringVar(key, "idempotency-key", "", "send the creation with this key, so that running the command again with it "+
		"(after a lost answer, say) gives what the first run made instead of a second one (default: a new key each run)")
}

// advise adds to err the advice a user can act on.
func (c *apiClient) advise(path string, err error) error {
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
