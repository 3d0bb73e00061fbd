// Package kv is a typed store on a JetStream key-value bucket, with
// optimistic concurrency and a transactional outbox.
//
// Every write may carry messages (domain events, audit records) that must
// be published if, and only if, the write commits. They are stored inside
// the record by the same atomic put and published right after it. A small
// hint bucket (<bucket>_outbox) remembers writes whose messages may still
// be unpublished: a hint naming the write's key is written before its
// record and deleted once its messages are published, so a process that
// dies between the write and the publish publishes them when a store on
// the bucket is next opened. Writes that need a hint while another is
// being written share the next one (one put and one delete for them all).
// Each message names its write's hint; the record keeps its messages after
// they are published (clearing them would cost another write), and the
// next write of the key carries forward only those whose hint is still
// there, unpublished. Messages carry Nats-Msg-Id, so a re-publish within
// the stream's duplicate window is stored once, and consumers are
// idempotent past it.
package kv

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/natsrpc"
)

// outboxHints is the outbox's backlog as each recovery pass finds it:
// what operators watch for events that do not get published
// (docs/operations.md).
var outboxHints, _ = otel.Meter("github.com/cloister-cc/cloister/libs/kv").Int64Gauge("cloister.outbox.hints",
	metric.WithDescription("Outbox hints a store's last recovery pass found: writes whose events may not be published yet"))

// Errors returned by the store, matched with errors.Is.
var (
	ErrNotFound = errs.Define(errs.NotFound, "record_not_found", "not found")
	ErrExists   = errs.Define(errs.Conflict, "record_exists", "already exists")
	ErrConflict = errs.Define(errs.Conflict, "record_changed", "changed by another request; reload and retry")
)

// Entry is a stored value with its version. The version is an opaque
// number that changes with every write of the value, and is what Update
// and Delete expect. It is random rather than a counter so that a key
// deleted and created again never repeats an old version; clearing the
// outbox rewrites the record without changing it.
type Entry[T any] struct {
	Key     string
	Value   T
	Version uint64
}

// Config names the bucket and its replication.
type Config struct {
	Bucket   string
	Replicas int // default 1
	// TTL, when set, removes entries that many seconds after their last
	// write (sessions, for instance, need no sweeper).
	TTL time.Duration
}

// Option configures a Store.
type Option func(*options)

type options struct {
	logger        *slog.Logger
	afterCommit   func()
	failPublish   func() bool
	recoveryGrace time.Duration
	registry      Registry
	decodedCache  int
}

// Recoverer is a store whose outbox can be recovered: every Store.
type Recoverer interface {
	Recover(ctx context.Context) error
}

// Registry is told of every store opened with WithRegistry, so that one
// place (libs/service's runner) recovers all of a service's outboxes.
type Registry interface {
	Register(bucket string, r Recoverer)
}

// WithRegistry registers the store with r once it is open.
func WithRegistry(r Registry) Option { return func(o *options) { o.registry = r } }

// WithFailPublish makes the publish right after a commit fail whenever f
// returns true, as a lost connection would, leaving the messages to
// recovery. It exists for tests.
func WithFailPublish(f func() bool) Option { return func(o *options) { o.failPublish = f } }

// DefaultRecoveryGrace is how old an outbox hint must be before recovery
// may delete it: a younger one may belong to a write still under way.
const DefaultRecoveryGrace = 30 * time.Second

// WithRecoveryGrace sets how old a hint must be before Recover deletes it.
func WithRecoveryGrace(d time.Duration) Option { return func(o *options) { o.recoveryGrace = d } }

// flushTimeout bounds publishing a write's outbox, which goes on even if
// the caller's context ends: the write has committed.
const flushTimeout = 10 * time.Second

// WithDecodedCache makes Get keep the decoded entries of up to n keys by
// KV revision, so that a value read again unchanged costs the read but
// not its decoding: for large values read far more often than written
// (collateral). The read still goes to the bucket, so a change is seen at
// once. Entries from the cache share their memory: callers must not
// modify what a value's slices and maps hold.
func WithDecodedCache(n int) Option { return func(o *options) { o.decodedCache = n } }

// WithLogger sets where publish failures are logged; by default nowhere.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithAfterCommit runs f after a write with messages commits and before
// they are published. It exists so tests can kill a process at exactly
// that point; production code has no use for it.
func WithAfterCommit(f func()) Option { return func(o *options) { o.afterCommit = f } }

