package imageconverter_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit/servicetest"
	"github.com/cloister-cc/cloister/services/imageconverter"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/store"
)

// TestOutboxRecoveredWithoutRestart: an event whose publish failed after
// its write committed is delivered by the service's periodic outbox
// recovery, while the service runs on.
func TestOutboxRecoveredWithoutRestart(t *testing.T) {
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{5}, pki.KEKSize))
	servicetest.CheckOutboxRecovery(t, servicetest.OutboxRecovery[*imageconverter.Service]{
		Name: "imageconverter",
		Start: func(ctx context.Context, o service.Options) (*imageconverter.Service, error) {
			return imageconverter.Start(ctx, imageconverter.Config{Options: o, KEK: kek, GenerateKey: reuseKey})
		},
		Write: func(t *testing.T, nc *nats.Conn, vouch natsrpc.CallOption) {
			if _, err := imageconverterv1.NewImageConverterClient(nc, vouch).CreateApp(context.Background(), &imageconverterv1.CreateAppRequest{AccountId: uuid.NewString(),
				Spec: helloSpec(), Actor: actor}); err != nil {
				t.Fatal(err)
			}
		},
		Producer: store.Producer, Event: &imageconverterv1.AppCreated{},
	})
}
