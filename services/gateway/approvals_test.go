package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/events"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// TestApprovalsGateAttestationAndIssuance walks the approval chain with
// the real services: an app created through the API opens a domain task
// and a converted image an image task (account service); with two
// approvals required, the requester's own does not count; once distinct
// admins approve both, the next attestation of the image and the next
// issuance for the domain pass (attestation service and CA, from the
// task events); after the image task is withdrawn, the next are refused
// and the certificate issued before is revoked. With the in-process cache
// and with Redis, shared by the services as in a deployment.
func TestApprovalsGateAttestationAndIssuance(t *testing.T) {
	for _, ck := range cacheKinds {
		t.Run(ck.name, func(t *testing.T) { testApprovalsGate(t, newStack(t, ck.make(t))) })
	}
}

func testApprovalsGate(t *testing.T, s *stack) {
	ctx := context.Background()
	requesterID, requester := s.user("ada@example.com")
	_, admin2 := s.user("bob@example.com")
	_, admin3 := s.user("cy@example.com")
	acct := s.account(requester, "A")
	s.addMember(requester, acct, "bob@example.com", "admin")
	s.addMember(requester, acct, "cy@example.com", "admin")
	base := "/v1/accounts/" + acct
	if r := do(t, s.srv, "PATCH", base, requester, map[string]any{"approvals_required": 2}); r.status != 200 || !strings.Contains(string(r.body), `"approvals_required":2`) {
		t.Fatalf("requiring two approvals = %d %s", r.status, r.body)
	}
	const domain = "hello.cloister.test"
	app, body := s.convertedHello(t, requester, requesterID, acct, domain)

	// Both tasks appear, pending, asked for by the requester.
	var tasks struct {
		Items []struct {
			ID, Kind, Status string
			RequesterID      string `json:"requester_id"`
		}
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		do(t, s.srv, "GET", base+"/tasks?status=pending", admin2, nil).decode(t, &tasks)
		return len(tasks.Items) == 2
	}, "the domain and image tasks never appeared")
	for _, task := range tasks.Items {
		if task.RequesterID != requesterID {
			t.Fatalf("task %s requested by %s, want %s", task.ID, task.RequesterID, requesterID)
		}
		if r := do(t, s.srv, "POST", base+"/tasks/"+task.ID+"/approve", requester, nil); r.status != 403 || !strings.Contains(string(r.body), "another admin must approve it") {
			t.Fatalf("the requester approving %s = %d %s, want 403", task.Kind, r.status, r.body)
		}
		if r := do(t, s.srv, "POST", base+"/tasks/"+task.ID+"/approve", admin2, nil); r.status != 200 || !strings.Contains(string(r.body), `"status":"pending"`) ||
			!strings.Contains(string(r.body), `"approvals_counted":1`) || !strings.Contains(string(r.body), `"approvals_required":2`) {
			t.Fatalf("the first approval of %s = %d %s, want still pending", task.Kind, r.status, r.body)
		}
	}

	// An enclave of the image asks for a certificate.
	c, att := cav1.NewCAClient(s.nc), attestationv1.NewAttestationClient(s.nc)
	qe, err := s.att.SimulatedQE(acct)
	if err != nil {
		t.Fatal(err)
	}
	issue := func() (*cav1.IssueAppCertificateResponse, error) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{domain}}, key)
		nonce, err := c.CreateNonce(ctx, &cav1.CreateNonceRequest{AccountId: acct})
		if err != nil {
			return nil, err
		}
		spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		b := body
		binding := sha256.Sum256(spki)
		copy(b.ReportData[:32], binding[:])
		copy(b.ReportData[32:], nonce.GetNonce())
		quote, err := qe.Quote(b)
		if err != nil {
			t.Fatal(err)
		}
		v, err := att.Verify(ctx, &attestationv1.VerifyRequest{AccountId: acct, Quote: quote, AppId: app.ID})
		if err != nil {
			return nil, err
		}
		return c.IssueAppCertificate(ctx, &cav1.IssueAppCertificateRequest{AccountId: acct, AppId: app.ID, VerdictId: v.GetVerdict().GetId(), Csr: csr})
	}
	if _, err := issue(); err == nil {
		t.Fatal("a certificate was issued with one approval of two")
	}

	// The second approvals: both tasks approved.
	var imageTask string
	for _, task := range tasks.Items {
		if r := do(t, s.srv, "POST", base+"/tasks/"+task.ID+"/approve", admin3, nil); r.status != 200 || !strings.Contains(string(r.body), `"status":"approved"`) {
			t.Fatalf("the second approval of %s = %d %s, want approved", task.Kind, r.status, r.body)
		}
		if task.Kind == "image" {
			imageTask = task.ID
		}
	}
	var cert *cav1.IssueAppCertificateResponse
	testkit.EventuallyMsg(t, 10*time.Second, func() bool { cert, err = issue(); return err == nil }, func() string { return fmt.Sprintf("no certificate after both approvals: %v", err) })

	// Withdrawn: the next attestation and issuance are refused, and the
	// certificate goes.
	if r := do(t, s.srv, "POST", base+"/tasks/"+imageTask+"/withdraw", admin2, nil); r.status != 200 || !strings.Contains(string(r.body), `"status":"withdrawn"`) {
		t.Fatalf("withdrawing = %d %s", r.status, r.body)
	}
	// Refused by the attestation service (image_not_approved), or by the
	// CA's own image check, whichever saw the withdrawal first.
	var last error
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, last = issue()
		return last != nil && (strings.Contains(last.Error(), "image_not_approved") || strings.Contains(last.Error(), "image check"))
	}, "issuance not refused for the image after the withdrawal")
	t.Logf("after the withdrawal: %v", last)
	serial := cert.GetCertificate().GetSerial()
	testkit.Eventually(t, 10*time.Second, func() bool {
		r, err := c.GetCertificate(ctx, &cav1.GetCertificateRequest{AccountId: acct, Serial: serial})
		return err == nil && r.GetCertificate().GetRevoked()
	}, "the certificate issued on the withdrawn image was not revoked")
	if r := do(t, s.srv, "POST", base+"/tasks/"+imageTask+"/approve", admin3, nil); r.status != 409 {
		t.Fatalf("approving a withdrawn task = %d %s, want 409", r.status, r.body)
	}
}

