package app

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/audit"
	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/domain"
)

// Images stores images.
type Images interface {
	// ClaimTag reserves an application's tag for the image imageID, so
	// that two concurrent requests cannot both convert it: it fails with
	// domain.ErrImageExists while another image that has not failed holds
	// it, and takes over a claim whose image failed or is gone.
	ClaimTag(ctx context.Context, accountID, appID, tag, imageID string) error
	// Create stores a new image and queues its conversion job.
	Create(ctx context.Context, img domain.Image, ev domain.ConversionRequested) error
	Get(ctx context.Context, accountID, imageID string) (domain.Image, error) // domain.ErrImageNotFound
	List(ctx context.Context, accountID string) ([]domain.Image, error)
	// Update stores img if its version is unchanged, with its event
	// (domain.ConversionProgressed, domain.ImageConverted or domain.ConversionFailed).
	Update(ctx context.Context, img domain.Image, ev domain.Event) (domain.Image, error)
	Delete(ctx context.Context, img domain.Image, ev domain.ImageDeleted) error
	DeleteAccount(ctx context.Context, accountID string) error
}

// Registries stores registry credentials, passwords sealed.
type Registries interface {
	Put(ctx context.Context, c domain.RegistryCredential, a audit.Entry) error
	Get(ctx context.Context, accountID, registry string) (domain.RegistryCredential, error) // domain.ErrCredentialNotFound
	List(ctx context.Context, accountID string) ([]domain.RegistryCredential, error)
	Delete(ctx context.Context, accountID, registry string, a audit.Entry) error
	DeleteAccount(ctx context.Context, accountID string) error
}

// Auth is a registry login.
type Auth struct{ Username, Password string }

// ConvertRequest is one conversion, as the converter needs it.
type ConvertRequest struct {
	AppID                 string // measured: the launcher names its app when it asks for a certificate
	Input, Output         string
	InputAuth, OutputAuth *Auth // nil: anonymous
	App                   domain.AppSpec
	Signer                *rsa.PrivateKey
	Now                   time.Time
	Progress              func(domain.Progress)
}

// ConvertResult is what a conversion produced.
type ConvertResult struct {
	Ref, Digest         string
	MRENCLAVE, MRSIGNER [32]byte
	ISVProdID, ISVSVN   uint16
	// Runtime is the Gramine runtime image the image carries, by digest;
	// RuntimeStandIn says it is Cloister's stand-in, which starts no
	// enclave.
	Runtime        string
	RuntimeStandIn bool
}

// ConvertError is a failed conversion with a reason a user can act on.
type ConvertError struct {
	Reason    string
	Message   string
	Transient bool // a retry may succeed (registry timeout, 5xx)
}

func (e *ConvertError) Error() string { return e.Reason + ": " + e.Message }

// Converter converts images (the convert package, adapted).
type Converter interface {
	Convert(ctx context.Context, r ConvertRequest) (ConvertResult, error)
}

// Resolver asks registries about references; every replica has one,
// converting or not.
type Resolver interface {
	// Resolves tells whether the registry has a manifest at ref (false
	// only when it says it has none); an error when it cannot be asked.
	Resolves(ctx context.Context, ref string, auth *Auth) (bool, error)
}

// The states of a converted image's reference (ReferenceStatus).
const (
	ReferencePresent = "present"
	ReferenceMissing = "missing"
	ReferenceUnknown = "unknown"
)

// referenceTimeout bounds asking a registry about one image.
const referenceTimeout = 5 * time.Second

// ReferenceStatus asks the registry whether a converted image is still
// there, for someone reading it: a registry that loses its images (one in
// memory, restarted) leaves records that say converted and approved of an
// image nobody can pull. "" for an image not converted.
func (s *Service) ReferenceStatus(ctx context.Context, img domain.Image) string {
	if img.Status != domain.StatusConverted || img.Ref == "" || s.cfg.Resolver == nil {
		return ""
	}
	auth, err := s.auth(ctx, img.AccountID, img.Ref)
	if err != nil {
		return ReferenceUnknown
	}
	ctx, cancel := context.WithTimeout(ctx, referenceTimeout)
	defer cancel()
	ok, err := s.cfg.Resolver.Resolves(ctx, img.Ref, auth)
	switch {
	case err != nil:
		return ReferenceUnknown
	case !ok:
		return ReferenceMissing
	}
	return ReferencePresent
}

// progressEvery is how often a running conversion records its progress
// (and tells the job queue it is alive).
const progressEvery = time.Second

