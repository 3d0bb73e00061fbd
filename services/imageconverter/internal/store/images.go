package store

import (
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/events"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/domain"
)

// More buckets, and the subject of conversion jobs.
const (
	BucketImages     = "imageconverter_images"
	BucketRegistries = "imageconverter_registries"
)

// JobSubject is where conversion jobs are queued.
var JobSubject = events.JobSubject(Producer, "convert")

// OpenImages opens the buckets of images and registry credentials.
func OpenImages(ctx context.Context, js jetstream.JetStream, replicas int, opts ...kv.Option) (*Images, *Registries, error) {
	imgs, err := kv.Open[domain.Image](ctx, js, kv.Config{Bucket: BucketImages, Replicas: replicas}, opts...)
	if err != nil {
		return nil, nil, err
	}
	claims, err := kv.Open[tagClaim](ctx, js, kv.Config{Bucket: BucketImages, Replicas: replicas}, opts...)
	if err != nil {
		return nil, nil, err
	}
	regs, err := kv.Open[domain.RegistryCredential](ctx, js, kv.Config{Bucket: BucketRegistries, Replicas: replicas}, opts...)
	if err != nil {
		return nil, nil, err
	}
	r := records(imgs, func(i *domain.Image) string { return i.AccountID + "." + i.ID }, func(i *domain.Image) *uint64 { return &i.Version },
		domain.ErrImageNotFound)
	return &Images{kv: imgs, r: r, claims: claims}, &Registries{regs}, nil
}

// Images keeps images, keyed <account>.<image>, and the claims on
// applications' tags, keyed <account>.tag.<app>.<hex of tag> (a tag's '.'
// cannot be in a key token), which <account>.* does not list.
type Images struct {
	kv     *kv.Store[domain.Image]
	r      kv.Records[domain.Image, domain.Event]
	claims *kv.Store[tagClaim]
}

// tagClaim says which image holds an application's tag, since when.
type tagClaim struct {
	ImageID string    `json:"image_id"`
	At      time.Time `json:"at"`
}

// claimGrace is how long a claim whose image is not stored stands: the
// request that made it may still be storing it. Past it, the request is
// taken to have died.
const claimGrace = time.Minute

func tagKey(accountID, appID, tag string) string {
	return accountID + ".tag." + appID + "." + hex.EncodeToString([]byte(tag))
}

// ClaimTag implements app.Images.
func (s *Images) ClaimTag(ctx context.Context, accountID, appID, tag, imageID string) error {
	key, claim := tagKey(accountID, appID, tag), tagClaim{ImageID: imageID, At: time.Now().UTC()}
	_, err := s.claims.Create(ctx, key, claim)
	if !errors.Is(err, kv.ErrExists) {
		return err
	}
	cur, err := s.claims.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return domain.ErrConcurrentChange // released meanwhile: try again
	}
	if err != nil {
		return err
	}
	holder, err := s.Get(ctx, accountID, cur.Value.ImageID)
	switch {
	case err == nil && holder.Status != domain.StatusFailed:
		return domain.ErrImageExists(tag, holder.ID)
	case errors.Is(err, domain.ErrImageNotFound) && time.Since(cur.Value.At) < claimGrace:
		return domain.ErrImageExists(tag, cur.Value.ImageID+" (being created)")
	case err != nil && !errors.Is(err, domain.ErrImageNotFound):
		return err
	}
	// Its image failed, or was never stored (deleting an image drops its
	// claim).
	_, err = s.claims.Update(ctx, key, claim, cur.Version)
	if errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrNotFound) {
		return domain.ErrImageExists(tag, "being created by another request")
	}
	return err
}

var _ app.Images = (*Images)(nil)

// Create implements app.Images: the record, ConversionRequested, the
// audit record and the job commit together.
func (s *Images) Create(ctx context.Context, img domain.Image, ev domain.ConversionRequested) error {
	msgs, err := messages(ctx, ev)
	if err != nil {
		return err
	}
	job := &imageconverterv1.ConvertJob{AccountId: img.AccountID, ImageId: img.ID}
	m, _, err := events.NewMessage(ctx, JobSubject, Producer, img.AccountID, job)
	if err != nil {
		return err
	}
	_, err = s.kv.Create(ctx, img.AccountID+"."+img.ID, img, append(msgs, m)...)
	return err
}

// Get implements app.Images.
func (s *Images) Get(ctx context.Context, accountID, imageID string) (domain.Image, error) {
	return s.r.Get(ctx, accountID+"."+imageID)
}

// List implements app.Images.
func (s *Images) List(ctx context.Context, accountID string) ([]domain.Image, error) {
	return s.r.List(ctx, accountID+".*")
}

