package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/cloister-cc/cloister/libs/gen/cloister/events/v1"
	"github.com/cloister-cc/cloister/libs/natsrpc"
)

// NewMessage builds a message ready to publish on subject: its body is an
// Envelope holding payload (a new UUIDv7 id, the payload's full protobuf
// name as type, accountID, the current time, producer), its Nats-Msg-Id is
// the envelope id, and its headers carry the trace context of ctx as
// injected by the global OpenTelemetry propagator. It returns the message
// and the envelope.
//
// Publishing the same message again (a retry) is stored once.
func NewMessage(ctx context.Context, subject, producer, accountID string, payload proto.Message) (*nats.Msg, *eventsv1.Envelope, error) {
	if subject == "" {
		return nil, nil, errors.New("building event: empty subject")
	}
	if payload == nil {
		return nil, nil, errors.New("building event: nil payload")
	}
	body, err := proto.Marshal(payload)
	if err != nil {
		return nil, nil, fmt.Errorf("marshalling %s: %w", proto.MessageName(payload), err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, nil, fmt.Errorf("generating event id: %w", err)
	}
	env := &eventsv1.Envelope{
		Id:         id.String(),
		Type:       string(proto.MessageName(payload)),
		AccountId:  accountID,
		OccurredAt: timestamppb.New(time.Now().UTC()),
		Producer:   producer,
		Payload:    body,
	}
	data, err := proto.Marshal(env)
	if err != nil {
		return nil, nil, fmt.Errorf("marshalling envelope: %w", err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, env.Id)
	otel.GetTextMapPropagator().Inject(ctx, natsrpc.HeaderCarrier(msg.Header))
	return msg, env, nil
}

// Publish publishes msg to JetStream and waits for the stream's ack. A
// duplicate (same Nats-Msg-Id within the duplicate window) is acknowledged
// by the server without being stored again, and is not an error. Without a
// deadline on ctx, the JetStream context's default timeout applies.
func Publish(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) error {
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publishing to %s: %w", msg.Subject, err)
	}
	return nil
}

// Event is one delivered event.
type Event struct {
	Envelope *eventsv1.Envelope
	Subject  string
	Header   nats.Header
	Delivery uint64 // 1 on first delivery
}

// Decode unmarshals the payload into m. It is an error if the envelope's
// type is not m's protobuf message name.
func (e Event) Decode(m proto.Message) error {
	if e.Envelope == nil {
		return errors.New("decoding event payload: no envelope")
	}
	want := proto.MessageName(m)
	if e.Envelope.Type != string(want) {
		return fmt.Errorf("decoding event payload: event %s is a %s, not a %s", e.Envelope.Id, e.Envelope.Type, want)
	}
	if err := proto.Unmarshal(e.Envelope.Payload, m); err != nil {
		return fmt.Errorf("decoding event payload %s: %w", want, err)
	}
	return nil
}

// DecodeMessage decodes a message body as an Envelope and checks that it is
// one: a UUID id, a valid protobuf message name as type and a valid
// occurred-at time. The payload itself is decoded later, by Event.Decode.
// The Event's Delivery is left 0; consumers fill it in.
func DecodeMessage(subject string, h nats.Header, data []byte) (Event, error) {
	if len(data) == 0 {
		return Event{}, errors.New("decoding envelope: empty body")
	}
	env := &eventsv1.Envelope{}
	if err := proto.Unmarshal(data, env); err != nil {
		return Event{}, fmt.Errorf("decoding envelope: %w", err)
	}
	if _, err := uuid.Parse(env.Id); err != nil {
		return Event{}, fmt.Errorf("decoding envelope: id %q: %w", env.Id, err)
	}
	if !protoreflect.FullName(env.Type).IsValid() {
		return Event{}, fmt.Errorf("decoding envelope %s: type %q is not a protobuf message name", env.Id, env.Type)
	}
	if env.OccurredAt == nil {
		return Event{}, fmt.Errorf("decoding envelope %s: no occurred-at time", env.Id)
	}
	if err := env.OccurredAt.CheckValid(); err != nil {
		return Event{}, fmt.Errorf("decoding envelope %s: occurred-at: %w", env.Id, err)
	}
	return Event{Envelope: env, Subject: subject, Header: h}, nil
}
