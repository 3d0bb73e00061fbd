package transport

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/services/attestation/internal/app"
	"github.com/cloister-cc/cloister/services/attestation/internal/domain"
)

// Producers of the events the service consumes.
const (
	accountService        = "account"
	imageconverterService = "imageconverter"
)

// ConsumeApprovals keeps the approved-image allowlist from approval,
// withdrawal and deletion events, through a durable consumer, so nothing
// is missed while the service is down.
func ConsumeApprovals(ctx context.Context, js jetstream.JetStream, s *app.Service, logger *slog.Logger) (*events.Consumer, error) {
	return events.Consume(ctx, js, events.ConsumerConfig{
		Stream:  events.StreamEvents,
		Durable: "attestation-approvals",
		FilterSubjects: []string{
			events.Subject(accountService, &accountv1.TaskApproved{}),
			events.Subject(accountService, &accountv1.TaskWithdrawn{}),
			events.Subject(accountService, &accountv1.AccountDeleted{}),
			events.Subject(imageconverterService, &imageconverterv1.AppDeleted{}),
			events.Subject(imageconverterService, &imageconverterv1.ImageDeleted{}),
		},
		Logger: logger,
	}, func(ctx context.Context, ev events.Event) error {
		var (
			approved  accountv1.TaskApproved
			withdrawn accountv1.TaskWithdrawn
			account   accountv1.AccountDeleted
			appDel    imageconverterv1.AppDeleted
			imageDel  imageconverterv1.ImageDeleted
		)
		switch {
		case ev.Decode(&approved) == nil:
			t := approved.GetTask()
			if t.GetKind() != "image" {
				return nil
			}
			img, err := approvedImage(t)
			if err != nil {
				return events.Permanent(err)
			}
			return s.ApproveImage(ctx, t.GetAccountId(), img)
		case ev.Decode(&withdrawn) == nil:
			t := withdrawn.GetTask()
			if t.GetKind() != "image" {
				return nil
			}
			img, err := approvedImage(t)
			if err != nil {
				return events.Permanent(err)
			}
			return s.WithdrawImage(ctx, t.GetAccountId(), img.MRENCLAVE, img.TaskID)
		case ev.Decode(&account) == nil:
			return s.ForgetImages(ctx, account.GetAccountId(), "", "")
		case ev.Decode(&appDel) == nil:
			if appDel.GetAppId() == "" {
				return nil
			}
			return s.ForgetImages(ctx, appDel.GetAccountId(), appDel.GetAppId(), "")
		case ev.Decode(&imageDel) == nil:
			if imageDel.GetImageId() == "" {
				return nil
			}
			return s.ForgetImages(ctx, imageDel.GetAccountId(), "", imageDel.GetImageId())
		}
		return events.Permanent(errors.New("unexpected event " + ev.Envelope.GetType()))
	})
}

func approvedImage(t *accountv1.Task) (domain.ApprovedImage, error) {
	im := t.GetImage()
	if len(im.GetMrenclave()) != 32 || len(im.GetMrsigner()) != 32 {
		return domain.ApprovedImage{}, errors.New("image task " + t.GetId() + " has no 32-byte MRENCLAVE and MRSIGNER")
	}
	return domain.ApprovedImage{MRENCLAVE: [32]byte(im.GetMrenclave()), MRSIGNER: [32]byte(im.GetMrsigner()),
		AppID: t.GetAppId(), ImageID: im.GetImageId(), Tag: im.GetTag(), TaskID: t.GetId()}, nil
}
