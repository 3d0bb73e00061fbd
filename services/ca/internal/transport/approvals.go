package transport

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	accountclient "github.com/cloister-cc/cloister/services/account/client"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
)

// Producers of the events the CA consumes besides the account service's.
const (
	imageconverterService = "imageconverter"
	noderegistryService   = "noderegistry"
)

// ConsumeApprovals keeps what issuance needs from other services' events
// (applications' certificate configurations, approved domains) and revokes
// certificates whose grounds went away: a withdrawn approval, a deleted
// image or application, a deregistered node.
func ConsumeApprovals(ctx context.Context, js jetstream.JetStream, s *app.Service, logger *slog.Logger) (*events.Consumer, error) {
	return events.Consume(ctx, js, events.ConsumerConfig{
		Stream:  events.StreamEvents,
		Durable: "ca-approvals",
		FilterSubjects: []string{
			events.Subject(accountclient.Service, &accountv1.TaskApproved{}),
			events.Subject(accountclient.Service, &accountv1.TaskWithdrawn{}),
			events.Subject(accountclient.Service, &accountv1.TaskDenied{}),
			events.Subject(imageconverterService, &imageconverterv1.AppCreated{}),
			events.Subject(imageconverterService, &imageconverterv1.AppUpdated{}),
			events.Subject(imageconverterService, &imageconverterv1.AppDeleted{}),
			events.Subject(imageconverterService, &imageconverterv1.ImageDeleted{}),
			events.Subject(noderegistryService, &noderegistryv1.NodeDeregistered{}),
		},
		Logger: logger,
	}, func(ctx context.Context, ev events.Event) error {
		err := handleApproval(ctx, s, ev)
		if errs.KindOf(err) == errs.Invalid {
			return events.Permanent(err) // redelivery cannot fix a malformed event
		}
		return err
	})
}

func handleApproval(ctx context.Context, s *app.Service, ev events.Event) error {
	var (
		approved  accountv1.TaskApproved
		withdrawn accountv1.TaskWithdrawn
		denied    accountv1.TaskDenied
		created   imageconverterv1.AppCreated
		updated   imageconverterv1.AppUpdated
		appDel    imageconverterv1.AppDeleted
		imageDel  imageconverterv1.ImageDeleted
		nodeDel   noderegistryv1.NodeDeregistered
	)
	switch {
	case ev.Decode(&approved) == nil:
		t := approved.GetTask()
		switch t.GetKind() {
		case "domain":
			return s.ApproveDomain(ctx, t.GetAccountId(), approvedDomain(t))
		case "image":
			return s.ApproveImage(ctx, t.GetAccountId(), approvedImage(t))
		}
		return nil
	case ev.Decode(&withdrawn) == nil:
		t := withdrawn.GetTask()
		switch t.GetKind() {
		case "domain":
			return s.WithdrawDomain(ctx, t.GetAccountId(), approvedDomain(t))
		case "image":
			return s.WithdrawImage(ctx, t.GetAccountId(), approvedImage(t))
		}
		return nil
	case ev.Decode(&denied) == nil:
		return s.DenyTask(ctx, denied.GetTask().GetAccountId(), denied.GetTask().GetId())
	case ev.Decode(&created) == nil:
		return s.PutApp(ctx, appConfig(created.GetApp()))
	case ev.Decode(&updated) == nil:
		return s.PutApp(ctx, appConfig(updated.GetApp()))
	case ev.Decode(&appDel) == nil:
		return s.DeleteApp(ctx, appDel.GetAccountId(), appDel.GetAppId())
	case ev.Decode(&imageDel) == nil:
		return s.DeleteImage(ctx, imageDel.GetAccountId(), imageDel.GetAppId(), imageDel.GetImageId(), imageDel.GetMrenclave())
	case ev.Decode(&nodeDel) == nil:
		return s.RevokeNode(ctx, nodeDel.GetAccountId(), nodeDel.GetNodeId())
	}
	return events.Permanent(errors.New("unexpected event " + ev.Envelope.GetType()))
}

func approvedDomain(t *accountv1.Task) app.ApprovedDomain {
	return app.ApprovedDomain{AppID: t.GetAppId(), Domain: t.GetDomain(), TaskID: t.GetId()}
}

func approvedImage(t *accountv1.Task) app.ApprovedImage {
	im := t.GetImage()
	return app.ApprovedImage{AppID: t.GetAppId(), ImageID: im.GetImageId(), MRENCLAVE: im.GetMrenclave(), MRSIGNER: im.GetMrsigner(), TaskID: t.GetId()}
}

func appConfig(a *imageconverterv1.App) app.AppConfig {
	c := a.GetCertificate()
	return app.AppConfig{AccountID: a.GetAccountId(), AppID: a.GetId(), Domain: c.GetDomain(), Issuer: c.GetIssuer(),
		KeyType: pki.KeyType(c.GetKeyType()), Lifetime: time.Duration(c.GetValidityDays()) * 24 * time.Hour, Debug: a.GetSpec().GetDebug()}
}
