package domain

import (
	"time"

	"github.com/cloister-cc/cloister/libs/errs"
)

// Secret is a named value of an application, kept in versions, each
// sealed under the deployment's master key. Its values leave the service
// only sealed to an attested enclave's key.
type Secret struct {
	AccountID string          `json:"account_id"`
	AppID     string          `json:"app_id"`
	Name      string          `json:"name"`
	Versions  []SecretVersion `json:"versions"` // oldest first
	UpdatedAt time.Time       `json:"updated_at"`
	// LastNumber is the number of the last version set, dropped or not:
	// numbers are not given twice while the secret lives.
	LastNumber uint32 `json:"last_number"`
}

// SecretVersion is one value a secret had.
type SecretVersion struct {
	// ID names the version for good (its approval task refers to it).
	ID        string    `json:"id"`
	Number    uint32    `json:"number"`
	Size      uint32    `json:"size"`
	Sealed    []byte    `json:"sealed"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	// Pending: the version waits for its secret task's approval (the
	// account's secrets_need_approval); enclaves are not given it.
	Pending bool `json:"pending,omitempty"`
}

// MaxSecretVersions is how many versions of a secret are kept: setting
// one more drops the oldest.
const MaxSecretVersions = 10

// Latest is the newest version, pending or not.
func (s Secret) Latest() SecretVersion { return s.Versions[len(s.Versions)-1] }

// Effective is the version an enclave is given: the newest that is not
// pending; false when every version is.
func (s Secret) Effective() (SecretVersion, bool) {
	for i := len(s.Versions) - 1; i >= 0; i-- {
		if !s.Versions[i].Pending {
			return s.Versions[i], true
		}
	}
	return SecretVersion{}, false
}

// ErrSecretNotFound is returned for a secret the application does not
// have.
var ErrSecretNotFound = errs.Define(errs.NotFound, "secret_not_found", "the application has no secret of that name")
