package domain

import (
	"encoding/json"
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
		{name: "requester alone at 0", quorum: 0, by: "req", wantState: StatusApproved},
		{name: "requester refused at 1", quorum: 1, by: "req", wantErr: ErrOwnApproval},
		{name: "one other at 1", quorum: 1, by: "a", wantState: StatusApproved},
		{name: "requester refused at 2", quorum: 2, by: "req", wantErr: ErrOwnApproval},
		{name: "first of 2", quorum: 2, by: "a", wantState: StatusPending},
		{name: "second of 2", quorum: 2, given: []string{"a"}, by: "b", wantState: StatusApproved},
		{name: "same admin twice", quorum: 2, given: []string{"a"}, by: "a", wantErr: ErrAlreadyApproved},
		{name: "quorum lowered, next decides", quorum: 2, given: []string{"a", "b"}, by: "c", wantState: StatusApproved},
		{name: "quorum lowered, same admin completes", quorum: 1, given: []string{"a"}, by: "a", wantState: StatusApproved},
		{name: "quorum lowered to 0, same admin completes", quorum: 0, given: []string{"a"}, by: "a", wantState: StatusApproved},
		{name: "quorum raised, requester's old approval ignored", quorum: 1, given: []string{"req"}, by: "a", wantState: StatusApproved},
		{name: "quorum raised to 2, requester's old approval ignored", quorum: 2, given: []string{"req"}, by: "a", wantState: StatusPending},
		{name: "former admin's approval ignored", quorum: 2, given: []string{"gone"}, by: "a", wantState: StatusPending},
		{name: "not pending", quorum: 0, status: StatusDenied, by: "a", wantKind: errs.Conflict},
		{name: "unreachable quorum capped at the other admins", quorum: 2, admins: []string{"req", "a"}, by: "a", wantState: StatusApproved},
		{name: "sole admin of an unreachable quorum approves alone", quorum: 2, admins: []string{"req"}, by: "req", wantState: StatusApproved},
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
			as := admins
			if tc.admins != nil {
				as = tc.admins
			}
			done, err := task.Approve(tc.by, tc.quorum, as, now.Add(time.Minute))
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

func TestQuorumReachable(t *testing.T) {
	for _, tc := range []struct{ quorum, admins int }{{0, 1}, {1, 2}, {2, 3}, {3, 7}} {
		if err := CheckQuorumReachable(tc.quorum, tc.admins); err != nil {
			t.Errorf("CheckQuorumReachable(%d, %d admins) = %v, want nil", tc.quorum, tc.admins, err)
		}
	}
	for _, tc := range []struct{ quorum, admins int }{{0, 0}, {1, 1}, {2, 2}, {10, 3}} {
		if err := CheckQuorumReachable(tc.quorum, tc.admins); !errors.Is(err, ErrQuorumUnreachable) {
			t.Errorf("CheckQuorumReachable(%d, %d admins) = %v, want quorum_unreachable", tc.quorum, tc.admins, err)
		}
	}
}

// TestAccountRecordsBeforeTheQuorumMeantOthers: a stored account from
// before approvals_required counted only admins other than the requester
// keeps what it allowed: 0 and 1 let one admin (the requester) approve,
// which is now 0; 2 and more excluded the requester already.
func TestAccountRecordsBeforeTheQuorumMeantOthers(t *testing.T) {
	for _, tc := range []struct {
		stored string
		want   int
	}{
		{`{"ID":"a"}`, 0},
		{`{"ID":"a","ApprovalsRequired":0}`, 0},
		{`{"ID":"a","ApprovalsRequired":1}`, 0},
		{`{"ID":"a","ApprovalsRequired":2}`, 2},
		{`{"ID":"a","ApprovalsRequired":5}`, 5},
		{`{"ID":"a","ApprovalsOthers":1}`, 1},
		{`{"ID":"a","ApprovalsOthers":0}`, 0},
	} {
		var a Account
		if err := json.Unmarshal([]byte(tc.stored), &a); err != nil || a.ApprovalsRequired != tc.want || a.ID != "a" {
			t.Errorf("Unmarshal(%s) = %+v, %v; want approvals_required %d", tc.stored, a, err, tc.want)
		}
	}
	// What is written now reads back the same.
	b, err := json.Marshal(Account{ID: "a", ApprovalsRequired: 1})
	if err != nil {
		t.Fatal(err)
	}
	var a Account
	if err := json.Unmarshal(b, &a); err != nil || a.ApprovalsRequired != 1 {
		t.Fatalf("round trip of approvals_required 1 = %+v, %v (%s)", a, err, b)
	}
}

func TestChangeTasks(t *testing.T) {
	now := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	acct := uuid.NewString()
	if _, err := NewQuorumTask(acct, 11, "req", now); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("NewQuorumTask(11) = %v, want invalid", err)
	}
	q1, _ := NewQuorumTask(acct, 1, "req", now)
	q2, _ := NewQuorumTask(acct, 2, "other", now)
	a1, _ := NewAdminTask(acct, Grantee{UserID: "u1"}, "req", now)
	a2, _ := NewAdminTask(acct, Grantee{UserID: "u2"}, "req", now)
	if q1.ID == q2.ID || !q1.SameChange(q2) || q1.SameChange(a1) || !a1.SameChange(a1) || a1.SameChange(a2) {
		t.Fatal("SameChange: any pending quorum task is the same change, admin tasks only for the same member")
	}
	q1.Status = StatusApproved
	if q1.SameChange(q2) {
		t.Fatal("SameChange of a decided task, want false")
	}
	if err := q1.Withdraw(now); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("Withdraw(approved quorum task) = %v, want conflict", err)
	}
}
