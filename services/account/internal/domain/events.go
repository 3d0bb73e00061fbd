package domain

// Event is a fact the service publishes when a write commits. The store
// turns each into its wire form; the app only names what happened.
type Event interface{ isEvent() }

// The events of the account service.
type (
	AccountCreated struct{ Account Account }
	AccountUpdated struct{ Account Account }
	AccountDeleted struct{ AccountID string }
	UserSignedUp   struct{ User User }
	MemberChanged  struct {
		AccountID, UserID string
		Role              Role // empty when removed
	}
	SessionRevoked struct{ UserID, TokenHash string }
	APIKeyRevoked  struct{ AccountID, KeyID, TokenHash string }
	TaskCreated    struct{ Task Task }
	TaskApproved   struct{ Task Task }
	TaskDenied     struct{ Task Task }
	TaskWithdrawn  struct{ Task Task }
	// Audited is an audit record that must be kept with the write.
	Audited struct{ Entry AuditEntry }
)

func (AccountCreated) isEvent() {}
func (AccountUpdated) isEvent() {}
func (AccountDeleted) isEvent() {}
func (UserSignedUp) isEvent()   {}
func (MemberChanged) isEvent()  {}
func (SessionRevoked) isEvent() {}
func (APIKeyRevoked) isEvent()  {}
func (TaskCreated) isEvent()    {}
func (TaskApproved) isEvent()   {}
func (TaskDenied) isEvent()     {}
func (TaskWithdrawn) isEvent()  {}
func (Audited) isEvent()        {}