// ConvertImage records a new image of an application and queues its
// conversion: <output_image>:<tag> from the app's input image.
func (s *Service) ConvertImage(ctx context.Context, accountID, appRef, tag string, actor audit.Actor) (domain.Image, error) {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.ImageConvert), Target: appRef + ":" + tag}
	img, err := s.convertImage(ctx, accountID, appRef, tag, entry)
	return img, s.audited(ctx, entry, err)
}

func (s *Service) convertImage(ctx context.Context, accountID, appRef, tag string, entry audit.Entry) (domain.Image, error) {
	a, err := s.App(ctx, accountID, appRef)
	if err != nil {
		return domain.Image{}, err
	}
	if err := domain.CheckTag(tag); err != nil {
		return domain.Image{}, err
	}
	if _, err := s.SigningKey(ctx, accountID); err != nil {
		return domain.Image{}, domain.ErrSigningKeyNotReady
	}
	imgs, err := s.cfg.Images.List(ctx, accountID)
	if err != nil {
		return domain.Image{}, err
	}
	for _, i := range imgs {
		if i.AppID == a.ID && i.Tag == tag && i.Status != domain.StatusFailed {
			return domain.Image{}, domain.ErrImageExists(tag, i.ID)
		}
	}
	now := s.now()
	img := domain.Image{ID: uuid.Must(uuid.NewV7()).String(), AccountID: accountID, AppID: a.ID, Tag: tag,
		InputImage: a.Spec.InputImage, Output: a.Spec.OutputImage + ":" + tag, Status: domain.StatusPending,
		Spec: a.Spec, CreatedAt: now, UpdatedAt: now, RequestedBy: entry.Actor.UserID}
	entry.Target = img.ID
	if err := s.cfg.Images.ClaimTag(ctx, accountID, a.ID, tag, img.ID); err != nil {
		return domain.Image{}, err
	}
	if err := s.cfg.Images.Create(ctx, img, domain.ConversionRequested{Image: img, Audit: entry}); err != nil {
		return domain.Image{}, err
	}
	return img, nil
}

// Image returns one image of the account.
func (s *Service) Image(ctx context.Context, accountID, imageID string) (domain.Image, error) {
	if uuid.Validate(accountID) != nil || uuid.Validate(imageID) != nil {
		return domain.Image{}, domain.ErrImageNotFound
	}
	return s.cfg.Images.Get(ctx, accountID, imageID)
}

// ImagesOf lists the account's images, of one application when appRef
// (an id or name) is given.
func (s *Service) ImagesOf(ctx context.Context, accountID, appRef string) ([]domain.Image, error) {
	if uuid.Validate(accountID) != nil {
		return nil, nil
	}
	appID := ""
	if appRef != "" {
		a, err := s.App(ctx, accountID, appRef)
		if err != nil {
			return nil, err
		}
		appID = a.ID
	}
	all, err := s.cfg.Images.List(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, i := range all {
		if appID == "" || i.AppID == appID {
			out = append(out, i)
		}
	}
	return out, nil
}

// DeleteImage forgets an image; its approval goes, and the certificates
// issued on it are revoked (domain.ImageDeleted). What was pushed stays in the
// registry.
func (s *Service) DeleteImage(ctx context.Context, accountID, imageID string, actor audit.Actor) error {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.ImageDelete), Target: imageID}
	img, err := s.Image(ctx, accountID, imageID)
	if err == nil {
		err = s.cfg.Images.Delete(ctx, img, domain.ImageDeleted{Image: img, Audit: entry})
	}
	return s.audited(ctx, entry, err)
}

// errFinished says the image was finished (or deleted) by someone else:
// the job has nothing left to do.
var errFinished = errors.New("image finished elsewhere")

// keepAliveEvery is how often a running job tells the queue it is alive,
// whether or not bytes move; well under the queue's ack wait.
const keepAliveEvery = 10 * time.Second

// RunConversion does the conversion job of an image. A job delivered
// again (the worker died, or a transient failure) converts again; an
// image already converted or failed is left as it is, and a conversion
// that finds its image finished or deleted by another worker stops, so the
// job completes once. keepAlive tells the queue the job is still running.
// On a transient failure it returns an error (the queue redelivers),
// unless this is the last attempt: then the image fails, whatever the
// error.
func (s *Service) RunConversion(ctx context.Context, accountID, imageID string, lastAttempt bool, keepAlive func()) error {
	err := s.runConversion(ctx, accountID, imageID, lastAttempt, keepAlive)
	if errors.Is(err, errFinished) {
		return nil
	}
	if err != nil && lastAttempt {
		s.cfg.Logger.ErrorContext(ctx, "conversion failed on its last attempt", "account", accountID, "image", imageID, "error", err)
		img, gerr := s.Image(ctx, accountID, imageID)
		if gerr != nil {
			return err
		}
		img.Status, img.Reason, img.Error = domain.StatusFailed, "internal", "the conversion failed for a reason of the service's own; see the converter's logs for image "+imageID
		if _, uerr := s.update(ctx, img, func(i domain.Image) domain.Event { return domain.ConversionFailed{Image: i} }); uerr != nil && !errors.Is(uerr, errFinished) {
			return errors.Join(err, uerr)
		}
		return nil
	}
	return err
}

