package noderegistry_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/errs"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/noderegistry"
)

// TestHeartbeat: a heartbeat needs the node's current certificate; it
// records the instances, announcing those that start and stop. A node
// silent for the timeout is marked unreachable (once, though two replicas
// sweep), still authenticates, and its next heartbeat makes it active.
func TestHeartbeat(t *testing.T) {
	ctx := context.Background()
	// The clock stands still but when moved, and the test sweeps.
	s := newStack(t, nil, 300*time.Millisecond, func(c *noderegistry.Config) { c.SweepEvery = -1 })
	s.replica(nil)
	acct := s.account()
	n := s.mustEnroll(s.token(acct, &noderegistryv1.CreateJoinTokenRequest{}).GetSecret(), nil)
	beat := func(serial string, ids ...string) (*noderegistryv1.HeartbeatResponse, error) {
		r := &noderegistryv1.HeartbeatRequest{AccountId: acct, NodeId: n.id(), CertificateSerial: serial}
		for _, id := range ids {
			r.Instances = append(r.Instances, s.instance(acct, n, id))
		}
		return s.nr.Heartbeat(ctx, r)
	}

	_, err := beat("0123abcd")
	wantRefused(t, "Heartbeat with another serial", err, errs.Unauthenticated, "not the node's current one")
	_, err = beat("")
	wantRefused(t, "Heartbeat without a serial", err, errs.Unauthenticated, "not the node's current one")
	_, err = s.nr.Heartbeat(ctx, &noderegistryv1.HeartbeatRequest{AccountId: acct, NodeId: uuid.NewString(), CertificateSerial: n.serial()})
	wantRefused(t, "Heartbeat of an unknown node", err, errs.Unauthenticated, "not enrolled")

	resp, err := beat(n.serial(), "i-1", "i-2")
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetNode(); len(got.GetInstances()) != 2 || got.GetLastHeartbeat() == nil || got.GetStatus() != "active" {
		t.Fatalf("node after a heartbeat = %v", got)
	}
	s.clock.Advance(100 * time.Millisecond)
	if _, err := beat(n.serial(), "i-2", "i-3"); err != nil {
		t.Fatal(err)
	}
	instanceIDs := func(evs []*noderegistryv1.InstanceStarted) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.GetInstance().GetId())
		}
		return out
	}
	started := eventsOf(s, func() *noderegistryv1.InstanceStarted { return &noderegistryv1.InstanceStarted{} })
	stopped := eventsOf(s, func() *noderegistryv1.InstanceStopped { return &noderegistryv1.InstanceStopped{} })
	if got := instanceIDs(started); !slices.Equal(got, []string{"i-1", "i-2", "i-3"}) {
		t.Errorf("InstanceStarted for %v, want i-1, i-2, i-3", got)
	}
	if len(stopped) != 1 || stopped[0].GetInstance().GetId() != "i-1" || stopped[0].GetNodeId() != n.id() || stopped[0].GetInstance().GetStatus() != "stopped" {
		t.Errorf("InstanceStopped = %v, want i-1", stopped)
	}
	_, err = s.nr.Heartbeat(ctx, &noderegistryv1.HeartbeatRequest{AccountId: acct, NodeId: n.id(), CertificateSerial: n.serial(),
		Instances: []*noderegistryv1.Instance{{Id: "bad id!"}}})
	wantRefused(t, "Heartbeat with a bad instance id", err, errs.Invalid, "instances[0].id")

	// Within the timeout the sweeps change nothing; past it, the sweeps of
	// both replicas at once see the node silent, and one marks it.
	s.clock.Advance(200 * time.Millisecond)
	if changed := s.sweep(); changed != 0 {
		t.Fatalf("sweeps within the timeout changed %d nodes", changed)
	}
	s.clock.Advance(time.Second)
	if changed := s.sweep(); changed != 1 {
		t.Fatalf("sweeps of the silent node changed %d nodes, want 1", changed)
	}
	node := s.node(acct, n)
	if node.GetStatus() != "unreachable" {
		t.Fatalf("the silent node is %v, want unreachable", node)
	}
	if node.GetStatusReason() == "" {
		t.Errorf("unreachable node without a reason")
	}
	if _, err := s.nr.AuthenticateNode(ctx, &noderegistryv1.AuthenticateNodeRequest{AccountId: acct, NodeId: n.id(), CertificateSerial: n.serial()}); err != nil {
		t.Fatalf("AuthenticateNode of an unreachable node = %v", err)
	}
	resp, err = beat(n.serial(), "i-2")
	if err != nil || resp.GetNode().GetStatus() != "active" || resp.GetNode().GetStatusReason() != "" {
		t.Fatalf("heartbeat of an unreachable node = %v, %v; want it active", resp, err)
	}
	var statuses []string
	for _, e := range eventsOf(s, func() *noderegistryv1.NodeStatusChanged { return &noderegistryv1.NodeStatusChanged{} }) {
		statuses = append(statuses, e.GetNode().GetStatus())
	}
	if !slices.Equal(statuses, []string{"unreachable", "active"}) {
		t.Fatalf("NodeStatusChanged statuses = %v, want unreachable once, then active", statuses)
	}
}