// Update implements app.Images.
func (s *Images) Update(ctx context.Context, img domain.Image, ev domain.Event) (domain.Image, error) {
	return s.r.Update(ctx, img, ev)
}

// Delete implements app.Images.
func (s *Images) Delete(ctx context.Context, img domain.Image, ev domain.ImageDeleted) error {
	if err := s.r.Delete(ctx, img, ev); err != nil {
		return err
	}
	// The tag is free again, if this image held it.
	key := tagKey(img.AccountID, img.AppID, img.Tag)
	c, err := s.claims.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) || err == nil && c.Value.ImageID != img.ID {
		return nil
	}
	if err == nil {
		err = s.claims.Delete(ctx, key, c.Version)
	}
	if errors.Is(err, kv.ErrNotFound) || errors.Is(err, kv.ErrConflict) {
		return nil
	}
	return err
}

// DeleteAccount implements app.Images.
func (s *Images) DeleteAccount(ctx context.Context, accountID string) error {
	if err := deleteAll(ctx, s.kv, accountID); err != nil {
		return err
	}
	es, err := s.claims.List(ctx, accountID+".tag.>")
	if err != nil {
		return err
	}
	for _, e := range es {
		if err := s.claims.Delete(ctx, e.Key, e.Version); err != nil && !errors.Is(err, kv.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Registries keeps registry credentials, keyed <account>.<hex of host>
// (a host's ':' cannot be in a key).
type Registries struct {
	kv *kv.Store[domain.RegistryCredential]
}

var _ app.Registries = (*Registries)(nil)

func registryKey(accountID, registry string) string {
	return accountID + "." + hex.EncodeToString([]byte(registry))
}

// Put implements app.Registries.
func (s *Registries) Put(ctx context.Context, c domain.RegistryCredential, a audit.Entry) error {
	key := registryKey(c.AccountID, c.Registry)
	var msgs []*nats.Msg
	if a.Actor.UserID != "" {
		m, err := events.AuditMessage(ctx, Producer, a)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	for range 5 {
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			_, err = s.kv.Create(ctx, key, c, msgs...)
		case err == nil:
			_, err = s.kv.Update(ctx, key, c, e.Version, msgs...)
		}
		if !errors.Is(err, kv.ErrConflict) && !errors.Is(err, kv.ErrExists) {
			return err
		}
	}
	return domain.ErrConcurrentChange
}

// Get implements app.Registries.
func (s *Registries) Get(ctx context.Context, accountID, registry string) (domain.RegistryCredential, error) {
	e, err := s.kv.Get(ctx, registryKey(accountID, registry))
	if errors.Is(err, kv.ErrNotFound) {
		return domain.RegistryCredential{}, domain.ErrCredentialNotFound
	}
	return e.Value, err
}

// List implements app.Registries.
func (s *Registries) List(ctx context.Context, accountID string) ([]domain.RegistryCredential, error) {
	es, err := s.kv.List(ctx, accountID+".*")
	if err != nil {
		return nil, err
	}
	out := make([]domain.RegistryCredential, len(es))
	for i, e := range es {
		out[i] = e.Value
	}
	return out, nil
}

// Delete implements app.Registries.
func (s *Registries) Delete(ctx context.Context, accountID, registry string, a audit.Entry) error {
	key := registryKey(accountID, registry)
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return domain.ErrCredentialNotFound
	}
	if err != nil {
		return err
	}
	var msgs []*nats.Msg
	if a.Actor.UserID != "" {
		m, err := events.AuditMessage(ctx, Producer, a)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	return s.kv.Delete(ctx, key, e.Version, msgs...)
}

// DeleteAccount implements app.Registries.
func (s *Registries) DeleteAccount(ctx context.Context, accountID string) error {
	return deleteAll(ctx, s.kv, accountID)
}

// deleteAll deletes every entry whose key starts with prefix and a dot.
// Another deleteAll of the same keys may run at once (a request and the
// durable consumer of its event): an entry it deleted first is done.
func deleteAll[T any](ctx context.Context, s *kv.Store[T], prefix string) error {
	es, err := s.List(ctx, prefix+".>")
	if err != nil {
		return err
	}
	for _, e := range es {
		err := s.Delete(ctx, e.Key, e.Version)
		for range 5 {
			if !errors.Is(err, kv.ErrConflict) {
				break
			}
			cur, gerr := s.Get(ctx, e.Key)
			if gerr != nil {
				err = gerr
				break
			}
			err = s.Delete(ctx, e.Key, cur.Version)
		}
		if err != nil && !errors.Is(err, kv.ErrNotFound) {
			return err
		}
	}
	return nil
}
