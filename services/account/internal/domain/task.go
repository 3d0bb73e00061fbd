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
	KindQuorum TaskKind = "quorum" // a new approvals_required for the account
	KindAdmin  TaskKind = "admin"  // a member to make an admin of the account
	KindSecret TaskKind = "secret" // a new value of an application's secret, under the account's secrets_need_approval
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

// An account's approvals_required N means one thing everywhere: a task
// needs the approvals of N distinct admins other than its requester. With
// 0 (the default of a new account, which has one admin) any one admin
// approves, the requester included.
const MaxApprovalsRequired = 10

// CheckApprovalsRequired enforces the bounds of approvals_required.
func CheckApprovalsRequired(n int) error {
	if n < 0 || n > MaxApprovalsRequired {
		return errs.Newf(errs.Invalid, "approvals_required must be between 0 and %d", MaxApprovalsRequired)
	}
	return nil
}

// CheckQuorumReachable refuses a quorum the account's admins cannot
// reach: tasks an admin requests need quorum admins besides them, so the
// account needs quorum+1 admins, or it could never change its quorum or
// admins again.
func CheckQuorumReachable(quorum, admins int) error {
	if admins < quorum+1 {
		return ErrQuorumUnreachable.Withf("approvals_required %d needs at least %d admins (%d besides whoever requests a task), and the account would have %d",
			quorum, quorum+1, quorum, admins)
	}
	return nil
}

// approvalsNeeded is how many approvals a task needs under quorum: the
// quorum, and at least one.
func approvalsNeeded(quorum int) int { return max(quorum, 1) }