// Store is a typed view of one bucket. Values are stored as JSON.
type Store[T any] struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	hints  jetstream.KeyValue
	bucket string
	// subject is where the bucket's keys are written: "$KV.<bucket>.".
	subject string
	// replicated: the bucket has more than one replica, so reads go to
	// its leader (leaderGet).
	replicated bool
	opts       options

	decodedMu sync.Mutex
	decoded   map[string]decodedEntry[T] // WithDecodedCache: by key

	hinter hinter
}

// decodedEntry is a decoded entry and the KV revision it was read at.
type decodedEntry[T any] struct {
	revision uint64
	entry    Entry[T]
	deleted  bool
}

// record is what the bucket holds under each key: the value, and the
// messages of its last write (the outbox).
type record struct {
	recordValue
	Outbox []outboxMsg `json:"outbox,omitempty"`
}

type outboxMsg struct {
	ID      string      `json:"id"`
	Subject string      `json:"subject"`
	Header  nats.Header `json:"header,omitempty"`
	Data    []byte      `json:"data"`
	// Hint is the hint of the write that made the message: while it is
	// there, the message may be unpublished. Empty in records written
	// before hints were named, whose messages were cleared once published.
	Hint string `json:"hint,omitempty"`
}

// encode is json.Marshal(r) made by hand around the value, which is
// already compact JSON (from json.Marshal, or a record read back):
// encoding/json would scan it again to compact it, a twentieth of a
// write's CPU. TestRecordEncoding holds the two equal.
func (r *record) encode() ([]byte, error) {
	var outbox []byte
	if len(r.Outbox) > 0 {
		var err error
		if outbox, err = json.Marshal(r.Outbox); err != nil {
			return nil, err
		}
	}
	b := make([]byte, 0, len(r.Value)+len(outbox)+48)
	b = append(b, '{')
	if len(r.Value) > 0 {
		b = append(b, `"v":`...)
		b = append(b, r.Value...)
		b = append(b, ',')
	}
	b = append(b, `"ver":`...)
	b = strconv.AppendUint(b, r.Version, 10)
	if r.Deleted {
		b = append(b, `,"del":true`...)
	}
	if outbox != nil {
		b = append(b, `,"outbox":`...)
		b = append(b, outbox...)
	}
	return append(b, '}'), nil
}

// recordValue is a record without its outbox: what reads of the value
// decode.
type recordValue struct {
	Value   json.RawMessage `json:"v,omitempty"`
	Version uint64          `json:"ver"`
	Deleted bool            `json:"del,omitempty"`
}

// Open creates or updates the bucket and its hint bucket, then publishes
// whatever an earlier process left unpublished.
func Open[T any](ctx context.Context, js jetstream.JetStream, cfg Config, opts ...Option) (*Store[T], error) {
	if cfg.Bucket == "" {
		return nil, errors.New("kv: bucket name is required")
	}
	replicas := max(cfg.Replicas, 1)
	// No process makes a bucket less redundant (EnsureStreams' rule):
	// one that asks for fewer replicas than it has leaves them.
	if st, err := js.Stream(ctx, "KV_"+cfg.Bucket); err == nil {
		replicas = max(replicas, st.CachedInfo().Config.Replicas)
	}
	s := &Store[T]{js: js, bucket: cfg.Bucket, subject: "$KV." + cfg.Bucket + ".", replicated: replicas > 1,
		opts: options{recoveryGrace: DefaultRecoveryGrace}}
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.logger == nil {
		s.opts.logger = slog.New(slog.DiscardHandler)
	}
	var err error
	s.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: cfg.Bucket, Storage: jetstream.FileStorage, Replicas: replicas, TTL: cfg.TTL,
	})
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", cfg.Bucket, err)
	}
	s.hints, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: OutboxBucket(cfg.Bucket), Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", OutboxBucket(cfg.Bucket), err)
	}
	if err := s.Recover(ctx); err != nil {
		return nil, err
	}
	if s.opts.registry != nil {
		s.opts.registry.Register(cfg.Bucket, s)
	}
	return s, nil
}

