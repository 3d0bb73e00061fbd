package imageconverter_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/imageconverter"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/store"
)

// TestOutboxRecoveredWithoutRestart: an event whose publish failed after
// its write committed is delivered by the service's periodic outbox
// recovery, while the service runs on.
func TestOutboxRecoveredWithoutRestart(t *testing.T) {
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{5}, pki.KEKSize))
	testkit.CheckOutboxRecovery(t, testkit.OutboxRecovery{
		Start: func(t *testing.T, n *testkit.NATS, every time.Duration, opts []kv.Option) {
			svc, err := imageconverter.Start(context.Background(), imageconverter.Config{Options: service.Options{NATS: n.Connect(t), RecoverEvery: every, KVOptions: opts}, KEK: kek, GenerateKey: reuseKey})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(svc.Stop)
		},
		Write: func(t *testing.T, n *testkit.NATS) {
			if _, err := imageconverterv1.NewImageConverterClient(n.Connect(t)).CreateApp(context.Background(), &imageconverterv1.CreateAppRequest{AccountId: uuid.NewString(),
				Spec: helloSpec(), Actor: actor}); err != nil {
				t.Fatal(err)
			}
		},
		Producer: store.Producer, Event: &imageconverterv1.AppCreated{},
	})
}
