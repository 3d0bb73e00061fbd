package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/domain"
)

// Secrets stores the applications' secrets, values sealed.
type Secrets interface {
	// Get returns a secret and its version in the store
	// (domain.ErrSecretNotFound).
	Get(ctx context.Context, accountID, appID, name string) (domain.Secret, uint64, error)
	// Put stores s, new when version is 0, else over that version
	// (domain.ErrConcurrentChange), with its events.
	Put(ctx context.Context, s domain.Secret, version uint64, evs ...domain.Event) error
	List(ctx context.Context, accountID, appID string) ([]domain.Secret, error)
	Delete(ctx context.Context, accountID, appID, name string, ev domain.SecretDeleted) error
	// DeleteApp removes an application's secrets and volume keys.
	DeleteApp(ctx context.Context, accountID, appID string) error
	DeleteAccount(ctx context.Context, accountID string) error
}

// SecretPolicies keeps whether each account's new secret values wait for
// approval (its secrets_need_approval, from the account's events).
type SecretPolicies interface {
	NeedApproval(ctx context.Context, accountID string) (bool, error)
	// SetNeedApproval records the setting as of at; an older one changes
	// nothing.
	SetNeedApproval(ctx context.Context, accountID string, need bool, at time.Time) error
}

// VolumeKeys stores the applications' volume keys, sealed.
type VolumeKeys interface {
	// Get returns a sealed key (domain.ErrSecretNotFound).
	Get(ctx context.Context, accountID, appID, keyName string) ([]byte, error)
	// Create stores a sealed key unless there is one (domain.ErrKeyExists).
	Create(ctx context.Context, accountID, appID, keyName string, sealed []byte) error
}

// Certificates reads the certificates the account CA issued.
type Certificates interface {
	// Get returns a certificate's record (ErrCertificateNotFound).
	Get(ctx context.Context, accountID, serial string) (IssuedCertificate, error)
}

// IssuedCertificate is what the image converter needs of a certificate
// before it seals secrets to the key bound with it.
type IssuedCertificate struct {
	Kind, SubjectID string
	Revoked         bool
	NotBefore       time.Time
	RecipientKey    []byte
}

// ErrCertificateNotFound is returned by Certificates.Get.
var ErrCertificateNotFound = errors.New("certificate not found")

// DeliveryWindow bounds the time from a certificate's issuance to the
// sealing of its enclave's secrets: the launcher asks for both at once,
// and a certificate's serial is no standing licence to the secrets.
const DeliveryWindow = 10 * time.Minute

func secretAAD(accountID, appID, name string, number uint32) []byte {
	return []byte("cloister/imageconverter/secret/" + accountID + "/" + appID + "/" + name + "/" + strconv.FormatUint(uint64(number), 10))
}

func volumeKeyAAD(accountID, appID, keyName string) []byte {
	return []byte("cloister/imageconverter/volume-key/" + accountID + "/" + appID + "/" + keyName)
}

// withoutValues is s as the API tells it: its versions' sizes and dates.
func withoutValues(s domain.Secret) domain.Secret {
	s.Versions = slices.Clone(s.Versions)
	for i := range s.Versions {
		s.Versions[i].Sealed = nil
	}
	return s
}

// PutSecret sets an application's secret to value, as a new version (the
// oldest beyond domain.MaxSecretVersions is dropped). The value is sealed
// under the master key and never returned.
func (s *Service) PutSecret(ctx context.Context, accountID, appRef, name string, value []byte, actor audit.Actor) (domain.Secret, error) {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.SecretSet), Target: appRef + "/" + name}
	sec, err := s.putSecret(ctx, accountID, appRef, name, value, &entry)
	return sec, s.audited(ctx, entry, err)
}

