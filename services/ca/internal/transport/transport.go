// Package transport serves the CA service over NATS and consumes the
// account events that create and remove CAs.
package transport

import (
	"context"
	"encoding/pem"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/store"
)

// Serve serves the ca service on r: its request subjects, through the
// generated cav1.RegisterCAServer, and its consumers of account events
// and approvals.
func Serve(r *service.Runner, s *app.Service) error {
	if err := cav1.RegisterCAServer(r.Mux(), &server{s: s}, r.Logger()); err != nil {
		return err
	}
	if err := consumeAccounts(r, s); err != nil {
		return err
	}
	return r.ConsumeRoutes("ca-approvals", approvalRoutes(s))
}

// server is the service behind the generated CAServer interface.
type server struct {
	s *app.Service
}

var _ cav1.CAServer = (*server)(nil)

func (sv *server) GetCA(ctx context.Context, r *cav1.GetCARequest) (*cav1.GetCAResponse, error) {
	s := sv.s
	ca, err := s.CA(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	return caToProto(ca), nil
}

func (sv *server) RotateIssuer(ctx context.Context, r *cav1.RotateIssuerRequest) (*cav1.RotateIssuerResponse, error) {
	s := sv.s
	ca, err := s.RotateIssuer(ctx, r.GetAccountId(), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &cav1.RotateIssuerResponse{Ca: caToProto(ca)}, nil
}

func (sv *server) IssueNodeCertificate(ctx context.Context, r *cav1.IssueNodeCertificateRequest) (*cav1.IssueNodeCertificateResponse, error) {
	s := sv.s
	c, ca, err := s.IssueNodeCertificate(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCsr())
	if err != nil {
		return nil, err
	}
	return &cav1.IssueNodeCertificateResponse{Certificate: store.CertificateToProto(c), ChainPem: ca.ChainPEM()}, nil
}

func (sv *server) CreateNonce(ctx context.Context, r *cav1.CreateNonceRequest) (*cav1.CreateNonceResponse, error) {
	s := sv.s
	nonce, expires, err := s.CreateNonce(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	return &cav1.CreateNonceResponse{Nonce: nonce, ExpiresAt: timestamppb.New(expires)}, nil
}

func (sv *server) IssueAppCertificate(ctx context.Context, r *cav1.IssueAppCertificateRequest) (*cav1.IssueAppCertificateResponse, error) {
	s := sv.s
	c, ca, err := s.IssueAppCertificate(ctx, app.AppRequest{AccountID: r.GetAccountId(), AppID: r.GetAppId(),
		VerdictID: r.GetVerdictId(), NodeID: r.GetNodeId(), CSR: r.GetCsr()})
	if err != nil {
		return nil, err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER}), ca.ChainPEM()...)
	return &cav1.IssueAppCertificateResponse{Certificate: store.CertificateToProto(c), ChainPem: chain}, nil
}

func (sv *server) ListCertificates(ctx context.Context, r *cav1.ListCertificatesRequest) (*cav1.ListCertificatesResponse, error) {
	s := sv.s
	cs, err := s.CertificatesOf(ctx, r.GetAccountId(), r.GetKind(), r.GetSubjectId(), r.GetIncludeRevoked())
	if err != nil {
		return nil, err
	}
	out := &cav1.ListCertificatesResponse{}
	for _, c := range cs {
		out.Certificates = append(out.Certificates, store.CertificateToProto(c))
	}
	return out, nil
}

func (sv *server) GetCertificate(ctx context.Context, r *cav1.GetCertificateRequest) (*cav1.GetCertificateResponse, error) {
	s := sv.s
	c, err := s.Certificate(ctx, r.GetAccountId(), r.GetSerial())
	if err != nil {
		return nil, err
	}
	return &cav1.GetCertificateResponse{Certificate: store.CertificateToProto(c)}, nil
}

func (sv *server) RevokeCertificate(ctx context.Context, r *cav1.RevokeCertificateRequest) (*cav1.RevokeCertificateResponse, error) {
	s := sv.s
	actor := events.ActorOf(r.GetActor())
	c, err := s.Revoke(ctx, r.GetAccountId(), r.GetSerial(), r.GetReason(), &actor)
	if err != nil {
		return nil, err
	}
	return &cav1.RevokeCertificateResponse{Certificate: store.CertificateToProto(c)}, nil
}

func (sv *server) OCSP(ctx context.Context, r *cav1.OCSPRequest) (*cav1.OCSPResponse, error) {
	s := sv.s
	der, err := s.OCSP(ctx, r.GetAccountId(), r.GetRequest())
	if err != nil {
		return nil, err
	}
	return &cav1.OCSPResponse{Response: der}, nil
}

func (sv *server) GetCRL(ctx context.Context, r *cav1.GetCRLRequest) (*cav1.GetCRLResponse, error) {
	s := sv.s
	der, next, err := s.CRL(ctx, r.GetAccountId(), r.GetIssuerKeyId())
	if err != nil {
		return nil, err
	}
	return &cav1.GetCRLResponse{Crl: der, NextUpdate: timestamppb.New(next)}, nil
}

func caToProto(ca *pki.CA) *cav1.GetCAResponse {
	out := &cav1.GetCAResponse{ChainPem: ca.ChainPEM(),
		RootPem:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw}),
		IssuerPem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Issuer.Raw})}
	for _, i := range ca.Issuers()[1:] {
		out.RetiredIssuersPem = append(out.RetiredIssuersPem, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.Raw})...)
	}
	return out
}

// consumeAccounts creates a CA for every account created and removes it
// when the account is deleted, through a durable consumer, so no account
// is missed while the service is down.
func consumeAccounts(run *service.Runner, s *app.Service) error {
	r := events.NewRouter()
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountCreated) error {
		return s.CreateCA(ctx, m.GetAccount().GetId())
	})
	events.On(r, accountv1.AccountServiceName, func(ctx context.Context, _ events.Event, m *accountv1.AccountDeleted) error {
		return s.DeleteCA(ctx, m.GetAccountId())
	})
	return run.ConsumeRoutes("ca-accounts", r)
}
