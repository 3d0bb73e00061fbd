package imageconverter_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
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
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/imageconverter"
)

// testKey is one real signing key shared by the tests' accounts: making
// an RSA-3072 e = 3 key takes a second or more.
var testKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return sgx.GenerateSigningKey(rand.Reader) })

func reuseKey(io.Reader) (*rsa.PrivateKey, error) { return testKey() }

type stack struct {
	t  *testing.T
	n  *testkit.NATS
	js jetstream.JetStream
	c  *imageconverterv1.ImageConverterClient
}

func start(t *testing.T) *stack {
	t.Helper()
	n := testkit.StartNATS(t)
	nc, js := n.JetStream(t)
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{5}, pki.KEKSize))
	svc, err := imageconverter.Start(context.Background(), imageconverter.Config{Options: service.Options{NATS: nc, Assertions: n.Verifier("imageconverter")}, KEK: kek, GenerateKey: reuseKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	return &stack{t: t, n: n, js: js, c: imageconverterv1.NewImageConverterClient(n.Connect(t), n.Vouching(t))}
}

func (s *stack) publish(producer, account string, m proto.Message) {
	s.t.Helper()
	msg, _, err := events.NewMessage(context.Background(), events.Subject(producer, m), producer, account, m)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := events.Publish(context.Background(), s.js, msg); err != nil {
		s.t.Fatal(err)
	}
}

var actor = &accountv1.Principal{UserId: uuid.NewString(), Email: "ada@example.com", Credential: "session", CredentialId: "s1"}

func helloSpec() *imageconverterv1.AppSpec {
	return &imageconverterv1.AppSpec{Name: "hello", Description: "says hello", InputImage: "registry.example.com/samples/hello:1",
		OutputImage: "registry.example.com/samples/hello-sgx", Isvprodid: 7, Isvsvn: 2, MemorySize: 512 << 20, Threads: 8,
		Entrypoint: []string{"/hello"}, Args: []string{"--port", "8443"}, Env: []*imageconverterv1.EnvVar{{Name: "MODE", Value: "prod"}},
		PassthroughEnv: []string{"TZ"}, RwDirs: []string{"/tmp", "/var/cache/hello"},
		Certificate: &imageconverterv1.CertificateConfig{Domain: "hello.cloister.test", KeyType: "ec-p384"}}
}

func TestApplications(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	account := uuid.NewString()

	created, err := s.c.CreateApp(ctx, &imageconverterv1.CreateAppRequest{AccountId: account, Spec: helloSpec(), Actor: actor})
	if err != nil {
		t.Fatal(err)
	}
	a := created.GetApp()
	// Defaults filled in: the issuer follows from the domain, and the paths.
	if c := a.GetCertificate(); c.GetIssuer() != "cloister" || c.GetKeyPath() != "/run/cloister/key.pem" || c.GetCertPath() != "/run/cloister/cert.pem" ||
		!proto.Equal(c, a.GetSpec().GetCertificate()) {
		t.Fatalf("certificate configuration = %v", c)
	}
	byName, err := s.c.GetApp(ctx, &imageconverterv1.GetAppRequest{AccountId: account, App: "hello"})
	if err != nil || !proto.Equal(byName.GetApp(), a) {
		t.Fatalf("GetApp by name = %v, %v; want %v", byName, err, a)
	}
	if _, err := s.c.CreateApp(ctx, &imageconverterv1.CreateAppRequest{AccountId: account, Spec: helloSpec(), Actor: actor}); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("a second app named hello = %v, want a conflict", err)
	}
	// Another account sees nothing.
	if _, err := s.c.GetApp(ctx, &imageconverterv1.GetAppRequest{AccountId: uuid.NewString(), App: a.GetId()}); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("GetApp from another account = %v, want NotFound", err)
	}

	spec := helloSpec()
	spec.MemorySize, spec.Certificate.Domain = 1<<30, "hello2.cloister.test"
	updated, err := s.c.UpdateApp(ctx, &imageconverterv1.UpdateAppRequest{AccountId: account, AppId: a.GetId(), Spec: spec, Actor: actor})
	if err != nil || updated.GetApp().GetSpec().GetMemorySize() != 1<<30 || updated.GetApp().GetCertificate().GetDomain() != "hello2.cloister.test" {
		t.Fatalf("UpdateApp = %v, %v", updated, err)
	}
	list, err := s.c.ListApps(ctx, &imageconverterv1.ListAppsRequest{AccountId: account})
	if err != nil || len(list.GetApps()) != 1 {
		t.Fatalf("ListApps = %v, %v", list, err)
	}
	if _, err := s.c.DeleteApp(ctx, &imageconverterv1.DeleteAppRequest{AccountId: account, AppId: "hello", Actor: actor}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.GetApp(ctx, &imageconverterv1.GetAppRequest{AccountId: account, App: a.GetId()}); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("GetApp after delete = %v, want NotFound", err)
	}

	// The events other services build on, and the audit trail, in order.
	for subject, want := range map[string]int{
		"events.imageconverter.v1.AppCreated": 1, "events.imageconverter.v1.AppUpdated": 1, "events.imageconverter.v1.AppDeleted": 1,
		"audit." + account + ".imageconverter": 4, // create, refused create, update, delete
	} {
		stream := events.StreamEvents
		if strings.HasPrefix(subject, "audit.") {
			stream = events.StreamAudit
		}
		st, err := s.js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil || int(info.State.Subjects[subject]) != want {
			t.Fatalf("%s holds %v messages (%v), want %d", subject, info.State.Subjects[subject], err, want)
		}
	}
}

