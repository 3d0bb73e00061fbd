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
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/imageconverter"
	"github.com/cloister-cc/cloister/services/imageconverter/client"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/store"
)

// TestOutboxRecoveredWithoutRestart: an event whose publish failed after
// its write committed is delivered by the service's periodic outbox
// recovery, while the service runs on.
func TestOutboxRecoveredWithoutRestart(t *testing.T) {
	n := testkit.StartNATS(t)
	nc, js := n.JetStream(t)
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{5}, pki.KEKSize))
	fail, failed := testkit.FailFirstPublish()
	svc, err := imageconverter.Start(context.Background(), imageconverter.Config{NATS: nc, KEK: kek, GenerateKey: reuseKey,
		RecoverEvery: 100 * time.Millisecond, KVOptions: []kv.Option{fail}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)

	c := client.New(n.Connect(t))
	if _, err := c.CreateApp(context.Background(), &imageconverterv1.CreateAppRequest{AccountId: uuid.NewString(), Spec: helloSpec(), Actor: actor}); err != nil {
		t.Fatal(err)
	}
	if !failed() {
		t.Fatal("creating the app published without the injected failure")
	}
	testkit.WaitForEvent(t, js, store.Producer, &imageconverterv1.AppCreated{}, 20*time.Second)
}
