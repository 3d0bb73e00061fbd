// Package endpoint adapts the CA service's app to its generated NATS server
// interface: each method converts its protobuf request to domain values
// (through wire), calls the app and converts the result back.
package endpoint

import (
	"context"
	"encoding/pem"

	"github.com/cloister-cc/cloister/libs/events"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/wire"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Server is the service behind the generated CAServer.
type Server struct {
	s *app.Service
}

var _ cav1.CAServer = (*Server)(nil)

func (sv *Server) GetCA(ctx context.Context, r *cav1.GetCARequest) (*cav1.GetCAResponse, error) {
	s := sv.s
	ca, err := s.CA(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	return wire.CAToProto(ca), nil
}

func (sv *Server) RotateIssuer(ctx context.Context, r *cav1.RotateIssuerRequest) (*cav1.RotateIssuerResponse, error) {
	s := sv.s
	ca, err := s.RotateIssuer(ctx, r.GetAccountId(), events.ActorOf(r.GetActor()))
	if err != nil {
		return nil, err
	}
	return &cav1.RotateIssuerResponse{Ca: wire.CAToProto(ca)}, nil
}

func (sv *Server) IssueNodeCertificate(ctx context.Context, r *cav1.IssueNodeCertificateRequest) (*cav1.IssueNodeCertificateResponse, error) {
	s := sv.s
	c, ca, err := s.IssueNodeCertificate(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCsr())
	if err != nil {
		return nil, err
	}
	return &cav1.IssueNodeCertificateResponse{Certificate: wire.CertificateToProto(c), ChainPem: ca.ChainPEM()}, nil
}

func (sv *Server) CreateNonce(ctx context.Context, r *cav1.CreateNonceRequest) (*cav1.CreateNonceResponse, error) {
	s := sv.s
	nonce, expires, err := s.CreateNonce(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	return &cav1.CreateNonceResponse{Nonce: nonce, ExpiresAt: timestamppb.New(expires)}, nil
}

func (sv *Server) IssueAppCertificate(ctx context.Context, r *cav1.IssueAppCertificateRequest) (*cav1.IssueAppCertificateResponse, error) {
	s := sv.s
	c, ca, err := s.IssueAppCertificate(ctx, app.AppRequest{AccountID: r.GetAccountId(), AppID: r.GetAppId(),
		VerdictID: r.GetVerdictId(), NodeID: r.GetNodeId(), CSR: r.GetCsr()})
	if err != nil {
		return nil, err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER}), ca.ChainPEM()...)
	return &cav1.IssueAppCertificateResponse{Certificate: wire.CertificateToProto(c), ChainPem: chain}, nil
}

func (sv *Server) ListCertificates(ctx context.Context, r *cav1.ListCertificatesRequest) (*cav1.ListCertificatesResponse, error) {
	s := sv.s
	cs, err := s.CertificatesOf(ctx, r.GetAccountId(), r.GetKind(), r.GetSubjectId(), r.GetIncludeRevoked())
	if err != nil {
		return nil, err
	}
	out := &cav1.ListCertificatesResponse{}
	for _, c := range cs {
		out.Certificates = append(out.Certificates, wire.CertificateToProto(c))
	}
	return out, nil
}

func (sv *Server) GetCertificate(ctx context.Context, r *cav1.GetCertificateRequest) (*cav1.GetCertificateResponse, error) {
	s := sv.s
	c, err := s.Certificate(ctx, r.GetAccountId(), r.GetSerial())
	if err != nil {
		return nil, err
	}
	return &cav1.GetCertificateResponse{Certificate: wire.CertificateToProto(c)}, nil
}

func (sv *Server) RevokeCertificate(ctx context.Context, r *cav1.RevokeCertificateRequest) (*cav1.RevokeCertificateResponse, error) {
	s := sv.s
	actor := events.ActorOf(r.GetActor())
	c, err := s.Revoke(ctx, r.GetAccountId(), r.GetSerial(), r.GetReason(), &actor)
	if err != nil {
		return nil, err
	}
	return &cav1.RevokeCertificateResponse{Certificate: wire.CertificateToProto(c)}, nil
}

func (sv *Server) OCSP(ctx context.Context, r *cav1.OCSPRequest) (*cav1.OCSPResponse, error) {
	s := sv.s
	der, err := s.OCSP(ctx, r.GetAccountId(), r.GetRequest())
	if err != nil {
		return nil, err
	}
	return &cav1.OCSPResponse{Response: der}, nil
}

func (sv *Server) GetCRL(ctx context.Context, r *cav1.GetCRLRequest) (*cav1.GetCRLResponse, error) {
	s := sv.s
	der, next, err := s.CRL(ctx, r.GetAccountId(), r.GetIssuerKeyId())
	if err != nil {
		return nil, err
	}
	return &cav1.GetCRLResponse{Crl: der, NextUpdate: timestamppb.New(next)}, nil
}

// New returns the endpoints of s.
func New(s *app.Service) *Server { return &Server{s: s} }
