package attestation_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/attestation"
)

// TestApprovedImages: a verification for an application passes only while
// its measurement is an approved image of that application, following
// approval, withdrawal and deletion events as they arrive, with the
// in-process cache and with Redis.
func TestApprovedImages(t *testing.T) {
	for _, cc := range []struct {
		name string
		make func(t *testing.T) cache.Cache
	}{
		{"memory", func(*testing.T) cache.Cache { return cache.NewMemory(0) }},
		{"redis", func(t *testing.T) cache.Cache {
			r := testkit.StartRedis(t)
			return cache.NewRedis(r.Client, r.Prefix)
		}},
	} {
		t.Run(cc.name, func(t *testing.T) {
			ctx := context.Background()
			n := testkit.StartNATS(t)
			nc, js := n.JetStream(t)
			kek, _ := pki.NewKEK(bytes.Repeat([]byte{7}, pki.KEKSize))
			svc, err := attestation.Start(ctx, attestation.Config{Options: service.Options{NATS: nc, Assertions: n.Verifier("attestation")}, Simulation: true, KEK: kek, Cache: cc.make(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(svc.Stop)
			account, app, other := uuid.NewString(), uuid.NewString(), uuid.NewString()
			qe, err := svc.SimulatedQE(account)
			if err != nil {
				t.Fatal(err)
			}
			var body sgx.ReportBody
			copy(body.MRENCLAVE[:], bytes.Repeat([]byte{0xab}, 32))
			quote, err := qe.Quote(body)
			if err != nil {
				t.Fatal(err)
			}
			c := attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t))
			if _, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
				AcceptStatuses: []string{"UpToDate"}, AllowSimulation: true}}); err != nil {
				t.Fatal(err)
			}
			verifyFor := func(appID string) *attestationv1.Verdict {
				t.Helper()
				resp, err := c.Verify(ctx, &attestationv1.VerifyRequest{AccountId: account, Quote: quote, AppId: appID})
				if err != nil {
					t.Fatal(err)
				}
				return resp.GetVerdict()
			}
			eventually := func(appID string, ok bool, what string) {
				t.Helper()
				testkit.Eventually(t, 10*time.Second, func() bool { return verifyFor(appID).GetOk() == ok }, "%s", what)
			}
			if v := verifyFor(app); v.GetOk() || v.GetReason() != "image_not_approved" {
				t.Fatalf("before approval: %v, want image_not_approved", v)
			}
			if v := verifyFor(""); !v.GetOk() || v.GetAppId() != "" {
				t.Fatalf("without an application: %v, want ok and no app", v)
			}

			task := &accountv1.Task{Id: uuid.NewString(), AccountId: account, Kind: "image", Status: "approved", AppId: app,
				Image: &accountv1.TaskImage{ImageId: uuid.NewString(), Tag: "1", Mrenclave: body.MRENCLAVE[:], Mrsigner: body.MRSIGNER[:]}}
			publish(t, js, "account", account, &accountv1.TaskApproved{Task: task})
			eventually(app, true, "the approved image is accepted")
			if v := verifyFor(app); v.GetAppId() != app || v.GetImageId() != task.GetImage().GetImageId() {
				t.Fatalf("verdict of an approved image = %v, want app %s image %s", v, app, task.GetImage().GetImageId())
			}
			if v := verifyFor(other); v.GetOk() {
				t.Fatalf("an image approved for one application passes for another: %v", v)
			}
			// The same measurement under another signer is another enclave.
			resigned := body
			resigned.MRSIGNER[0] ^= 1
			q2, err := qe.Quote(resigned)
			if err != nil {
				t.Fatal(err)
			}
			if r, err := c.Verify(ctx, &attestationv1.VerifyRequest{AccountId: account, Quote: q2, AppId: app}); err != nil || r.GetVerdict().GetReason() != "image_not_approved" {
				t.Fatalf("the approved MRENCLAVE under another MRSIGNER = %v, %v; want image_not_approved", r, err)
			}
			// Another account's approval of the same measurement is not this account's.
			if resp, err := c.Verify(ctx, &attestationv1.VerifyRequest{AccountId: other, Quote: quote, AppId: app}); err != nil || resp.GetVerdict().GetAppId() != "" {
				t.Fatalf("another account sees the approval: %v, %v", resp, err)
			}

			publish(t, js, "account", account, &accountv1.TaskWithdrawn{Task: task})
			eventually(app, false, "the withdrawn image is refused")

			// A late (retried) approval of the withdrawn task changes nothing:
			// the withdrawal is final. Approving again takes a new task.
			publish(t, js, "account", account, &accountv1.TaskApproved{Task: task})
			again := proto.Clone(task).(*accountv1.Task)
			again.Id = uuid.NewString()
			publish(t, js, "account", account, &accountv1.TaskApproved{Task: again})
			eventually(app, true, "the image approved by a new task is accepted")
			if v := verifyFor(app); v.GetImageId() != task.GetImage().GetImageId() {
				t.Fatalf("verdict = %v", v)
			}
			publish(t, js, "imageconverter", account, &imageconverterv1.ImageDeleted{AccountId: account, AppId: app, ImageId: task.GetImage().GetImageId()})
			eventually(app, false, "the deleted image is refused")

			third := proto.Clone(task).(*accountv1.Task)
			third.Id = uuid.NewString()
			publish(t, js, "account", account, &accountv1.TaskApproved{Task: third})
			eventually(app, true, "the image approved again is accepted")
			publish(t, js, "imageconverter", account, &imageconverterv1.AppDeleted{AccountId: account, AppId: app})
			eventually(app, false, "the deleted application's image is refused")
		})
	}
}

func publish(t testing.TB, js jetstream.JetStream, producer, account string, m proto.Message) {
	t.Helper()
	msg, _, err := events.NewMessage(context.Background(), events.Subject(producer, m), producer, account, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Publish(context.Background(), js, msg); err != nil {
		t.Fatal(err)
	}
}
