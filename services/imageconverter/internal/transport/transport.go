// Package transport serves the image converter on its runner: its request
// subjects, the account events that create and remove signing keys, and
// conversion jobs.
package transport

import (
	"context"
	"time"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/endpoint"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/store"
)

// Serve serves the image converter on r: its request subjects, through
// the generated imageconverterv1.RegisterImageConverterServer, and the
// account events it follows. With jobs, this process also runs
// conversions, each of which a silent worker keeps for ackWait.
func Serve(r *service.Runner, s *app.Service, jobs bool, ackWait time.Duration) error {
	if err := imageconverterv1.RegisterImageConverterServer(r.Mux(), endpoint.New(s), r.Logger()); err != nil {
		return err
	}
	if err := r.ConsumeRoutes("imageconverter-accounts", accountRoutes(s)); err != nil {
		return err
	}
	if !jobs {
		return nil
	}
	return consumeJobs(r, s, ackWait)
}

// accountRoutes give every new account its signing key and forget a
// deleted account's applications and key, follow the accounts' secret
// policies and secret tasks, and forget a deleted application's secrets,
// through a durable consumer.
func accountRoutes(s *app.Service) *events.Router {
	r := events.NewRouter()
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountCreated) error {
		return s.CreateSigningKey(ctx, m.GetAccount().GetId())
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.AppDeleted) error {
		return s.ForgetAppSecrets(ctx, m.GetAccountId(), m.GetAppId())
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountUpdated) error {
		a := m.GetAccount()
		return s.SetSecretPolicy(ctx, a.GetId(), a.GetSecretsNeedApproval(), a.GetUpdatedAt().AsTime())
	})
	// A secret task's decision: an approved version is delivered from now
	// on, a denied or withdrawn one dropped.
	decided := func(approved bool) func(context.Context, events.Event, *accountv1.Task) error {
		return func(ctx context.Context, _ events.Event, t *accountv1.Task) error {
			if t.GetKind() != "secret" || t.GetSecret().GetVersionId() == "" {
				return nil
			}
			return s.DecideSecretVersion(ctx, t.GetAccountId(), t.GetAppId(), t.GetSecret().GetName(), t.GetSecret().GetVersionId(), approved)
		}
	}
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, e events.Event, m *accountv1.TaskApproved) error {
		return decided(true)(ctx, e, m.GetTask())
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, e events.Event, m *accountv1.TaskDenied) error {
		return decided(false)(ctx, e, m.GetTask())
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, e events.Event, m *accountv1.TaskWithdrawn) error {
		return decided(false)(ctx, e, m.GetTask())
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountDeleted) error {
		return s.DeleteAccount(ctx, m.GetAccountId())
	})
	return r
}

// jobMaxDeliver is how many times a conversion is attempted; the last
// attempt turns a transient failure into a failed image.
const jobMaxDeliver = 4

// consumeJobs runs conversion jobs from the JOBS work queue: each job goes
// to one worker of any replica; a worker that dies leaves its job to be
// redelivered once AckWait passes without InProgress.
func consumeJobs(r *service.Runner, s *app.Service, ackWait time.Duration) error {
	return r.Consume(events.ConsumerConfig{
		Stream:         events.StreamJobs,
		Durable:        "imageconverter-convert",
		FilterSubjects: []string{store.JobSubject},
		MaxDeliver:     jobMaxDeliver,
		Backoff:        []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second},
		AckWait:        ackWait,
	}, func(ctx context.Context, ev events.Event) error {
		var job imageconverterv1.ConvertJob
		if err := ev.Decode(&job); err != nil {
			return events.Permanent(err)
		}
		return s.RunConversion(ctx, job.GetAccountId(), job.GetImageId(), ev.Delivery >= jobMaxDeliver, func() { events.InProgress(ctx) })
	})
}