func TestApplicationValidation(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	account := uuid.NewString()
	tests := []struct {
		field  string
		change func(*imageconverterv1.AppSpec)
	}{
		{"name", func(s *imageconverterv1.AppSpec) { s.Name = "" }},
		{"name", func(s *imageconverterv1.AppSpec) { s.Name = "has space" }},
		{"description", func(s *imageconverterv1.AppSpec) { s.Description = strings.Repeat("x", 1025) }},
		{"input_image", func(s *imageconverterv1.AppSpec) { s.InputImage = "not an image" }},
		{"output_image", func(s *imageconverterv1.AppSpec) { s.OutputImage = "registry.example.com/x:tag" }},
		{"isvprodid", func(s *imageconverterv1.AppSpec) { s.Isvprodid = 70000 }},
		{"isvsvn", func(s *imageconverterv1.AppSpec) { s.Isvsvn = 1 << 16 }},
		{"memory_size", func(s *imageconverterv1.AppSpec) { s.MemorySize = 16 << 20 }},
		{"memory_size", func(s *imageconverterv1.AppSpec) { s.MemorySize = 256<<20 + 4096 }},
		{"threads", func(s *imageconverterv1.AppSpec) { s.Threads = 1000 }},
		{"entrypoint[0]", func(s *imageconverterv1.AppSpec) { s.Entrypoint = []string{"a\x00b"} }},
		{"env[1]", func(s *imageconverterv1.AppSpec) { s.Env = append(s.Env, &imageconverterv1.EnvVar{Name: "1BAD"}) }},
		{"env[1]", func(s *imageconverterv1.AppSpec) { s.Env = append(s.Env, &imageconverterv1.EnvVar{Name: "MODE"}) }},
		{"passthrough_env[0]", func(s *imageconverterv1.AppSpec) { s.PassthroughEnv = []string{"MODE"} }},
		{"rw_dirs[0]", func(s *imageconverterv1.AppSpec) { s.RwDirs = []string{"relative"} }},
		{"rw_dirs[0]", func(s *imageconverterv1.AppSpec) { s.RwDirs = []string{"/"} }},
		{"rw_dirs[0]", func(s *imageconverterv1.AppSpec) { s.RwDirs = []string{"/opt/cloister/x"} }},
		{"rw_dirs[0]", func(s *imageconverterv1.AppSpec) { s.RwDirs = []string{"/./data/x"} }},
		{"rw_dirs[0]", func(s *imageconverterv1.AppSpec) { s.RwDirs = []string{"//data/x"} }},
		{"certificate.key_path", func(s *imageconverterv1.AppSpec) {
			s.RwDirs, s.Certificate.KeyPath = []string{"/data/x"}, "/./data/x/key.pem"
		}},
		{"certificate.key_path", func(s *imageconverterv1.AppSpec) {
			s.RwDirs, s.Certificate.KeyPath = []string{"/data/x"}, "//data/x/key.pem"
		}},
		{"passthrough_env[0]", func(s *imageconverterv1.AppSpec) { s.PassthroughEnv = []string{"LD_PRELOAD"} }},
		{"passthrough_env[0]", func(s *imageconverterv1.AppSpec) { s.PassthroughEnv = []string{"LD_LIBRARY_PATH"} }},
		{"passthrough_env[0]", func(s *imageconverterv1.AppSpec) { s.PassthroughEnv = []string{"PATH"} }},
		{"certificate.domain", func(s *imageconverterv1.AppSpec) { s.Certificate.Domain = "10.0.0.1" }},
		{"certificate.domain", func(s *imageconverterv1.AppSpec) { s.Certificate.Domain = "192.168.1.20" }},
		{"certificate.domain", func(s *imageconverterv1.AppSpec) { s.Certificate.Domain = "*.cloister.test" }},
		{"certificate.domain", func(s *imageconverterv1.AppSpec) { s.Certificate.Domain = "localhost" }},
		{"certificate.key_type", func(s *imageconverterv1.AppSpec) { s.Certificate.KeyType = "rsa-1024" }},
		{"certificate.key_path", func(s *imageconverterv1.AppSpec) { s.Certificate.KeyPath = "key.pem" }},
		{"certificate.cert_path", func(s *imageconverterv1.AppSpec) { s.Certificate.CertPath = "/run/cloister/key.pem" }},
		{"certificate.issuer", func(s *imageconverterv1.AppSpec) { s.Certificate.Issuer = "letsencrypt" }},
		{"certificate.issuer", func(s *imageconverterv1.AppSpec) { s.Certificate.Issuer = "none" }},
		{"certificate.validity_days", func(s *imageconverterv1.AppSpec) { s.Certificate.ValidityDays = 400 }},
		{"secrets_dir", func(s *imageconverterv1.AppSpec) { s.SecretsDir = "secrets" }},
		{"secrets_dir", func(s *imageconverterv1.AppSpec) { s.SecretsDir = "/run/cloister" }},
		{"secrets_dir", func(s *imageconverterv1.AppSpec) { s.SecretsDir = "/tmp/secrets" }},
		{"secrets_dir", func(s *imageconverterv1.AppSpec) {
			s.SecretsDir, s.Certificate = "/run/secrets", &imageconverterv1.CertificateConfig{Issuer: "none"}
		}},
		{"secrets_dir", func(s *imageconverterv1.AppSpec) {
			s.SecretEnv = []*imageconverterv1.SecretEnv{{Name: "MODE", Secret: "mode"}}
		}},
		{"secrets_dir", func(s *imageconverterv1.AppSpec) {
			s.SecretEnv = []*imageconverterv1.SecretEnv{{Name: "DB", Secret: "../db"}}
		}},
		{"volumes", func(s *imageconverterv1.AppSpec) {
			s.Volumes = []*imageconverterv1.Volume{{Path: "/usr/data", KeyName: "data"}}
		}},
		{"volumes", func(s *imageconverterv1.AppSpec) {
			s.Volumes = []*imageconverterv1.Volume{{Path: "/data", KeyName: "_sgx_mrenclave"}}
		}},
		{"volumes", func(s *imageconverterv1.AppSpec) {
			s.Volumes = []*imageconverterv1.Volume{{Path: "/var/cache/hello/v", KeyName: "v"}}
		}},
		{"volumes[0].path", func(s *imageconverterv1.AppSpec) {
			s.Volumes = []*imageconverterv1.Volume{{Path: "/opt/cloister/v", KeyName: "v"}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			spec := helloSpec()
			tt.change(spec)
			_, err := s.c.CreateApp(ctx, &imageconverterv1.CreateAppRequest{AccountId: account, Spec: spec, Actor: actor})
			if errs.KindOf(err) != errs.Invalid || !strings.Contains(err.Error(), tt.field+": ") {
				t.Fatalf("CreateApp = %v, want an invalid %s", err, tt.field)
			}
		})
	}
	if list, _ := s.c.ListApps(ctx, &imageconverterv1.ListAppsRequest{AccountId: account}); len(list.GetApps()) != 0 {
		t.Fatalf("refused apps were stored: %v", list)
	}
}

func TestSigningKeyFollowsTheAccount(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	account := uuid.NewString()
	s.publish("account", account, &accountv1.AccountCreated{Account: &accountv1.Account{Id: account, Name: "a"}})
	var key *imageconverterv1.SigningKey
	testkit.Eventually(t, 60*time.Second, func() bool {
		r, err := s.c.GetSigningKey(ctx, &imageconverterv1.GetSigningKeyRequest{AccountId: account})
		key = r.GetKey()
		return err == nil
	}, "no signing key for the new account")
	block, _ := pem.Decode(key.GetPublicKeyPem())
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub := pub.(*rsa.PublicKey)
	if rsaPub.N.BitLen() != 3072 || rsaPub.E != 3 {
		t.Fatalf("signing key: %d bits, e = %d; want 3072 and 3", rsaPub.N.BitLen(), rsaPub.E)
	}
	if m := sgx.MRSIGNEROf(rsaPub); !bytes.Equal(m[:], key.GetMrsigner()) {
		t.Fatalf("MRSIGNER %x does not match the public key (%x)", key.GetMrsigner(), m)
	}
	// A redelivered AccountCreated keeps the key.
	s.publish("account", account, &accountv1.AccountCreated{Account: &accountv1.Account{Id: account, Name: "a"}})
	s.publish("account", account, &accountv1.AccountDeleted{AccountId: account})
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, err := s.c.GetSigningKey(ctx, &imageconverterv1.GetSigningKeyRequest{AccountId: account})
		return errs.KindOf(err) == errs.NotFound
	}, "the deleted account's signing key is still there")
	// The private key is sealed at rest: the bucket never holds it in clear.
	kv, err := s.js.KeyValue(ctx, "imageconverter_keys")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := testKey()
	der := x509.MarshalPKCS1PrivateKey(k)
	hist, _ := kv.History(ctx, account)
	if len(hist) == 0 {
		t.Fatal("no history of the signing key's record")
	}
	for _, e := range hist {
		// The record is JSON: bytes appear in base64, at one of three alignments.
		for i := range 3 {
			enc := base64.StdEncoding.EncodeToString(der[i : i+120])
			if bytes.Contains(e.Value(), der[:120]) || bytes.Contains(e.Value(), []byte(enc[4:len(enc)-4])) {
				t.Fatal("the signing key is stored in clear")
			}
		}
	}
}