// convertedHello allows simulation in acct, creates an application that
// serves domain, and publishes the converter's ImageConverted for it, as
// requested by requesterID (the conversion itself is tested with the
// converter). It returns the application and the report body (MRENCLAVE
// and MRSIGNER) of an enclave of that image.
func (s *stack) convertedHello(t *testing.T, token, requesterID, acct, domain string) (app struct{ ID string }, body sgx.ReportBody) {
	t.Helper()
	base := "/v1/accounts/" + acct
	if r := do(t, s.srv, "PUT", base+"/attestation/policy", token, map[string]any{"accept_statuses": []string{"UpToDate"}, "allow_simulation": true}); r.status != 200 {
		t.Fatalf("allowing simulation = %d %s", r.status, r.body)
	}
	r := do(t, s.srv, "POST", base+"/apps", token, map[string]any{"name": "hello", "input_image": "registry.example.com/samples/hello:1",
		"output_image": "registry.example.com/samples/hello-sgx", "certificate": map[string]any{"domain": domain}})
	if r.status != 201 {
		t.Fatalf("creating the app = %d %s", r.status, r.body)
	}
	r.decode(t, &app)
	body.MRENCLAVE[0], body.MRSIGNER[0] = 0xab, 0xcd
	img := &imageconverterv1.Image{Id: uuid.NewString(), AccountId: acct, AppId: app.ID, Tag: "1", Status: "converted",
		Mrenclave: body.MRENCLAVE[:], Mrsigner: body.MRSIGNER[:], RequestedBy: requesterID}
	ctx := context.Background()
	msg, _, err := events.NewMessage(ctx, events.Subject("imageconverter", &imageconverterv1.ImageConverted{}), "imageconverter", acct, &imageconverterv1.ImageConverted{Image: img})
	if err != nil {
		t.Fatal(err)
	}
	js := s.st.JetStream()
	if err := events.Publish(ctx, js, msg); err != nil {
		t.Fatal(err)
	}
	return app, body
}

