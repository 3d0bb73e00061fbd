package gatewaytest_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/gateway/api"
	"github.com/cloister-cc/cloister/services/gateway/gatewaytest"
)

// Cloister on a three-node cluster: every stream and bucket is replicated
// on all three, two replicas of every service each on its own node, and
// the journey's first steps work before and after the JetStream meta
// leader dies.
func TestStackOnACluster(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	s := gatewaytest.Start(t, gatewaytest.Options{Cluster: c, Replicas: 2})
	token, acct := s.Admin("ada@example.com")

	ctx := context.Background()
	js := s.JetStream()
	names := js.StreamNames(ctx)
	n := 0
	for name := range names.Name() {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
		n++
	}
	if names.Err() != nil || n < 10 {
		t.Fatalf("%d streams listed (%v), want every service's", n, names.Err())
	}

	c.Kill(c.WaitForMetaLeader(10 * time.Second))
	c.WaitForMetaLeader(30 * time.Second)
	// The services may still be waiting out elections of the streams the
	// dead node led: a creation is sent as a client should, with an
	// idempotency key, again while the answer is 503.
	retry, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var jt api.JoinToken
	err := s.Client(token).DoOnce(retry, "POST", "/v1/accounts/"+acct+"/join-tokens", "after-the-kill",
		api.CreateJoinToken{Name: "after"}, &jt)
	if err != nil || jt.ID == "" {
		t.Fatalf("join token after the meta leader died = %+v, %v", jt, err)
	}
	_, acct2 := s.Admin("bob@example.com")
	if acct2 == acct {
		t.Fatal("two accounts with one id")
	}
}