func (s *Service) putSecret(ctx context.Context, accountID, appRef, name string, value []byte, entry *audit.Entry) (domain.Secret, error) {
	a, err := s.App(ctx, accountID, appRef)
	if err != nil {
		return domain.Secret{}, err
	}
	entry.Target = a.ID + "/" + name
	if err := enclave.CheckSecretName(name); err != nil {
		return domain.Secret{}, errs.Newf(errs.Invalid, "name: %v", err)
	}
	switch {
	case len(value) == 0:
		return domain.Secret{}, errs.New(errs.Invalid, "value: empty; to take a secret away, delete it")
	case len(value) > enclave.MaxSecretSize:
		return domain.Secret{}, errs.Newf(errs.Invalid, "value: %d bytes, at most %d", len(value), enclave.MaxSecretSize)
	}
	pending, err := s.cfg.Policies.NeedApproval(ctx, accountID)
	if err != nil {
		return domain.Secret{}, err
	}
	for range 5 {
		cur, version, err := s.cfg.Secrets.Get(ctx, accountID, a.ID, name)
		switch {
		case errors.Is(err, domain.ErrSecretNotFound):
			all, lerr := s.cfg.Secrets.List(ctx, accountID, a.ID)
			if lerr != nil {
				return domain.Secret{}, lerr
			}
			if len(all) >= enclave.MaxSecrets {
				return domain.Secret{}, errs.Newf(errs.Invalid, "application %s has %d secrets, the most it may have", a.Spec.Name, enclave.MaxSecrets)
			}
			cur, version = domain.Secret{AccountID: accountID, AppID: a.ID, Name: name}, 0
		case err != nil:
			return domain.Secret{}, err
		}
		number := max(cur.LastNumber, lastNumber(cur.Versions)) + 1
		cur.LastNumber = number
		sealed, err := s.cfg.KEK.Seal(value, secretAAD(accountID, a.ID, name, number))
		if err != nil {
			return domain.Secret{}, err
		}
		now := s.now()
		v := domain.SecretVersion{ID: uuid.Must(uuid.NewV7()).String(), Number: number, Size: uint32(len(value)), Sealed: sealed, CreatedAt: now, CreatedBy: entry.Actor.UserID, Pending: pending}
		cur.Versions = prune(append(cur.Versions, v))
		cur.UpdatedAt = now
		v.Sealed = nil
		err = s.cfg.Secrets.Put(ctx, cur, version, domain.SecretSet{AccountID: accountID, AppID: a.ID, Name: name, Version: v, Audit: *entry})
		if errors.Is(err, domain.ErrConcurrentChange) {
			continue
		}
		if err != nil {
			return domain.Secret{}, err
		}
		return withoutValues(cur), nil
	}
	return domain.Secret{}, domain.ErrConcurrentChange
}

// lastNumber is the highest number of vs (0 for none): records written
// before LastNumber existed.
func lastNumber(vs []domain.SecretVersion) uint32 {
	if len(vs) == 0 {
		return 0
	}
	return vs[len(vs)-1].Number
}

// prune drops the oldest versions beyond domain.MaxSecretVersions, but
// never the one enclaves are given while newer ones wait for approval.
func prune(vs []domain.SecretVersion) []domain.SecretVersion {
	for len(vs) > domain.MaxSecretVersions {
		eff, ok := domain.Secret{Versions: vs}.Effective()
		i := 0
		if ok && vs[0].Number == eff.Number {
			i = 1
		}
		vs = slices.Delete(vs, i, i+1)
	}
	return vs
}

