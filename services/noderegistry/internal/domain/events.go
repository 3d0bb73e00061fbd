package domain

import "github.com/cloister-cc/cloister/libs/audit"

// Event is a fact the node registry publishes, with the change that
// causes it (sealed: only this package's types are events).
type Event interface{ isEvent() }

// Events the service publishes with the changes that cause them. Those a
// person caused carry their audit record, committed in the same write.
type (
	TokenCreated struct {
		Token JoinToken
		Audit audit.Entry
	}
	TokenRevoked struct {
		Token JoinToken
		Audit audit.Entry
	}
	// NodeEnrolled's audit record names the join token as the actor.
	NodeEnrolled struct {
		Node  Node
		Audit audit.Entry
	}
	// NodeStatusChanged carries an audit record when the change is one
	// to record (untrusted: the system's, with the cause).
	NodeStatusChanged struct {
		Node  Node
		Audit *audit.Entry
	}
	NodeDeregistered struct {
		Node  Node
		Audit audit.Entry
	}
	InstanceStarted struct {
		AccountID, NodeID string
		Instance          Instance
	}
	InstanceStopped struct {
		AccountID, NodeID string
		Instance          Instance
	}
)

func (TokenCreated) isEvent()      {}
func (TokenRevoked) isEvent()      {}
func (NodeEnrolled) isEvent()      {}
func (NodeStatusChanged) isEvent() {}
func (NodeDeregistered) isEvent()  {}
func (InstanceStarted) isEvent()   {}
func (InstanceStopped) isEvent()   {}
