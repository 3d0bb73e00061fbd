// Package events publishes and consumes Cloister's domain events and audit
// records on NATS JetStream.
//
// Every event travels in an eventsv1.Envelope whose id (a UUIDv7) is also the
// Nats-Msg-Id, so a retried publish is stored once, and whose type is the
// payload's full protobuf name. Trace context travels in the NATS headers.
//
// Consume runs a durable consumer with explicit acks, bounded redelivery with
// back-off and a dead-letter copy of every message it gives up on; Watch
// follows new events in every process (cache invalidation) without acks.
package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// Stream names and the dead-letter headers.
const (
	StreamEvents      = "EVENTS"      // subjects "events.>", limits retention
	StreamAudit       = "AUDIT"       // subjects "audit.>", kept forever
	StreamDeadLetters = "DEADLETTERS" // subjects "deadletter.>"
	StreamJobs        = "JOBS"        // subjects "jobs.>", a work queue: each job goes to one worker

	// HeaderDeadReason is the error that made the consumer give up.
	HeaderDeadReason = "Cloister-Dead-Reason"
	// HeaderDeadSubject is the subject the message was originally published on.
	HeaderDeadSubject = "Cloister-Dead-Subject"
	// HeaderDeadConsumer is the durable name of the consumer that gave up.
	HeaderDeadConsumer = "Cloister-Dead-Consumer"
)

// Retention of the streams. Events are kept long enough for a consumer that
// was down for a while to catch up; dead letters outlive the events they copy
// so an operator can still replay them.
const (
	eventsMaxAge      = 30 * 24 * time.Hour
	deadLettersMaxAge = 90 * 24 * time.Hour
	duplicateWindow   = 2 * time.Minute
)

// JobSubject returns the subject of a job: "jobs.<service>.<kind>".
func JobSubject(service, kind string) string { return "jobs." + service + "." + kind }

// Subject returns the subject of an event: "events.<producer>.v1.<Name>",
// where Name is the last element of the payload's protobuf message name.
func Subject(producer string, m proto.Message) string {
	return "events." + producer + ".v1." + string(proto.MessageName(m).Name())
}

// AuditSubject returns the subject of an audit record:
// "audit.<accountID>.<producer>", with "_" for records of no account.
func AuditSubject(accountID, producer string) string {
	if accountID == "" {
		accountID = "_"
	}
	return "audit." + accountID + "." + producer
}

// DeadLetterSubject returns the subject on which Consume stores what the
// durable consumer of stream gave up on: "deadletter.<stream>.<durable>".
func DeadLetterSubject(stream, durable string) string {
	return "deadletter." + stream + "." + durable
}

// Open returns a JetStream context on nc with the streams ensured: what
// every service does first at start-up.
func Open(ctx context.Context, nc *nats.Conn, replicas int) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("opening jetstream: %w", err)
	}
	if err := EnsureStreams(ctx, js, replicas); err != nil {
		return nil, err
	}
	return js, nil
}

// EnsureStreams creates the EVENTS, AUDIT and DEADLETTERS streams, or updates
// them to the configuration declared here: file storage, the given number of
// replicas (0 means 1; an existing stream keeps more if it has them) and a
// two-minute duplicate window. It is idempotent.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if replicas < 0 {
		return fmt.Errorf("ensuring streams: replicas %d is negative", replicas)
	}
	if replicas == 0 {
		replicas = 1
	}
	for _, cfg := range streamConfigs(replicas) {
		// Every service ensures the shared streams as it starts. A stream
		// already as declared is left alone: an update, even to the same
		// config, rewrites the server's store config while other services
		// create consumers on it (nats-server 2.15 races there, which the
		// race detector caught when services started together).
		if st, err := js.Stream(ctx, cfg.Name); err == nil {
			have := st.CachedInfo().Config
			// No process makes a stream less redundant: one that
			// asks for fewer replicas than the stream has (started
			// without the deployment's --replicas, say) leaves it as
			// it is. Scaling down is an operator's decision.
			cfg.Replicas = max(cfg.Replicas, have.Replicas)
			if sameStream(have, cfg) {
				continue
			}
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensuring stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// sameStream reports whether have is want in every field want declares.
func sameStream(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Discard == want.Discard && have.Storage == want.Storage &&
		have.Replicas == want.Replicas && have.Duplicates == want.Duplicates && have.MaxAge == want.MaxAge
}

func streamConfigs(replicas int) []jetstream.StreamConfig {
	base := jetstream.StreamConfig{
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		Storage:    jetstream.FileStorage,
		Replicas:   replicas,
		Duplicates: duplicateWindow,
	}
	evts, audit, dead, jobs := base, base, base, base

	evts.Name = StreamEvents
	evts.Description = "Cloister domain events"
	evts.Subjects = []string{"events.>"}
	evts.MaxAge = eventsMaxAge

	audit.Name = StreamAudit
	audit.Description = "Cloister audit log"
	audit.Subjects = []string{"audit.>"}

	dead.Name = StreamDeadLetters
	dead.Description = "Messages that Cloister consumers gave up on"
	dead.Subjects = []string{"deadletter.>"}
	dead.MaxAge = deadLettersMaxAge

	jobs.Name = StreamJobs
	jobs.Description = "Cloister work queue (conversions)"
	jobs.Subjects = []string{"jobs.>"}
	jobs.Retention = jetstream.WorkQueuePolicy

	return []jetstream.StreamConfig{evts, audit, dead, jobs}
}

// DeadLetters returns up to max dead letters currently stored for the
// durable consumer of stream, oldest first. Each is the original body and
// headers plus the HeaderDead* headers; its Nats-Msg-Id is not the
// original's but "<stream>.<durable>.<original stream sequence>".
func DeadLetters(ctx context.Context, js jetstream.JetStream, stream, durable string, max int) ([]*jetstream.RawStreamMsg, error) {
	if max <= 0 {
		return nil, fmt.Errorf("reading dead letters: max %d is not positive", max)
	}
	s, err := js.Stream(ctx, StreamDeadLetters)
	if err != nil {
		return nil, fmt.Errorf("reading dead letters: %w", err)
	}
	subject := DeadLetterSubject(stream, durable)
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); len(out) < max; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("reading dead letters of %s: %w", subject, err)
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
	return out, nil
}
