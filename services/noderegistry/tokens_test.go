package noderegistry_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/errs"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// TestJoinTokenSecret: the secret is "cjt_" and 256 random bits, shown
// once; the registry keeps its SHA-256 only. Defaults, limits, the event
// and the audit record of creation.
func TestJoinTokenSecret(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct := s.account()
	resp := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{Name: "rack-1", Labels: map[string]string{"zone": "a"}, MaxUses: 3})
	if !regexp.MustCompile(`^cjt_[A-Za-z0-9_-]{43}$`).MatchString(resp.GetSecret()) {
		t.Fatalf("secret = %q, want cjt_ and 43 base64url characters", resp.GetSecret())
	}
	tok := resp.GetToken()
	if ttl := tok.GetExpiresAt().AsTime().Sub(tok.GetCreatedAt().AsTime()); ttl != 24*time.Hour {
		t.Errorf("default ttl = %v, want 24h", ttl)
	}
	if tok.GetMaxUses() != 3 || tok.GetUses() != 0 || tok.GetLabels()["zone"] != "a" || tok.GetCreatedBy() != actor.GetUserId() {
		t.Errorf("token = %v", tok)
	}

	// What the buckets hold: the hash, never the secret.
	hash := fmt.Sprintf("%x", sha256Sum(resp.GetSecret()))
	for _, b := range []string{"noderegistry_tokens", "noderegistry_token_hashes"} {
		bucket, err := s.js.KeyValue(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := bucket.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			e, err := bucket.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(e.Value()), resp.GetSecret()) || strings.Contains(k, resp.GetSecret()) {
				t.Fatalf("bucket %s holds the secret under %s", b, k)
			}
		}
		want := map[string]string{"noderegistry_tokens": acct + "." + tok.GetId(), "noderegistry_token_hashes": hash}[b]
		if len(keys) != 1 || keys[0] != want {
			t.Errorf("bucket %s keys = %v, want [%s]", b, keys, want)
		}
	}

	list, err := s.nr.ListJoinTokens(ctx, &noderegistryv1.ListJoinTokensRequest{Actor: actor, AccountId: acct})
	if err != nil || len(list.GetTokens()) != 1 || list.GetTokens()[0].GetId() != tok.GetId() {
		t.Fatalf("ListJoinTokens = %v, %v", list, err)
	}
	if got := eventsOf(s, func() *noderegistryv1.JoinTokenCreated { return &noderegistryv1.JoinTokenCreated{} }); len(got) != 1 || got[0].GetToken().GetId() != tok.GetId() {
		t.Errorf("JoinTokenCreated events = %v", got)
	}
	if recs := s.audits(acct); len(recs) != 1 || recs[0].GetAction() != "node.token.create" || recs[0].GetActorUserId() != actor.GetUserId() ||
		recs[0].GetTarget() != tok.GetId() || recs[0].GetOutcome() != "success" {
		t.Errorf("audit records = %v", recs)
	}

	for _, tc := range []struct {
		name string
		r    *noderegistryv1.CreateJoinTokenRequest
		want string
	}{
		{"ttl over 30 days", &noderegistryv1.CreateJoinTokenRequest{Name: "a", TtlSeconds: 31 * 24 * 3600}, "ttl_seconds"},
		{"no name", &noderegistryv1.CreateJoinTokenRequest{}, "name"},
		{"bad name", &noderegistryv1.CreateJoinTokenRequest{Name: "rack 1"}, "name"},
		{"bad label", &noderegistryv1.CreateJoinTokenRequest{Name: "a", Labels: map[string]string{"": "x"}}, "labels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Actor, tc.r.AccountId = actor, acct
			_, err := s.nr.CreateJoinToken(ctx, tc.r)
			wantRefused(t, "CreateJoinToken", err, errs.Invalid, tc.want)
		})
	}
	// The failures are audited too.
	if recs := s.audits(acct); len(recs) != 5 || recs[4].GetOutcome() != "failure" {
		t.Errorf("audit records after refusals = %d, want 5 with the last a failure", len(recs))
	}
	max := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{TtlSeconds: 30 * 24 * 3600}).GetToken()
	if ttl := max.GetExpiresAt().AsTime().Sub(max.GetCreatedAt().AsTime()); ttl != 30*24*time.Hour {
		t.Errorf("ttl of 30 days = %v", ttl)
	}
}

// TestJoinTokenRefusals: an unknown, an expired, a revoked and a used-up
// token are refused as unauthenticated, each saying why, with the lookup
// cached in process, in Redis, and with Redis down (lookups fall through
// to the bucket). Tokens are looked up, and so cached, before they change.
func TestJoinTokenRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (cache.Cache, func())
	}{
		{"memory", func(*testing.T) (cache.Cache, func()) { return cache.NewMemory(0), func() {} }},
		{"redis", func(t *testing.T) (cache.Cache, func()) { return redisCache(t), func() {} }},
		{"redis down", func(t *testing.T) (cache.Cache, func()) {
			srv, rc, c := stoppableRedis(t)
			return c, func() {
				keys, err := rc.Keys(context.Background(), "t:noderegistry:token:*").Result()
				if err != nil || len(keys) < 3 {
					t.Fatalf("lookups cached in Redis before it stops = %v, %v; want the three tokens", keys, err)
				}
				srv.Stop()
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, stopRedis := tc.setup(t)
			testRefusals(t, c, stopRedis)
		})
	}
}