// Recover publishes the messages of every write that has a hint left, as
// after a crash. Open calls it; a service's runner (libs/service) calls it
// periodically, which also catches a publish that failed while the
// process lived on.
//
// A hint names the keys of the writes that shared it, one per line. It is
// deleted once every one of them was found committed with its messages
// (and those published), or else once it is older than the recovery
// grace: a younger one may belong to a write not yet committed, whose
// writer could still die after committing.
func (s *Store[T]) Recover(ctx context.Context) error {
	lister, err := s.hints.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		outboxHints.Record(ctx, 0, metric.WithAttributes(attribute.String("bucket", s.bucket)))
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing outbox hints of %s: %w", s.bucket, err)
	}
	var hints []string
	for k := range lister.Keys() {
		hints = append(hints, k)
	}
	outboxHints.Record(ctx, int64(len(hints)), metric.WithAttributes(attribute.String("bucket", s.bucket)))
	for _, h := range hints {
		e, err := s.hints.Get(ctx, h)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // flushed meanwhile by the writer
		}
		if err != nil {
			return fmt.Errorf("reading outbox hint %s: %w", h, err)
		}
		all := true
		for _, key := range strings.Split(string(e.Value()), "\n") {
			found, err := s.recoverHint(ctx, key, h)
			if err != nil {
				return fmt.Errorf("recovering outbox of %s/%s: %w", s.bucket, key, err)
			}
			all = all && found
		}
		if all || time.Since(e.Created()) >= s.opts.recoveryGrace {
			if err := s.hints.Delete(ctx, h, jetstream.LastRevision(e.Revision())); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("deleting outbox hint %s: %w", h, err)
			}
		}
	}
	return nil
}

// recoverHint publishes what key's record holds unpublished, if it holds
// messages of hint, and says whether it did.
func (s *Store[T]) recoverHint(ctx context.Context, key, hint string) (bool, error) {
	r, rev, err := s.getRecord(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil // nothing committed under this hint, or already drained
	}
	if err != nil {
		return false, err
	}
	if !slices.ContainsFunc(r.Outbox, func(m outboxMsg) bool { return m.Hint == hint }) {
		return false, nil
	}
	if r.Outbox, err = s.unpublished(ctx, r.Outbox); err != nil {
		return false, err
	}
	return true, s.flushFrom(ctx, key, &r, rev)
}

// unpublished keeps of msgs those whose hint is still there (and those of
// no hint, from before hints were named): the others were published.
func (s *Store[T]) unpublished(ctx context.Context, msgs []outboxMsg) ([]outboxMsg, error) {
	live := map[string]bool{}
	for _, m := range msgs {
		if _, checked := live[m.Hint]; checked || m.Hint == "" {
			continue
		}
		_, err := s.hints.Get(ctx, m.Hint)
		switch {
		case err == nil:
			live[m.Hint] = true
		case errors.Is(err, jetstream.ErrKeyNotFound):
			live[m.Hint] = false
		default:
			return nil, fmt.Errorf("reading outbox hint %s: %w", m.Hint, err)
		}
	}
	return slices.DeleteFunc(slices.Clone(msgs), func(m outboxMsg) bool { return m.Hint != "" && !live[m.Hint] }), nil
}

func (s *Store[T]) getRecord(ctx context.Context, key string) (record, uint64, error) {
	e, err := s.getRaw(ctx, key)
	if err != nil {
		return record{}, 0, err
	}
	r, err := s.decodeRecord(key, e.Value())
	return r, e.Revision(), err
}

func (s *Store[T]) getRaw(ctx context.Context, key string) (rawEntry, error) {
	if !validKey(key) {
		return rawEntry{}, ErrNotFound
	}
	if s.replicated {
		e, err := s.leaderGet(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return rawEntry{}, fmt.Errorf("reading %s/%s: %w", s.bucket, key, err)
		}
		return e, err
	}
	// One replica: a direct get is answered by the stream itself, and
	// costs less.
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rawEntry{}, ErrNotFound
	}
	if err != nil {
		return rawEntry{}, fmt.Errorf("reading %s/%s: %w", s.bucket, key, err)
	}
	return rawEntry{value: e.Value(), revision: e.Revision()}, nil
}

func (s *Store[T]) decodeRecord(key string, b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("decoding %s/%s: %w", s.bucket, key, err)
	}
	return r, nil
}