// TestChangesOfWhoApproveThroughTheAPI: a change of approvals_required or
// a new admin is a task under the quorum in force, made at once (200/201)
// when the requester's approval suffices and accepted (202, with the task)
// while it waits; the tasks page of the console shows it with its
// progress.
func TestChangesOfWhoApproveThroughTheAPI(t *testing.T) {
	s, consoleSrv := newConsoleStack(t)
	_, ada := s.user("ada@example.com")
	bobID, bob := s.user("bob@example.com")
	acct := s.account(ada, "A")
	base := "/v1/accounts/" + acct

	r := do(t, s.srv, "PATCH", base, ada, map[string]any{"approvals_required": 1})
	if r.status != 409 || !strings.Contains(string(r.body), "quorum_unreachable") || !strings.Contains(string(r.body), "needs at least 2 admins") {
		t.Fatalf("requiring another admin's approval with one admin = %d %s, want 409 quorum_unreachable", r.status, r.body)
	}
	r = do(t, s.srv, "POST", base+"/members", ada, map[string]string{"email": "bob@example.com", "role": "admin"})
	if r.status != 201 || !strings.Contains(string(r.body), `"role":"admin"`) || !strings.Contains(string(r.body), `"applied":true`) {
		t.Fatalf("adding an admin under approvals_required 0 = %d %s, want 201, an admin by an applied task", r.status, r.body)
	}
	if r = do(t, s.srv, "PATCH", base, ada, map[string]any{"approvals_required": 1}); r.status != 200 || !strings.Contains(string(r.body), `"approvals_required":1,`) {
		t.Fatalf("requiring one other admin = %d %s, want 200", r.status, r.body)
	}

	// Under 1, lowering it back waits for bob.
	r = do(t, s.srv, "PATCH", base, ada, map[string]any{"approvals_required": 0})
	var pending struct {
		ApprovalsRequired int `json:"approvals_required"`
		Task              struct {
			ID, Kind, Status     string
			NewApprovalsRequired *int `json:"new_approvals_required"`
			ApprovalsCounted     int  `json:"approvals_counted"`
			ApprovalsRequired    int  `json:"approvals_required"`
		}
	}
	r.decode(t, &pending)
	if r.status != 202 || pending.ApprovalsRequired != 1 || pending.Task.Kind != "quorum" || pending.Task.Status != "pending" ||
		pending.Task.NewApprovalsRequired == nil || *pending.Task.NewApprovalsRequired != 0 || pending.Task.ApprovalsRequired != 1 {
		t.Fatalf("lowering to 0 under 1 = %d %s, want 202 with a pending quorum task of 0, 0/1", r.status, r.body)
	}
	if r = do(t, s.srv, "POST", base+"/tasks/"+pending.Task.ID+"/approve", ada, nil); r.status != 403 {
		t.Fatalf("ada approving her own lowering = %d %s, want 403", r.status, r.body)
	}

	// The console lists it for bob, 0 / 1, with what it changes.
	b := newConsoleClient(t, consoleSrv)
	b.login("bob@example.com")
	b.open("/a/"+acct+"/tasks").want(t, 200, "approvals required: 0", "0 / 1", "An admin other than the one who asked must approve each task")

	if r = do(t, s.srv, "POST", base+"/tasks/"+pending.Task.ID+"/approve", bob, nil); r.status != 200 || !strings.Contains(string(r.body), `"applied":true`) {
		t.Fatalf("bob approving = %d %s, want 200, applied", r.status, r.body)
	}
	if r = do(t, s.srv, "GET", base, bob, nil); !strings.Contains(string(r.body), `"approvals_required":0`) {
		t.Fatalf("the account after bob's approval = %d %s, want approvals_required 0", r.status, r.body)
	}
	// The last admin but one cannot go while the quorum needs two.
	if r = do(t, s.srv, "PATCH", base, ada, map[string]any{"approvals_required": 1}); r.status != 200 {
		t.Fatalf("requiring one other admin again = %d %s", r.status, r.body)
	}
	if r = do(t, s.srv, "DELETE", base+"/members/"+bobID, ada, nil); r.status != 409 || !strings.Contains(string(r.body), "quorum_unreachable") {
		t.Fatalf("removing the admin the quorum needs = %d %s, want 409 quorum_unreachable", r.status, r.body)
	}
}
