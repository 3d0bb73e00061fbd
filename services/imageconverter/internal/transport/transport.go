// Package transport serves the image converter over NATS and consumes
// the account events that create and remove signing keys.
package transport

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	accountclient "github.com/cloister-cc/cloister/services/account/client"
	"github.com/cloister-cc/cloister/services/imageconverter/client"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/store"
)

// Register subscribes every method on mux.
func Register(mux *natsrpc.Mux, s *app.Service, logger *slog.Logger) error {
	return errors.Join(
		client.CreateApp.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.CreateAppRequest) (*imageconverterv1.CreateAppResponse, error) {
			a, err := s.CreateApp(ctx, r.GetAccountId(), store.SpecFromProto(r.GetSpec()), events.ActorOf(r.GetActor()))
			if err != nil {
				return nil, err
			}
			return &imageconverterv1.CreateAppResponse{App: store.AppToProto(a)}, nil
		}),
		client.GetApp.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.GetAppRequest) (*imageconverterv1.GetAppResponse, error) {
			a, err := s.App(ctx, r.GetAccountId(), r.GetApp())
			if err != nil {
				return nil, err
			}
			return &imageconverterv1.GetAppResponse{App: store.AppToProto(a)}, nil
		}),
		client.ListApps.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.ListAppsRequest) (*imageconverterv1.ListAppsResponse, error) {
			as, err := s.Apps(ctx, r.GetAccountId())
			if err != nil {
				return nil, err
			}
			out := &imageconverterv1.ListAppsResponse{}
			for _, a := range as {
				out.Apps = append(out.Apps, store.AppToProto(a))
			}
			return out, nil
		}),
		client.UpdateApp.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.UpdateAppRequest) (*imageconverterv1.UpdateAppResponse, error) {
			a, err := s.UpdateApp(ctx, r.GetAccountId(), r.GetAppId(), store.SpecFromProto(r.GetSpec()), events.ActorOf(r.GetActor()))
			if err != nil {
				return nil, err
			}
			return &imageconverterv1.UpdateAppResponse{App: store.AppToProto(a)}, nil
		}),
		client.DeleteApp.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.DeleteAppRequest) (*imageconverterv1.DeleteAppResponse, error) {
			if err := s.DeleteApp(ctx, r.GetAccountId(), r.GetAppId(), events.ActorOf(r.GetActor())); err != nil {
				return nil, err
			}
			return &imageconverterv1.DeleteAppResponse{}, nil
		}),
		client.GetSigningKey.Handle(mux, logger, func(ctx context.Context, r *imageconverterv1.GetSigningKeyRequest) (*imageconverterv1.GetSigningKeyResponse, error) {
			k, err := s.SigningKey(ctx, r.GetAccountId())
			if err != nil {
				return nil, err
			}
			return &imageconverterv1.GetSigningKeyResponse{Key: store.SigningKeyToProto(k)}, nil
		}),
	)
}

// ConsumeAccounts gives every new account its signing key and forgets a
// deleted account's applications and key, through a durable consumer.
func ConsumeAccounts(ctx context.Context, js jetstream.JetStream, s *app.Service, logger *slog.Logger) (*events.Consumer, error) {
	return events.Consume(ctx, js, events.ConsumerConfig{
		Stream:  events.StreamEvents,
		Durable: "imageconverter-accounts",
		FilterSubjects: []string{
			events.Subject(accountclient.Service, &accountv1.AccountCreated{}),
			events.Subject(accountclient.Service, &accountv1.AccountDeleted{}),
		},
		Logger: logger,
	}, func(ctx context.Context, ev events.Event) error {
		var c accountv1.AccountCreated
		if err := ev.Decode(&c); err == nil {
			return s.CreateSigningKey(ctx, c.GetAccount().GetId())
		}
		var d accountv1.AccountDeleted
		if err := ev.Decode(&d); err == nil {
			return s.DeleteAccount(ctx, d.GetAccountId())
		}
		return events.Permanent(errors.New("unexpected event " + ev.Envelope.GetType()))
	})
}
