package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/allowlist"
	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
)

// Buckets of issuance.
const (
	BucketApps    = "ca_apps"
	BucketDomains = "ca_domains"
	BucketNonces  = "ca_nonces"
	BucketImages  = "ca_images"
	BucketLedger  = "ca_withdrawn_tasks"
)

// OpenIssuance opens the stores application issuance needs (the
// verdicts come from the attestation service: peers.Verdicts); lookups of
// applications and domains go through c.
func OpenIssuance(ctx context.Context, js jetstream.JetStream, replicas int, c cache.Cache, logger *slog.Logger, opts ...kv.Option) (app.Issuance, error) {
	apps, err := allowlist.Open[domain.AppConfig](ctx, js, BucketApps, replicas, c, logger)
	if err != nil {
		return app.Issuance{}, err
	}
	domains, err := allowlist.Open[domain.ApprovedDomain](ctx, js, BucketDomains, replicas, c, logger)
	if err != nil {
		return app.Issuance{}, err
	}
	// Entries outlive their nonce a little; Consume checks the expiry.
	nonces, err := kv.Open[nonceRecord](ctx, js, kv.Config{Bucket: BucketNonces, Replicas: replicas, TTL: app.NonceLifetime + time.Minute}, opts...)
	if err != nil {
		return app.Issuance{}, err
	}
	images, err := allowlist.Open[domain.ApprovedImage](ctx, js, BucketImages, replicas, c, logger)
	if err != nil {
		return app.Issuance{}, err
	}
	ledger, err := allowlist.OpenLedger(ctx, js, BucketLedger, replicas, logger)
	if err != nil {
		return app.Issuance{}, err
	}
	return app.Issuance{Apps: &Apps{apps}, Domains: &Domains{domains}, Images: &Images{images}, Withdrawals: ledger,
		Nonces: &Nonces{nonces}}, nil
}

// Apps keeps applications' certificate configurations, keyed <account>.<app>.
type Apps struct {
	list *allowlist.List[domain.AppConfig]
}

var _ app.Apps = (*Apps)(nil)

// Lookup implements app.Apps.
func (s *Apps) Lookup(ctx context.Context, accountID, appID string) (domain.AppConfig, bool, error) {
	return s.list.Lookup(ctx, accountID+"."+appID)
}

// Fresh implements app.Apps.
func (s *Apps) Fresh(ctx context.Context, accountID, appID string) (domain.AppConfig, bool, error) {
	return s.list.Fresh(ctx, accountID+"."+appID)
}

// Put implements app.Apps.
func (s *Apps) Put(ctx context.Context, a domain.AppConfig) error {
	return s.list.Put(ctx, a.AccountID+"."+a.AppID, a)
}

// Remove implements app.Apps.
func (s *Apps) Remove(ctx context.Context, accountID, appID string) error {
	return s.list.Remove(ctx, accountID+"."+appID)
}

// RemoveAccount implements app.Apps.
func (s *Apps) RemoveAccount(ctx context.Context, accountID string) error {
	_, err := s.list.RemoveMatching(ctx, accountID+".*")
	return err
}

// Domains is the approved-domain allowlist, keyed <account>.<app>.<domain>
// (a domain's dots are part of the key, which is fine: only the account
// and application are matched by wildcards).
type Domains struct {
	list *allowlist.List[domain.ApprovedDomain]
}

var _ app.Domains = (*Domains)(nil)

// Lookup implements app.Domains.
func (s *Domains) Lookup(ctx context.Context, accountID, appID, domain string) (domain.ApprovedDomain, bool, error) {
	return s.list.Lookup(ctx, domainKey(accountID, appID, domain))
}

// Fresh implements app.Domains.
func (s *Domains) Fresh(ctx context.Context, accountID, appID, domain string) (domain.ApprovedDomain, bool, error) {
	return s.list.Fresh(ctx, domainKey(accountID, appID, domain))
}

// domainKey is case-insensitive, as DNS names are. A name that cannot be
// a key is simply never found.
func domainKey(accountID, appID, domain string) string {
	return accountID + "." + appID + "." + strings.ToLower(domain)
}

// Put implements app.Domains.
func (s *Domains) Put(ctx context.Context, accountID string, d domain.ApprovedDomain) error {
	return s.list.Put(ctx, domainKey(accountID, d.AppID, d.Domain), d)
}

// Remove implements app.Domains.
func (s *Domains) Remove(ctx context.Context, accountID, appID, domain string) error {
	return s.list.Remove(ctx, domainKey(accountID, appID, domain))
}

// RemoveApp implements app.Domains.
func (s *Domains) RemoveApp(ctx context.Context, accountID, appID string) error {
	filter := accountID + ".>"
	if appID != "" {
		filter = accountID + "." + appID + ".>"
	}
	_, err := s.list.RemoveMatching(ctx, filter)
	return err
}

// Images is the CA's image allowlist, keyed <account>.<app>.<mrenclave hex>.
type Images struct {
	list *allowlist.List[domain.ApprovedImage]
}

var _ app.Images = (*Images)(nil)

