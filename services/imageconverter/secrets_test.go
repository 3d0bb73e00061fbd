package imageconverter_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/errs"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// An application's secrets: set in versions (ten kept), listed without
// their values, deleted; refused with a reason when malformed, and
// another account's are not found. No value is in an answer, in the
// bucket that keeps them, or in any stream (events and audit).
func TestSecrets(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	account := uuid.NewString()
	spec := helloSpec()
	spec.SecretsDir = "/run/secrets"
	spec.SecretEnv = []*imageconverterv1.SecretEnv{{Name: "DB_PASSWORD", Secret: "db-password"}}
	spec.Volumes = []*imageconverterv1.Volume{{Path: "/var/lib/hello", KeyName: "hello-data"}}
	created, err := s.c.CreateApp(ctx, &imageconverterv1.CreateAppRequest{AccountId: account, Spec: spec, Actor: actor})
	if err != nil {
		t.Fatal(err)
	}
	if got := created.GetApp().GetSpec(); got.GetSecretsDir() != "/run/secrets" || len(got.GetSecretEnv()) != 1 || got.GetVolumes()[0].GetKeyName() != "hello-data" {
		t.Fatalf("the app's spec = %v", got)
	}

	value := func(i int) []byte { return fmt.Appendf(nil, "hunter2-%s-%d", account, i) }
	var last *imageconverterv1.PutSecretResponse
	for i := 1; i <= 12; i++ {
		last, err = s.c.PutSecret(ctx, &imageconverterv1.PutSecretRequest{AccountId: account, App: "hello", Name: "db-password", Value: value(i), Actor: actor})
		if err != nil {
			t.Fatal(err)
		}
	}
	vs := last.GetSecret().GetVersions()
	if len(vs) != 10 || vs[0].GetVersion() != 3 || vs[9].GetVersion() != 12 || vs[9].GetSize() != uint32(len(value(12))) || vs[9].GetCreatedBy() != actor.GetUserId() {
		t.Fatalf("versions = %v, want 3 to 12, the newest of %d bytes by the actor", vs, len(value(12)))
	}
	if _, err := s.c.PutSecret(ctx, &imageconverterv1.PutSecretRequest{AccountId: account, App: created.GetApp().GetId(), Name: "api.key",
		Value: []byte("k-" + account), Actor: actor}); err != nil {
		t.Fatal(err)
	}
	list, err := s.c.ListSecrets(ctx, &imageconverterv1.ListSecretsRequest{AccountId: account, App: "hello"})
	if err != nil || len(list.GetSecrets()) != 2 || list.GetSecrets()[0].GetName() != "api.key" || list.GetSecrets()[1].GetName() != "db-password" {
		t.Fatalf("ListSecrets = %v, %v", list, err)
	}
	for _, m := range []proto.Message{last, list} {
		b, _ := proto.Marshal(m)
		if bytes.Contains(b, []byte("hunter2")) {
			t.Fatalf("an answer holds a secret's value: %v", m)
		}
	}

	for name, req := range map[string]*imageconverterv1.PutSecretRequest{
		"a name with a slash":    {Name: "a/b", Value: []byte("x")},
		"a name starting with .": {Name: ".env", Value: []byte("x")},
		"an empty value":         {Name: "empty"},
		"a value too large":      {Name: "big", Value: make([]byte, 64<<10+1)},
	} {
		req.AccountId, req.App, req.Actor = account, "hello", actor
		if _, err := s.c.PutSecret(ctx, req); errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: PutSecret = %v, want invalid", name, err)
		}
	}
	other := uuid.NewString()
	for name, err := range map[string]error{
		"put":    second(s.c.PutSecret(ctx, &imageconverterv1.PutSecretRequest{AccountId: other, App: created.GetApp().GetId(), Name: "x", Value: []byte("x"), Actor: actor})),
		"list":   second(s.c.ListSecrets(ctx, &imageconverterv1.ListSecretsRequest{AccountId: other, App: created.GetApp().GetId()})),
		"delete": second(s.c.DeleteSecret(ctx, &imageconverterv1.DeleteSecretRequest{AccountId: other, App: created.GetApp().GetId(), Name: "api.key", Actor: actor})),
	} {
		if errs.KindOf(err) != errs.NotFound {
			t.Errorf("another account's %s = %v, want not found", name, err)
		}
	}

	if _, err := s.c.DeleteSecret(ctx, &imageconverterv1.DeleteSecretRequest{AccountId: account, App: "hello", Name: "api.key", Actor: actor}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.DeleteSecret(ctx, &imageconverterv1.DeleteSecretRequest{AccountId: account, App: "hello", Name: "api.key", Actor: actor}); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("deleting it again = %v, want not found", err)
	}
	if list, _ := s.c.ListSecrets(ctx, &imageconverterv1.ListSecretsRequest{AccountId: account, App: "hello"}); len(list.GetSecrets()) != 1 {
		t.Fatalf("after delete: %v", list)
	}

	// Every message of every stream (events, audit, the buckets), in
	// clear of the values; the audit trail records each change.
	names := s.js.StreamNames(ctx)
	audited := 0
	for name := range names.Name() {
		st, err := s.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if err != nil {
				continue // deleted
			}
			if bytes.Contains(m.Data, []byte("hunter2")) || bytes.Contains(m.Data, []byte("k-"+account)) {
				t.Errorf("stream %s, subject %s holds a secret's value in clear", name, m.Subject)
			}
			if strings.HasPrefix(m.Subject, "audit."+account+".") && bytes.Contains(m.Data, []byte("secret.")) {
				audited++
			}
		}
	}
	if names.Err() != nil {
		t.Fatal(names.Err())
	}
	// 12 + 1 set, 4 refused, 2 deletes (one refused).
	if audited != 19 {
		t.Errorf("%d audit records of secrets, want 19", audited)
	}

	// Deleting the application takes its secrets.
	if _, err := s.c.DeleteApp(ctx, &imageconverterv1.DeleteAppRequest{AccountId: account, AppId: "hello", Actor: actor}); err != nil {
		t.Fatal(err)
	}
	kv, err := s.js.KeyValue(ctx, "imageconverter_secrets")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx, jetstream.MetaOnly())
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		if strings.HasPrefix(k, account+".") {
			t.Errorf("key %s is left after the application was deleted", k)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// Deleting an application forgets its secrets twice at once: in the
// request, and in the durable consumer of its AppDeleted. Neither fails
// for what the other deleted first, and nothing is left.
func TestDeleteAppForgetsSecretsOnce(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	account := uuid.NewString()
	for round := range 5 {
		spec := helloSpec()
		spec.SecretsDir = "/run/secrets"
		created, err := s.c.CreateApp(ctx, &imageconverterv1.CreateAppRequest{AccountId: account, Spec: spec, Actor: actor})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 30 {
			if _, err := s.c.PutSecret(ctx, &imageconverterv1.PutSecretRequest{AccountId: account, App: "hello", Name: fmt.Sprintf("s%02d", i),
				Value: []byte("x"), Actor: actor}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.c.DeleteApp(ctx, &imageconverterv1.DeleteAppRequest{AccountId: account, AppId: created.GetApp().GetId(), Actor: actor}); err != nil {
			t.Fatalf("round %d: DeleteApp = %v", round, err)
		}
	}
	kv, err := s.js.KeyValue(ctx, "imageconverter_secrets")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			return false
		}
		n := 0
		for k := range keys.Keys() {
			if strings.HasPrefix(k, account+".") {
				n++
			}
		}
		return n == 0
	}, "secrets are left after their applications were deleted")
}