// decodeValue decodes a record but its outbox.
func (s *Store[T]) decodeValue(key string, b []byte) (recordValue, error) {
	var r recordValue
	if err := json.Unmarshal(b, &r); err != nil {
		return recordValue{}, fmt.Errorf("decoding %s/%s: %w", s.bucket, key, err)
	}
	return r, nil
}

func (s *Store[T]) decode(key string, r recordValue) (Entry[T], error) {
	var v T
	if err := json.Unmarshal(r.Value, &v); err != nil {
		return Entry[T]{}, fmt.Errorf("decoding value of %s/%s: %w", s.bucket, key, err)
	}
	return Entry[T]{Key: key, Value: v, Version: r.Version}, nil
}

// Get returns the entry under key, or ErrNotFound.
func (s *Store[T]) Get(ctx context.Context, key string) (Entry[T], error) {
	if s.opts.decodedCache > 0 {
		return s.getCached(ctx, key)
	}
	e, err := s.getRaw(ctx, key)
	if err != nil {
		return Entry[T]{}, err
	}
	r, err := s.decodeValue(key, e.Value())
	if err != nil {
		return Entry[T]{}, err
	}
	if r.Deleted {
		return Entry[T]{}, ErrNotFound
	}
	return s.decode(key, r)
}

// getCached is Get with WithDecodedCache: the read, then the decoding
// only when the revision is not the one decoded last.
func (s *Store[T]) getCached(ctx context.Context, key string) (Entry[T], error) {
	e, err := s.getRaw(ctx, key)
	if err != nil {
		return Entry[T]{}, err
	}
	s.decodedMu.Lock()
	d, ok := s.decoded[key]
	s.decodedMu.Unlock()
	if !ok || d.revision != e.Revision() {
		r, err := s.decodeValue(key, e.Value())
		if err != nil {
			return Entry[T]{}, err
		}
		d = decodedEntry[T]{revision: e.Revision(), deleted: r.Deleted}
		if !r.Deleted {
			if d.entry, err = s.decode(key, r); err != nil {
				return Entry[T]{}, err
			}
		}
		s.decodedMu.Lock()
		if s.decoded == nil || len(s.decoded) >= s.opts.decodedCache {
			s.decoded = map[string]decodedEntry[T]{}
		}
		s.decoded[key] = d
		s.decodedMu.Unlock()
	}
	if d.deleted {
		return Entry[T]{}, ErrNotFound
	}
	return d.entry, nil
}

// Create stores v under a new key; ErrExists if the key is taken.
func (s *Store[T]) Create(ctx context.Context, key string, v T, msgs ...*nats.Msg) (Entry[T], error) {
	if !validKey(key) {
		return Entry[T]{}, errs.Newf(errs.Invalid, "invalid key %q", key)
	}
	// Most keys are new (ids made for the occasion): write at once, and
	// read first only when the key turns out to be taken, perhaps by a
	// deleted record whose messages must be carried forward.
	e, err := s.write(ctx, key, 0, record{}, &v, msgs)
	if !errors.Is(err, ErrConflict) {
		return e, err
	}
	r, rev, err := s.getRecord(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		r, rev = record{}, 0
	case err != nil:
		return Entry[T]{}, err
	case !r.Deleted:
		return Entry[T]{}, ErrExists
	}
	// A deleted record whose messages are not yet flushed is replaced, its
	// messages carried forward.
	e, err = s.write(ctx, key, rev, r, &v, msgs)
	if rev == 0 && errors.Is(err, ErrConflict) {
		// Another request created the key between the read and the write.
		return Entry[T]{}, ErrExists
	}
	return e, err
}

// Update replaces the value under key if its version is still version.
func (s *Store[T]) Update(ctx context.Context, key string, v T, version uint64, msgs ...*nats.Msg) (Entry[T], error) {
	r, rev, err := s.getRecord(ctx, key)
	if err != nil {
		return Entry[T]{}, err
	}
	if r.Deleted {
		return Entry[T]{}, ErrNotFound
	}
	if r.Version != version {
		return Entry[T]{}, ErrConflict
	}
	return s.write(ctx, key, rev, r, &v, msgs)
}

// Take reads key and deletes it if nobody changed it meanwhile: of two
// racing takers one gets the value, the other ErrNotFound, as does a key
// that is not there. For what is used once (nonces).
func (s *Store[T]) Take(ctx context.Context, key string) (T, error) {
	var zero T
	e, err := s.Get(ctx, key)
	if err != nil {
		return zero, err
	}
	if err := s.Delete(ctx, key, e.Version); errors.Is(err, ErrConflict) {
		return zero, ErrNotFound
	} else if err != nil {
		return zero, err
	}
	return e.Value, nil
}

