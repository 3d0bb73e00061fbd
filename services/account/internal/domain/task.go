package domain

import (
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
)

// TaskKind is what a task asks the admins to approve.
type TaskKind string

// The kinds of task.
const (
	KindDomain TaskKind = "domain" // a DNS name an application may serve
	KindImage  TaskKind = "image"  // a converted image (its measurement) an application may run
)

// TaskStatus is where a task is in its life. It only moves forward:
// pending → approved | denied | withdrawn, and approved → withdrawn.
type TaskStatus string

// The statuses of a task.
const (
	StatusPending   TaskStatus = "pending"
	StatusApproved  TaskStatus = "approved"
	StatusDenied    TaskStatus = "denied"
	StatusWithdrawn TaskStatus = "withdrawn"
)

// ParseTaskStatus checks a status name.
func ParseTaskStatus(s string) (TaskStatus, error) {
	switch st := TaskStatus(s); st {
	case StatusPending, StatusApproved, StatusDenied, StatusWithdrawn:
		return st, nil
	}
	return "", errs.Newf(errs.Invalid, "status %q is not one of pending, approved, denied, withdrawn", s)
}

// Bounds of an account's approvals_required.
const (
	MinApprovalsRequired = 1
	MaxApprovalsRequired = 10
)

// CheckApprovalsRequired enforces the bounds of approvals_required.
func CheckApprovalsRequired(n int) error {
	if n < MinApprovalsRequired || n > MaxApprovalsRequired {
		return errs.Newf(errs.Invalid, "approvals_required must be between %d and %d", MinApprovalsRequired, MaxApprovalsRequired)
	}
	return nil
}

// Errors of tasks.
var (
	ErrTaskNotFound    = errs.Define(errs.NotFound, "task_not_found", "task not found")
	ErrTaskExists      = errs.Define(errs.Conflict, "task_exists", "the task already exists")
	ErrAlreadyApproved = errs.Define(errs.Conflict, "already_approved", "already approved by you")
	ErrOwnApproval     = errs.Define(errs.PermissionDenied, "own_approval",
		"you requested this task, and with 2 or more approvals required your own approval does not count: another admin must approve it")
)

// ImageMeasurement is the converted image an image task is about.
type ImageMeasurement struct {
	ImageID   string
	Tag       string
	MRENCLAVE []byte
	MRSIGNER  []byte
	ISVProdID uint32
	ISVSVN    uint32
}

// Approval is one admin's approval of a task.
type Approval struct {
	UserID string
	At     time.Time
}

// Task asks the account's admins to approve what a member requested: an
// application's domain or a converted image. Approved tasks are what the
// CA and attestation allow.
type Task struct {
	ID          string
	AccountID   string
	Kind        TaskKind
	Status      TaskStatus
	RequesterID string
	AppID       string
	Domain      string            // kind domain
	Image       *ImageMeasurement // kind image
	Approvals   []Approval
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Version     uint64
	// Quorum is the account's approvals_required when the task was opened:
	// the task keeps it, or the account's if that is higher (QuorumWith).
	Quorum int
	// Counted and Required are the task's progress, filled when it is read
	// (Progress): approvals that count, of those it needs.
	Counted, Required int `json:"-"`
}

// QuorumWith is the quorum in force for the task, the account's being
// current: the higher of it and the task's own, so that lowering the
// account's quorum does not lower what a pending task needs.
func (t Task) QuorumWith(current int) int { return max(current, t.Quorum, MinApprovalsRequired) }

// Progress fills Counted and Required for the account's current quorum
// and admins.
func (t *Task) Progress(current int, admins []string) {
	t.Required = t.QuorumWith(current)
	t.Counted = min(t.counted(t.Required, admins), t.Required)
}

// taskNamespace derives task ids from what they approve, so that an event
// delivered twice names the same task and opens nothing new.
var taskNamespace = uuid.MustParse("5b0f4c2e-8a61-4d7b-9c3e-2f6a1d9e7b40")

// DomainTaskID is the id of the task that approves domain for an app.
func DomainTaskID(accountID, appID, domain string) string {
	return uuid.NewSHA1(taskNamespace, []byte("domain/"+accountID+"/"+appID+"/"+strings.ToLower(domain))).String()
}

// ImageTaskID is the id of the task that approves an image.
func ImageTaskID(accountID, imageID string) string {
	return uuid.NewSHA1(taskNamespace, []byte("image/"+accountID+"/"+imageID)).String()
}