func testRefusals(t *testing.T, c cache.Cache, stopRedis func()) {
	ctx := context.Background()
	s := newStack(t, c, 0)
	acct := s.account()
	expiring := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{Name: "expiring", TtlSeconds: 60})
	revoked := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{Name: "revoked"})
	once := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{Name: "once", MaxUses: 1})
	for _, tok := range []*noderegistryv1.CreateJoinTokenResponse{expiring, revoked, once} {
		s.mustEnroll(tok.GetSecret(), nil)
	}
	stopRedis()

	_, err := s.enroll("cjt_"+strings.Repeat("A", 43), nil)
	wantRefused(t, "Enroll(unknown token)", err, errs.Unauthenticated, "the join token is unknown")
	_, err = s.enroll("not a token", nil)
	wantRefused(t, "Enroll(malformed token)", err, errs.Unauthenticated, "the join token is unknown")

	s.clock.Advance(61 * time.Second)
	_, err = s.enroll(expiring.GetSecret(), nil)
	wantRefused(t, "Enroll(expired token)", err, errs.Unauthenticated,
		"the join token expired at "+expiring.GetToken().GetExpiresAt().AsTime().UTC().Format(time.RFC3339))

	r, err := s.nr.RevokeJoinToken(ctx, &noderegistryv1.RevokeJoinTokenRequest{Actor: actor, AccountId: acct, TokenId: revoked.GetToken().GetId()})
	if err != nil || !r.GetToken().GetRevoked() {
		t.Fatalf("RevokeJoinToken = %v, %v", r, err)
	}
	_, err = s.enroll(revoked.GetSecret(), nil)
	wantRefused(t, "Enroll(revoked token)", err, errs.Unauthenticated, "the join token is revoked")

	_, err = s.enroll(once.GetSecret(), nil)
	wantRefused(t, "Enroll(used-up token)", err, errs.Unauthenticated, "the join token is used up (1 of 1 uses)")

	// A token made now works all the same.
	s.mustEnroll(s.token(acct, &noderegistryv1.CreateJoinTokenRequest{Name: "late"}).GetSecret(), nil)
}

// TestRevocationIsImmediate: two replicas, sharing Redis or each with its
// own in-process cache, have both looked the token up; once it is revoked
// through either, no enrolment with it passes on any replica.
func TestRevocationIsImmediate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		caches func(t *testing.T) (cache.Cache, cache.Cache)
	}{
		{"shared redis", func(t *testing.T) (cache.Cache, cache.Cache) { c := redisCache(t); return c, c }},
		{"memory each", func(*testing.T) (cache.Cache, cache.Cache) { return cache.NewMemory(0), cache.NewMemory(0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			a, b := tc.caches(t)
			s := newStack(t, a, 0)
			s.replica(b)
			acct := s.account()
			tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{})
			// Requests go to either replica at random: 24 of them reach
			// both but once in ten million runs.
			for range 24 {
				s.mustEnroll(tok.GetSecret(), nil)
			}
			key := "noderegistry:token:" + fmt.Sprintf("%x", sha256Sum(tok.GetSecret()))
			cached := func(c cache.Cache) (revoked, ok bool) {
				b, err := c.Get(ctx, key)
				if err != nil {
					return false, false
				}
				return strings.Contains(string(b), `"revoked":true`), true
			}
			for i, c := range []cache.Cache{a, b} {
				if revoked, ok := cached(c); !ok || revoked {
					t.Fatalf("cache %d before the revocation: cached %v, revoked %v; want the lookup cached", i, ok, revoked)
				}
			}
			if _, err := s.nr.RevokeJoinToken(ctx, &noderegistryv1.RevokeJoinTokenRequest{Actor: actor, AccountId: acct, TokenId: tok.GetToken().GetId()}); err != nil {
				t.Fatal(err)
			}
			if tc.name == "shared redis" {
				// Written through before the revocation returns.
				if revoked, ok := cached(a); !ok || !revoked {
					t.Fatalf("Redis right after the revocation: cached %v, revoked %v", ok, revoked)
				}
			}
			// Each process's own cache follows the event.
			testkit.Eventually(t, 5*time.Second, func() bool {
				ra, _ := cached(a)
				rb, _ := cached(b)
				return ra && rb
			}, "a replica's cache does not hold the revocation")
			for i := range 16 {
				_, err := s.enroll(tok.GetSecret(), nil)
				wantRefused(t, fmt.Sprintf("Enroll #%d after revocation", i), err, errs.Unauthenticated, "revoked")
			}
			ev := eventsOf(s, func() *noderegistryv1.JoinTokenRevoked { return &noderegistryv1.JoinTokenRevoked{} })
			if len(ev) != 1 || ev[0].GetTokenHash() != fmt.Sprintf("%x", sha256Sum(tok.GetSecret())) || !ev[0].GetToken().GetRevoked() {
				t.Fatalf("JoinTokenRevoked events = %v", ev)
			}
			// Revoking again changes nothing and announces nothing.
			if r, err := s.nr.RevokeJoinToken(ctx, &noderegistryv1.RevokeJoinTokenRequest{Actor: actor, AccountId: acct, TokenId: tok.GetToken().GetId()}); err != nil || !r.GetToken().GetRevoked() {
				t.Fatalf("RevokeJoinToken again = %v, %v", r, err)
			}
			if ev := eventsOf(s, func() *noderegistryv1.JoinTokenRevoked { return &noderegistryv1.JoinTokenRevoked{} }); len(ev) != 1 {
				t.Fatalf("%d JoinTokenRevoked events after a second revocation, want 1", len(ev))
			}
			var revokes int
			for _, r := range s.audits(acct) {
				if r.GetAction() == "node.token.revoke" && r.GetActorUserId() == actor.GetUserId() {
					revokes++
				}
			}
			if revokes != 1 {
				t.Errorf("%d audit records of the revocation, want 1", revokes)
			}
		})
	}
}

