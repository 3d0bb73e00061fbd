package transport

import (
	"context"
	"time"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
)

// approvalRoutes keep what issuance needs from other services' events
// (applications' certificate configurations, approved domains) and revoke
// certificates whose grounds went away: a withdrawn approval, a deleted
// image or application, a deregistered node.
func approvalRoutes(s *app.Service) *events.Router {
	r := events.NewRouter()
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.TaskApproved) error {
		switch t := m.GetTask(); t.GetKind() {
		case "domain":
			return s.ApproveDomain(ctx, t.GetAccountId(), approvedDomain(t))
		case "image":
			return s.ApproveImage(ctx, t.GetAccountId(), approvedImage(t))
		}
		return nil
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.TaskWithdrawn) error {
		switch t := m.GetTask(); t.GetKind() {
		case "domain":
			return s.WithdrawDomain(ctx, t.GetAccountId(), approvedDomain(t))
		case "image":
			return s.WithdrawImage(ctx, t.GetAccountId(), approvedImage(t))
		}
		return nil
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.TaskDenied) error {
		switch t := m.GetTask(); t.GetKind() {
		case "domain", "image":
			return s.DenyTask(ctx, t.GetAccountId(), t.GetId())
		}
		return nil // the account's own tasks (quorum, admin) are not the CA's
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.AppCreated) error {
		return s.PutApp(ctx, appConfig(m.GetApp()))
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.AppUpdated) error {
		return s.PutApp(ctx, appConfig(m.GetApp()))
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.AppDeleted) error {
		return s.DeleteApp(ctx, m.GetAccountId(), m.GetAppId())
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(ctx context.Context, _ events.Event, m *imageconverterv1.ImageDeleted) error {
		return s.DeleteImage(ctx, m.GetAccountId(), m.GetAppId(), m.GetImageId(), m.GetMrenclave())
	})
	events.On(r, noderegistryv1.NodeRegistryServiceName, func(ctx context.Context, _ events.Event, m *noderegistryv1.NodeDeregistered) error {
		return s.RevokeNode(ctx, m.GetAccountId(), m.GetNodeId())
	})
	return r
}

func approvedDomain(t *accountv1.Task) domain.ApprovedDomain {
	return domain.ApprovedDomain{AppID: t.GetAppId(), Domain: t.GetDomain(), TaskID: t.GetId()}
}

func approvedImage(t *accountv1.Task) domain.ApprovedImage {
	im := t.GetImage()
	return domain.ApprovedImage{AppID: t.GetAppId(), ImageID: im.GetImageId(), MRENCLAVE: im.GetMrenclave(), MRSIGNER: im.GetMrsigner(), TaskID: t.GetId()}
}

func appConfig(a *imageconverterv1.App) domain.AppConfig {
	c := a.GetCertificate()
	return domain.AppConfig{AccountID: a.GetAccountId(), AppID: a.GetId(), Domain: c.GetDomain(), Issuer: c.GetIssuer(),
		KeyType: pki.KeyType(c.GetKeyType()), Lifetime: time.Duration(c.GetValidityDays()) * 24 * time.Hour, Debug: a.GetSpec().GetDebug()}
}
