// Package domain holds the image converter's applications, images and
// their rules. It imports no transport or storage package.
package domain

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/gramine"
	"github.com/cloister-cc/cloister/libs/pki"
)

// CertificateConfig says what TLS certificate an application's enclave
// obtains at start and where it writes it.
type CertificateConfig struct {
	Domain       string      `json:"domain"`
	Issuer       string      `json:"issuer"` // IssuerCloister or IssuerNone
	KeyPath      string      `json:"key_path"`
	KeyType      pki.KeyType `json:"key_type"`
	CertPath     string      `json:"cert_path"`
	ValidityDays uint32      `json:"validity_days"`
}

// Issuers of application certificates.
const (
	IssuerCloister = "cloister"
	IssuerNone     = "none"
)

// EnvVar is a fixed environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// AppSpec is everything a user sets on an application.
type AppSpec struct {
	Name             string            `json:"name"`
	Description      string            `json:"description"`
	InputImage       string            `json:"input_image"`
	OutputImage      string            `json:"output_image"`
	ISVProdID        uint32            `json:"isvprodid"`
	ISVSVN           uint32            `json:"isvsvn"`
	MemorySize       uint64            `json:"memory_size"`
	Threads          uint32            `json:"threads"`
	Entrypoint       []string          `json:"entrypoint"`
	Args             []string          `json:"args"`
	AllowCmdlineArgs bool              `json:"allow_cmdline_args"`
	Env              []EnvVar          `json:"env"`
	PassthroughEnv   []string          `json:"passthrough_env"`
	RWDirs           []string          `json:"rw_dirs"`
	Debug            bool              `json:"debug"`
	Certificate      CertificateConfig `json:"certificate"`
	// SecretsDir, SecretEnv and Volumes are how the enclave takes the
	// application's secrets and volume keys, delivered with its
	// certificate (docs/secrets.md).
	SecretsDir string              `json:"secrets_dir,omitempty"`
	SecretEnv  []enclave.SecretEnv `json:"secret_env,omitempty"`
	Volumes    []enclave.Volume    `json:"volumes,omitempty"`
}