// TestConcurrentEnrolmentsNeverExceedMaxUses: 30 nodes race for 5 uses
// through two replicas; exactly 5 enrol, the others are told the token is
// used up.
func TestConcurrentEnrolmentsNeverExceedMaxUses(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	s.replica(nil)
	acct := s.account()
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{MaxUses: 5})
	const racers = 30
	errc := make(chan error, racers)
	nodes := make([]*node, racers)
	for i := range nodes {
		nodes[i] = newNode(t)
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			_, err := s.nr.Enroll(ctx, &noderegistryv1.EnrollRequest{JoinToken: tok.GetSecret(), NodeName: "racer", Csr: n.csr})
			errc <- err
		})
	}
	wg.Wait()
	close(errc)
	ok := 0
	for err := range errc {
		if err == nil {
			ok++
			continue
		}
		wantRefused(t, "a racing Enroll", err, errs.Unauthenticated, "the join token is used up (5 of 5 uses)")
	}
	if ok != 5 {
		t.Fatalf("%d of %d racing enrolments passed, want 5", ok, racers)
	}
	list, err := s.nr.ListJoinTokens(ctx, &noderegistryv1.ListJoinTokensRequest{Actor: actor, AccountId: acct})
	if err != nil || list.GetTokens()[0].GetUses() != 5 {
		t.Fatalf("token after the race = %v, %v; want 5 uses", list, err)
	}
	ns, err := s.nr.ListNodes(ctx, &noderegistryv1.ListNodesRequest{Actor: actor, AccountId: acct})
	if err != nil || len(ns.GetNodes()) != 5 {
		t.Fatalf("ListNodes = %d nodes, %v; want 5", len(ns.GetNodes()), err)
	}
}

// TestAccountDeletionPurges: AccountDeleted removes the account's tokens
// and nodes; its token no longer enrols.
func TestAccountDeletionPurges(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, 0)
	acct, other := s.account(), s.account()
	tok := s.token(acct, &noderegistryv1.CreateJoinTokenRequest{})
	n := s.mustEnroll(tok.GetSecret(), nil)
	kept := s.mustEnroll(s.token(other, &noderegistryv1.CreateJoinTokenRequest{}).GetSecret(), nil)

	s.publish("account", acct, &accountv1.AccountDeleted{AccountId: acct})
	testkit.Eventually(t, 10*time.Second, func() bool {
		ns, err1 := s.nr.ListNodes(ctx, &noderegistryv1.ListNodesRequest{Actor: actor, AccountId: acct})
		ts, err2 := s.nr.ListJoinTokens(ctx, &noderegistryv1.ListJoinTokensRequest{Actor: actor, AccountId: acct})
		return err1 == nil && err2 == nil && len(ns.GetNodes()) == 0 && len(ts.GetTokens()) == 0
	}, "the deleted account's tokens and nodes are still there")
	_, err := s.enroll(tok.GetSecret(), nil)
	wantRefused(t, "Enroll with a deleted account's token", err, errs.Unauthenticated, "the join token is unknown")
	_, err = s.nr.AuthenticateNode(ctx, &noderegistryv1.AuthenticateNodeRequest{AccountId: acct, NodeId: n.id(), CertificateSerial: n.serial()})
	wantRefused(t, "AuthenticateNode of a deleted account's node", err, errs.Unauthenticated, "not enrolled")
	if _, err := s.nr.GetNode(ctx, &noderegistryv1.GetNodeRequest{Actor: actor, AccountId: other, NodeId: kept.id()}); err != nil {
		t.Fatalf("another account's node after the deletion: %v", err)
	}
}