// Delete removes the entry under key if its version is still version. The
// messages are published before the key disappears.
func (s *Store[T]) Delete(ctx context.Context, key string, version uint64, msgs ...*nats.Msg) error {
	r, rev, err := s.getRecord(ctx, key)
	if err != nil {
		return err
	}
	if r.Deleted {
		return ErrNotFound
	}
	if r.Version != version {
		return ErrConflict
	}
	_, err = s.write(ctx, key, rev, r, nil, msgs)
	return err
}

// write commits a new record (v nil means deletion) over revision rev
// (0: the key must not exist), then publishes its outbox.
func (s *Store[T]) write(ctx context.Context, key string, rev uint64, prev record, v *T, msgs []*nats.Msg) (Entry[T], error) {
	carried, err := s.unpublished(ctx, prev.Outbox)
	if err != nil {
		return Entry[T]{}, err
	}
	next := record{recordValue: recordValue{Version: newVersion(prev.Version)}, Outbox: carried}
	if v == nil {
		next.Deleted = true
	} else {
		b, err := json.Marshal(v)
		if err != nil {
			return Entry[T]{}, fmt.Errorf("encoding value for %s/%s: %w", s.bucket, key, err)
		}
		next.Value = b
	}
	own := make([]outboxMsg, len(msgs))
	for i, m := range msgs {
		id := m.Header.Get(jetstream.MsgIDHeader)
		if id == "" {
			return Entry[T]{}, fmt.Errorf("outbox message for %s has no %s header", m.Subject, jetstream.MsgIDHeader)
		}
		own[i] = outboxMsg{ID: id, Subject: m.Subject, Header: m.Header, Data: m.Data}
	}
	var (
		hint  string
		group *hintGroup
	)
	if len(carried)+len(own) > 0 {
		// The hint goes first: if the process dies after the record
		// commits, the hint is what leads recovery to it.
		if group, err = s.hint(ctx, key); err != nil {
			return Entry[T]{}, fmt.Errorf("writing outbox hint for %s/%s: %w", s.bucket, key, err)
		}
		hint = group.id
		for i := range own {
			own[i].Hint = hint
		}
		next.Outbox = append(next.Outbox, own...)
	}
	data, err := next.encode()
	if err != nil {
		if group != nil {
			_ = s.done(context.WithoutCancel(ctx), group, false)
		}
		return Entry[T]{}, fmt.Errorf("encoding record %s/%s: %w", s.bucket, key, err)
	}

	if group == nil && next.Deleted {
		if err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
			return Entry[T]{}, s.casError(key, err)
		}
		return Entry[T]{Key: key}, nil
	}

	committed, err := s.put(ctx, key, data, rev)
	if err != nil {
		err = s.casError(key, err)
		// Only a refused write certainly did not commit; after any other
		// failure (a timeout, say) it may have, and the hint must stay
		// for recovery to find its messages.
		if group != nil {
			_ = s.done(context.WithoutCancel(ctx), group, !errors.Is(err, ErrConflict))
		}
		return Entry[T]{}, err
	}
	if s.opts.afterCommit != nil && hint != "" {
		s.opts.afterCommit()
	}
	if hint != "" {
		// The write has committed: publish even if the caller gives up.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
		var err error
		if s.opts.failPublish != nil && s.opts.failPublish() {
			err = errors.New("publish failed (injected by a test)")
		} else {
			err = s.flushFrom(fctx, key, &next, committed)
		}
		if derr := s.done(fctx, group, err != nil); err == nil {
			err = derr
		}
		cancel()
		if err != nil {
			// The hint stays; the service runner's recovery or the next open publishes.
			// The caller's change succeeded.
			s.opts.logger.WarnContext(ctx, "publishing outbox", "bucket", s.bucket, "key", key, "error", err)
		}
	}
	if next.Deleted {
		return Entry[T]{Key: key}, nil
	}
	// The value written is the caller's: no need to decode what was just
	// encoded.
	return Entry[T]{Key: key, Value: *v, Version: next.Version}, nil
}