func imageKey(accountID, appID string, mrenclave []byte) string {
	return accountID + "." + appID + "." + hex.EncodeToString(mrenclave)
}

// Lookup implements app.Images.
func (s *Images) Lookup(ctx context.Context, accountID, appID string, mrenclave []byte) (domain.ApprovedImage, bool, error) {
	return s.list.Lookup(ctx, imageKey(accountID, appID, mrenclave))
}

// Fresh implements app.Images.
func (s *Images) Fresh(ctx context.Context, accountID, appID string, mrenclave []byte) (domain.ApprovedImage, bool, error) {
	return s.list.Fresh(ctx, imageKey(accountID, appID, mrenclave))
}

// Put implements app.Images.
func (s *Images) Put(ctx context.Context, accountID string, img domain.ApprovedImage) error {
	return s.list.Put(ctx, imageKey(accountID, img.AppID, img.MRENCLAVE), img)
}

// Remove implements app.Images.
func (s *Images) Remove(ctx context.Context, accountID, appID string, mrenclave []byte) error {
	return s.list.Remove(ctx, imageKey(accountID, appID, mrenclave))
}

// RemoveWhere implements app.Images.
func (s *Images) RemoveWhere(ctx context.Context, accountID, appID string, drop func(domain.ApprovedImage) bool) error {
	filter := accountID + ".>"
	if appID != "" {
		filter = accountID + "." + appID + ".*"
	}
	es, err := s.list.List(ctx, filter)
	if err != nil {
		return err
	}
	for _, e := range es {
		if drop(e.Value) {
			if err := s.list.Remove(ctx, e.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// nonceRecord is an issued nonce: when it expires, and once used, the
// binding of the request that used it and the serial of the certificate
// that request was issued.
type nonceRecord struct {
	Expires time.Time `json:"expires"`
	Used    bool      `json:"used,omitempty"`
	Binding []byte    `json:"binding,omitempty"`
	Serial  string    `json:"serial,omitempty"`
}

// UnmarshalJSON reads a record, or the expiry alone that records were
// before nonces remembered their use.
func (r *nonceRecord) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		*r = nonceRecord{}
		return json.Unmarshal(b, &r.Expires)
	}
	type plain nonceRecord
	return json.Unmarshal(b, (*plain)(r))
}

// Nonces keeps issued nonces until they expire, keyed <account>.<hex>.
type Nonces struct{ kv *kv.Store[nonceRecord] }

var _ app.Nonces = (*Nonces)(nil)

func nonceKey(accountID string, nonce []byte) string {
	return accountID + "." + hex.EncodeToString(nonce)
}

// Create implements app.Nonces.
func (s *Nonces) Create(ctx context.Context, accountID string, nonce []byte, expires time.Time) error {
	_, err := s.kv.Create(ctx, nonceKey(accountID, nonce), nonceRecord{Expires: expires})
	return err
}

// Consume implements app.Nonces: of two racing requests one wins.
func (s *Nonces) Consume(ctx context.Context, accountID string, nonce []byte, binding [32]byte) (app.NonceClaim, error) {
	key := nonceKey(accountID, nonce)
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return app.NonceClaim{}, app.ErrNonceUnknown
	}
	if err != nil {
		return app.NonceClaim{}, err
	}
	if e.Value.Used {
		return app.NonceClaim{}, &app.NonceUsedError{Use: use(e.Value)}
	}
	r := e.Value
	r.Used, r.Binding = true, binding[:]
	updated, err := s.kv.Update(ctx, key, r, e.Version)
	if errors.Is(err, kv.ErrConflict) {
		// Another request used it meanwhile.
		u, err := s.Use(ctx, accountID, nonce)
		if err != nil {
			return app.NonceClaim{}, err
		}
		return app.NonceClaim{}, &app.NonceUsedError{Use: u}
	}
	if err != nil {
		return app.NonceClaim{}, err
	}
	return app.NonceClaim{Expires: r.Expires, Key: key, Version: updated.Version, Binding: binding}, nil
}

// Issued implements app.Nonces: the claim holds all the record but the
// serial, so the nonce is not read again.
func (s *Nonces) Issued(ctx context.Context, c app.NonceClaim, serial string) error {
	_, err := s.kv.Update(ctx, c.Key, nonceRecord{Expires: c.Expires, Used: true, Binding: c.Binding[:], Serial: serial}, c.Version)
	return err
}

// Use implements app.Nonces.
func (s *Nonces) Use(ctx context.Context, accountID string, nonce []byte) (app.NonceUse, error) {
	e, err := s.kv.Get(ctx, nonceKey(accountID, nonce))
	if errors.Is(err, kv.ErrNotFound) || err == nil && !e.Value.Used {
		return app.NonceUse{}, app.ErrNonceUnknown
	}
	if err != nil {
		return app.NonceUse{}, err
	}
	return use(e.Value), nil
}

func use(r nonceRecord) app.NonceUse {
	var u app.NonceUse
	copy(u.Binding[:], r.Binding)
	u.Serial = r.Serial
	return u
}