// TestDeregistration: a deregistered node can no longer authenticate or
// send heartbeats, its instances are stopped (and announced so), and the
// CA revokes its certificate on NodeDeregistered.
func TestDeregistration(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct := s.account()
	n := s.mustEnroll(s.token(acct, &noderegistryv1.CreateJoinTokenRequest{}).GetSecret(), nil)
	s.beat(acct, n, "i-1", "i-2")
	auth := &noderegistryv1.AuthenticateNodeRequest{AccountId: acct, NodeId: n.id(), CertificateSerial: n.serial()}
	if _, err := s.nr.AuthenticateNode(ctx, auth); err != nil {
		t.Fatalf("AuthenticateNode before deregistration = %v", err)
	}

	r, err := s.nr.DeregisterNode(ctx, &noderegistryv1.DeregisterNodeRequest{Actor: actor, AccountId: acct, NodeId: n.id()})
	if err != nil || r.GetNode().GetStatus() != "deregistered" {
		t.Fatalf("DeregisterNode = %v, %v", r, err)
	}
	s.wantStopped(r.GetNode(), "i-1", "i-2")
	s.wantStopped(s.node(acct, n), "i-1", "i-2")
	_, err = s.nr.AuthenticateNode(ctx, auth)
	wantRefused(t, "AuthenticateNode after deregistration", err, errs.Unauthenticated, "the node is deregistered")
	_, err = s.nr.Heartbeat(ctx, &noderegistryv1.HeartbeatRequest{AccountId: acct, NodeId: n.id(), CertificateSerial: n.serial()})
	wantRefused(t, "Heartbeat after deregistration", err, errs.Unauthenticated, "the node is deregistered")

	var cert *cav1.Certificate
	testkit.EventuallyMsg(t, 10*time.Second, func() bool {
		c, err := s.ca.GetCertificate(ctx, &cav1.GetCertificateRequest{AccountId: acct, Serial: n.serial()})
		cert = c.GetCertificate()
		return err == nil && cert.GetRevoked()
	}, func() string {
		return fmt.Sprintf("the CA has not revoked the deregistered node's certificate: %v", cert)
	})

	if ev := eventsOf(s, func() *noderegistryv1.NodeDeregistered { return &noderegistryv1.NodeDeregistered{} }); len(ev) != 1 ||
		ev[0].GetNodeId() != n.id() || ev[0].GetAccountId() != acct {
		t.Fatalf("NodeDeregistered events = %v", ev)
	}
	var audited bool
	for _, rec := range s.audits(acct) {
		audited = audited || rec.GetAction() == "node.deregister" && rec.GetTarget() == n.id() && rec.GetActorUserId() == actor.GetUserId()
	}
	if !audited {
		t.Error("no audit record of the deregistration")
	}
	// Again: nothing changes, nothing more is announced.
	if r, err := s.nr.DeregisterNode(ctx, &noderegistryv1.DeregisterNodeRequest{Actor: actor, AccountId: acct, NodeId: n.id()}); err != nil ||
		r.GetNode().GetStatus() != "deregistered" {
		t.Fatalf("DeregisterNode again = %v, %v", r, err)
	}
	if ev := eventsOf(s, func() *noderegistryv1.NodeDeregistered { return &noderegistryv1.NodeDeregistered{} }); len(ev) != 1 {
		t.Fatalf("%d NodeDeregistered events, want 1", len(ev))
	}
	s.wantStopped(s.node(acct, n), "i-1", "i-2")
}

