package account_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/account"
	"github.com/cloister-cc/cloister/services/account/internal/domain"
)

// harness is a real account service on an embedded NATS server, called
// through its client as the gateway calls it.
type harness struct {
	t   *testing.T
	ctx context.Context
	js  jetstream.JetStream
	c   *accountv1.AccountClient
}

func start(t *testing.T) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	n := testkit.StartNATS(t)
	nc, js := n.JetStream(t)
	svc, err := account.Start(ctx, account.Config{Options: service.Options{NATS: nc, Assertions: n.Verifier("account")}, PasswordCost: &account.PasswordCost{Memory: 1024, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	return &harness{t: t, ctx: ctx, js: js, c: accountv1.NewAccountClient(n.Connect(t), n.Vouching(t))}
}

// user signs up a user and returns it as an authenticated principal.
func (h *harness) user(name string) *accountv1.Principal {
	h.t.Helper()
	email, password := name+"@example.com", "correct horse battery staple"
	if _, err := h.c.SignUp(h.ctx, &accountv1.SignUpRequest{Email: email, Password: password}); err != nil {
		h.t.Fatal(err)
	}
	login, err := h.c.Login(h.ctx, &accountv1.LoginRequest{Email: email, Password: password})
	if err != nil {
		h.t.Fatal(err)
	}
	p, err := h.c.Authenticate(h.ctx, &accountv1.AuthenticateRequest{Token: login.GetToken()})
	if err != nil {
		h.t.Fatal(err)
	}
	return p.GetPrincipal()
}

// team is an account with four admins, a member, an auditor, and a
// stranger who belongs to another account.
type team struct {
	account                        string
	admin1, admin2, admin3, admin4 *accountv1.Principal
	member, auditor, stranger      *accountv1.Principal
}

// team makes a team whose approvals_required is approvals. Its admins are
// added under approvals_required 0, where admin1's request suffices.
func (h *harness) team(approvals uint32) team {
	h.t.Helper()
	tm := team{admin1: h.user("admin1"), admin2: h.user("admin2"), admin3: h.user("admin3"), admin4: h.user("admin4"),
		member: h.user("member"), auditor: h.user("auditor"), stranger: h.user("stranger")}
	a, err := h.c.CreateAccount(h.ctx, &accountv1.CreateAccountRequest{Actor: tm.admin1, Name: "team"})
	if err != nil {
		h.t.Fatal(err)
	}
	tm.account = a.GetAccount().GetId()
	if _, err := h.c.CreateAccount(h.ctx, &accountv1.CreateAccountRequest{Actor: tm.stranger, Name: "elsewhere"}); err != nil {
		h.t.Fatal(err)
	}
	for _, m := range []struct {
		p    *accountv1.Principal
		role string
	}{{tm.admin2, "admin"}, {tm.admin3, "admin"}, {tm.admin4, "admin"}, {tm.member, "member"}, {tm.auditor, "auditor"}} {
		if _, err := h.c.AddMember(h.ctx, &accountv1.AddMemberRequest{Actor: tm.admin1, AccountId: tm.account,
			Email: m.p.GetEmail(), Role: m.role}); err != nil {
			h.t.Fatal(err)
		}
	}
	h.setApprovals(tm, approvals)
	return tm
}

// setApprovals sets the team's approvals_required as admin1 asks and the
// other admins approve, as many as the quorum in force needs.
func (h *harness) setApprovals(tm team, n uint32) {
	h.t.Helper()
	resp, err := h.c.UpdateAccount(h.ctx, &accountv1.UpdateAccountRequest{Actor: tm.admin1, AccountId: tm.account, ApprovalsRequired: &n})
	if err != nil {
		h.t.Fatalf("UpdateAccount(approvals_required %d) = %v", n, err)
	}
	if task := resp.GetTask(); task != nil && !task.GetApplied() {
		for _, p := range []*accountv1.Principal{tm.admin2, tm.admin3, tm.admin4} {
			if task, err = h.approve(p, tm, task.GetId()); err != nil {
				h.t.Fatalf("approving the quorum task as %s: %v", p.GetEmail(), err)
			}
			if task.GetApplied() {
				break
			}
		}
	}
	got, err := h.c.GetAccount(h.ctx, &accountv1.GetAccountRequest{Actor: tm.admin1, AccountId: tm.account})
	if err != nil || got.GetAccount().GetApprovalsRequired() != n {
		h.t.Fatalf("after setting approvals_required %d: %v, %v", n, got, err)
	}
}

// publish publishes an image converter event, as the image converter does.
func (h *harness) publish(accountID string, m proto.Message) {
	h.t.Helper()
	msg, _, err := events.NewMessage(h.ctx, events.Subject("imageconverter", m), "imageconverter", accountID, m)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := events.Publish(h.ctx, h.js, msg); err != nil {
		h.t.Fatal(err)
	}
}

// settled waits until the task consumer has handled every event published
// so far.
func (h *harness) settled() { h.caughtUp("account-tasks") }

// caughtUp waits until a durable consumer has handled every event
// published so far.
func (h *harness) caughtUp(durable string) {
	h.t.Helper()
	testkit.Eventually(h.t, 10*time.Second, func() bool {
		c, err := h.js.Consumer(h.ctx, events.StreamEvents, durable)
		if err != nil {
			return false
		}
		info, err := c.Info(h.ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, "the %s consumer did not catch up", durable)
}

// task waits for a task to exist and returns it.
func (h *harness) task(p *accountv1.Principal, accountID, taskID string) *accountv1.Task {
	h.t.Helper()
	var t *accountv1.Task
	testkit.Eventually(h.t, 10*time.Second, func() bool {
		resp, err := h.c.GetTask(h.ctx, &accountv1.GetTaskRequest{Actor: p, AccountId: accountID, TaskId: taskID})
		t = resp.GetTask()
		return err == nil
	}, "task %s did not appear", taskID)
	return t
}

func measurement() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

func newImage(accountID, appID, requester string) *imageconverterv1.Image {
	return &imageconverterv1.Image{Id: uuid.NewString(), AccountId: accountID, AppId: appID, Tag: "1", Status: "converted",
		Mrenclave: measurement(), Mrsigner: measurement(), Isvprodid: 7, Isvsvn: 3, RequestedBy: requester}
}

// imageTask opens a pending image task requested by requester.
func (h *harness) imageTask(tm team, requester *accountv1.Principal) *accountv1.Task {
	h.t.Helper()
	im := newImage(tm.account, uuid.NewString(), requester.GetUserId())
	h.publish(tm.account, &imageconverterv1.ImageConverted{Image: im})
	return h.task(tm.admin1, tm.account, domain.ImageTaskID(tm.account, im.GetId()))
}

func (h *harness) approve(p *accountv1.Principal, tm team, taskID string) (*accountv1.Task, error) {
	resp, err := h.c.ApproveTask(h.ctx, &accountv1.TaskActionRequest{Actor: p, AccountId: tm.account, TaskId: taskID})
	return resp.GetTask(), err
}

func (h *harness) deny(p *accountv1.Principal, tm team, taskID string) (*accountv1.Task, error) {
	resp, err := h.c.DenyTask(h.ctx, &accountv1.TaskActionRequest{Actor: p, AccountId: tm.account, TaskId: taskID})
	return resp.GetTask(), err
}

func (h *harness) withdraw(p *accountv1.Principal, tm team, taskID string) (*accountv1.Task, error) {
	resp, err := h.c.WithdrawTask(h.ctx, &accountv1.TaskActionRequest{Actor: p, AccountId: tm.account, TaskId: taskID})
	return resp.GetTask(), err
}

// published counts the events on events.account.v1.<name> that carry the
// task.
func (h *harness) published(name, taskID string) int {
	h.t.Helper()
	cons, err := h.js.OrderedConsumer(h.ctx, events.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"events.account.v1." + name}})
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := cons.Info(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	if info.NumPending == 0 {
		return 0
	}
	batch, err := cons.Fetch(int(info.NumPending), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		h.t.Fatal(err)
	}
	n := 0
	for msg := range batch.Messages() {
		ev, err := events.DecodeMessage(msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			h.t.Fatal(err)
		}
		// Every task event is a message with the task as field 1.
		var e accountv1.TaskCreated
		if err := proto.Unmarshal(ev.Envelope.GetPayload(), &e); err != nil {
			h.t.Fatal(err)
		}
		if e.GetTask().GetId() == taskID {
			n++
		}
	}
	return n
}

// appTasks are the tasks about applications (domains and images), without
// the admin tasks a team's setup leaves.
func appTasks(ts []*accountv1.Task) []*accountv1.Task {
	var out []*accountv1.Task
	for _, t := range ts {
		if t.GetKind() == "domain" || t.GetKind() == "image" {
			out = append(out, t)
		}
	}
	return out
}

// wantErr checks an error's kind and that its message says what it must.
func wantErr(t *testing.T, what string, err error, kind errs.Kind, says string) {
	t.Helper()
	if err == nil || errs.KindOf(err) != kind || !strings.Contains(err.Error(), says) {
		t.Fatalf("%s = %v (%v), want %v saying %q", what, err, errs.KindOf(err), kind, says)
	}
}

func TestApproveQuorumOfZero(t *testing.T) {
	h := start(t)
	tm := h.team(0)

	// The requester may approve alone when no other admin is required.
	own := h.imageTask(tm, tm.admin1)
	got, err := h.approve(tm.admin1, tm, own.GetId())
	if err != nil || got.GetStatus() != "approved" || got.GetApprovalsCounted() != 1 || got.GetApprovalsRequired() != 1 {
		t.Fatalf("ApproveTask(own, quorum 0) = %v, %v; want approved, 1/1", got, err)
	}
	if len(got.GetApprovals()) != 1 || got.GetApprovals()[0].GetUserId() != tm.admin1.GetUserId() || got.GetApprovals()[0].GetAt() == nil {
		t.Fatalf("approvals = %v, want admin1's with a time", got.GetApprovals())
	}
	if n := h.published("TaskApproved", own.GetId()); n != 1 {
		t.Fatalf("TaskApproved published %d times, want 1", n)
	}
	_, err = h.approve(tm.admin2, tm, own.GetId())
	wantErr(t, "ApproveTask(approved task)", err, errs.Conflict, "approved")
	if n := h.published("TaskApproved", own.GetId()); n != 1 {
		t.Fatalf("TaskApproved published %d times after a refused approval, want 1", n)
	}

	// Another's task: one admin is enough too.
	other := h.imageTask(tm, tm.member)
	if got, err := h.approve(tm.admin2, tm, other.GetId()); err != nil || got.GetStatus() != "approved" {
		t.Fatalf("ApproveTask(quorum 0) = %v, %v; want approved", got, err)
	}
}

func TestApproveQuorumOfOne(t *testing.T) {
	h := start(t)
	tm := h.team(1)

	// One admin other than the requester: the requester cannot approve
	// alone, another admin can.
	own := h.imageTask(tm, tm.admin1)
	_, err := h.approve(tm.admin1, tm, own.GetId())
	wantErr(t, "ApproveTask(own, quorum 1)", err, errs.PermissionDenied, "another admin must approve it")
	got, err := h.approve(tm.admin2, tm, own.GetId())
	if err != nil || got.GetStatus() != "approved" || got.GetApprovalsCounted() != 1 || got.GetApprovalsRequired() != 1 {
		t.Fatalf("ApproveTask(another admin, quorum 1) = %v, %v; want approved, 1/1", got, err)
	}
}

func TestApproveQuorumOfTwo(t *testing.T) {
	h := start(t)
	tm := h.team(2)
	task := h.imageTask(tm, tm.admin1)
	if task.GetStatus() != "pending" || task.GetRequesterId() != tm.admin1.GetUserId() {
		t.Fatalf("opened task = %v, want pending, requested by admin1", task)
	}

	_, err := h.approve(tm.admin1, tm, task.GetId())
	wantErr(t, "ApproveTask(requester, quorum 2)", err, errs.PermissionDenied, "another admin must approve it")
	_, err = h.approve(tm.member, tm, task.GetId())
	wantErr(t, "ApproveTask(member)", err, errs.PermissionDenied, "role")
	_, err = h.approve(tm.auditor, tm, task.GetId())
	wantErr(t, "ApproveTask(auditor)", err, errs.PermissionDenied, "role")
	_, err = h.approve(tm.stranger, tm, task.GetId())
	wantErr(t, "ApproveTask(stranger)", err, errs.NotFound, "account not found")

	got, err := h.approve(tm.admin2, tm, task.GetId())
	if err != nil || got.GetStatus() != "pending" || len(got.GetApprovals()) != 1 {
		t.Fatalf("first approval = %v, %v; want still pending with one approval", got, err)
	}
	_, err = h.approve(tm.admin2, tm, task.GetId())
	wantErr(t, "ApproveTask(same admin twice)", err, errs.Conflict, "already approved by you")
	if n := h.published("TaskApproved", task.GetId()); n != 0 {
		t.Fatalf("TaskApproved published %d times before the quorum, want 0", n)
	}

	got, err = h.approve(tm.admin3, tm, task.GetId())
	if err != nil || got.GetStatus() != "approved" || len(got.GetApprovals()) != 2 {
		t.Fatalf("second approval = %v, %v; want approved with two approvals", got, err)
	}
	if n := h.published("TaskApproved", task.GetId()); n != 1 {
		t.Fatalf("TaskApproved published %d times, want 1", n)
	}

	// An unknown task in one's own account is not found.
	_, err = h.approve(tm.admin2, tm, uuid.NewString())
	wantErr(t, "ApproveTask(no such task)", err, errs.NotFound, "task not found")
}

func TestApproveAfterQuorumChanges(t *testing.T) {
	h := start(t)
	tm := h.team(3)

	// A pending task keeps the quorum of when it was opened: lowering the
	// account's from 3 to 2 does not let two approvals decide it.
	lowered := h.imageTask(tm, tm.member)
	if _, err := h.approve(tm.admin1, tm, lowered.GetId()); err != nil {
		t.Fatal(err)
	}
	h.setApprovals(tm, 2)
	got, err := h.approve(tm.admin2, tm, lowered.GetId())
	if err != nil || got.GetStatus() != "pending" || got.GetApprovalsCounted() != 2 || got.GetApprovalsRequired() != 3 {
		t.Fatalf("approval after lowering to 2 = %v, %v; want pending, 2/3", got, err)
	}
	if got, err := h.approve(tm.admin3, tm, lowered.GetId()); err != nil || got.GetStatus() != "approved" {
		t.Fatalf("the third approval = %v, %v; want approved", got, err)
	}
	// Nor may its approvers complete it alone once lowered to 0.
	h.setApprovals(tm, 2)
	again := h.imageTask(tm, tm.member)
	if _, err := h.approve(tm.admin1, tm, again.GetId()); err != nil {
		t.Fatal(err)
	}
	h.setApprovals(tm, 0)
	_, err = h.approve(tm.admin1, tm, again.GetId())
	wantErr(t, "the same admin again after lowering to 0", err, errs.Conflict, "already approved")

	// Raising the account's quorum raises a pending task's: the higher
	// applies.
	h.setApprovals(tm, 0)
	raised := h.imageTask(tm, tm.member)
	h.setApprovals(tm, 2)
	if got, err := h.approve(tm.admin1, tm, raised.GetId()); err != nil || got.GetStatus() != "pending" || got.GetApprovalsRequired() != 2 {
		t.Fatalf("one approval after raising to 2 = %v, %v; want pending, of 2", got, err)
	}
	if got, err := h.approve(tm.admin2, tm, raised.GetId()); err != nil || got.GetStatus() != "approved" {
		t.Fatalf("the second approval = %v, %v; want approved", got, err)
	}
	if n := h.published("TaskApproved", raised.GetId()); n != 1 {
		t.Fatalf("TaskApproved published %d times, want 1", n)
	}

	// An approval by an admin who was demoted since does not count.
	h.setApprovals(tm, 2)
	demoted := h.imageTask(tm, tm.member)
	if _, err := h.approve(tm.admin3, tm, demoted.GetId()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.SetMemberRole(h.ctx, &accountv1.SetMemberRoleRequest{Actor: tm.admin1, AccountId: tm.account,
		UserId: tm.admin3.GetUserId(), Role: "member"}); err != nil {
		t.Fatal(err)
	}
	if got, err := h.approve(tm.admin2, tm, demoted.GetId()); err != nil || got.GetStatus() != "pending" {
		t.Fatalf("approval beside a demoted admin's = %v, %v; want still pending", got, err)
	}
	if got, err := h.approve(tm.admin1, tm, demoted.GetId()); err != nil || got.GetStatus() != "approved" {
		t.Fatalf("second current admin's approval = %v, %v; want approved", got, err)
	}
}

func TestConcurrentApprovalsBothCount(t *testing.T) {
	h := start(t)
	tm := h.team(2)
	for range 5 {
		task := h.imageTask(tm, tm.member)
		var wg sync.WaitGroup
		errc := make(chan error, 2)
		for _, p := range []*accountv1.Principal{tm.admin1, tm.admin2} {
			wg.Go(func() {
				_, err := h.approve(p, tm, task.GetId())
				errc <- err
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Fatalf("concurrent ApproveTask = %v, want both to succeed", err)
			}
		}
		got := h.task(tm.auditor, tm.account, task.GetId())
		if got.GetStatus() != "approved" || len(got.GetApprovals()) != 2 {
			t.Fatalf("after two concurrent approvals: %v, want approved with two approvals", got)
		}
		if n := h.published("TaskApproved", task.GetId()); n != 1 {
			t.Fatalf("TaskApproved published %d times, want 1", n)
		}
	}
}

func TestDenyAndWithdraw(t *testing.T) {
	h := start(t)
	tm := h.team(0)

	denied := h.imageTask(tm, tm.member)
	for _, p := range []*accountv1.Principal{tm.member, tm.auditor} {
		_, err := h.deny(p, tm, denied.GetId())
		wantErr(t, "DenyTask("+p.GetEmail()+")", err, errs.PermissionDenied, "role")
	}
	_, err := h.deny(tm.stranger, tm, denied.GetId())
	wantErr(t, "DenyTask(stranger)", err, errs.NotFound, "account not found")
	_, err = h.withdraw(tm.admin1, tm, denied.GetId())
	wantErr(t, "WithdrawTask(pending)", err, errs.Conflict, "the task is pending")
	if got, err := h.deny(tm.admin2, tm, denied.GetId()); err != nil || got.GetStatus() != "denied" {
		t.Fatalf("DenyTask = %v, %v; want denied", got, err)
	}
	_, err = h.deny(tm.admin1, tm, denied.GetId())
	wantErr(t, "DenyTask(denied)", err, errs.Conflict, "the task is denied")
	_, err = h.approve(tm.admin1, tm, denied.GetId())
	wantErr(t, "ApproveTask(denied)", err, errs.Conflict, "the task is denied")
	_, err = h.withdraw(tm.admin1, tm, denied.GetId())
	wantErr(t, "WithdrawTask(denied)", err, errs.Conflict, "the task is denied")
	if n := h.published("TaskDenied", denied.GetId()); n != 1 {
		t.Fatalf("TaskDenied published %d times, want 1", n)
	}

	withdrawn := h.imageTask(tm, tm.member)
	if _, err := h.approve(tm.admin1, tm, withdrawn.GetId()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*accountv1.Principal{tm.member, tm.auditor} {
		_, err := h.withdraw(p, tm, withdrawn.GetId())
		wantErr(t, "WithdrawTask("+p.GetEmail()+")", err, errs.PermissionDenied, "role")
	}
	_, err = h.withdraw(tm.stranger, tm, withdrawn.GetId())
	wantErr(t, "WithdrawTask(stranger)", err, errs.NotFound, "account not found")
	_, err = h.deny(tm.admin1, tm, withdrawn.GetId())
	wantErr(t, "DenyTask(approved)", err, errs.Conflict, "the task is approved")
	if got, err := h.withdraw(tm.admin2, tm, withdrawn.GetId()); err != nil || got.GetStatus() != "withdrawn" {
		t.Fatalf("WithdrawTask = %v, %v; want withdrawn", got, err)
	}
	_, err = h.withdraw(tm.admin2, tm, withdrawn.GetId())
	wantErr(t, "WithdrawTask(withdrawn)", err, errs.Conflict, "the task is withdrawn")
	if n := h.published("TaskWithdrawn", withdrawn.GetId()); n != 1 {
		t.Fatalf("TaskWithdrawn published %d times, want 1", n)
	}
	if n := h.published("TaskApproved", withdrawn.GetId()); n != 1 {
		t.Fatalf("TaskApproved published %d times, want 1", n)
	}
}

func TestTasksFromImageConverterEvents(t *testing.T) {
	h := start(t)
	tm := h.team(0)
	appID := uuid.NewString()
	app := func(domain, issuer string) *imageconverterv1.App {
		return &imageconverterv1.App{Id: appID, AccountId: tm.account, Name: "hello",
			Certificate: &imageconverterv1.CertificateConfig{Domain: domain, Issuer: issuer},
			CreatedBy:   tm.member.GetUserId(), UpdatedBy: tm.admin2.GetUserId()}
	}

	// Created, and delivered twice: one domain task.
	created := &imageconverterv1.AppCreated{App: app("hello.example.com", "cloister")}
	h.publish(tm.account, created)
	h.publish(tm.account, created)
	first := domain.DomainTaskID(tm.account, appID, "hello.example.com")
	task := h.task(tm.member, tm.account, first)
	if task.GetKind() != "domain" || task.GetStatus() != "pending" || task.GetDomain() != "hello.example.com" ||
		task.GetAppId() != appID || task.GetRequesterId() != tm.member.GetUserId() || task.GetCreatedAt() == nil {
		t.Fatalf("domain task = %v, want pending for hello.example.com requested by the member", task)
	}

	// No domain task for a certificate the account CA does not issue.
	other := uuid.NewString()
	h.publish(tm.account, &imageconverterv1.AppCreated{App: &imageconverterv1.App{Id: other, AccountId: tm.account,
		Certificate: &imageconverterv1.CertificateConfig{Domain: "other.example.com", Issuer: "none"}, CreatedBy: tm.member.GetUserId()}})

	// Updated with the same domain: nothing new; with a new one: a task.
	h.publish(tm.account, &imageconverterv1.AppUpdated{App: app("hello.example.com", "cloister")})
	h.publish(tm.account, &imageconverterv1.AppUpdated{App: app("new.example.com", "cloister")})
	h.publish(tm.account, &imageconverterv1.AppUpdated{App: app("new.example.com", "cloister")})
	second := h.task(tm.member, tm.account, domain.DomainTaskID(tm.account, appID, "new.example.com"))
	if second.GetRequesterId() != tm.admin2.GetUserId() || second.GetStatus() != "pending" {
		t.Fatalf("task of the updated domain = %v, want pending requested by the updater", second)
	}

	// Converted, and delivered twice: one image task.
	im := newImage(tm.account, appID, tm.member.GetUserId())
	h.publish(tm.account, &imageconverterv1.ImageConverted{Image: im})
	h.publish(tm.account, &imageconverterv1.ImageConverted{Image: im})
	imageTask := h.task(tm.auditor, tm.account, domain.ImageTaskID(tm.account, im.GetId()))
	want := &accountv1.TaskImage{ImageId: im.GetId(), Tag: "1", Mrenclave: im.GetMrenclave(), Mrsigner: im.GetMrsigner(), Isvprodid: 7, Isvsvn: 3}
	if imageTask.GetKind() != "image" || imageTask.GetRequesterId() != tm.member.GetUserId() || !proto.Equal(imageTask.GetImage(), want) {
		t.Fatalf("image task = %v, want image %v requested by the member", imageTask, want)
	}
	h.settled()
	list, err := h.c.ListTasks(h.ctx, &accountv1.ListTasksRequest{Actor: tm.member, AccountId: tm.account})
	if err != nil || len(appTasks(list.GetTasks())) != 3 {
		t.Fatalf("ListTasks = %v, %v; want the 3 tasks", list, err)
	}
	for _, id := range []string{first, second.GetId(), imageTask.GetId()} {
		if n := h.published("TaskCreated", id); n != 1 {
			t.Fatalf("TaskCreated of %s published %d times, want 1", id, n)
		}
	}

	// A second image, deleted while pending: withdrawn.
	gone := newImage(tm.account, appID, tm.member.GetUserId())
	h.publish(tm.account, &imageconverterv1.ImageConverted{Image: gone})
	goneID := h.task(tm.admin1, tm.account, domain.ImageTaskID(tm.account, gone.GetId())).GetId()
	h.publish(tm.account, &imageconverterv1.ImageDeleted{AccountId: tm.account, AppId: appID, ImageId: gone.GetId(), Mrenclave: gone.GetMrenclave()})
	h.publish(tm.account, &imageconverterv1.ImageDeleted{AccountId: tm.account, AppId: appID, ImageId: gone.GetId(), Mrenclave: gone.GetMrenclave()})
	h.settled()
	if got := h.task(tm.admin1, tm.account, goneID); got.GetStatus() != "withdrawn" {
		t.Fatalf("task of a deleted image = %v, want withdrawn", got)
	}
	if got := h.task(tm.admin1, tm.account, imageTask.GetId()); got.GetStatus() != "pending" {
		t.Fatalf("task of another image after an image's deletion = %v, want still pending", got)
	}
	if n := h.published("TaskWithdrawn", goneID); n != 1 {
		t.Fatalf("TaskWithdrawn published %d times, want 1", n)
	}

	// The application deleted: its pending tasks are withdrawn, its
	// approved ones stay (the CA and attestation follow the deletion).
	if _, err := h.approve(tm.admin1, tm, first); err != nil {
		t.Fatal(err)
	}
	h.publish(tm.account, &imageconverterv1.AppDeleted{AccountId: tm.account, AppId: appID})
	h.settled()
	// A retraction that lost a race with another write is redelivered
	// after a delay, which the consumer's counters do not show: wait for
	// the statuses themselves.
	var wrong []string
	testkit.EventuallyMsg(t, 10*time.Second, func() bool {
		wrong = wrong[:0]
		for id, status := range map[string]string{first: "approved", second.GetId(): "withdrawn", imageTask.GetId(): "withdrawn", goneID: "withdrawn"} {
			if got := h.task(tm.admin1, tm.account, id); got.GetStatus() != status {
				wrong = append(wrong, fmt.Sprintf("task %s (%s) is %s, want %s", id, got.GetKind(), got.GetStatus(), status))
			}
		}
		return len(wrong) == 0
	}, func() string { return "after AppDeleted: " + strings.Join(wrong, "; ") })
	if n := h.published("TaskWithdrawn", first); n != 0 {
		t.Fatalf("TaskWithdrawn of the approved task published %d times, want 0", n)
	}
	if n := h.published("TaskWithdrawn", second.GetId()); n != 1 {
		t.Fatalf("TaskWithdrawn of a pending task published %d times, want 1", n)
	}

	// Redelivered creation events after all that open nothing again.
	h.publish(tm.account, created)
	h.publish(tm.account, &imageconverterv1.ImageConverted{Image: gone})
	h.settled()
	if got := h.task(tm.admin1, tm.account, goneID); got.GetStatus() != "withdrawn" {
		t.Fatalf("task of a deleted image after a redelivered ImageConverted = %v, want withdrawn", got)
	}
	if n := h.published("TaskCreated", first); n != 1 {
		t.Fatalf("TaskCreated published %d times after a redelivery, want 1", n)
	}
	// Withdrawals that no person made leave no audit record: every record
	// names who acted, a person or the system with its cause.
	log, err := h.c.ListAudit(h.ctx, &accountv1.ListAuditRequest{Actor: tm.admin1, AccountId: tm.account, Page: &accountv1.Page{Limit: 200}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range log.GetEntries() {
		if e.GetActorCredential() == "" || e.GetActorUserId() == "" && (e.GetActorCredential() != "system" || e.GetCause() == "") {
			t.Errorf("audit record without an actor: %v", e)
		}
	}
	dead, err := events.DeadLetters(h.ctx, h.js, events.StreamEvents, "account-tasks", 10)
	if err != nil || len(dead) != 0 {
		t.Fatalf("dead letters of account-tasks = %d, %v; want none", len(dead), err)
	}
}

func TestListTasksStatusFilter(t *testing.T) {
	h := start(t)
	tm := h.team(1)
	pending := h.imageTask(tm, tm.member)
	approved := h.imageTask(tm, tm.member)
	denied := h.imageTask(tm, tm.member)
	withdrawn := h.imageTask(tm, tm.member)
	for _, step := range []func() (*accountv1.Task, error){
		func() (*accountv1.Task, error) { return h.approve(tm.admin1, tm, approved.GetId()) },
		func() (*accountv1.Task, error) { return h.deny(tm.admin1, tm, denied.GetId()) },
		func() (*accountv1.Task, error) { return h.approve(tm.admin1, tm, withdrawn.GetId()) },
		func() (*accountv1.Task, error) { return h.withdraw(tm.admin1, tm, withdrawn.GetId()) },
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		status string
		want   []string
	}{
		{"pending", []string{pending.GetId()}},
		{"approved", []string{approved.GetId()}},
		{"denied", []string{denied.GetId()}},
		{"withdrawn", []string{withdrawn.GetId()}},
		{"", []string{pending.GetId(), approved.GetId(), denied.GetId(), withdrawn.GetId()}},
	} {
		t.Run("status="+tc.status, func(t *testing.T) {
			for _, p := range []*accountv1.Principal{tm.admin1, tm.member, tm.auditor} {
				resp, err := h.c.ListTasks(h.ctx, &accountv1.ListTasksRequest{Actor: p, AccountId: tm.account, Status: tc.status})
				if err != nil {
					t.Fatalf("ListTasks(%q) as %s = %v", tc.status, p.GetEmail(), err)
				}
				var got []string
				for _, task := range appTasks(resp.GetTasks()) {
					got = append(got, task.GetId())
					if tc.status != "" && task.GetStatus() != tc.status {
						t.Errorf("ListTasks(%q) returned a %s task", tc.status, task.GetStatus())
					}
				}
				if strings.Join(got, ",") != strings.Join(tc.want, ",") { // oldest first
					t.Fatalf("ListTasks(%q) as %s = %v, want %v", tc.status, p.GetEmail(), got, tc.want)
				}
			}
		})
	}
	_, err := h.c.ListTasks(h.ctx, &accountv1.ListTasksRequest{Actor: tm.member, AccountId: tm.account, Status: "finished"})
	wantErr(t, "ListTasks(finished)", err, errs.Invalid, `status "finished"`)
	_, err = h.c.ListTasks(h.ctx, &accountv1.ListTasksRequest{Actor: tm.stranger, AccountId: tm.account})
	wantErr(t, "ListTasks(stranger)", err, errs.NotFound, "account not found")
	_, err = h.c.GetTask(h.ctx, &accountv1.GetTaskRequest{Actor: tm.stranger, AccountId: tm.account, TaskId: pending.GetId()})
	wantErr(t, "GetTask(stranger)", err, errs.NotFound, "account not found")
}

func TestTaskDecisionsAudited(t *testing.T) {
	h := start(t)
	tm := h.team(2)
	task := h.imageTask(tm, tm.admin1)
	_, _ = h.approve(tm.admin1, tm, task.GetId())   // refused: own
	_, _ = h.approve(tm.member, tm, task.GetId())   // refused: role
	_, _ = h.approve(tm.stranger, tm, task.GetId()) // a stranger leaves no record
	_, _ = h.withdraw(tm.admin2, tm, task.GetId())  // refused: pending
	for _, p := range []*accountv1.Principal{tm.admin2, tm.admin3} {
		if _, err := h.approve(p, tm, task.GetId()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.withdraw(tm.admin2, tm, task.GetId()); err != nil {
		t.Fatal(err)
	}
	denied := h.imageTask(tm, tm.member)
	if _, err := h.deny(tm.admin3, tm, denied.GetId()); err != nil {
		t.Fatal(err)
	}

	type rec struct{ action, user, target, outcome, error string }
	want := []rec{
		{"task.approve", tm.admin1.GetUserId(), task.GetId(), "failure", "another admin must approve it"},
		{"task.approve", tm.member.GetUserId(), task.GetId(), "failure", "role"},
		{"task.withdraw", tm.admin2.GetUserId(), task.GetId(), "failure", "the task is pending"},
		{"task.approve", tm.admin2.GetUserId(), task.GetId(), "success", ""},
		{"task.approve", tm.admin3.GetUserId(), task.GetId(), "success", ""},
		{"task.withdraw", tm.admin2.GetUserId(), task.GetId(), "success", ""},
		{"task.deny", tm.admin3.GetUserId(), denied.GetId(), "success", ""},
	}
	var got []rec
	testkit.Eventually(t, 10*time.Second, func() bool {
		resp, err := h.c.ListAudit(h.ctx, &accountv1.ListAuditRequest{Actor: tm.auditor, AccountId: tm.account, Page: &accountv1.Page{Limit: 200}})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, e := range resp.GetEntries() {
			if strings.HasPrefix(e.GetAction(), "task.") {
				got = append(got, rec{e.GetAction(), e.GetActorUserId(), e.GetTarget(), e.GetOutcome(), e.GetError()})
			}
		}
		return len(got) >= len(want)
	}, "audit log has %d task records, want %d", len(got), len(want))
	if len(got) != len(want) {
		t.Fatalf("task audit records = %v, want %v", got, want)
	}
	for i, w := range want {
		g := got[i]
		if g.action != w.action || g.user != w.user || g.target != w.target || g.outcome != w.outcome ||
			!strings.Contains(g.error, w.error) || (w.error == "") != (g.error == "") {
			t.Errorf("audit record %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestApprovalsRequiredSetting(t *testing.T) {
	h := start(t)
	admin, member := h.user("admin"), h.user("member")
	resp, err := h.c.CreateAccount(h.ctx, &accountv1.CreateAccountRequest{Actor: admin, Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	acct := resp.GetAccount()
	if acct.GetApprovalsRequired() != 0 {
		t.Fatalf("approvals_required of a new account = %d, want 0", acct.GetApprovalsRequired())
	}
	if _, err := h.c.AddMember(h.ctx, &accountv1.AddMemberRequest{Actor: admin, AccountId: acct.GetId(), Email: member.GetEmail(), Role: "member"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint32{11, 1 << 31} {
		_, err := h.c.UpdateAccount(h.ctx, &accountv1.UpdateAccountRequest{Actor: admin, AccountId: acct.GetId(), ApprovalsRequired: &n})
		wantErr(t, fmt.Sprintf("UpdateAccount(approvals_required %d)", n), err, errs.Invalid, "approvals_required must be between 0 and 10")
	}
	one := uint32(1)
	_, err = h.c.UpdateAccount(h.ctx, &accountv1.UpdateAccountRequest{Actor: member, AccountId: acct.GetId(), ApprovalsRequired: &one})
	wantErr(t, "UpdateAccount(member)", err, errs.PermissionDenied, "role")
	// One admin cannot require an approval other than their own.
	_, err = h.c.UpdateAccount(h.ctx, &accountv1.UpdateAccountRequest{Actor: admin, AccountId: acct.GetId(), ApprovalsRequired: &one})
	wantErr(t, "UpdateAccount(approvals_required 1, one admin)", err, errs.Conflict, "needs at least 2 admins")
	if !errors.Is(err, domain.ErrQuorumUnreachable) {
		t.Fatalf("UpdateAccount(unreachable) = %v, want reason quorum_unreachable", err)
	}
	// Changing something else keeps it.
	name := "acme two"
	if _, err := h.c.UpdateAccount(h.ctx, &accountv1.UpdateAccountRequest{Actor: admin, AccountId: acct.GetId(), Name: &name}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*accountv1.Principal{admin, member} {
		got, err := h.c.GetAccount(h.ctx, &accountv1.GetAccountRequest{Actor: p, AccountId: acct.GetId()})
		if err != nil || got.GetAccount().GetApprovalsRequired() != 0 || got.GetAccount().GetName() != name {
			t.Fatalf("GetAccount as %s = %v, %v; want %q, approvals_required 0", p.GetEmail(), got, err, name)
		}
	}
}

// TestChangesOfWhoApproveAreTasks: one admin can neither lower the quorum
// nor make a crony an admin and then approve alone; the quorum is one
// thing (admins other than the requester) and is always reachable.
func TestChangesOfWhoApproveAreTasks(t *testing.T) {
	h := start(t)
	tm := h.team(0)
	acct := tm.account
	setQuorum := func(p *accountv1.Principal, n uint32) (*accountv1.UpdateAccountResponse, error) {
		return h.c.UpdateAccount(h.ctx, &accountv1.UpdateAccountRequest{Actor: p, AccountId: acct, ApprovalsRequired: &n})
	}
	quorum := func() uint32 {
		t.Helper()
		got, err := h.c.GetAccount(h.ctx, &accountv1.GetAccountRequest{Actor: tm.auditor, AccountId: acct})
		if err != nil {
			t.Fatal(err)
		}
		return got.GetAccount().GetApprovalsRequired()
	}

	// Under 0 the request is its own approval: the change is made at once,
	// and stays on record as an approved task.
	up, err := setQuorum(tm.admin1, 1)
	if err != nil || up.GetAccount().GetApprovalsRequired() != 1 || up.GetTask().GetKind() != "quorum" ||
		up.GetTask().GetStatus() != "approved" || !up.GetTask().GetApplied() || up.GetTask().GetNewApprovalsRequired() != 1 {
		t.Fatalf("UpdateAccount(1) under 0 = %v, %v; want applied at once by an approved quorum task", up, err)
	}
	first := up.GetTask()

	// Under 1 it is a task another admin must approve.
	down, err := setQuorum(tm.admin1, 0)
	if err != nil || down.GetAccount().GetApprovalsRequired() != 1 || down.GetTask().GetStatus() != "pending" ||
		down.GetTask().GetApprovalsCounted() != 0 || down.GetTask().GetApprovalsRequired() != 1 {
		t.Fatalf("UpdateAccount(0) under 1 = %v, %v; want a pending task, 0/1, approvals_required still 1", down, err)
	}
	lower := down.GetTask()
	_, err = h.approve(tm.admin1, tm, lower.GetId())
	wantErr(t, "approving one's own lowering of the quorum", err, errs.PermissionDenied, "another admin must approve it")
	_, err = setQuorum(tm.admin2, 2)
	if !errors.Is(err, domain.ErrPendingChange) || !strings.Contains(err.Error(), lower.GetId()) {
		t.Fatalf("a second quorum change while one is pending = %v, want pending_change naming %s", err, lower.GetId())
	}
	if q := quorum(); q != 1 {
		t.Fatalf("approvals_required = %d while the task is pending, want 1", q)
	}

	// Nor can admin1 make a member (a crony) an admin alone: the member
	// stays a member, and a member cannot approve.
	add, err := h.c.SetMemberRole(h.ctx, &accountv1.SetMemberRoleRequest{Actor: tm.admin1, AccountId: acct, UserId: tm.member.GetUserId(), Role: "admin"})
	if err != nil || add.GetMember().GetRole() != "member" || add.GetTask().GetKind() != "admin" || add.GetTask().GetStatus() != "pending" ||
		add.GetTask().GetAdminUserId() != tm.member.GetUserId() {
		t.Fatalf("SetMemberRole(admin) under 1 = %v, %v; want still a member, with a pending admin task", add, err)
	}
	promote := add.GetTask()
	_, err = h.approve(tm.admin1, tm, promote.GetId())
	wantErr(t, "approving one's own promotion of a member", err, errs.PermissionDenied, "another admin must approve it")
	_, err = h.approve(tm.member, tm, lower.GetId())
	wantErr(t, "the crony approving", err, errs.PermissionDenied, "role")
	crony := h.user("crony")
	joined, err := h.c.AddMember(h.ctx, &accountv1.AddMemberRequest{Actor: tm.admin1, AccountId: acct, Email: crony.GetEmail(), Role: "admin"})
	if err != nil || joined.GetMember().GetRole() != "member" || joined.GetTask().GetStatus() != "pending" {
		t.Fatalf("AddMember(admin) under 1 = %v, %v; want a member, with a pending admin task", joined, err)
	}
	// Removed, the crony's pending promotion is withdrawn: coming back
	// would not revive it.
	if _, err := h.c.RemoveMember(h.ctx, &accountv1.RemoveMemberRequest{Actor: tm.admin1, AccountId: acct, UserId: crony.GetUserId()}); err != nil {
		t.Fatal(err)
	}
	if got := h.task(tm.admin1, acct, joined.GetTask().GetId()); got.GetStatus() != "withdrawn" {
		t.Fatalf("the removed member's admin task = %v, want withdrawn", got)
	}

	// Another admin's approval makes each change.
	if got, err := h.approve(tm.admin2, tm, lower.GetId()); err != nil || got.GetStatus() != "approved" || !got.GetApplied() {
		t.Fatalf("approving the lowering = %v, %v; want approved and applied", got, err)
	}
	if q := quorum(); q != 0 {
		t.Fatalf("approvals_required = %d after the approval, want 0", q)
	}
	// The promotion keeps the quorum it was opened with (1).
	_, err = h.approve(tm.admin1, tm, promote.GetId())
	wantErr(t, "approving one's own promotion after lowering", err, errs.PermissionDenied, "another admin must approve it")
	if got, err := h.approve(tm.admin3, tm, promote.GetId()); err != nil || got.GetStatus() != "approved" || !got.GetApplied() {
		t.Fatalf("approving the promotion = %v, %v; want approved and applied", got, err)
	}
	m, err := h.c.ListMembers(h.ctx, &accountv1.ListMembersRequest{Actor: tm.auditor, AccountId: acct})
	if err != nil {
		t.Fatal(err)
	}
	for _, mm := range m.GetMembers() {
		if mm.GetUserId() == tm.member.GetUserId() && mm.GetRole() != "admin" {
			t.Fatalf("member after the promotion was approved: %v, want admin", mm)
		}
	}

	// A TaskApproved delivered again (as after a restart) finds the change
	// made, and an older quorum task does not undo a newer one.
	msg, _, err := events.NewMessage(h.ctx, events.Subject("account", &accountv1.TaskApproved{}), "account", acct,
		&accountv1.TaskApproved{Task: first})
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Publish(h.ctx, h.js, msg); err != nil {
		t.Fatal(err)
	}
	h.caughtUp("account-purge")
	if q := quorum(); q != 0 {
		t.Fatalf("approvals_required = %d after the first quorum task was delivered again, want 0 (the later task's)", q)
	}

	// A quorum the admins cannot reach is refused, and so is a demotion or
	// removal that would make the quorum in force unreachable.
	h.setApprovals(tm, 4) // 5 admins: admin1-4 and the promoted member
	_, err = setQuorum(tm.admin1, 5)
	wantErr(t, "UpdateAccount(5) with 5 admins", err, errs.Conflict, "needs at least 6 admins")
	_, err = h.c.SetMemberRole(h.ctx, &accountv1.SetMemberRoleRequest{Actor: tm.admin1, AccountId: acct, UserId: tm.admin4.GetUserId(), Role: "member"})
	wantErr(t, "demoting an admin the quorum needs", err, errs.Conflict, "lower it before one leaves")
	_, err = h.c.RemoveMember(h.ctx, &accountv1.RemoveMemberRequest{Actor: tm.admin1, AccountId: acct, UserId: tm.admin4.GetUserId()})
	wantErr(t, "removing an admin the quorum needs", err, errs.Conflict, "lower it before one leaves")

	// What the approvals made is on record as the system's, with the task
	// as the cause.
	testkit.Eventually(t, 10*time.Second, func() bool {
		resp, err := h.c.ListAudit(h.ctx, &accountv1.ListAuditRequest{Actor: tm.auditor, AccountId: acct, Page: &accountv1.Page{Limit: 200}})
		if err != nil {
			t.Fatal(err)
		}
		var quorumSet, promoted bool
		for _, e := range resp.GetEntries() {
			system := e.GetActorCredential() == "system"
			quorumSet = quorumSet || system && e.GetAction() == "account.update" && strings.Contains(e.GetCause(), lower.GetId())
			promoted = promoted || system && e.GetAction() == "member.role" && e.GetTarget() == tm.member.GetUserId() &&
				strings.Contains(e.GetCause(), promote.GetId())
		}
		return quorumSet && promoted
	}, "the audit log lacks the system's records of the approved changes")
}

func TestDeletedAccountTasksPurged(t *testing.T) {
	h := start(t)
	tm := h.team(0)
	h.imageTask(tm, tm.member)
	approved := h.imageTask(tm, tm.member)
	if _, err := h.approve(tm.admin1, tm, approved.GetId()); err != nil {
		t.Fatal(err)
	}
	bucket, err := h.js.KeyValue(h.ctx, "account_tasks")
	if err != nil {
		t.Fatal(err)
	}
	keys := func() int {
		l, err := bucket.ListKeysFiltered(h.ctx, tm.account+".*")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for range l.Keys() {
			n++
		}
		return n
	}
	if n := keys(); n != 2+3 {
		t.Fatalf("stored tasks of the account = %d, want 2 and the 3 admin tasks of the team's setup", n)
	}
	if _, err := h.c.DeleteAccount(h.ctx, &accountv1.DeleteAccountRequest{Actor: tm.admin1, AccountId: tm.account}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return keys() == 0 }, "the deleted account's tasks were not purged")

	// An event about the deleted account opens nothing.
	im := newImage(tm.account, uuid.NewString(), tm.member.GetUserId())
	h.publish(tm.account, &imageconverterv1.ImageConverted{Image: im})
	h.settled()
	if n := keys(); n != 0 {
		t.Fatalf("stored tasks of a deleted account after ImageConverted = %d, want 0", n)
	}
	_, err = h.c.ListTasks(h.ctx, &accountv1.ListTasksRequest{Actor: tm.admin1, AccountId: tm.account})
	if errs.KindOf(err) != errs.NotFound || errs.ReasonOf(err) != "account_not_found" {
		t.Fatalf("ListTasks of a deleted account = %v, want account not found", err)
	}
}
