// Package transport serves the node registry on its runner: its endpoints
// over NATS, the account events that purge a deleted account, revocations
// followed into this process's cache, attestation policy changes followed
// into its copy of the policies, and the heartbeat sweep.
package transport

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/app"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/endpoint"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/peers"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/store"
	"github.com/cloister-cc/cloister/services/noderegistry/internal/wire"
)

// Serve serves the node registry on r. The watches of revocations and
// policies start before requests are taken, so no revocation or policy
// change made elsewhere slips by this process's copies. Then its request subjects, through the
// generated noderegistryv1.RegisterNodeRegistryServer, the account events
// it follows and the sweep, every sweepEvery (0: the default; negative:
// never).
func Serve(r *service.Runner, s *app.Service, tokens *store.Tokens, att peers.Attestation, sweepEvery time.Duration) error {
	if err := watchRevocations(r, tokens); err != nil {
		return err
	}
	if err := watchPolicies(r, att); err != nil {
		return err
	}
	if err := noderegistryv1.RegisterNodeRegistryServer(r.Mux(), endpoint.New(s), r.Logger()); err != nil {
		return err
	}
	if err := r.ConsumeRoutes("noderegistry-accounts", accountRoutes(s)); err != nil {
		return err
	}
	if sweepEvery == 0 {
		// Often enough to catch a silent node within a third of the
		// timeout, and an overdue one within its grace.
		sweepEvery = max(min(s.HeartbeatTimeout()/3, s.ReattestEvery()/10), time.Millisecond)
	}
	if sweepEvery > 0 {
		r.Every(sweepEvery, func(ctx context.Context) { sweep(ctx, s, r.Logger()) })
	}
	return nil
}

// accountRoutes forget a deleted account's tokens and nodes, through a
// durable consumer shared by the replicas.
func accountRoutes(s *app.Service) *events.Router {
	r := events.NewRouter()
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountDeleted) error {
		return s.DeleteAccount(ctx, m.GetAccountId())
	})
	return r
}

// watchRevocations writes every revocation of a join token, whichever
// replica made it, into this process's cache: an in-process cache is not
// shared, and a write-through reaches only the revoking process's.
func watchRevocations(r *service.Runner, tokens *store.Tokens) error {
	return r.Watch(events.StreamEvents, []string{events.Subject(store.Producer, &noderegistryv1.JoinTokenRevoked{})},
		func(ctx context.Context, ev events.Event) error {
			var r noderegistryv1.JoinTokenRevoked
			if err := ev.Decode(&r); err != nil {
				return err
			}
			if r.GetTokenHash() == "" {
				return errors.New("JoinTokenRevoked without a token hash")
			}
			tokens.Revoked(ctx, r.GetTokenHash(), wire.TokenRefFromProto(r.GetToken()))
			return nil
		})
}

// watchPolicies drops this process's copy of an account's attestation
// policy when the policy changes, whichever attestation replica changed it.
func watchPolicies(r *service.Runner, att peers.Attestation) error {
	return service.WatchAccounts[attestationv1.PolicyChanged](r, attestationv1.AttestationServiceName, att.DropPolicy)
}

// sweep marks silent nodes unreachable, and attested nodes overdue for
// re-attestation untrusted.
func sweep(ctx context.Context, s *app.Service, logger *slog.Logger) {
	if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
		logger.WarnContext(ctx, "sweeping silent and unattested nodes", obs.KeyError, err)
	} else if n > 0 {
		logger.InfoContext(ctx, "silent nodes marked unreachable or overdue nodes untrusted", "nodes", n)
	}
}