// put writes data under key over revision rev (0: a new key) and returns
// the new revision. It publishes to the bucket's subject, as the KV API
// does, but asynchronously: concurrent writes then share the connection's
// flushes and acknowledgements rather than each waiting on its own
// request, which took a third of a write's CPU. A key whose last revision
// is a deletion marker is left to the KV API's Create, which knows them.
func (s *Store[T]) put(ctx context.Context, key string, data []byte, rev uint64) (uint64, error) {
	m := nats.NewMsg(s.subject + key)
	m.Data = data
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
	f, err := s.js.PublishMsgAsync(m)
	if err == nil {
		// An asynchronous publish has no timeout of its own: an
		// acknowledgement lost (a leader change) would wait forever.
		timeout := time.NewTimer(flushTimeout)
		defer timeout.Stop()
		select {
		case ack := <-f.Ok():
			return ack.Sequence, nil
		case err = <-f.Err():
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-timeout.C:
			return 0, errs.Newf(errs.Unavailable, "no acknowledgement in %v; try again", flushTimeout)
		}
	}
	var api *jetstream.APIError
	if errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		if rev == 0 {
			return s.kv.Create(ctx, key, data)
		}
		return 0, jetstream.ErrKeyRevisionMismatch
	}
	if natsrpc.Transient(err) {
		return 0, errs.Newf(errs.Unavailable, "%v; try again", err)
	}
	return 0, err
}

func (s *Store[T]) casError(key string, err error) error {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return ErrConflict
	}
	if errors.Is(err, jetstream.ErrInvalidKey) {
		return errs.Newf(errs.Invalid, "invalid key %q", key)
	}
	return fmt.Errorf("writing %s/%s: %w", s.bucket, key, err)
}

// flushFrom publishes the outbox of r, key's record at revision rev
// (nil: read it, keeping what is unpublished), and deletes a drained
// tombstone. Messages of no hint (from before hints were named) are
// cleared from the record instead, as they were then. A concurrent write
// makes it read the record again. Hints are their writers' to delete
// (done), or recovery's.
func (s *Store[T]) flushFrom(ctx context.Context, key string, r *record, rev uint64) error {
	for {
		if r == nil {
			got, gotRev, err := s.getRecord(ctx, key)
			if errors.Is(err, ErrNotFound) {
				return nil // drained meanwhile
			}
			if err != nil {
				return err
			}
			if got.Outbox, err = s.unpublished(ctx, got.Outbox); err != nil {
				return err
			}
			r, rev = &got, gotRev
		}
		if err := s.publish(ctx, r.Outbox); err != nil {
			return err
		}
		var err error
		switch {
		case r.Deleted:
			err = s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
		case slices.ContainsFunc(r.Outbox, func(m outboxMsg) bool { return m.Hint == "" }):
			cleared := *r
			cleared.Outbox = slices.DeleteFunc(slices.Clone(r.Outbox), func(m outboxMsg) bool { return m.Hint == "" })
			var data []byte
			if data, err = cleared.encode(); err != nil {
				return fmt.Errorf("encoding record %s/%s: %w", s.bucket, key, err)
			}
			_, err = s.kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(s.casError(key, err), ErrConflict) {
			return fmt.Errorf("clearing outbox of %s/%s: %w", s.bucket, key, err)
		}
		// Someone wrote meanwhile, carrying forward what they found
		// unpublished: read it again.
		r = nil
	}
}

// publish publishes msgs to JetStream all at once and waits for every
// acknowledgement: one round trip's wait rather than one per message.
// Each carries its Nats-Msg-Id, so one published again is stored once.
func (s *Store[T]) publish(ctx context.Context, msgs []outboxMsg) error {
	acks := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := s.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: orEmpty(m.Header), Data: m.Data})
		if err != nil {
			return fmt.Errorf("publishing %s: %w", m.Subject, err)
		}
		acks[i] = f
	}
	for i, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publishing %s: %w", msgs[i].Subject, err)
		case <-ctx.Done():
			return fmt.Errorf("publishing %s: %w", msgs[i].Subject, ctx.Err())
		}
	}
	return nil
}

func orEmpty(h nats.Header) nats.Header {
	if h == nil {
		return nats.Header{}
	}
	return h
}

// maxHintKeys bounds the writes that share one hint, and so its size.
const maxHintKeys = 256

