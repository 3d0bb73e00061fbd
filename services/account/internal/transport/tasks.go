package transport

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/events"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// TaskDurable is the durable consumer that opens and retracts tasks.
const TaskDurable = "account-tasks"

// imageconverterService produces the events that ask for approvals.
const imageconverterService = "imageconverter"

// issuerCloister marks a certificate the account CA issues: only its
// domain needs an approval.
const issuerCloister = "cloister"

// TaskRequests opens the tasks that peers' events ask for and retracts
// those whose subject was deleted.
type TaskRequests interface {
	OpenDomainTask(ctx context.Context, accountID, appID, domain, requesterID string) error
	OpenImageTask(ctx context.Context, accountID, appID string, im domain.ImageMeasurement, requesterID string) error
	RetractTasks(ctx context.Context, accountID, appID, imageID string) error
}

// ConsumeTaskRequests follows the image converter: an application with a
// domain the account CA issues for opens a domain task, a converted image
// an image task; deleting either withdraws its pending tasks.
func ConsumeTaskRequests(ctx context.Context, js jetstream.JetStream, s TaskRequests, logger *slog.Logger) (*events.Consumer, error) {
	return events.Consume(ctx, js, events.ConsumerConfig{
		Stream:  events.StreamEvents,
		Durable: TaskDurable,
		FilterSubjects: []string{
			events.Subject(imageconverterService, &imageconverterv1.AppCreated{}),
			events.Subject(imageconverterService, &imageconverterv1.AppUpdated{}),
			events.Subject(imageconverterService, &imageconverterv1.AppDeleted{}),
			events.Subject(imageconverterService, &imageconverterv1.ImageConverted{}),
			events.Subject(imageconverterService, &imageconverterv1.ImageDeleted{}),
		},
		Logger: logger,
	}, func(ctx context.Context, ev events.Event) error {
		err := handleTaskRequest(ctx, s, ev)
		if errs.KindOf(err) == errs.Invalid {
			return events.Permanent(err) // redelivery cannot fix a malformed event
		}
		return err
	})
}

func handleTaskRequest(ctx context.Context, s TaskRequests, ev events.Event) error {
	var (
		created   imageconverterv1.AppCreated
		updated   imageconverterv1.AppUpdated
		appDel    imageconverterv1.AppDeleted
		converted imageconverterv1.ImageConverted
		imageDel  imageconverterv1.ImageDeleted
	)
	switch {
	case ev.Decode(&created) == nil:
		return openDomainTask(ctx, s, created.GetApp(), created.GetApp().GetCreatedBy())
	case ev.Decode(&updated) == nil:
		// A domain with a task already (for this application) opens none.
		return openDomainTask(ctx, s, updated.GetApp(), updated.GetApp().GetUpdatedBy())
	case ev.Decode(&appDel) == nil:
		return s.RetractTasks(ctx, appDel.GetAccountId(), appDel.GetAppId(), "")
	case ev.Decode(&converted) == nil:
		im := converted.GetImage()
		return s.OpenImageTask(ctx, im.GetAccountId(), im.GetAppId(), domain.ImageMeasurement{
			ImageID: im.GetId(), Tag: im.GetTag(), MRENCLAVE: im.GetMrenclave(), MRSIGNER: im.GetMrsigner(),
			ISVProdID: im.GetIsvprodid(), ISVSVN: im.GetIsvsvn(),
		}, im.GetRequestedBy())
	case ev.Decode(&imageDel) == nil:
		if imageDel.GetImageId() == "" {
			return errs.New(errs.Invalid, "ImageDeleted without an image id")
		}
		return s.RetractTasks(ctx, imageDel.GetAccountId(), imageDel.GetAppId(), imageDel.GetImageId())
	}
	return events.Permanent(errors.New("unexpected event " + ev.Envelope.GetType()))
}

func openDomainTask(ctx context.Context, s TaskRequests, a *imageconverterv1.App, requesterID string) error {
	c := a.GetCertificate()
	if c == nil {
		c = a.GetSpec().GetCertificate()
	}
	if c.GetIssuer() != issuerCloister || c.GetDomain() == "" {
		return nil // nothing for the account CA to approve
	}
	return s.OpenDomainTask(ctx, a.GetAccountId(), a.GetId(), c.GetDomain(), requesterID)
}
