// Package wire converts the CA service's values to and from their
// protobuf forms, for its endpoints and its events alike.
package wire

import (
	"encoding/pem"

	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloister-cc/cloister/libs/events"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
)

// CertificateToProto converts a certificate record.
func CertificateToProto(c domain.Certificate) *cav1.Certificate {
	out := &cav1.Certificate{Serial: c.Serial, AccountId: c.AccountID, Kind: c.Kind, SubjectId: c.SubjectID, DnsNames: c.DNSNames,
		NotBefore: timestamppb.New(c.NotBefore), NotAfter: timestamppb.New(c.NotAfter), Revoked: c.Revoked,
		RevocationReason: c.Reason, Der: c.DER, NodeId: c.NodeID, ImageId: c.ImageID, Mrenclave: c.MRENCLAVE, VerdictId: c.VerdictID,
		RecipientKey: c.RecipientKey}
	if c.Revoked {
		out.RevokedAt = timestamppb.New(c.RevokedAt)
	}
	return out
}

// CAToProto converts a CA's public parts.
func CAToProto(ca *pki.CA) *cav1.GetCAResponse {
	out := &cav1.GetCAResponse{ChainPem: ca.ChainPEM(),
		RootPem:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw}),
		IssuerPem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Issuer.Raw})}
	for _, i := range ca.Issuers()[1:] {
		out.RetiredIssuersPem = append(out.RetiredIssuersPem, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.Raw})...)
	}
	return out
}

// Event is an event's wire form: its account, protobuf form and, when a
// person caused it, audit record.
func Event(ev domain.Event) events.Outgoing {
	switch e := ev.(type) {
	case domain.Initialized:
		return events.Outgoing{AccountID: e.AccountID, Payload: &cav1.AccountCAInitialized{AccountId: e.AccountID, RootSha256: e.RootSHA256}}
	case domain.Issued:
		return events.Outgoing{AccountID: e.Certificate.AccountID, Payload: &cav1.CertificateIssued{Certificate: CertificateToProto(e.Certificate)}, Audit: &e.Audit}
	case domain.Revoked:
		return events.Outgoing{AccountID: e.Certificate.AccountID, Payload: &cav1.CertificateRevoked{Certificate: CertificateToProto(e.Certificate)}, Audit: e.Audit}
	case domain.IssuerRetired:
		return events.Outgoing{AccountID: e.AccountID, Payload: &cav1.IssuerRetired{AccountId: e.AccountID, RetiredSha256: e.RetiredSHA256, Revoked: uint32(e.Revoked)}, Audit: &e.Audit}
	case domain.IssuerRotated:
		return events.Outgoing{AccountID: e.AccountID, Payload: &cav1.IssuerRotated{AccountId: e.AccountID, IssuerSha256: e.IssuerSHA256, RetiredSha256: e.RetiredSHA256}, Audit: &e.Audit}
	}
	panic(fmt.Sprintf("wire: no wire form for event %T", ev))
}
