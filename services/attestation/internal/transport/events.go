package transport

import (
	"context"
	"errors"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/services/attestation/internal/app"
	"github.com/cloister-cc/cloister/services/attestation/internal/domain"
)

// approvalRoutes keep the approved-image allowlist from approval,
// withdrawal and deletion events, through a durable consumer, so nothing
// is missed while the service is down.
func approvalRoutes(s *app.Service) *events.Router {
	r := events.NewRouter()
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.TaskApproved) error {
		return onImageTask(m.GetTask(), func(accountID string, img domain.ApprovedImage) error { return s.ApproveImage(ctx, accountID, img) })
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.TaskWithdrawn) error {
		return onImageTask(m.GetTask(), func(accountID string, img domain.ApprovedImage) error {
			return s.WithdrawImage(ctx, accountID, img.MRENCLAVE, img.TaskID)
		})
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountDeleted) error {
		return s.ForgetImages(ctx, m.GetAccountId(), "", "")
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.AppDeleted) error {
		if m.GetAppId() == "" {
			return nil
		}
		return s.ForgetImages(ctx, m.GetAccountId(), m.GetAppId(), "")
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.ImageDeleted) error {
		if m.GetImageId() == "" {
			return nil
		}
		return s.ForgetImages(ctx, m.GetAccountId(), "", m.GetImageId())
	})
	return r
}

// onImageTask calls f with the image of an image task; other tasks are
// not the attestation service's, and an image task without a measurement
// can never be applied.
func onImageTask(t *accountv1.Task, f func(accountID string, img domain.ApprovedImage) error) error {
	if t.GetKind() != "image" {
		return nil
	}
	img, err := approvedImage(t)
	if err != nil {
		return events.Permanent(err)
	}
	return f(t.GetAccountId(), img)
}

func approvedImage(t *accountv1.Task) (domain.ApprovedImage, error) {
	im := t.GetImage()
	if len(im.GetMrenclave()) != 32 || len(im.GetMrsigner()) != 32 {
		return domain.ApprovedImage{}, errors.New("image task " + t.GetId() + " has no 32-byte MRENCLAVE and MRSIGNER")
	}
	return domain.ApprovedImage{MRENCLAVE: [32]byte(im.GetMrenclave()), MRSIGNER: [32]byte(im.GetMrsigner()),
		AppID: t.GetAppId(), ImageID: im.GetImageId(), Tag: im.GetTag(), TaskID: t.GetId()}, nil
}
