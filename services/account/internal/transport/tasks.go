package transport

import (
	"context"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/events"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// TaskDurable is the durable consumer that opens and retracts tasks.
const TaskDurable = "account-tasks"

// issuerCloister marks a certificate the account CA issues: only its
// domain needs an approval.
const issuerCloister = "cloister"

// TaskRequests opens the tasks that peers' events ask for and retracts
// those whose subject was deleted.
type TaskRequests interface {
	OpenDomainTask(ctx context.Context, accountID, appID, domain, requesterID string) error
	OpenImageTask(ctx context.Context, accountID, appID string, im domain.ImageMeasurement, requesterID string) error
	OpenSecretTask(ctx context.Context, accountID, appID string, c domain.SecretChange, requesterID string) error
	RetractSecretTasks(ctx context.Context, accountID, appID, name string) error
	RetractTasks(ctx context.Context, accountID, appID, imageID string) error
}

// taskRoutes follow the image converter: an application with a domain the
// account CA issues for opens a domain task, a converted image an image
// task; deleting either withdraws its pending tasks.
func taskRoutes(s TaskRequests) *events.Router {
	r := events.NewRouter()
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.AppCreated) error {
		return openDomainTask(ctx, s, m.GetApp(), m.GetApp().GetCreatedBy())
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.AppUpdated) error {
		// A domain with a task already (for this application) opens none.
		return openDomainTask(ctx, s, m.GetApp(), m.GetApp().GetUpdatedBy())
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.AppDeleted) error {
		return s.RetractTasks(ctx, m.GetAccountId(), m.GetAppId(), "")
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.ImageConverted) error {
		im := m.GetImage()
		return s.OpenImageTask(ctx, im.GetAccountId(), im.GetAppId(), domain.ImageMeasurement{
			ImageID: im.GetId(), Tag: im.GetTag(), MRENCLAVE: im.GetMrenclave(), MRSIGNER: im.GetMrsigner(),
			ISVProdID: im.GetIsvprodid(), ISVSVN: im.GetIsvsvn(),
		}, im.GetRequestedBy())
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.SecretChangeRequested) error {
		return s.OpenSecretTask(ctx, m.GetAccountId(), m.GetAppId(), domain.SecretChange{Name: m.GetName(), Version: m.GetVersion(), Size: m.GetSize(), VersionID: m.GetVersionId()},
			m.GetRequestedBy())
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.SecretDeleted) error {
		return s.RetractSecretTasks(ctx, m.GetAccountId(), m.GetAppId(), m.GetName())
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.ImageDeleted) error {
		if m.GetImageId() == "" {
			return errs.New(errs.Invalid, "ImageDeleted without an image id")
		}
		return s.RetractTasks(ctx, m.GetAccountId(), m.GetAppId(), m.GetImageId())
	})
	return r
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
