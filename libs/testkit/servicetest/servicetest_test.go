package servicetest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit/servicetest"
)

type runner struct{ r *service.Runner }

func (r runner) Stop() { r.r.Stop() }

// TestStack: a service started on the stack runs on the stack's NATS with
// a connection of its own, and is stopped when the test ends.
func TestStack(t *testing.T) {
	var stopped bool
	t.Run("inner", func(t *testing.T) {
		st := servicetest.New(t)
		if st.KEK == nil || st.Cache == nil {
			t.Fatal("the stack has no KEK or cache")
		}
		svc := servicetest.Start(st, "account", func(ctx context.Context, o service.Options) (runner, error) {
			if o.NATS == nil || !o.NATS.IsConnected() {
				return runner{}, errors.New("no connection")
			}
			r, err := service.Run(ctx, "account", o, func(r *service.Runner) error {
				r.Go(func(ctx context.Context) { <-ctx.Done(); stopped = true })
				return nil
			})
			return runner{r}, err
		})
		if svc.r.NATS().ConnectedUrl() != st.NATS.URL {
			t.Errorf("service connected to %s, want %s", svc.r.NATS().ConnectedUrl(), st.NATS.URL)
		}
	})
	if !stopped {
		t.Fatal("the service was not stopped when its test ended")
	}
}