// TestMarkUntrusted: the node is untrusted at once (it no longer
// authenticates), its running instances are stopped, its certificate is
// revoked, NodeStatusChanged and InstanceStopped say so; marking it again
// is harmless, and it can still be deregistered, stopping nothing more.
func TestMarkUntrusted(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct := s.account()
	n := s.mustEnroll(s.token(acct, &noderegistryv1.CreateJoinTokenRequest{}).GetSecret(), nil)
	s.beat(acct, n, "i-1", "i-2")

	if err := s.svc.MarkUntrusted(ctx, acct, n.id(), "re-attestation failed: tcb OutOfDate"); err != nil {
		t.Fatalf("MarkUntrusted = %v", err)
	}
	got, err := s.nr.GetNode(ctx, &noderegistryv1.GetNodeRequest{Actor: actor, AccountId: acct, NodeId: n.id()})
	if err != nil || got.GetNode().GetStatus() != "untrusted" || got.GetNode().GetStatusReason() != "re-attestation failed: tcb OutOfDate" {
		t.Fatalf("GetNode = %v, %v; want untrusted with the reason", got, err)
	}
	s.wantStopped(got.GetNode(), "i-1", "i-2")
	_, err = s.nr.AuthenticateNode(ctx, &noderegistryv1.AuthenticateNodeRequest{AccountId: acct, NodeId: n.id(), CertificateSerial: n.serial()})
	wantRefused(t, "AuthenticateNode of an untrusted node", err, errs.Unauthenticated, "the node is untrusted")
	c, err := s.ca.GetCertificate(ctx, &cav1.GetCertificateRequest{AccountId: acct, Serial: n.serial()})
	if err != nil || !c.GetCertificate().GetRevoked() || c.GetCertificate().GetRevocationReason() != "node untrusted: re-attestation failed: tcb OutOfDate" {
		t.Fatalf("certificate of the untrusted node = %v, %v; want it revoked with the reason", c, err)
	}
	ev := eventsOf(s, func() *noderegistryv1.NodeStatusChanged { return &noderegistryv1.NodeStatusChanged{} })
	if len(ev) != 1 || ev[0].GetNode().GetStatus() != "untrusted" {
		t.Fatalf("NodeStatusChanged events = %v", ev)
	}
	if err := s.svc.MarkUntrusted(ctx, acct, n.id(), "again"); err != nil {
		t.Fatalf("MarkUntrusted again = %v", err)
	}
	if _, err := s.nr.DeregisterNode(ctx, &noderegistryv1.DeregisterNodeRequest{Actor: actor, AccountId: acct, NodeId: n.id()}); err != nil {
		t.Fatalf("DeregisterNode of an untrusted node = %v", err)
	}
	s.wantStopped(s.node(acct, n), "i-1", "i-2")
	err = s.svc.MarkUntrusted(ctx, acct, n.id(), "late")
	if errs.KindOf(err) != errs.Conflict {
		t.Fatalf("MarkUntrusted of a deregistered node = %v, want a conflict", err)
	}
	err = s.svc.MarkUntrusted(ctx, acct, uuid.NewString(), "no such node")
	if errs.KindOf(err) != errs.NotFound {
		t.Fatalf("MarkUntrusted of an unknown node = %v, want not found", err)
	}
}

// TestOtherAccountsNodeIsNotFound: an account sees neither the nodes nor
// the tokens of another; a node's certificate speaks for its own account
// only.
func TestOtherAccountsNodeIsNotFound(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct, other := s.account(), s.account()
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{})
	n := s.mustEnroll(tok.GetSecret(), nil)

	_, err := s.nr.GetNode(ctx, &noderegistryv1.GetNodeRequest{Actor: actor, AccountId: other, NodeId: n.id()})
	wantRefused(t, "GetNode from another account", err, errs.NotFound, "node not found")
	_, err = s.nr.DeregisterNode(ctx, &noderegistryv1.DeregisterNodeRequest{Actor: actor, AccountId: other, NodeId: n.id()})
	wantRefused(t, "DeregisterNode from another account", err, errs.NotFound, "node not found")
	_, err = s.nr.RevokeJoinToken(ctx, &noderegistryv1.RevokeJoinTokenRequest{Actor: actor, AccountId: other, TokenId: tok.GetToken().GetId()})
	wantRefused(t, "RevokeJoinToken from another account", err, errs.NotFound, "join token not found")
	_, err = s.nr.GetNode(ctx, &noderegistryv1.GetNodeRequest{Actor: actor, AccountId: "nope", NodeId: "n.>"})
	wantRefused(t, "GetNode with malformed ids", err, errs.NotFound, "node not found")
	if ns, err := s.nr.ListNodes(ctx, &noderegistryv1.ListNodesRequest{Actor: actor, AccountId: other}); err != nil || len(ns.GetNodes()) != 0 {
		t.Fatalf("ListNodes of the other account = %v, %v; want none", ns, err)
	}
	if ts, err := s.nr.ListJoinTokens(ctx, &noderegistryv1.ListJoinTokensRequest{Actor: actor, AccountId: other}); err != nil || len(ts.GetTokens()) != 0 {
		t.Fatalf("ListJoinTokens of the other account = %v, %v; want none", ts, err)
	}
	_, err = s.nr.AuthenticateNode(ctx, &noderegistryv1.AuthenticateNodeRequest{AccountId: other, NodeId: n.id(), CertificateSerial: n.serial()})
	wantRefused(t, "AuthenticateNode in another account", err, errs.Unauthenticated, "not enrolled")
	// The node is untouched.
	if got, err := s.nr.GetNode(ctx, &noderegistryv1.GetNodeRequest{Actor: actor, AccountId: acct, NodeId: n.id()}); err != nil || got.GetNode().GetStatus() != "active" {
		t.Fatalf("GetNode in its account = %v, %v", got, err)
	}
}
