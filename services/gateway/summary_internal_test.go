package gateway

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/pki"
)

// TestSummarize: the hours bucket what falls in the last 24 of them; only
// certificates in use, unrevoked and ending within 7 days are expiring; a
// deregistered node runs nothing; failures are the newest 10.
func TestSummarize(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 30, 0, 0, time.UTC)
	issuedAt := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-d - pki.LeafBackdate)) }
	ends := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(d)) }
	nodes := &noderegistryv1.ListNodesResponse{Nodes: []*noderegistryv1.Node{
		{Id: "n1", Name: "one", Status: "active", CertificateSerial: "a1", Instances: []*noderegistryv1.Instance{
			{Id: "i1", CertificateSerial: "b1", StartedAt: timestamppb.New(now.Add(-time.Hour))},
			{Id: "i2", CertificateSerial: "b2", StartedAt: timestamppb.New(now.Add(-time.Minute))}}},
		{Id: "n2", Name: "gone", Status: "deregistered", CertificateSerial: "a2", Instances: []*noderegistryv1.Instance{{Id: "i3", CertificateSerial: "b3"}}},
		{Id: "n3", Name: "quiet", Status: "unreachable", CertificateSerial: "a3"},
	}}
	certs := &cav1.ListCertificatesResponse{Certificates: []*cav1.Certificate{
		{Serial: "a1", NotBefore: issuedAt(0), NotAfter: ends(90 * 24 * time.Hour)},                  // this hour; lasts
		{Serial: "b1", NotBefore: issuedAt(30 * time.Minute), NotAfter: ends(6 * 24 * time.Hour)},    // this hour; expiring
		{Serial: "b2", NotBefore: issuedAt(2 * time.Hour), NotAfter: ends(time.Hour), Revoked: true}, // revoked
		{Serial: "a2", NotBefore: issuedAt(23 * time.Hour), NotAfter: ends(time.Hour)},               // deregistered node's
		{Serial: "a3", NotBefore: issuedAt(25 * time.Hour), NotAfter: ends(2 * time.Hour)},           // before the day; expiring
		{Serial: "old", NotBefore: issuedAt(3 * time.Hour), NotAfter: ends(time.Hour)},               // not in use
	}}
	var failures []*attestationv1.Verdict
	for i := range 12 {
		failures = append(failures, &attestationv1.Verdict{Id: fmt.Sprint(i), Reason: "tcb", VerifiedAt: timestamppb.New(now.Add(-time.Duration(i) * time.Minute))})
	}
	activity := &attestationv1.GetActivityResponse{Hours: []*attestationv1.ActivityHour{
		{Start: timestamppb.New(now.Truncate(time.Hour).Add(-30 * time.Hour)), Succeeded: 100}, // before the day
		{Start: timestamppb.New(now.Truncate(time.Hour).Add(-23 * time.Hour)), Succeeded: 3, Failed: 1},
		{Start: timestamppb.New(now.Truncate(time.Hour)), Succeeded: 5, Failed: 12, Failures: failures},
	}}

	s := summarize("acct", now, nil, nodes, certs, activity)
	if s.Nodes["active"] != 1 || s.Nodes["deregistered"] != 1 || s.Nodes["unreachable"] != 1 || s.Nodes["untrusted"] != 0 {
		t.Errorf("nodes = %v", s.Nodes)
	}
	if len(s.Running) != 2 || s.Running[0].ID != "i2" || s.Running[1].ID != "i1" || s.Running[0].NodeName != "one" {
		t.Errorf("running = %+v, want i2 then i1 on node one", s.Running)
	}
	var expiring []string
	for _, c := range s.ExpiringCertificates {
		expiring = append(expiring, c.Serial)
	}
	if fmt.Sprint(expiring) != "[a3 b1]" {
		t.Errorf("expiring = %v, want a3 then b1", expiring)
	}
	if s.Hours[0].Start != now.Truncate(time.Hour).Add(-23*time.Hour) || s.Hours[23].Start != now.Truncate(time.Hour) {
		t.Errorf("hours from %v to %v", s.Hours[0].Start, s.Hours[23].Start)
	}
	if h := s.Hours[23]; h.CertificatesIssued != 2 || h.AttestationsSucceeded != 5 || h.AttestationsFailed != 12 {
		t.Errorf("this hour = %+v, want 2 issued, 5 and 12 attestations", h)
	}
	if h := s.Hours[0]; h.CertificatesIssued != 1 || h.AttestationsSucceeded != 3 || h.AttestationsFailed != 1 {
		t.Errorf("the first hour = %+v, want 1 issued, 3 and 1 attestations", h)
	}
	if s.Hours[21].CertificatesIssued != 1 || s.Hours[20].CertificatesIssued != 1 || s.Hours[22].CertificatesIssued != 0 {
		t.Errorf("hours 20 to 22 = %+v, want one issued at 10:30 and one at 09:30", s.Hours[20:23])
	}
	if len(s.AttestationFailures) != 10 || s.AttestationFailures[0].ID != "0" || s.AttestationFailures[9].ID != "9" {
		t.Errorf("failures = %+v, want the newest 10, newest first", s.AttestationFailures)
	}
}
