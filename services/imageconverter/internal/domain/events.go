package domain

import (
	"time"

	"github.com/cloister-cc/cloister/libs/audit"
)

// SigningKey is an account's enclave signing key: the private half sealed.
type SigningKey struct {
	AccountID string    `json:"account_id"`
	PublicPEM []byte    `json:"public_pem"`
	MRSIGNER  [32]byte  `json:"mrsigner"`
	Sealed    []byte    `json:"sealed"`
	CreatedAt time.Time `json:"created_at"`
}

// Event is a fact the image converter publishes, with the change that
// causes it (sealed: only this package's types are events). Those a
// person caused carry their audit record, committed in the same write.
type Event interface{ isEvent() }

// Events of applications and signing keys.
type (
	AppCreated struct {
		App   App
		Audit audit.Entry
	}
	AppUpdated struct {
		App   App
		Audit audit.Entry
	}
	AppDeleted struct {
		AccountID, AppID string
		Audit            audit.Entry
	}
	SigningKeyCreated struct{ Key SigningKey }
)

// Events of images.
type (
	ConversionRequested struct {
		Image Image
		Audit audit.Entry
	}
	ConversionProgressed struct{ Image Image }
	ImageConverted       struct{ Image Image }
	ConversionFailed     struct{ Image Image }
	ImageDeleted         struct {
		Image Image
		Audit audit.Entry
	}
)

// Events of secrets: a version set (announced for approval when it is
// pending), a secret deleted. Neither carries a value.
type (
	SecretSet struct {
		AccountID, AppID, Name string
		Version                SecretVersion // Sealed left out of every wire form
		Audit                  audit.Entry
	}
	SecretDeleted struct {
		AccountID, AppID, Name string
		Audit                  audit.Entry
	}
)

func (SecretSet) isEvent()     {}
func (SecretDeleted) isEvent() {}

func (AppCreated) isEvent()           {}
func (AppUpdated) isEvent()           {}
func (AppDeleted) isEvent()           {}
func (SigningKeyCreated) isEvent()    {}
func (ConversionRequested) isEvent()  {}
func (ConversionProgressed) isEvent() {}
func (ImageConverted) isEvent()       {}
func (ConversionFailed) isEvent()     {}
func (ImageDeleted) isEvent()         {}
