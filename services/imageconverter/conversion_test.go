package imageconverter_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/busauth"
	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/events"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/imagefs"
	"github.com/cloister-cc/cloister/libs/netguard"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/imageconverter"
)

// launcher stands in for the cloister-launcher binary: the converter
// measures it as opaque bytes, so any bytes make a valid conversion.
var launcher = []byte("#!/bin/sh\n# not the real launcher: the converter only measures these bytes\n")

var kek = func() *pki.KEK { k, _ := pki.NewKEK(bytes.Repeat([]byte{5}, pki.KEKSize)); return k }()

// newRegistry serves go-containerregistry's in-process registry and
// returns its host:port.
func newRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// pushRandom pushes a random image of layers layers to host/repo:tag.
func pushRandom(t *testing.T, ref string, layers int64) {
	t.Helper()
	img, err := random.Image(256<<10, layers)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// convertStack is the converter service (with or without its worker) and
// an account with an app whose input image is in an in-process registry.
type convertStack struct {
	*stack
	account, app, host string
}

// standInRuntime is Cloister's stand-in Gramine runtime.
func standInRuntime(t testing.TB) *enclave.Runtime {
	t.Helper()
	rt, err := enclave.StandInRuntime("registry.test/gramine-runtime-standin")
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func startConverter(t *testing.T, n *testkit.NATS, withWorker bool, opts ...remote.Option) {
	t.Helper()
	cfg := imageconverter.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("imageconverter")}, KEK: kek, GenerateKey: reuseKey, JobAckWait: 2 * time.Second, RegistryOptions: opts}
	if withWorker {
		cfg.Launcher, cfg.Runtime = launcher, standInRuntime(t)
	}
	svc, err := imageconverter.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
}

func newConvertStack(t *testing.T, withWorker bool) *convertStack {
	t.Helper()
	n := testkit.StartNATS(t)
	startConverter(t, n, withWorker)
	return newConvertStackOn(t, n)
}

// newConvertStackOn is newConvertStack with the converter already
// started on n.
func newConvertStackOn(t *testing.T, n *testkit.NATS) *convertStack {
	t.Helper()
	nc, js := n.JetStream(t)
	s := &convertStack{stack: &stack{t: t, n: n, js: js, c: imageconverterv1.NewImageConverterClient(nc, n.Vouching(t))}, account: uuid.NewString(), host: newRegistry(t)}
	s.publish("account", s.account, &accountv1.AccountCreated{Account: &accountv1.Account{Id: s.account, Name: "a"}})
	// An RSA-3072 key: under -race on a busy machine it may take a while.
	testkit.Eventually(t, 60*time.Second, func() bool {
		_, err := s.c.GetSigningKey(context.Background(), &imageconverterv1.GetSigningKeyRequest{AccountId: s.account})
		return err == nil
	}, "no signing key")
	pushRandom(t, s.host+"/in:1", 3)
	spec := helloSpec()
	spec.InputImage, spec.OutputImage, spec.Entrypoint = s.host+"/in:1", s.host+"/out", []string{"/bin/hello"}
	resp, err := s.c.CreateApp(context.Background(), &imageconverterv1.CreateAppRequest{AccountId: s.account, Spec: spec, Actor: actor})
	if err != nil {
		t.Fatal(err)
	}
	s.app = resp.GetApp().GetId()
	return s
}

func (s *convertStack) convert(tag string) *imageconverterv1.Image {
	s.t.Helper()
	resp, err := s.c.ConvertImage(context.Background(), &imageconverterv1.ConvertImageRequest{AccountId: s.account, App: "hello", Tag: tag, Actor: actor})
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.GetImage()
}

func (s *convertStack) waitFinal(id string, within time.Duration) *imageconverterv1.Image {
	s.t.Helper()
	var img *imageconverterv1.Image
	testkit.Eventually(s.t, within, func() bool {
		r, err := s.c.GetImage(context.Background(), &imageconverterv1.GetImageRequest{AccountId: s.account, ImageId: id})
		img = r.GetImage()
		return err == nil && (img.GetStatus() == "converted" || img.GetStatus() == "failed")
	}, "image %s never finished", id)
	return img
}