func (s *Service) runConversion(ctx context.Context, accountID, imageID string, lastAttempt bool, keepAlive func()) error {
	img, err := s.Image(ctx, accountID, imageID)
	if errors.Is(err, domain.ErrImageNotFound) {
		return errFinished // deleted meanwhile
	}
	if err != nil {
		return err
	}
	if img.Status.Final() {
		return errFinished
	}
	if s.cfg.Converter == nil {
		return errors.New("imageconverter: no converter configured")
	}
	fail := func(reason, msg string) error {
		img.Status, img.Reason, img.Error = domain.StatusFailed, reason, msg
		_, err := s.update(ctx, img, func(i domain.Image) domain.Event { return domain.ConversionFailed{Image: i} })
		return err
	}
	if _, err := s.cfg.Apps.Get(ctx, accountID, img.AppID); errors.Is(err, domain.ErrAppNotFound) {
		return fail("app_deleted", "the application was deleted before its image was converted")
	} else if err != nil {
		return err
	}
	signer, err := s.signer(ctx, accountID)
	if err != nil {
		return err
	}
	// The spec as it was asked for: an app changed since converts next time.
	spec := img.Spec
	req := ConvertRequest{AppID: img.AppID, Input: spec.InputImage, Output: img.Output, App: spec, Signer: signer, Now: s.now()}
	if req.InputAuth, err = s.auth(ctx, accountID, spec.InputImage); err != nil {
		return err
	}
	if req.OutputAuth, err = s.auth(ctx, accountID, img.Output); err != nil {
		return err
	}
	// A new attempt: what the last one failed with is over.
	img.Status, img.Reason, img.Error = domain.StatusConverting, "", ""
	if img, err = s.update(ctx, img, func(i domain.Image) domain.Event { return domain.ConversionProgressed{Image: i} }); err != nil {
		return err
	}

	// The conversion stops when its image is finished or deleted elsewhere.
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	alive := time.NewTicker(keepAliveEvery)
	defer alive.Stop()
	go func() {
		for {
			select {
			case <-cctx.Done():
				return
			case <-alive.C:
				keepAlive()
			}
		}
	}()

	// Progress arrives on the converter's goroutines; one recorder at a
	// time, at most every progressEvery. The latest report, throttled or
	// not, is what the converted image keeps.
	var (
		mu, latestMu sync.Mutex
		latest       domain.Progress
	)
	last := time.Time{}
	req.Progress = func(p domain.Progress) {
		latestMu.Lock()
		latest = p
		latestMu.Unlock()
		if !mu.TryLock() {
			return
		}
		defer mu.Unlock()
		if time.Since(last) < progressEvery {
			return
		}
		last = time.Now()
		keepAlive()
		img.Progress = p
		u, err := s.update(ctx, img, func(i domain.Image) domain.Event { return domain.ConversionProgressed{Image: i} })
		switch {
		case errors.Is(err, errFinished):
			cancel(errFinished)
		case err == nil:
			img = u
		}
	}
	res, err := s.cfg.Converter.Convert(cctx, req)
	mu.Lock() // no progress update after this point
	defer mu.Unlock()
	if context.Cause(cctx) == errFinished {
		return errFinished
	}
	var ce *ConvertError
	switch {
	case errors.As(err, &ce) && (!ce.Transient || lastAttempt):
		return fail(ce.Reason, ce.Message)
	case errors.As(err, &ce):
		// Tried again later: until then the image is pending and says
		// why, rather than seem to wait for a worker.
		img.Status, img.Reason, img.Error = domain.StatusPending, ce.Reason, ce.Message
		if _, uerr := s.update(ctx, img, func(i domain.Image) domain.Event { return domain.ConversionProgressed{Image: i} }); uerr != nil && !errors.Is(uerr, errFinished) {
			s.cfg.Logger.WarnContext(ctx, "recording a failed attempt", "image", imageID, "error", uerr)
		}
		return err
	case err != nil:
		return err
	}
	latestMu.Lock()
	img.Progress = latest
	latestMu.Unlock()
	img.Status, img.Ref, img.Digest = domain.StatusConverted, res.Ref, res.Digest
	img.MRENCLAVE, img.MRSIGNER = res.MRENCLAVE[:], res.MRSIGNER[:]
	img.GramineRuntime, img.GramineRuntimeStandIn = res.Runtime, res.RuntimeStandIn
	img.ISVProdID, img.ISVSVN = res.ISVProdID, res.ISVSVN
	_, err = s.update(ctx, img, func(i domain.Image) domain.Event { return domain.ImageConverted{Image: i} })
	return err
}