// Requests converting the same tag at once convert it once; once that
// image is deleted, the tag converts again.
func TestConvertSameTagConcurrently(t *testing.T) {
	s := newConvertStack(t, false)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	ids, failures := make(chan string, n), make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := s.c.ConvertImage(ctx, &imageconverterv1.ConvertImageRequest{AccountId: s.account, App: "hello", Tag: "7", Actor: actor})
			if err != nil {
				failures <- err
				return
			}
			ids <- resp.GetImage().GetId()
		}()
	}
	wg.Wait()
	close(ids)
	close(failures)
	var won []string
	for id := range ids {
		won = append(won, id)
	}
	if len(won) != 1 {
		t.Fatalf("%d concurrent conversions of one tag made %d images, want 1", n, len(won))
	}
	for err := range failures {
		if errs.KindOf(err) != errs.Conflict || !strings.Contains(err.Error(), "tag 7") {
			t.Fatalf("a losing conversion = %v, want a conflict naming the tag", err)
		}
	}
	if _, err := s.c.DeleteImage(ctx, &imageconverterv1.DeleteImageRequest{AccountId: s.account, ImageId: won[0], Actor: actor}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.ConvertImage(ctx, &imageconverterv1.ConvertImageRequest{AccountId: s.account, App: "hello", Tag: "7", Actor: actor}); err != nil {
		t.Fatalf("converting the tag again after deleting its image = %v", err)
	}
}
