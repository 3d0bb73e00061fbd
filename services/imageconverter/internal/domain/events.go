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

func (AppCreated) isEvent()           {}
func (AppUpdated) isEvent()           {}
func (AppDeleted) isEvent()           {}
func (SigningKeyCreated) isEvent()    {}
func (ConversionRequested) isEvent()  {}
func (ConversionProgressed) isEvent() {}
func (ImageConverted) isEvent()       {}
func (ConversionFailed) isEvent()     {}
func (ImageDeleted) isEvent()         {}