// Errors of tasks.
var (
	ErrTaskNotFound    = errs.Define(errs.NotFound, "task_not_found", "task not found")
	ErrTaskExists      = errs.Define(errs.Conflict, "task_exists", "the task already exists")
	ErrAlreadyApproved = errs.Define(errs.Conflict, "already_approved", "already approved by you")
	ErrOwnApproval     = errs.Define(errs.PermissionDenied, "own_approval",
		"you requested this task, and approvals_required counts admins other than the requester: another admin must approve it")
	ErrQuorumUnreachable = errs.Define(errs.Conflict, "quorum_unreachable", "the account's admins cannot reach this approvals_required")
	ErrPendingChange     = errs.Define(errs.Conflict, "pending_change", "a pending task asks for this change already: approve or deny it first")
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
// application's domain or a converted image, which the CA and attestation
// allow once approved; or, from an admin, a change of the account's
// approvals_required or a new admin, which the account service applies.
type Task struct {
	ID          string
	AccountID   string
	Kind        TaskKind
	Status      TaskStatus
	RequesterID string
	AppID       string
	Domain      string            // kind domain
	Image       *ImageMeasurement // kind image
	NewQuorum   int               // kind quorum: the approvals_required proposed
	Admin       *Grantee          // kind admin: the member to make an admin
	Secret      *SecretChange     // kind secret
	// Applied says that the change of an approved quorum or admin task
	// was made to the account.
	Applied   bool
	Approvals []Approval
	CreatedAt time.Time
	UpdatedAt time.Time
	Version   uint64
	// Quorum is the account's approvals_required when the task was opened:
	// the task keeps it, or the account's if that is higher (QuorumWith).
	Quorum int
	// Counted and Required are the task's progress, filled when it is read
	// (Progress): approvals that count, of those it needs.
	Counted, Required int `json:"-"`
}

// SecretChange is the subject of a secret task: a version of an
// application's secret (never its value).
type SecretChange struct {
	Name          string
	Version, Size uint32
	// VersionID names the version for good; the task's id derives from it.
	VersionID string
}

// Grantee is the member an admin task makes an admin.
type Grantee struct {
	UserID string
	Email  string
}

// QuorumWith is the quorum in force for the task, the account's being
// current: the higher of it and the task's own, so that lowering the
// account's quorum does not lower what a pending task needs.
func (t Task) QuorumWith(current int) int { return max(current, t.Quorum) }

// Progress fills Counted and Required for the account's current quorum
// and admins.
func (t *Task) Progress(current int, admins []string) {
	q := t.reachable(t.QuorumWith(current), admins)
	t.Required = approvalsNeeded(q)
	t.Counted = min(t.counted(q, admins), t.Required)
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

// SecretTaskID is the id of the task that approves a version of a secret.
func SecretTaskID(accountID, versionID string) string {
	return uuid.NewSHA1(taskNamespace, []byte("secret/"+accountID+"/"+versionID)).String()
}

// NewSecretTask returns the pending task that asks to approve a new value
// of an application's secret.
func NewSecretTask(accountID, appID string, c SecretChange, requesterID string, now time.Time) (Task, error) {
	if err := checkTaskIDs(accountID, appID); err != nil {
		return Task{}, err
	}
	if c.Name == "" || c.Version == 0 || c.VersionID == "" {
		return Task{}, errs.New(errs.Invalid, "a secret task needs the secret's name, version and version id")
	}
	return Task{ID: SecretTaskID(accountID, c.VersionID), AccountID: accountID, Kind: KindSecret, Status: StatusPending,
		RequesterID: requesterID, AppID: appID, Secret: &c, CreatedAt: now, UpdatedAt: now}, nil
}

// NewQuorumTask returns the pending task that asks to set the account's
// approvals_required to n. Such tasks are opened by a person's request,
// once: their ids are random.
func NewQuorumTask(accountID string, n int, requesterID string, now time.Time) (Task, error) {
	if err := CheckApprovalsRequired(n); err != nil {
		return Task{}, err
	}
	return Task{ID: uuid.Must(uuid.NewV7()).String(), AccountID: accountID, Kind: KindQuorum, Status: StatusPending,
		RequesterID: requesterID, NewQuorum: n, CreatedAt: now, UpdatedAt: now}, nil
}

// NewAdminTask returns the pending task that asks to make a member an
// admin.
func NewAdminTask(accountID string, g Grantee, requesterID string, now time.Time) (Task, error) {
	if g.UserID == "" {
		return Task{}, errs.New(errs.Invalid, "an admin task needs the member's user id")
	}
	return Task{ID: uuid.Must(uuid.NewV7()).String(), AccountID: accountID, Kind: KindAdmin, Status: StatusPending,
		RequesterID: requesterID, Admin: &g, CreatedAt: now, UpdatedAt: now}, nil
}

// SameChange reports whether t is a pending task that asks for what o
// asks (a quorum change, or making the same member an admin), so that a
// second request waits for the first.
func (t Task) SameChange(o Task) bool {
	if t.Status != StatusPending || t.Kind != o.Kind {
		return false
	}
	switch t.Kind {
	case KindQuorum:
		return true
	case KindAdmin:
		return t.Admin != nil && o.Admin != nil && t.Admin.UserID == o.Admin.UserID
	}
	return false
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

// Approve records admin userID's approval at now. quorum is the task's
// quorum in force (QuorumWith); admins are the users whose approvals
// count (an approval by someone no longer an admin does not). It reports
// whether the task reached its quorum and is now approved.
//
// Under a quorum of 1 or more the requester's own approval does not count
// and is refused. An admin who already approved is refused too, unless the
// quorum was lowered meanwhile so that the approvals given suffice: the
// next approval applies the new number, and this one is it.
func (t *Task) Approve(userID string, quorum int, admins []string, now time.Time) (bool, error) {
	if t.Status != StatusPending {
		return false, t.notPending("approved")
	}
	quorum = t.reachable(quorum, admins)
	if quorum >= 1 && userID == t.RequesterID {
		return false, ErrOwnApproval
	}
	need := approvalsNeeded(quorum)
	again := slices.ContainsFunc(t.Approvals, func(a Approval) bool { return a.UserID == userID })
	if again && t.counted(quorum, admins) < need {
		return false, ErrAlreadyApproved
	}
	if !again {
		t.Approvals = append(t.Approvals, Approval{UserID: userID, At: now})
	}
	t.UpdatedAt = now
	if t.counted(quorum, admins) < need {
		return false, nil
	}
	t.Status = StatusApproved
	return true, nil
}

// reachable caps quorum at the admins other than the requester: a quorum
// the admins cannot reach (an account stored before reachability was
// enforced, where it was allowed) counts as the most they can give, so
// that no account is left where nothing can be approved, not even a lower
// quorum. Reachability is enforced on every change, so a quorum set now
// is never capped.
func (t *Task) reachable(quorum int, admins []string) int {
	others := map[string]bool{}
	for _, a := range admins {
		if a != t.RequesterID {
			others[a] = true
		}
	}
	return min(quorum, len(others))
}

// counted is the number of approvals that count under quorum: one per
// distinct admin, without the requester's from a quorum of 1 on.
func (t *Task) counted(quorum int, admins []string) int {
	seen := map[string]bool{}
	for _, a := range t.Approvals {
		if seen[a.UserID] || !slices.Contains(admins, a.UserID) || (quorum >= 1 && a.UserID == t.RequesterID) {
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

// Withdraw takes back an approved task's approval for good. A change of
// the account is undone by another change, not withdrawn.
func (t *Task) Withdraw(now time.Time) error {
	if t.Kind == KindQuorum || t.Kind == KindAdmin {
		return errs.Newf(errs.Conflict, "an approved %s task cannot be withdrawn: request the opposite change instead", t.Kind)
	}
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