// update stores the image with the event ev makes of it. If another write
// came between, it reads the image again: errFinished when the image was
// finished or deleted meanwhile (its job is over), else it retries on the
// current version.
func (s *Service) update(ctx context.Context, img domain.Image, ev func(domain.Image) domain.Event) (domain.Image, error) {
	img.UpdatedAt = s.now()
	for range 3 {
		out, err := s.cfg.Images.Update(ctx, img, ev(img))
		if errors.Is(err, domain.ErrImageNotFound) {
			return domain.Image{}, errFinished
		}
		if !errors.Is(err, domain.ErrConcurrentChange) {
			return out, err
		}
		cur, gerr := s.cfg.Images.Get(ctx, img.AccountID, img.ID)
		if errors.Is(gerr, domain.ErrImageNotFound) {
			return domain.Image{}, errFinished
		}
		if gerr != nil {
			return domain.Image{}, gerr
		}
		if cur.Status.Final() || !cur.Status.CanMoveTo(img.Status) {
			return domain.Image{}, errFinished
		}
		img.Version = cur.Version
	}
	return domain.Image{}, domain.ErrConcurrentChange
}

// auth returns the account's login for the registry of ref, if it has one.
func (s *Service) auth(ctx context.Context, accountID, ref string) (*Auth, error) {
	host := domain.RegistryOf(ref)
	c, err := s.cfg.Registries.Get(ctx, accountID, host)
	if errors.Is(err, domain.ErrCredentialNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pw, err := s.cfg.KEK.Open(c.Sealed, credentialAAD(accountID, host))
	if err != nil {
		return nil, fmt.Errorf("opening the credential for %s (is this the deployment's master key?): %w", host, err)
	}
	return &Auth{Username: c.Username, Password: string(pw)}, nil
}

func credentialAAD(accountID, registry string) []byte {
	return []byte("cloister/imageconverter/registry/" + accountID + "/" + registry)
}

// PutRegistryCredential stores (or replaces) the account's login for a
// registry; the password is sealed and never returned.
func (s *Service) PutRegistryCredential(ctx context.Context, accountID, registry, username, password string, actor audit.Actor) (domain.RegistryCredential, error) {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.RegistryPut), Target: registry}
	c, err := s.putRegistryCredential(ctx, accountID, registry, username, password, entry)
	return c, s.audited(ctx, entry, err)
}

func (s *Service) putRegistryCredential(ctx context.Context, accountID, registry, username, password string, entry audit.Entry) (domain.RegistryCredential, error) {
	if uuid.Validate(accountID) != nil {
		return domain.RegistryCredential{}, domain.ErrCredentialNotFound
	}
	registry, err := domain.CheckRegistry(strings.ToLower(registry))
	if err != nil {
		return domain.RegistryCredential{}, err
	}
	if err := domain.CheckCredential(username, password); err != nil {
		return domain.RegistryCredential{}, err
	}
	sealed, err := s.cfg.KEK.Seal([]byte(password), credentialAAD(accountID, registry))
	if err != nil {
		return domain.RegistryCredential{}, err
	}
	c := domain.RegistryCredential{AccountID: accountID, Registry: registry, Username: username, Sealed: sealed, UpdatedAt: s.now()}
	if err := s.cfg.Registries.Put(ctx, c, entry); err != nil {
		return domain.RegistryCredential{}, err
	}
	return c, nil
}

// RegistryCredentials lists the account's registry logins, without
// passwords.
func (s *Service) RegistryCredentials(ctx context.Context, accountID string) ([]domain.RegistryCredential, error) {
	if uuid.Validate(accountID) != nil {
		return nil, nil
	}
	return s.cfg.Registries.List(ctx, accountID)
}

// DeleteRegistryCredential removes the account's login for a registry.
func (s *Service) DeleteRegistryCredential(ctx context.Context, accountID, registry string, actor audit.Actor) error {
	entry := audit.Entry{AccountID: accountID, Actor: actor, Action: string(authz.RegistryDelete), Target: registry}
	var err error = domain.ErrCredentialNotFound
	if canonical, cerr := domain.CheckRegistry(strings.ToLower(registry)); uuid.Validate(accountID) == nil && cerr == nil {
		err = s.cfg.Registries.Delete(ctx, accountID, canonical, entry)
	}
	return s.audited(ctx, entry, err)
}