// hintGroup is one hint shared by the writes that asked for one while the
// previous hint was being written: one put and one delete for them all
// rather than one each. Its value names their keys, one per line.
type hintGroup struct {
	id   string
	keys []string
	put  chan struct{} // closed once the put is done; err says how
	err  error
	// Under hinter.mu: the writes not done with it, and whether one of
	// them may have left messages unpublished (recovery's, then).
	left int
	keep bool
}

// hinter gathers the writes of a store that need a hint into groups,
// written one after the other by one goroutine.
type hinter struct {
	mu      sync.Mutex
	queue   []*hintGroup
	writing bool
}

// hint returns the group whose hint names key, once that hint is written.
// The caller must call done with it.
func (s *Store[T]) hint(ctx context.Context, key string) (*hintGroup, error) {
	h := &s.hinter
	h.mu.Lock()
	if len(h.queue) == 0 || len(h.queue[len(h.queue)-1].keys) >= maxHintKeys {
		h.queue = append(h.queue, &hintGroup{id: nuid.Next(), put: make(chan struct{})})
	}
	g := h.queue[len(h.queue)-1]
	g.keys = append(g.keys, key)
	g.left++
	if !h.writing {
		h.writing = true
		go s.writeHints()
	}
	h.mu.Unlock()
	select {
	case <-g.put:
		if g.err != nil {
			return nil, g.err
		}
		return g, nil
	case <-ctx.Done():
		// Nothing of this write will be committed: done with the group
		// once its hint is written, so that the others' delete follows.
		go func() {
			<-g.put
			_ = s.done(context.Background(), g, false)
		}()
		return nil, ctx.Err()
	}
}

// writeHints writes the queued groups' hints, in order, until none is
// left.
func (s *Store[T]) writeHints() {
	h := &s.hinter
	for {
		h.mu.Lock()
		if len(h.queue) == 0 {
			h.writing = false
			h.mu.Unlock()
			return
		}
		g := h.queue[0]
		h.queue = h.queue[1:]
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		_, g.err = s.hints.Put(ctx, g.id, []byte(strings.Join(g.keys, "\n")))
		cancel()
		close(g.put)
	}
}

// done tells group that one of its writes is over: keep, when the write
// may have left messages unpublished. The last one deletes the hint
// unless one asked to keep it for recovery.
func (s *Store[T]) done(ctx context.Context, g *hintGroup, keep bool) error {
	if g.err != nil {
		return nil // no hint was written
	}
	h := &s.hinter
	h.mu.Lock()
	g.left--
	g.keep = g.keep || keep
	last := g.left == 0 && !g.keep
	h.mu.Unlock()
	if !last {
		return nil
	}
	if err := s.hints.Delete(ctx, g.id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("deleting outbox hint %s: %w", g.id, err)
	}
	return nil
}

// newVersion returns a random version other than 0 and prev.
func newVersion(prev uint64) uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		if v := binary.LittleEndian.Uint64(b[:]) >> 1; v != 0 && v != prev { // 63 bits stay exact in JSON-minded clients
			return v
		}
	}
}

// List returns the live entries whose keys match filter (NATS wildcards:
// "acct1.*", "*.user1", ">"), sorted by key.
//
// It reads them through a watcher, whose consumer JetStream places on
// any replica of the bucket's stream. On a cluster, one replica may lag
// behind (just back from a partition, say): a consumer there would list
// what it has, missing the latest writes, or hang while it catches up;
// and right after a partition heals the consumer may not be made at all
// for a while. So on a cluster List first asks the stream's leader for
// the last message that matches filter: a watcher that has seen it read
// a replica that had applied every write before it (a replica applies
// the log in order); one that has not, or that stalls, makes List list
// from the leader instead, one message at a time.
func (s *Store[T]) List(ctx context.Context, filter string) ([]Entry[T], error) {
	if !s.replicated {
		out, _, err := s.watchList(ctx, filter, 0)
		return out, err
	}
	last, err := s.leaderLast(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("listing %s/%s: %w", s.bucket, filter, err)
	}
	out, seen, err := s.watchList(ctx, filter, watchStall)
	switch {
	case err == nil && seen >= last && (last > 0 || len(out) == 0):
		return out, nil
	case err != nil && !errors.Is(err, errWatchStalled):
		return nil, err
	}
	return s.listFromLeader(ctx, filter)
}

// watchStall is how long a listing's watcher may go without news (being
// made, or handing over an entry) before List turns to the leader.
const watchStall = 3 * time.Second