// App is an application of an account.
type App struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Spec      AppSpec   `json:"spec"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	Version   uint64    `json:"-"`
}

// Limits of an application's fields.
const (
	MaxNameLength    = 64
	MaxDescLength    = 1024
	MinMemorySize    = 32 << 20
	MaxMemorySize    = 64 << 30
	MaxThreads       = 256
	MaxListItems     = 64
	MaxArgLength     = 4096
	MaxEnvVars       = 256
	MaxEnvValue      = 32 << 10
	MaxValidityDays  = 397
	DefaultThreads   = 4
	DefaultMemory    = 256 << 20
	reservedLauncher = "/opt/cloister"
)

var (
	nameRE    = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// invalid is a validation error naming the field at fault.
func invalid(field, format string, args ...any) error {
	return errs.Newf(errs.Invalid, "%s: %s", field, fmt.Sprintf(format, args...))
}

// WithDefaults fills what a user may leave out: memory, threads, the
// certificate's issuer, key type and paths.
func (s AppSpec) WithDefaults() AppSpec {
	if s.MemorySize == 0 {
		s.MemorySize = DefaultMemory
	}
	if s.Threads == 0 {
		s.Threads = DefaultThreads
	}
	c := &s.Certificate
	if c.Issuer == "" {
		c.Issuer = IssuerNone
		if c.Domain != "" {
			c.Issuer = IssuerCloister
		}
	}
	if c.Issuer == IssuerCloister {
		if c.KeyType == "" {
			c.KeyType = pki.P256
		}
		if c.KeyPath == "" {
			c.KeyPath = "/run/cloister/key.pem"
		}
		if c.CertPath == "" {
			c.CertPath = "/run/cloister/cert.pem"
		}
	}
	c.Domain = strings.ToLower(c.Domain)
	if s.SecretsDir == "" && len(s.SecretEnv) > 0 {
		s.SecretsDir = enclave.DefaultSecretsDir
	}
	return s
}

// Check validates a spec (after WithDefaults), naming the first field at
// fault.
func (s AppSpec) Check() error {
	switch {
	case s.Name == "" || len(s.Name) > MaxNameLength || !nameRE.MatchString(s.Name):
		return invalid("name", "must be 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit", MaxNameLength)
	case !utf8.ValidString(s.Description) || utf8.RuneCountInString(s.Description) > MaxDescLength:
		return invalid("description", "must be valid UTF-8 of at most %d characters", MaxDescLength)
	}
	if _, err := enclave.ParseImageReference(s.InputImage); err != nil {
		return invalid("input_image", "%v", err)
	}
	if _, err := enclave.ParseRepository(s.OutputImage); err != nil {
		return invalid("output_image", "%v", err)
	}
	switch {
	case s.ISVProdID > 0xffff:
		return invalid("isvprodid", "must be 0 to 65535")
	case s.ISVSVN > 0xffff:
		return invalid("isvsvn", "must be 0 to 65535")
	case s.MemorySize < MinMemorySize || s.MemorySize > MaxMemorySize:
		return invalid("memory_size", "must be a power of two from %d MiB to %d GiB (Gramine's sgx.enclave_size)", MinMemorySize>>20, MaxMemorySize>>30)
	case s.MemorySize&(s.MemorySize-1) != 0:
		return invalid("memory_size", "%s", gramine.ValidateSize(s.MemorySize))
	case s.Threads < 1 || s.Threads > MaxThreads:
		return invalid("threads", "must be 1 to %d", MaxThreads)
	}
	if err := checkStrings("entrypoint", s.Entrypoint); err != nil {
		return err
	}
	if err := checkStrings("args", s.Args); err != nil {
		return err
	}
	if err := s.checkEnv(); err != nil {
		return err
	}
	if len(s.RWDirs) > MaxListItems {
		return invalid("rw_dirs", "at most %d directories", MaxListItems)
	}
	for i, d := range s.RWDirs {
		if err := checkPath(fmt.Sprintf("rw_dirs[%d]", i), d); err != nil {
			return err
		}
		if err := enclave.CheckRWDir(d); err != nil {
			return invalid(fmt.Sprintf("rw_dirs[%d]", i), "%v", err)
		}
	}
	if len(s.Entrypoint) > 0 && strings.HasPrefix(s.Entrypoint[0], "/") {
		if slices.ContainsFunc(s.RWDirs, func(d string) bool { return s.Entrypoint[0] == d || strings.HasPrefix(s.Entrypoint[0], d+"/") }) {
			return invalid("entrypoint[0]", "%s lies in a read-write directory, which the measurement does not cover", s.Entrypoint[0])
		}
		if err := checkPath("entrypoint[0]", path.Clean(s.Entrypoint[0])); err != nil {
			return err
		}
	}
	if err := s.Certificate.check(); err != nil {
		return err
	}
	if err := s.checkSecretDirs(); err != nil {
		return err
	}
	return s.checkSecrets()
}

// MaxVolumes bounds an application's encrypted volumes.
const MaxVolumes = 16

// checkSecrets checks how the enclave takes secrets and volume keys: they
// come with the certificate, so the application needs one from the
// account CA; the rules of the launcher's manifest hold
// (enclave.Manifest.CheckSecrets).
func (s AppSpec) checkSecrets() error {
	if s.SecretsDir == "" && len(s.Volumes) == 0 {
		return nil
	}
	field := "secrets_dir"
	if s.SecretsDir == "" {
		field = "volumes"
	}
	if s.Certificate.Issuer != IssuerCloister {
		return invalid(field, "secrets and volume keys are delivered with the enclave's certificate: set certificate.domain, with issuer %s", IssuerCloister)
	}
	switch {
	case len(s.SecretEnv) > MaxListItems:
		return invalid("secret_env", "at most %d variables", MaxListItems)
	case len(s.Volumes) > MaxVolumes:
		return invalid("volumes", "at most %d volumes", MaxVolumes)
	}
	m := enclave.Manifest{Env: make([]enclave.EnvVar, len(s.Env)), PassthroughEnv: s.PassthroughEnv, RWDirs: s.RWDirs, Volumes: s.Volumes}
	for i, e := range s.Env {
		m.Env[i] = enclave.EnvVar{Name: e.Name, Value: e.Value}
	}
	if s.SecretsDir != "" {
		if err := checkPath("secrets_dir", s.SecretsDir); err != nil {
			return err
		}
		for _, p := range []string{s.Certificate.KeyPath, s.Certificate.CertPath} {
			if path.Dir(p) == s.SecretsDir {
				return invalid("secrets_dir", "%s is the directory of the certificate's %s: give the secrets a directory of their own, such as %s", s.SecretsDir, p, enclave.DefaultSecretsDir)
			}
		}
		m.Secrets = &enclave.Secrets{Dir: s.SecretsDir, Env: s.SecretEnv}
	}
	for i, v := range s.Volumes {
		if err := checkPath(fmt.Sprintf("volumes[%d].path", i), v.Path); err != nil {
			return err
		}
		if len(s.Entrypoint) > 0 && strings.HasPrefix(path.Clean(s.Entrypoint[0])+"/", v.Path+"/") {
			return invalid("entrypoint[0]", "%s lies in the volume %s, which the measurement does not cover", s.Entrypoint[0], v.Path)
		}
	}
	if err := m.CheckSecrets(); err != nil {
		return invalid(field, "%v", err)
	}
	return nil
}

// checkSecretDirs refuses key and certificate paths whose directory the
// enclave cannot keep to itself: the root, or a read-write directory (or
// one above or below it), which is the host's disk. Gramine mounts an
// in-enclave tmpfs on each of the two directories.
func (s AppSpec) checkSecretDirs() error {
	c := s.Certificate
	if c.Issuer != IssuerCloister {
		return nil
	}
	for _, f := range []struct{ field, p string }{{"certificate.key_path", c.KeyPath}, {"certificate.cert_path", c.CertPath}} {
		d := path.Dir(f.p)
		if d == "/" {
			return invalid(f.field, "%s lies in /, which cannot be an in-enclave tmpfs; choose a dedicated directory such as /run/cloister", f.p)
		}
		for _, rw := range s.RWDirs {
			if d == rw || strings.HasPrefix(d, rw+"/") || strings.HasPrefix(rw, d+"/") {
				return invalid(f.field, "%s lies with the read-write directory %s, which is the host's disk: the enclave keeps its key and certificate on an in-enclave tmpfs, so choose another directory", f.p, rw)
			}
		}
	}
	return nil
}

func (s AppSpec) checkEnv() error {
	if len(s.Env)+len(s.PassthroughEnv) > MaxEnvVars {
		return invalid("env", "at most %d variables, fixed and passed through together", MaxEnvVars)
	}
	seen := map[string]bool{}
	for i, e := range s.Env {
		field := fmt.Sprintf("env[%d]", i)
		switch {
		case !envNameRE.MatchString(e.Name):
			return invalid(field, "%q is not a variable name (letters, digits and '_', not starting with a digit)", e.Name)
		case seen[e.Name]:
			return invalid(field, "%s is set twice", e.Name)
		case strings.ContainsRune(e.Value, 0) || len(e.Value) > MaxEnvValue || !utf8.ValidString(e.Value):
			return invalid(field, "the value of %s must be UTF-8 without NUL, at most %d bytes", e.Name, MaxEnvValue)
		}
		seen[e.Name] = true
	}
	for i, n := range s.PassthroughEnv {
		field := fmt.Sprintf("passthrough_env[%d]", i)
		switch {
		case !envNameRE.MatchString(n):
			return invalid(field, "%q is not a variable name", n)
		case seen[n]:
			return invalid(field, "%s is already set (or listed twice): a variable is fixed or passed through, not both", n)
		case strings.HasPrefix(n, "LD_") || n == "PATH":
			return invalid(field, "%s steers the loader or what runs: the host may not set it; fix it in env if the application needs it", n)
		}
		seen[n] = true
	}
	return nil
}

func (c CertificateConfig) check() error {
	switch c.Issuer {
	case IssuerNone:
		if c.Domain != "" || c.KeyType != "" || c.KeyPath != "" || c.CertPath != "" || c.ValidityDays != 0 {
			return invalid("certificate.issuer", "is none, so the other certificate fields must be empty")
		}
		return nil
	case IssuerCloister:
	default:
		return invalid("certificate.issuer", "must be %s or %s, not %q", IssuerCloister, IssuerNone, c.Issuer)
	}
	if err := CheckDomain(c.Domain); err != nil {
		return invalid("certificate.domain", "%v", err)
	}
	if _, err := pki.ParseKeyType(string(c.KeyType)); err != nil {
		return invalid("certificate.key_type", "%v", err)
	}
	if err := checkPath("certificate.key_path", c.KeyPath); err != nil {
		return err
	}
	if err := checkPath("certificate.cert_path", c.CertPath); err != nil {
		return err
	}
	switch {
	case c.KeyPath == c.CertPath:
		return invalid("certificate.cert_path", "must differ from key_path")
	case c.ValidityDays > MaxValidityDays:
		return invalid("certificate.validity_days", "must be at most %d (0 for the CA's default)", MaxValidityDays)
	}
	return nil
}

// CheckDomain accepts the names the CA issues for (pki.CheckDNSName).
func CheckDomain(d string) error { return pki.CheckDNSName(d) }

func checkStrings(field string, ss []string) error {
	if len(ss) > MaxListItems {
		return invalid(field, "at most %d items", MaxListItems)
	}
	for i, s := range ss {
		if len(s) > MaxArgLength || strings.ContainsRune(s, 0) || !utf8.ValidString(s) {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "must be UTF-8 without NUL, at most %d bytes", MaxArgLength)
		}
	}
	return nil
}

// checkPath accepts an absolute, clean path outside /opt/cloister.
func checkPath(field, p string) error {
	switch {
	case !strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.ContainsRune(p, 0) || len(p) > 1024:
		return invalid(field, "%q must be an absolute, clean path", p)
	case p == reservedLauncher || strings.HasPrefix(p, reservedLauncher+"/"):
		return invalid(field, "%s is reserved for the launcher", reservedLauncher)
	}
	return nil
}

// Errors of the image converter.
var (
	ErrAppNotFound      = errs.Define(errs.NotFound, "app_not_found", "application not found")
	ErrAppNameTaken     = errs.Define(errs.Conflict, "app_name_taken", "the account has an application of that name already")
	ErrConcurrentChange = errs.Define(errs.Conflict, "concurrent_change", "changed by another request; retry")
	ErrNoSigningKey     = errs.Define(errs.NotFound, "no_signing_key", "the account has no enclave signing key yet")
	// ErrSigningKeyNotReady refuses a conversion in the seconds after an
	// account is created, while its signing key is being made.
	ErrSigningKeyNotReady = errs.Define(errs.Conflict, "signing_key_not_ready", "the account's enclave signing key is not ready yet; try again in a few seconds")
	ErrKeyExists          = errs.Define(errs.Conflict, "key_exists", "the account has a signing key already")
)
