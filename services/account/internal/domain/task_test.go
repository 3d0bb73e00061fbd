package domain

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
)

func TestTaskApprove(t *testing.T) {
	now := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	admins := []string{"req", "a", "b", "c"}
	for _, tc := range []struct {
		name      string
		quorum    int
		status    TaskStatus
		given     []string // approvals already recorded
		admins    []string
		by        string
		wantErr   error
		wantKind  errs.Kind
		wantState TaskStatus
	}{
		{name: "requester alone at 1", quorum: 1, by: "req", wantState: StatusApproved},
		{name: "requester refused at 2", quorum: 2, by: "req", wantErr: ErrOwnApproval},
		{name: "first of 2", quorum: 2, by: "a", wantState: StatusPending},
		{name: "second of 2", quorum: 2, given: []string{"a"}, by: "b", wantState: StatusApproved},
		{name: "same admin twice", quorum: 2, given: []string{"a"}, by: "a", wantErr: ErrAlreadyApproved},
		{name: "quorum lowered, next decides", quorum: 2, given: []string{"a", "b"}, by: "c", wantState: StatusApproved},
		{name: "quorum lowered, same admin completes", quorum: 1, given: []string{"a"}, by: "a", wantState: StatusApproved},
		{name: "quorum raised, requester's old approval ignored", quorum: 2, given: []string{"req"}, by: "a", wantState: StatusPending},
		{name: "former admin's approval ignored", quorum: 2, given: []string{"gone"}, by: "a", wantState: StatusPending},
		{name: "not pending", quorum: 1, status: StatusDenied, by: "a", wantKind: errs.Conflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task, err := NewImageTask(uuid.NewString(), "app", ImageMeasurement{ImageID: "im", MRENCLAVE: []byte{1}}, "req", now)
			if err != nil {
				t.Fatal(err)
			}
			if tc.status != "" {
				task.Status = tc.status
			}
			for _, u := range tc.given {
				task.Approvals = append(task.Approvals, Approval{UserID: u, At: now})
			}
			done, err := task.Approve(tc.by, tc.quorum, admins, now.Add(time.Minute))
			switch {
			case tc.wantErr != nil || tc.wantKind != errs.Internal:
				if (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || (tc.wantKind != errs.Internal && errs.KindOf(err) != tc.wantKind) {
					t.Fatalf("Approve(%s) = %v, want %v (%v)", tc.by, err, tc.wantErr, tc.wantKind)
				}
				if len(task.Approvals) != len(tc.given) {
					t.Fatalf("a refused approval was recorded: %v", task.Approvals)
				}
			case err != nil:
				t.Fatalf("Approve(%s) = %v", tc.by, err)
			case task.Status != tc.wantState || done != (tc.wantState == StatusApproved):
				t.Fatalf("Approve(%s) = %v, status %s; want %s", tc.by, done, task.Status, tc.wantState)
			}
		})
	}
}

func TestTaskIDsAreDeterministic(t *testing.T) {
	acct := uuid.NewString()
	if DomainTaskID(acct, "app", "a.example.com") != DomainTaskID(acct, "app", "A.example.com") {
		t.Error("DomainTaskID depends on the domain's case")
	}
	for _, pair := range [][2]string{
		{DomainTaskID(acct, "app", "a.example.com"), DomainTaskID(acct, "app2", "a.example.com")},
		{DomainTaskID(acct, "app", "a.example.com"), DomainTaskID(uuid.NewString(), "app", "a.example.com")},
		{ImageTaskID(acct, "im"), ImageTaskID(acct, "im2")},
	} {
		if pair[0] == pair[1] {
			t.Errorf("two subjects share the task id %s", pair[0])
		}
	}
	if first, again := ImageTaskID(acct, "im"), ImageTaskID(acct, "im"); first != again {
		t.Error("ImageTaskID is not deterministic")
	}
}

// TestTaskIDsArePinned: task ids are how replicas and redelivered events
// agree on a task, so they must never change between versions. These were
// computed with Python's uuid.uuid5 over the same namespace and names.
func TestTaskIDsArePinned(t *testing.T) {
	const acct = "0b6a3c4e-2f51-4d8e-9a7b-1c2d3e4f5a6b"
	if got, want := DomainTaskID(acct, "app-1", "Hello.Example.com"), "dd831938-f9fa-581b-ad66-4b6742c091bf"; got != want {
		t.Errorf("DomainTaskID = %s, want %s", got, want)
	}
	if got, want := ImageTaskID(acct, "image-1"), "007cca85-91e7-508b-a3df-49933fad26cd"; got != want {
		t.Errorf("ImageTaskID = %s, want %s", got, want)
	}
}

func TestTaskTransitions(t *testing.T) {
	now := time.Now()
	task, err := NewDomainTask(uuid.NewString(), "app", "Hello.Example.com", "req", now)
	if err != nil || task.Domain != "hello.example.com" {
		t.Fatalf("NewDomainTask = %+v, %v", task, err)
	}
	if err := task.Withdraw(now); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("Withdraw(pending) = %v, want a conflict", err)
	}
	if !task.Retract(now) || task.Status != StatusWithdrawn {
		t.Fatalf("Retract(pending) left %s", task.Status)
	}
	if task.Retract(now) {
		t.Fatal("Retract(withdrawn) reported a change")
	}
	if err := task.Deny(now); err == nil || err.Error() != "the task is withdrawn; only a pending task can be denied" {
		t.Fatalf("Deny(withdrawn) = %v", err)
	}
	if _, err := NewDomainTask("not-a-uuid", "app", "a.example.com", "req", now); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("NewDomainTask(bad account) = %v, want invalid", err)
	}
}