var errWatchStalled = errors.New("the watcher stalled")

func (s *Store[T]) listFromLeader(ctx context.Context, filter string) ([]Entry[T], error) {
	latest, err := s.leaderList(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("listing %s/%s: %w", s.bucket, filter, err)
	}
	var out []Entry[T]
	for key, e := range latest {
		entry, live, err := s.liveEntry(key, e.value)
		if err != nil {
			return nil, err
		}
		if live {
			out = append(out, entry)
		}
	}
	slices.SortFunc(out, func(a, b Entry[T]) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// liveEntry decodes a stored value, and says whether its record is live
// (not deleted).
func (s *Store[T]) liveEntry(key string, value []byte) (Entry[T], bool, error) {
	r, err := s.decodeValue(key, value)
	if err != nil || r.Deleted {
		return Entry[T]{}, false, err
	}
	entry, err := s.decode(key, r)
	return entry, err == nil, err
}

// watchList lists through a watcher: one consumer streams the entries.
// It returns them and the highest revision (stream sequence) it saw,
// deletions included. With stall > 0 it gives up with errWatchStalled
// when the watcher is not made, or hands over nothing, for that long.
func (s *Store[T]) watchList(ctx context.Context, filter string, stall time.Duration) ([]Entry[T], uint64, error) {
	// The watcher lives as long as wctx: ending it when the listing ends
	// also ends one made too late.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stalled <-chan time.Time
	news := func() {}
	if stall > 0 {
		t := time.NewTimer(stall)
		defer t.Stop()
		stalled, news = t.C, func() { t.Reset(stall) }
	}
	made := make(chan watchResult, 1)
	go func() { made <- s.watch(wctx, filter) }()
	var w jetstream.KeyWatcher
	select {
	case <-stalled:
		return nil, 0, errWatchStalled
	case r := <-made:
		if r.err != nil {
			return nil, 0, r.err
		}
		w = r.w
	}
	defer w.Stop()
	news()
	var out []Entry[T]
	var seen uint64
	for {
		select {
		case <-ctx.Done():
			return nil, 0, errs.Newf(errs.Unavailable, "listing %s/%s: %v; try again", s.bucket, filter, ctx.Err())
		case <-stalled:
			return nil, 0, errWatchStalled
		case e, ok := <-w.Updates():
			if !ok {
				return nil, 0, fmt.Errorf("listing %s/%s: watcher closed", s.bucket, filter)
			}
			if e == nil { // all current values delivered
				slices.SortFunc(out, func(a, b Entry[T]) int { return strings.Compare(a.Key, b.Key) })
				return out, seen, nil
			}
			news()
			seen = max(seen, e.Revision())
			if e.Operation() != jetstream.KeyValuePut { // a deletion or purge
				continue
			}
			entry, live, err := s.liveEntry(e.Key(), e.Value())
			if err != nil {
				return nil, 0, err
			}
			if live {
				out = append(out, entry)
			}
		}
	}
}

type watchResult struct {
	w   jetstream.KeyWatcher
	err error
}

// watch makes a watcher of filter's latest values. For a few seconds
// after a partition heals, JetStream makes no consumer: watch waits that
// out, until ctx ends.
func (s *Store[T]) watch(ctx context.Context, filter string) watchResult {
	for {
		w, err := s.kv.WatchFiltered(ctx, []string{filter})
		if err == nil {
			return watchResult{w: w}
		}
		if !natsrpc.Transient(err) {
			return watchResult{err: fmt.Errorf("listing %s/%s: %w", s.bucket, filter, err)}
		}
		select {
		case <-ctx.Done():
			return watchResult{err: errs.Newf(errs.Unavailable, "listing %s/%s: %v; try again", s.bucket, filter, err)}
		case <-time.After(retryPause):
		}
	}
}

// validKey mirrors JetStream's key rules so a hostile key is a clean miss.
func validKey(k string) bool {
	if k == "" || k[0] == '.' || k[len(k)-1] == '.' {
		return false
	}
	for _, c := range k {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '/', c == '_', c == '=', c == '.':
		default:
			return false
		}
	}
	return !strings.Contains(k, "..")
}

// OutboxBucket is the name of the bucket that holds the outbox of bucket.
func OutboxBucket(bucket string) string { return bucket + "_outbox" }
