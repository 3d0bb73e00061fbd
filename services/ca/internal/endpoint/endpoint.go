// Package endpoint adapts the CA service's app to its generated NATS server
// interface: each method converts its protobuf request to domain values
// (through wire), calls the app and converts the result back.
package endpoint

import (
	"context"
	"encoding/pem"

	"github.com/cloister-cc/cloister/libs/reply"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloister-cc/cloister/libs/events"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/wire"
)

// Server is the service behind the generated CAServer.
type Server struct {
	s *app.Service
}

var _ cav1.CAServer = (*Server)(nil)

func (sv *Server) GetCA(ctx context.Context, r *cav1.GetCARequest) (*cav1.GetCAResponse, error) {
	ca, err := sv.s.CA(ctx, r.GetAccountId())
	return reply.With(err, func() *cav1.GetCAResponse { return wire.CAToProto(ca) })
}

func (sv *Server) RotateIssuer(ctx context.Context, r *cav1.RotateIssuerRequest) (*cav1.RotateIssuerResponse, error) {
	ca, n, err := sv.s.RotateIssuer(ctx, r.GetAccountId(), r.GetRevokePrevious(), events.ActorOf(r.GetActor()))
	return reply.With(err, func() *cav1.RotateIssuerResponse {
		return &cav1.RotateIssuerResponse{Ca: wire.CAToProto(ca), Revoked: uint32(n)}
	})
}

func (sv *Server) RetireIssuer(ctx context.Context, r *cav1.RetireIssuerRequest) (*cav1.RetireIssuerResponse, error) {
	ca, n, err := sv.s.RetireIssuer(ctx, r.GetAccountId(), r.GetIssuerKeyId(), events.ActorOf(r.GetActor()))
	return reply.With(err, func() *cav1.RetireIssuerResponse {
		return &cav1.RetireIssuerResponse{Ca: wire.CAToProto(ca), Revoked: uint32(n)}
	})
}

func (sv *Server) IssueNodeCertificate(ctx context.Context, r *cav1.IssueNodeCertificateRequest) (*cav1.IssueNodeCertificateResponse, error) {
	c, ca, err := sv.s.IssueNodeCertificate(ctx, r.GetAccountId(), r.GetNodeId(), r.GetCsr())
	return reply.With(err, func() *cav1.IssueNodeCertificateResponse {
		return &cav1.IssueNodeCertificateResponse{Certificate: wire.CertificateToProto(c), ChainPem: ca.ChainPEM()}
	})
}

func (sv *Server) CreateNonce(ctx context.Context, r *cav1.CreateNonceRequest) (*cav1.CreateNonceResponse, error) {
	nonce, expires, err := sv.s.CreateNonce(ctx, r.GetAccountId())
	return reply.With(err, func() *cav1.CreateNonceResponse {
		return &cav1.CreateNonceResponse{Nonce: nonce, ExpiresAt: timestamppb.New(expires)}
	})
}

func (sv *Server) IssueAppCertificate(ctx context.Context, r *cav1.IssueAppCertificateRequest) (*cav1.IssueAppCertificateResponse, error) {
	c, ca, err := sv.s.IssueAppCertificate(ctx, app.AppRequest{AccountID: r.GetAccountId(), AppID: r.GetAppId(),
		VerdictID: r.GetVerdictId(), NodeID: r.GetNodeId(), CSR: r.GetCsr(), RecipientKey: orNil(r.GetRecipientKey())})
	if err != nil {
		return nil, err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER}), ca.ChainPEM()...)
	return &cav1.IssueAppCertificateResponse{Certificate: wire.CertificateToProto(c), ChainPem: chain}, nil
}

func (sv *Server) ListCertificates(ctx context.Context, r *cav1.ListCertificatesRequest) (*cav1.ListCertificatesResponse, error) {
	cs, err := sv.s.CertificatesOf(ctx, r.GetAccountId(), r.GetKind(), r.GetSubjectId(), r.GetIncludeRevoked())
	return reply.With(err, func() *cav1.ListCertificatesResponse {
		out := &cav1.ListCertificatesResponse{Certificates: reply.Map(cs, wire.CertificateToProto)}
		if r.GetOmitDer() {
			for _, c := range out.Certificates {
				c.Der = nil
			}
		}
		return out
	})
}

func (sv *Server) GetCertificate(ctx context.Context, r *cav1.GetCertificateRequest) (*cav1.GetCertificateResponse, error) {
	c, err := sv.s.Certificate(ctx, r.GetAccountId(), r.GetSerial())
	return reply.With(err, func() *cav1.GetCertificateResponse {
		return &cav1.GetCertificateResponse{Certificate: wire.CertificateToProto(c)}
	})
}

func (sv *Server) RevokeCertificate(ctx context.Context, r *cav1.RevokeCertificateRequest) (*cav1.RevokeCertificateResponse, error) {
	actor := events.ActorOf(r.GetActor())
	c, err := sv.s.Revoke(ctx, r.GetAccountId(), r.GetSerial(), r.GetReason(), &actor)
	if err != nil {
		return nil, err
	}
	return &cav1.RevokeCertificateResponse{Certificate: wire.CertificateToProto(c)}, nil
}

func (sv *Server) OCSP(ctx context.Context, r *cav1.OCSPRequest) (*cav1.OCSPResponse, error) {
	der, err := sv.s.OCSP(ctx, r.GetAccountId(), r.GetRequest())
	return reply.With(err, func() *cav1.OCSPResponse { return &cav1.OCSPResponse{Response: der} })
}

func (sv *Server) GetCRL(ctx context.Context, r *cav1.GetCRLRequest) (*cav1.GetCRLResponse, error) {
	der, next, err := sv.s.CRL(ctx, r.GetAccountId(), r.GetIssuerKeyId())
	return reply.With(err, func() *cav1.GetCRLResponse { return &cav1.GetCRLResponse{Crl: der, NextUpdate: timestamppb.New(next)} })
}

// New returns the endpoints of s.
func New(s *app.Service) *Server { return &Server{s: s} }

// orNil is b, or nil when it is empty: on the wire an empty bytes field is
// an absent one.
func orNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