// DecideSecretVersion applies the decision on a secret task about the
// version versionID: an approved version is given to enclaves from now on;
// a denied or withdrawn one is dropped. A secret or version gone meanwhile
// leaves nothing to do.
func (s *Service) DecideSecretVersion(ctx context.Context, accountID, appID, name, versionID string, approved bool) error {
	for range 5 {
		cur, version, err := s.cfg.Secrets.Get(ctx, accountID, appID, name)
		if errors.Is(err, domain.ErrSecretNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		i := slices.IndexFunc(cur.Versions, func(v domain.SecretVersion) bool { return v.ID == versionID })
		switch {
		case i < 0 || approved && !cur.Versions[i].Pending:
			return nil // dropped, or decided already
		case approved:
			cur.Versions[i].Pending = false
		case len(cur.Versions) == 1:
			// Its only version refused: the secret goes.
			err = s.cfg.Secrets.Delete(ctx, accountID, appID, name, domain.SecretDeleted{AccountID: accountID, AppID: appID, Name: name})
			if errors.Is(err, domain.ErrConcurrentChange) {
				continue
			}
			if errors.Is(err, domain.ErrSecretNotFound) {
				return nil
			}
			return err
		default:
			cur.Versions = slices.Delete(cur.Versions, i, i+1)
		}
		err = s.cfg.Secrets.Put(ctx, cur, version)
		if !errors.Is(err, domain.ErrConcurrentChange) {
			return err
		}
	}
	return domain.ErrConcurrentChange
}

// ForgetAppSecrets deletes a deleted application's secrets and volume
// keys. DeleteApp does so at once; AppDeleted, consumed durably, does it
// again should that have failed after the application went.
func (s *Service) ForgetAppSecrets(ctx context.Context, accountID, appID string) error {
	if uuid.Validate(accountID) != nil || appID == "" {
		return nil
	}
	return s.cfg.Secrets.DeleteApp(ctx, accountID, appID)
}

// SetSecretPolicy records an account's secrets_need_approval as of at.
func (s *Service) SetSecretPolicy(ctx context.Context, accountID string, need bool, at time.Time) error {
	if uuid.Validate(accountID) != nil {
		return nil
	}
	return s.cfg.Policies.SetNeedApproval(ctx, accountID, need, at)
}

// Secrets lists an application's secrets, without their values.
func (s *Service) Secrets(ctx context.Context, accountID, appRef string) ([]domain.Secret, error) {
	a, err := s.App(ctx, accountID, appRef)
	if err != nil {
		return nil, err
	}
	all, err := s.cfg.Secrets.List(ctx, accountID, a.ID)
	if err != nil {
		return nil, err
	}
	out := make([]domain.Secret, len(all))
	for i, sec := range all {
		out[i] = withoutValues(sec)
	}
	slices.SortFunc(out, func(x, y domain.Secret) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// DeleteSecret removes an application's secret and its versions: an
// enclave started after this does not get it; a running one keeps what
// it was given.
func (s *Service) DeleteSecret(ctx context.Context, accountID, appRef, name string, actor audit.Actor) error {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.SecretDelete), Target: appRef + "/" + name}
	a, err := s.App(ctx, accountID, appRef)
	if err == nil {
		entry.Target = a.ID + "/" + name
		err = s.cfg.Secrets.Delete(ctx, accountID, a.ID, name, domain.SecretDeleted{AccountID: accountID, AppID: a.ID, Name: name, Audit: entry})
	}
	return s.audited(ctx, entry, err)
}

// Sealed is a bundle sealed to an enclave, and the names of what it
// holds.
type Sealed struct {
	Bundle              []byte
	Secrets, VolumeKeys []string
}

// SealSecrets seals an application's secrets (their latest versions) and
// its volumes' keys to the enclave issued certificate serial, once the CA
// confirms that the certificate is the application's, live, issued in the
// last DeliveryWindow, and bound to a recipient key: the CA issued it only
// for a quote that passed the account's policy, for an approved image and
// domain, with a fresh nonce, and binding that key. It seals nothing (and
// says so) when the application takes no secrets and has no volumes.
func (s *Service) SealSecrets(ctx context.Context, accountID, appID, serial string) (Sealed, error) {
	a, err := s.App(ctx, accountID, appID)
	if err != nil || a.ID != appID {
		return Sealed{}, domain.ErrAppNotFound
	}
	if s.cfg.Certificates == nil {
		return Sealed{}, errs.New(errs.Unavailable, "this image converter cannot read the CA's certificates")
	}
	c, err := s.cfg.Certificates.Get(ctx, accountID, serial)
	if errors.Is(err, ErrCertificateNotFound) {
		return Sealed{}, errs.Newf(errs.PermissionDenied, "the account CA issued no certificate %q", serial)
	}
	if err != nil {
		return Sealed{}, err
	}
	// The CA backdates a leaf's NotBefore by pki.LeafBackdate.
	switch age := s.now().Sub(c.NotBefore.Add(pki.LeafBackdate)); {
	case c.Kind != "app" || c.SubjectID != appID:
		return Sealed{}, errs.Newf(errs.PermissionDenied, "certificate %s is not one of application %s", serial, appID)
	case c.Revoked:
		return Sealed{}, errs.Newf(errs.PermissionDenied, "certificate %s is revoked", serial)
	case age > DeliveryWindow:
		return Sealed{}, errs.Newf(errs.PermissionDenied, "certificate %s was issued %s ago: secrets go only with a certificate just issued; attest again", serial, age.Round(time.Second))
	case len(c.RecipientKey) != enclave.RecipientKeySize:
		return Sealed{}, errs.Newf(errs.PermissionDenied, "the enclave issued certificate %s bound no recipient key in its quote, so nothing can be sealed to it", serial)
	}
	b := enclave.Bundle{Secrets: map[string][]byte{}, VolumeKeys: map[string][]byte{}}
	var out Sealed
	defer func() {
		for _, v := range b.Secrets {
			clear(v)
		}
		for _, v := range b.VolumeKeys {
			clear(v)
		}
	}()
	all, err := s.cfg.Secrets.List(ctx, accountID, appID)
	if err != nil {
		return Sealed{}, err
	}
	for _, sec := range all {
		v, ok := sec.Effective()
		if !ok {
			continue // its only versions wait for approval
		}
		plain, err := s.cfg.KEK.Open(v.Sealed, secretAAD(accountID, appID, sec.Name, v.Number))
		if err != nil {
			return Sealed{}, fmt.Errorf("opening secret %s of application %s (is this the deployment's master key?): %w", sec.Name, appID, err)
		}
		b.Secrets[sec.Name] = plain
		out.Secrets = append(out.Secrets, sec.Name)
	}
	for _, v := range a.Spec.Volumes {
		key, err := s.volumeKey(ctx, accountID, appID, v.KeyName)
		if err != nil {
			return Sealed{}, err
		}
		b.VolumeKeys[v.KeyName] = key
		out.VolumeKeys = append(out.VolumeKeys, v.KeyName)
	}
	if len(out.Secrets)+len(out.VolumeKeys) == 0 {
		return Sealed{}, nil
	}
	slices.Sort(out.Secrets)
	if out.Bundle, err = enclave.SealBundle(c.RecipientKey, enclave.BundleInfo(appID, serial), b); err != nil {
		return Sealed{}, err
	}
	return out, nil
}

// volumeKey returns the key of an application's volume, made on first
// use: the volume's data is only as lasting as this key.
func (s *Service) volumeKey(ctx context.Context, accountID, appID, keyName string) ([]byte, error) {
	aad := volumeKeyAAD(accountID, appID, keyName)
	for range 3 {
		sealed, err := s.cfg.VolumeKeys.Get(ctx, accountID, appID, keyName)
		if err == nil {
			return s.cfg.KEK.Open(sealed, aad)
		}
		if !errors.Is(err, domain.ErrSecretNotFound) {
			return nil, err
		}
		key := make([]byte, enclave.VolumeKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if sealed, err = s.cfg.KEK.Seal(key, aad); err != nil {
			return nil, err
		}
		err = s.cfg.VolumeKeys.Create(ctx, accountID, appID, keyName, sealed)
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, domain.ErrKeyExists) {
			return nil, err
		}
	}
	return nil, domain.ErrConcurrentChange
}

// ExportVolumeKey returns the key of an application's volume (made now if
// no enclave has had it yet), for a backup of the volume's data. Every
// export is recorded in the account's audit log, with the key's name only.
func (s *Service) ExportVolumeKey(ctx context.Context, accountID, appRef, keyName string, actor audit.Actor) (appID string, key []byte, err error) {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.VolumeKeyExport), Target: appRef + "/" + keyName}
	a, err := s.App(ctx, accountID, appRef)
	if err == nil {
		entry.Target = a.ID + "/" + keyName
		if !slices.ContainsFunc(a.Spec.Volumes, func(v enclave.Volume) bool { return v.KeyName == keyName }) {
			err = errs.Newf(errs.NotFound, "application %s has no volume with key %q", a.Spec.Name, keyName)
		}
	}
	if err == nil {
		key, err = s.volumeKey(ctx, accountID, a.ID, keyName)
	}
	if err != nil {
		return "", nil, s.audited(ctx, entry, err)
	}
	if err := s.cfg.Audit.Record(ctx, entry); err != nil {
		clear(key)
		return "", nil, fmt.Errorf("recording the export in the audit log: %w", err)
	}
	return a.ID, key, nil
}