// published checks that the events on subject come to want: the image's
// record is written before its outbox is published, so they may still be
// on their way when the record shows the image finished.
func (s *convertStack) published(subject string, want int) {
	s.t.Helper()
	testkit.Eventually(s.t, 10*time.Second, func() bool { return s.count(subject) >= want }, "fewer than %d events on %s", want, subject)
	if n := s.count(subject); n != want {
		s.t.Fatalf("%d events on %s, want %d", n, subject, want)
	}
}

func (s *convertStack) count(subject string) int {
	s.t.Helper()
	st, err := s.js.Stream(context.Background(), events.StreamEvents)
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		s.t.Fatal(err)
	}
	return int(info.State.Subjects[subject])
}

func TestConversionJob(t *testing.T) {
	s := newConvertStack(t, true)
	img := s.convert("1")
	if img.GetStatus() != "pending" || img.GetOutput() != s.host+"/out:1" {
		t.Fatalf("ConvertImage = %v", img)
	}
	done := s.waitFinal(img.GetId(), 60*time.Second)
	if done.GetStatus() != "converted" || len(done.GetMrenclave()) != 32 || !strings.HasPrefix(done.GetRef(), s.host+"/out@sha256:") {
		t.Fatalf("converted image = %v", done)
	}
	// It keeps the last progress report, the push complete, not an early one.
	if p := done.GetProgress(); p.GetPhase() != "push" || p.GetLayers() == 0 || p.GetLayers() != p.GetTotalLayers() || p.GetBytes() != p.GetTotalBytes() {
		t.Fatalf("a converted image's progress = %v; want the complete push", p)
	}
	// The pushed image carries the measurement the service recorded.
	ref, _ := name.ParseReference(s.host + "/out:1")
	pushed, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := pushed.ConfigFile()
	if got := cfg.Config.Labels["cc.cloister.mrenclave"]; got != hex.EncodeToString(done.GetMrenclave()) {
		t.Fatalf("label mrenclave %s, recorded %x", got, done.GetMrenclave())
	}
	s.published("events.imageconverter.v1.ImageConverted", 1)
	// The manifest names the app, for the launcher's certificate request.
	mb, err := imagefs.ReadFile(context.Background(), pushed, enclave.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := enclave.ParseManifest(mb); err != nil || m.AppID != s.app {
		t.Fatalf("manifest = %+v, %v; want app %s", m, err, s.app)
	}
	// The same tag again is a conflict; a new tag of the same input gives
	// the same measurement.
	if _, err := s.c.ConvertImage(context.Background(), &imageconverterv1.ConvertImageRequest{AccountId: s.account, App: s.app, Tag: "1", Actor: actor}); err == nil {
		t.Fatal("converting tag 1 twice succeeded")
	}
	again := s.waitFinal(s.convert("2").GetId(), 60*time.Second)
	if !bytes.Equal(again.GetMrenclave(), done.GetMrenclave()) {
		t.Fatalf("two conversions of one input: MRENCLAVE %x and %x", done.GetMrenclave(), again.GetMrenclave())
	}
}

// A registry in a network the converter may not reach fails the image at
// once, saying why, without the retries a network error gets.
func TestConversionRegistryDenied(t *testing.T) {
	n := testkit.StartNATS(t)
	guard := netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	startConverter(t, n, true, remote.WithTransport(guard.Transport()))
	s := newConvertStackOn(t, n)
	img := s.waitFinal(s.convert("1").GetId(), 30*time.Second)
	if img.GetStatus() != "failed" || img.GetReason() != "registry_address_denied" ||
		!strings.Contains(img.GetError(), "127.0.0.1") || !strings.Contains(img.GetError(), "127.0.0.0/8") {
		t.Fatalf("converting from a denied registry = %s %s: %s", img.GetStatus(), img.GetReason(), img.GetError())
	}
}

// flakyTransport answers 503 to every request while down is set.
type flakyTransport struct{ down atomic.Bool }

func (f *flakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.down.Load() {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Body: io.NopCloser(strings.NewReader("")),
			Header: http.Header{}, Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestConversionRetriesSayWhy: an attempt that fails for a reason that
// may pass leaves the image pending with that reason, to be tried again;
// the next attempt, the registry back, converts it and the reason goes.
func TestConversionRetriesSayWhy(t *testing.T) {
	n := testkit.StartNATS(t)
	flaky := &flakyTransport{}
	startConverter(t, n, true, remote.WithTransport(flaky), remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	s := newConvertStackOn(t, n)
	flaky.down.Store(true)
	id := s.convert("1").GetId()
	var img *imageconverterv1.Image
	testkit.Eventually(t, 30*time.Second, func() bool {
		r, err := s.c.GetImage(context.Background(), &imageconverterv1.GetImageRequest{AccountId: s.account, ImageId: id})
		img = r.GetImage()
		return err == nil && img.GetReason() != ""
	}, "the failed attempt left no reason on the image")
	if img.GetStatus() != "pending" || img.GetReason() != "registry_timeout" || !strings.Contains(img.GetError(), "503") {
		t.Fatalf("after a failed attempt the image is %s %s: %s; want pending, registry_timeout, the 503", img.GetStatus(), img.GetReason(), img.GetError())
	}
	flaky.down.Store(false)
	done := s.waitFinal(id, 60*time.Second)
	if done.GetStatus() != "converted" || done.GetReason() != "" || done.GetError() != "" {
		t.Fatalf("after the registry came back the image is %s %s: %s; want converted, no reason", done.GetStatus(), done.GetReason(), done.GetError())
	}
}

func TestConversionFailures(t *testing.T) {
	s := newConvertStack(t, true)
	ctx := context.Background()
	spec := helloSpec()
	spec.Name, spec.InputImage, spec.OutputImage = "missing", s.host+"/nothing:here", s.host+"/out2"
	if _, err := s.c.CreateApp(ctx, &imageconverterv1.CreateAppRequest{AccountId: s.account, Spec: spec, Actor: actor}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.c.ConvertImage(ctx, &imageconverterv1.ConvertImageRequest{AccountId: s.account, App: "missing", Tag: "1", Actor: actor})
	if err != nil {
		t.Fatal(err)
	}
	img := s.waitFinal(resp.GetImage().GetId(), 60*time.Second)
	if img.GetStatus() != "failed" || img.GetReason() != "image_not_found" {
		t.Fatalf("converting a missing image = %v, want failed with image_not_found", img)
	}
	s.published("events.imageconverter.v1.ConversionFailed", 1)
	// A failed tag may be converted again.
	if _, err := s.c.ConvertImage(ctx, &imageconverterv1.ConvertImageRequest{AccountId: s.account, App: "missing", Tag: "1", Actor: actor}); err != nil {
		t.Fatalf("converting a failed tag again: %v", err)
	}
}

// TestWorkerKilledMidJob kills a worker process while it converts; the
// job is redelivered to another worker and completes once, with one
// image record and one ImageConverted event.
func TestWorkerKilledMidJob(t *testing.T) {
	if os.Getenv("IC_WORKER_NATS") != "" {
		workerChild()
		return
	}
	s := newConvertStack(t, false) // this process serves the API only
	img := s.convert("1")

	cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerKilledMidJob$")
	cmd.Env = append(os.Environ(), "IC_WORKER_NATS="+s.n.URL, "IC_WORKER_SEED="+string(s.n.Bus["imageconverter"].Seed()), "IC_WORKER_SLOW=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	testkit.Eventually(t, 60*time.Second, func() bool {
		r, err := s.c.GetImage(context.Background(), &imageconverterv1.GetImageRequest{AccountId: s.account, ImageId: img.GetId()})
		return err == nil && r.GetImage().GetStatus() == "converting"
	}, "the child worker never started converting")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatal("the child worker exited cleanly; it was meant to be killed")
	}
	// A request the dead worker's subscription took before NATS saw it go
	// goes unanswered: ask until one is answered.
	var after *imageconverterv1.GetImageResponse
	testkit.Eventually(t, 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := s.c.GetImage(ctx, &imageconverterv1.GetImageRequest{AccountId: s.account, ImageId: img.GetId()})
		after = r
		return err == nil
	}, "the image service does not answer after the worker was killed")
	if after.GetImage().GetStatus() != "converting" {
		t.Fatalf("after the kill the image is %s, want still converting", after.GetImage().GetStatus())
	}

	startConverter(t, s.n, true) // another worker takes the job over
	done := s.waitFinal(img.GetId(), 90*time.Second)
	if done.GetStatus() != "converted" {
		t.Fatalf("after redelivery the image is %v", done)
	}
	list, err := s.c.ListImages(context.Background(), &imageconverterv1.ListImagesRequest{AccountId: s.account})
	if err != nil || len(list.GetImages()) != 1 {
		t.Fatalf("ListImages = %d images, %v; want 1", len(list.GetImages()), err)
	}
	s.published("events.imageconverter.v1.ImageConverted", 1)
}

// TestTwoWorkersOneJob: the same job delivered to two live workers at
// once (a duplicate job here; a redelivery after a partition in life)
// converts the image once: one ImageConverted, and the image stays
// converted whichever worker ends last.
func TestTwoWorkersOneJob(t *testing.T) {
	s := newConvertStack(t, false)
	slow := remote.WithTransport(&slowTransport{next: http.DefaultTransport, delay: 50 * time.Millisecond})
	startConverter(t, s.n, true, slow)
	startConverter(t, s.n, true, slow)
	img := s.convert("1")
	// The same job once more, as a second message.
	job := &imageconverterv1.ConvertJob{AccountId: s.account, ImageId: img.GetId()}
	msg, _, err := events.NewMessage(context.Background(), events.JobSubject("imageconverter", "convert"), "imageconverter", s.account, job)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Publish(context.Background(), s.js, msg); err != nil {
		t.Fatal(err)
	}
	done := s.waitFinal(img.GetId(), 60*time.Second)
	// Both jobs are acked once the work queue is empty.
	testkit.Eventually(t, 60*time.Second, func() bool {
		st, err := s.js.Stream(context.Background(), events.StreamJobs)
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	}, "the jobs were never both done")
	r, err := s.c.GetImage(context.Background(), &imageconverterv1.GetImageRequest{AccountId: s.account, ImageId: img.GetId()})
	if err != nil || r.GetImage().GetStatus() != "converted" || !bytes.Equal(r.GetImage().GetMrenclave(), done.GetMrenclave()) {
		t.Fatalf("after both jobs the image is %v, %v; want it still converted as %v", r.GetImage(), err, done)
	}
	s.published("events.imageconverter.v1.ImageConverted", 1)
}

// workerChild is the worker process of TestWorkerKilledMidJob: a converter
// whose registry answers slowly, so the parent can kill it mid-job.
func workerChild() {
	id, err := busauth.ParseIdentity("imageconverter", []byte(os.Getenv("IC_WORKER_SEED")))
	if err != nil {
		os.Exit(1)
	}
	nc, err := nats.Connect(os.Getenv("IC_WORKER_NATS"), id.Options()...)
	if err != nil {
		os.Exit(1)
	}
	slow := &slowTransport{next: http.DefaultTransport, delay: 300 * time.Millisecond}
	rt, err := enclave.StandInRuntime("registry.test/gramine-runtime-standin")
	if err != nil {
		os.Exit(1)
	}
	_, err = imageconverter.Start(context.Background(), imageconverter.Config{Options: service.Options{NATS: nc}, KEK: kek, GenerateKey: reuseKey, Launcher: launcher, Runtime: rt, JobAckWait: 2 * time.Second, RegistryOptions: []remote.Option{remote.WithTransport(slow)}})
	if err != nil {
		os.Exit(1)
	}
	time.Sleep(5 * time.Minute) // until killed
	os.Exit(2)
}

type slowTransport struct {
	next  http.RoundTripper
	delay time.Duration
}

func (s *slowTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	select {
	case <-time.After(s.delay):
	case <-r.Context().Done():
		return nil, errors.New("cancelled")
	}
	return s.next.RoundTrip(r)
}

// TestReferenceStatus: reading a converted image asks its registry whether
// it still has it: present after the push, missing once the registry has
// lost the manifest.
func TestReferenceStatus(t *testing.T) {
	s := newConvertStack(t, true)
	done := s.waitFinal(s.convert("1").GetId(), 60*time.Second)
	if done.GetStatus() != "converted" {
		t.Fatalf("converted image = %v", done)
	}
	status := func() string {
		t.Helper()
		r, err := s.c.GetImage(context.Background(), &imageconverterv1.GetImageRequest{AccountId: s.account, ImageId: done.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetReferenceStatus()
	}
	if got := status(); got != "present" {
		t.Fatalf("reference status after the push = %q, want present", got)
	}
	ref, err := name.ParseReference(done.GetRef())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(ref); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != "missing" {
		t.Fatalf("reference status after the registry lost it = %q, want missing", got)
	}
}
