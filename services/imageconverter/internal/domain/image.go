package domain

import (
	"fmt"

	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cloister-cc/cloister/libs/errs"
)

// ImageStatus is where an image is in its conversion. It only moves
// forward: pending, converting, then converted or failed.
type ImageStatus string

// The statuses of an image.
const (
	StatusPending    ImageStatus = "pending"
	StatusConverting ImageStatus = "converting"
	StatusConverted  ImageStatus = "converted"
	StatusFailed     ImageStatus = "failed"
)

// Final tells whether the conversion is over.
func (s ImageStatus) Final() bool { return s == StatusConverted || s == StatusFailed }

// CanMoveTo tells whether an image may go from s to next: forward only;
// converting may repeat (progress).
func (s ImageStatus) CanMoveTo(next ImageStatus) bool {
	switch s {
	case StatusPending:
		return next == StatusConverting || next.Final()
	case StatusConverting:
		return next == StatusConverting || next.Final()
	}
	return false
}

// Progress is how far a conversion got.
type Progress struct {
	Phase       string `json:"phase"`
	Layers      int    `json:"layers"`
	TotalLayers int    `json:"total_layers"`
	Bytes       int64  `json:"bytes"`
	TotalBytes  int64  `json:"total_bytes"`
}

// Image is a conversion of an application's input image.
type Image struct {
	ID         string      `json:"id"`
	AccountID  string      `json:"account_id"`
	AppID      string      `json:"app_id"`
	Tag        string      `json:"tag"`
	InputImage string      `json:"input_image"`
	Output     string      `json:"output"` // <output_image>:<tag>
	Status     ImageStatus `json:"status"`
	Ref        string      `json:"ref,omitempty"`
	Digest     string      `json:"digest,omitempty"`
	MRENCLAVE  []byte      `json:"mrenclave,omitempty"`
	MRSIGNER   []byte      `json:"mrsigner,omitempty"`
	ISVProdID  uint16      `json:"isvprodid"`
	ISVSVN     uint16      `json:"isvsvn"`
	// GramineRuntime is the Gramine runtime image the converted image
	// carries, by digest; GramineRuntimeStandIn marks Cloister's stand-in
	// runtime (tests, -dev), which cannot start an SGX enclave.
	GramineRuntime        string   `json:"gramine_runtime,omitempty"`
	GramineRuntimeStandIn bool     `json:"gramine_runtime_stand_in,omitempty"`
	Reason                string   `json:"reason,omitempty"`
	Error                 string   `json:"error,omitempty"`
	Progress              Progress `json:"progress"`
	// Spec is the application as it was when the conversion was asked
	// for: what the job converts, whatever happens to the app meanwhile.
	Spec      AppSpec   `json:"spec"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// RequestedBy is the user who asked for the conversion.
	RequestedBy string `json:"requested_by,omitempty"`
	Version     uint64 `json:"-"`
}

var tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127}$`)

// CheckTag accepts an image tag as registries do.
func CheckTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return invalid("tag", "%q is not an image tag (letters, digits, '_', '.', '-'; at most 128, not starting with '.' or '-')", tag)
	}
	return nil
}

// RegistryCredential lets the converter pull from or push to a registry;
// the password is sealed and never leaves the service.
type RegistryCredential struct {
	AccountID string    `json:"account_id"`
	Registry  string    `json:"registry"`
	Username  string    `json:"username"`
	Sealed    []byte    `json:"sealed"`
	UpdatedAt time.Time `json:"updated_at"`
}

var registryRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$`)

// CheckRegistry accepts a registry host, with an optional port, lower
// case, and returns its canonical name (docker.io is index.docker.io, as
// go-containerregistry names it when it reads a reference).
func CheckRegistry(r string) (string, error) {
	if len(r) > 255 || !registryRE.MatchString(r) {
		return "", invalid("registry", "%q is not a registry host such as registry.example.com or 127.0.0.1:5000", r)
	}
	reg, err := name.NewRegistry(r)
	if err != nil {
		return "", invalid("registry", "%q is not a registry host: %v", r, err)
	}
	return reg.RegistryStr(), nil
}

// RegistryOf returns the canonical registry of an image reference.
func RegistryOf(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ""
	}
	return r.Context().RegistryStr()
}

// CheckCredential validates a username and password.
func CheckCredential(username, password string) error {
	switch {
	case username == "" || len(username) > 256 || strings.ContainsAny(username, "\x00\n\r:"):
		return invalid("username", "must be 1 to 256 characters without ':', NUL or line breaks")
	case password == "" || len(password) > 4096 || strings.ContainsAny(password, "\x00"):
		return invalid("password", "must be 1 to 4096 characters without NUL")
	}
	return nil
}

// Errors of images.
var (
	ErrImageNotFound      = errs.Define(errs.NotFound, "image_not_found", "image not found")
	ErrCredentialNotFound = errs.Define(errs.NotFound, "credential_not_found", "no credential for that registry")
)

// ErrImageExists refuses a second conversion of an app's tag while the
// first is not failed.
func ErrImageExists(tag, id string) error {
	return errs.New(errs.Conflict, fmt.Sprintf("tag %s of this application is already image %s; delete it to convert again", tag, id))
}