// NewDomainTask returns the pending task that asks to approve domain for
// an application.
func NewDomainTask(accountID, appID, domain, requesterID string, now time.Time) (Task, error) {
	domain = strings.ToLower(strings.TrimSpace(domain))
	if err := checkTaskIDs(accountID, appID); err != nil {
		return Task{}, err
	}
	if domain == "" {
		return Task{}, errs.New(errs.Invalid, "a domain task needs a domain")
	}
	return Task{ID: DomainTaskID(accountID, appID, domain), AccountID: accountID, Kind: KindDomain, Status: StatusPending,
		RequesterID: requesterID, AppID: appID, Domain: domain, CreatedAt: now, UpdatedAt: now}, nil
}

// NewImageTask returns the pending task that asks to approve a converted
// image of an application.
func NewImageTask(accountID, appID string, im ImageMeasurement, requesterID string, now time.Time) (Task, error) {
	if err := checkTaskIDs(accountID, appID); err != nil {
		return Task{}, err
	}
	switch {
	case im.ImageID == "":
		return Task{}, errs.New(errs.Invalid, "an image task needs an image id")
	case len(im.MRENCLAVE) == 0:
		return Task{}, errs.New(errs.Invalid, "an image task needs the image's MRENCLAVE")
	}
	return Task{ID: ImageTaskID(accountID, im.ImageID), AccountID: accountID, Kind: KindImage, Status: StatusPending,
		RequesterID: requesterID, AppID: appID, Image: &im, CreatedAt: now, UpdatedAt: now}, nil
}

func checkTaskIDs(accountID, appID string) error {
	switch {
	case uuid.Validate(accountID) != nil:
		return errs.Newf(errs.Invalid, "account id %q is not a UUID", accountID)
	case appID == "":
		return errs.New(errs.Invalid, "a task needs an application id")
	}
	return nil
}

// Approve records admin userID's approval at now. quorum is the account's
// approvals_required as it is now; admins are the users whose approvals
// count (an approval by someone no longer an admin does not). It reports
// whether the task reached its quorum and is now approved.
//
// With a quorum of 2 or more the requester's own approval does not count
// and is refused. An admin who already approved is refused too, unless the
// quorum was lowered meanwhile so that the approvals given suffice: the
// next approval applies the new number, and this one is it.
func (t *Task) Approve(userID string, quorum int, admins []string, now time.Time) (bool, error) {
	quorum = max(quorum, MinApprovalsRequired)
	if t.Status != StatusPending {
		return false, t.notPending("approved")
	}
	if quorum >= 2 && userID == t.RequesterID {
		return false, ErrOwnApproval
	}
	again := slices.ContainsFunc(t.Approvals, func(a Approval) bool { return a.UserID == userID })
	if again && t.counted(quorum, admins) < quorum {
		return false, ErrAlreadyApproved
	}
	if !again {
		t.Approvals = append(t.Approvals, Approval{UserID: userID, At: now})
	}
	t.UpdatedAt = now
	if t.counted(quorum, admins) < quorum {
		return false, nil
	}
	t.Status = StatusApproved
	return true, nil
}

// counted is the number of approvals that count toward quorum: one per
// distinct admin, without the requester's from a quorum of 2 on.
func (t *Task) counted(quorum int, admins []string) int {
	seen := map[string]bool{}
	for _, a := range t.Approvals {
		if seen[a.UserID] || !slices.Contains(admins, a.UserID) || (quorum >= 2 && a.UserID == t.RequesterID) {
			continue
		}
		seen[a.UserID] = true
	}
	return len(seen)
}

// Deny refuses a pending task for good.
func (t *Task) Deny(now time.Time) error {
	if t.Status != StatusPending {
		return t.notPending("denied")
	}
	t.Status, t.UpdatedAt = StatusDenied, now
	return nil
}

// Withdraw takes back an approved task's approval for good.
func (t *Task) Withdraw(now time.Time) error {
	if t.Status != StatusApproved {
		return errs.Newf(errs.Conflict, "the task is %s; only an approved task can be withdrawn", t.Status)
	}
	t.Status, t.UpdatedAt = StatusWithdrawn, now
	return nil
}

// Retract withdraws a pending task whose subject went away (its
// application or image was deleted). It reports whether it did: tasks
// decided already are left as they are.
func (t *Task) Retract(now time.Time) bool {
	if t.Status != StatusPending {
		return false
	}
	t.Status, t.UpdatedAt = StatusWithdrawn, now
	return true
}

func (t *Task) notPending(verb string) error {
	return errs.Newf(errs.Conflict, "the task is %s; only a pending task can be %s", t.Status, verb)
}
