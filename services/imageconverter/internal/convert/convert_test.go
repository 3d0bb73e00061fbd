package convert

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/gramine"
	"github.com/cloister-cc/cloister/libs/imagefs"
	"github.com/cloister-cc/cloister/libs/sgx"
)

// signingKey is generated once per test binary: an RSA-3072 key with
// e = 3 takes about a second.
var signingKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return sgx.GenerateSigningKey(nil) })

func testKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := signingKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testLauncher is arbitrary bytes, not a program: the converter only
// hashes the launcher as one of the image's trusted files, so the tests
// need no real binary.
var testLauncher = bytes.Repeat([]byte("cloister launcher stand-in, measured as opaque bytes\n"), 100)

// testRegistry is go-containerregistry's in-process registry behind a
// handler that counts requests and, like distribution, keeps blobs per
// repository: a blob pushed to one repository is unknown in another until
// it is uploaded there or mounted (POST ?mount=&from=), which the inner
// registry does not implement on its own.
type testRegistry struct {
	srv   *httptest.Server
	host  string
	inner http.Handler

	mu      sync.Mutex
	counts  map[string]int             // "GET blob", "POST mount", "mounted", "PATCH upload"...
	gets    map[string]int             // blob digest → GETs
	served  int64                      // blob bytes served by GET
	patched int64                      // bytes received by PATCH
	repos   map[string]map[string]bool // repository → digests it holds
	auth    string                     // "user:password" the registry requires, if set
	fail    func(*http.Request) int    // a status to answer instead, if not 0
}

func newRegistry(t testing.TB) *testRegistry {
	r := &testRegistry{inner: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	r.reset()
	r.repos = map[string]map[string]bool{}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func (g *testRegistry) ref(repoTag string) string { return g.host + "/" + repoTag }

func (g *testRegistry) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.counts, g.gets, g.served, g.patched = map[string]int{}, map[string]int{}, 0, 0
}

func (g *testRegistry) count(k string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.counts[k]
}

func (g *testRegistry) blobGets(d v1.Hash) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gets[d.String()]
}

func (g *testRegistry) has(repo, digest string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.repos[repo][digest]
}

func (g *testRegistry) add(repo, digest string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.repos[repo] == nil {
		g.repos[repo] = map[string]bool{}
	}
	g.repos[repo][digest] = true
}

func (g *testRegistry) bump(k string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.counts[k]++
}

func regError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, code, msg)
}

func (g *testRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if g.auth != "" {
		u, p, ok := req.BasicAuth()
		if !ok || u+":"+p != g.auth {
			w.Header().Set("WWW-Authenticate", `Basic realm="cloister-test"`)
			regError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
	}
	if g.fail != nil {
		if code := g.fail(req); code != 0 {
			regError(w, code, "UNAVAILABLE", "try later")
			return
		}
	}
	repo, kind, rest := splitPath(req.URL.Path)
	rec := &recorder{ResponseWriter: w}
	switch {
	case kind == "blobs" && strings.HasPrefix(rest, "uploads/"):
		switch req.Method {
		case http.MethodPost:
			if d := req.URL.Query().Get("mount"); d != "" {
				g.bump("POST mount")
				if from := req.URL.Query().Get("from"); g.has(from, d) {
					g.bump("mounted")
					g.add(repo, d)
					w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d)
					w.Header().Set("Docker-Content-Digest", d)
					w.WriteHeader(http.StatusCreated)
					return
				}
				// Not mountable: an upload starts, as in distribution.
			} else {
				g.bump("POST upload")
			}
		case http.MethodPatch:
			g.bump("PATCH upload")
			req.Body = &countingBody{ReadCloser: req.Body, g: g}
		case http.MethodPut:
			g.bump("PUT upload")
			g.inner.ServeHTTP(rec, req)
			if rec.status == http.StatusCreated {
				g.add(repo, req.URL.Query().Get("digest"))
			}
			return
		}
	case kind == "blobs":
		if !g.has(repo, rest) {
			regError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to this repository")
			return
		}
		g.bump(req.Method + " blob")
		if req.Method == http.MethodGet {
			g.mu.Lock()
			g.gets[rest]++
			g.mu.Unlock()
			g.inner.ServeHTTP(rec, req)
			g.mu.Lock()
			g.served += rec.n
			g.mu.Unlock()
			return
		}
	case kind == "manifests":
		g.bump(req.Method + " manifest")
	}
	g.inner.ServeHTTP(w, req)
}

// splitPath splits /v2/<repo>/blobs/<rest> and /v2/<repo>/manifests/<rest>.
func splitPath(p string) (repo, kind, rest string) {
	p = strings.TrimPrefix(p, "/v2/")
	for _, k := range []string{"/blobs/", "/manifests/"} {
		if i := strings.LastIndex(p, k); i >= 0 {
			return p[:i], k[1 : len(k)-1], p[i+len(k):]
		}
	}
	return "", "", p
}

type recorder struct {
	http.ResponseWriter
	status int
	n      int64
}

func (r *recorder) WriteHeader(c int) {
	r.status = c
	r.ResponseWriter.WriteHeader(c)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.n += int64(n)
	return n, err
}

type countingBody struct {
	io.ReadCloser
	g *testRegistry
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.g.mu.Lock()
	b.g.patched += int64(n)
	b.g.mu.Unlock()
	return n, err
}

func (g *testRegistry) put(t testing.TB, repoTag string, img v1.Image, opts ...remote.Option) {
	t.Helper()
	ref, err := name.ParseReference(g.ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

func (g *testRegistry) putIndex(t testing.TB, repoTag string, idx v1.ImageIndex) {
	t.Helper()
	ref, err := name.ParseReference(g.ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

// putRaw stores a manifest with any content type, as an old or odd
// registry would serve it.
func (g *testRegistry) putRaw(t testing.TB, repoTag, contentType, body string) {
	t.Helper()
	repo, tag, _ := strings.Cut(repoTag, ":")
	req, err := http.NewRequest(http.MethodPut, g.srv.URL+"/v2/"+repo+"/manifests/"+tag, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT manifest: %s", resp.Status)
	}
}

func (g *testRegistry) pull(t testing.TB, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	return img
}

// ---- images ----

type ent struct {
	name string
	typ  byte
	mode int64
	body string
	link string
}

func reg(name string, mode int64, body string) ent {
	return ent{name: name, typ: tar.TypeReg, mode: mode, body: body}
}
func dir(name string, mode int64) ent { return ent{name: name, typ: tar.TypeDir, mode: mode} }

func tarOf(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func layerOf(t testing.TB, raw []byte, opts ...tarball.LayerOption) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf is a linux/amd64 image of layers with config c.
func imageOf(t testing.TB, c v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", "amd64", c
	cf.Created = v1.Time{Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

var appConfig = v1.Config{
	Entrypoint: []string{"/usr/bin/hello"}, Cmd: []string{"--default"},
	Env: []string{"PATH=/usr/bin:/bin", "MODE=image"}, WorkingDir: "/srv", User: "65532",
	Labels: map[string]string{"org.opencontainers.image.title": "hello"},
}

// handMadeLayers are three layers with a whiteout, an opaque directory,
// symlinks and hard links; tool is the contents of usr/bin/tool in the
// second layer.
func handMadeLayers(t testing.TB, tool string) []v1.Layer {
	return []v1.Layer{
		layerOf(t, tarOf(t,
			dir("etc/", 0o755), reg("etc/hosts", 0o644, "127.0.0.1 localhost\n"), reg("etc/old", 0o644, "old"),
			dir("usr/bin/", 0o755), reg("usr/bin/hello", 0o755, "hello v1"), reg("usr/bin/tool", 0o755, "tool v1"),
			ent{name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
			dir("var/cache/", 0o755), reg("var/cache/a", 0o644, "a"),
			dir("opt/", 0o750), dir("srv/", 0o755))),
		layerOf(t, tarOf(t,
			reg("etc/.wh.old", 0o644, ""),
			reg("var/cache/.wh..wh..opq", 0o644, ""), reg("var/cache/b", 0o644, "b"),
			reg("usr/bin/tool", 0o755, tool),
			ent{name: "usr/bin/tool-link", typ: tar.TypeLink, link: "usr/bin/tool"},
			reg("bin/late", 0o755, "late"))),
		layerOf(t, tarOf(t, reg("srv/index.html", 0o644, "<h1>hi</h1>\n"))),
	}
}

func handMade(t testing.TB) v1.Image { return imageOf(t, appConfig, handMadeLayers(t, "tool v2")...) }

func testApp() App {
	return App{
		AppID: "app_hello",
		Env:   []enclave.EnvVar{{Name: "MODE", Value: "prod"}}, PassthroughEnv: []string{"TZ"}, RWDirs: []string{"/tmp"},
		MemorySize: 64 << 20, Threads: 2, ISVProdID: 7, ISVSVN: 3,
		Certificate: &enclave.Certificate{Domain: "hello.cloister.test", KeyType: "ec-p256", KeyPath: "/run/key.pem", CertPath: "/run/cert.pem"},
	}
}

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func request(t testing.TB, in, out string) Request {
	return Request{Input: in, Output: out, App: testApp(), Launcher: testLauncher, Runtime: testRuntime(t), Signer: testKey(t), Now: testNow}
}

// standInRuntime is Cloister's stand-in Gramine runtime, loaded once.
var standInRuntime = sync.OnceValues(func() (*enclave.Runtime, error) {
	return enclave.StandInRuntime("registry.test/gramine-runtime-standin")
})

func testRuntime(t testing.TB) *enclave.Runtime {
	t.Helper()
	rt, err := standInRuntime()
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func mustConvert(t testing.TB, r Request) *Result {
	t.Helper()
	res, err := Convert(context.Background(), r)
	if err != nil {
		t.Fatalf("Convert(%s → %s) = %v", r.Input, r.Output, err)
	}
	return res
}

func digests(t testing.TB, img v1.Image) []v1.Hash {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var ds []v1.Hash
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	return ds
}

func readFile(t testing.TB, img v1.Image, p string) []byte {
	t.Helper()
	b, err := imagefs.ReadFile(context.Background(), img, p, imagefs.WithMaxSize(64<<20))
	if err != nil {
		t.Fatalf("ReadFile(%s) = %v", p, err)
	}
	return b
}

// withRuntime is img with the runtime layer of the stand-in runtime and
// testLauncher on top: what the converted image's trusted-file list
// covers.
func withRuntime(t testing.TB, img v1.Image) v1.Image {
	t.Helper()
	raw, err := enclave.RuntimeLayer(testRuntime(t), testLauncher)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	out, err := mutate.AppendLayers(img, l)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func trustedFiles(t testing.TB, img v1.Image) *imagefs.List {
	t.Helper()
	l, err := imagefs.TrustedFiles(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ---- tests ----

func TestConvert(t *testing.T) {
	ctx := context.Background()
	g := newRegistry(t)
	in := handMade(t)
	g.put(t, "team/app:1", in)
	inDigests := digests(t, in)
	n := len(inDigests)
	g.reset()

	res := mustConvert(t, request(t, g.ref("team/app:1"), g.ref("team/app-sgx:1")))

	// Within one registry the input layers are mounted, never uploaded:
	// only the two new layers and the config are.
	for k, want := range map[string]int{
		"POST mount": n, "mounted": n, "POST upload": 3, "PATCH upload": 3, "PUT upload": 3, "PUT manifest": 1,
	} {
		if got := g.count(k); got != want {
			t.Errorf("%s requests = %d, want %d", k, got, want)
		}
	}
	for i, d := range inDigests {
		if got := g.blobGets(d); got != 1 {
			t.Errorf("layer %d was fetched %d times, want once", i, got)
		}
	}

	out := g.pull(t, res.Ref)
	if err := validate.Image(out); err != nil {
		t.Fatalf("validate.Image(output) = %v", err)
	}
	if d, _ := out.Digest(); d.String() != res.Digest || res.Ref != g.ref("team/app-sgx@"+res.Digest) {
		t.Fatalf("Result = %s %s, pulled %s", res.Ref, res.Digest, d)
	}
	if tagged, _ := g.pull(t, g.ref("team/app-sgx:1")).Digest(); tagged.String() != res.Digest {
		t.Fatalf("the tag points at %s, want %s", tagged, res.Digest)
	}
	outDigests := digests(t, out)
	if res.Layers != n+2 || len(outDigests) != n+2 || !slices.Equal(outDigests[:n], inDigests) {
		t.Fatalf("output layers %v (Result.Layers %d), want the input's %v and two more", outDigests, res.Layers, inDigests)
	}

	cf, err := out.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, enclave.Entrypoint) || c.Cmd != nil || !slices.Equal(c.Env, appConfig.Env) ||
		c.WorkingDir != "/srv" || c.User != "65532" || c.Labels["org.opencontainers.image.title"] != "hello" {
		t.Fatalf("output config = %+v", c)
	}
	key := testKey(t)
	for k, want := range map[string]string{
		enclave.LabelMRENCLAVE: fmt.Sprintf("%x", res.MRENCLAVE), enclave.LabelMRSIGNER: fmt.Sprintf("%x", sgx.MRSIGNEROf(&key.PublicKey)),
		enclave.LabelISVProdID: "7", enclave.LabelISVSVN: "3", enclave.LabelEnclave: "gramine-sgx",
		enclave.LabelRuntime: testRuntime(t).Ref, enclave.LabelStandInRuntime: "true",
	} {
		if got := c.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if res.MRSIGNER != sgx.MRSIGNEROf(&key.PublicKey) || res.ISVProdID != 7 || res.ISVSVN != 3 {
		t.Fatalf("Result = %+v", res)
	}
	if h := cf.History[len(cf.History)-1]; !h.Created.Equal(time.Unix(0, 0)) || len(cf.History) != n+2 || !cf.Created.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("history %+v, created %v: want one more entry at the epoch and the input's created time", cf.History, cf.Created)
	}

	// The enclave's files: all of the input's and the runtime layer's but
	// those the container runtime provides (etc/hosts here).
	ols, err := out.Layers()
	if err != nil {
		t.Fatal(err)
	}
	below, err := mutate.AppendLayers(empty.Image, ols[:len(ols)-1]...)
	if err != nil {
		t.Fatal(err)
	}
	list, err := enclave.Trusted(trustedFiles(t, below), []string{"/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := list.Lookup("etc/hosts"); ok {
		t.Fatal("etc/hosts, which the runtime replaces, is in the trusted-file list")
	}
	if got := readFile(t, out, enclave.TrustedFilesPath); !bytes.Equal(got, list.Encode()) {
		t.Fatalf("trusted-files =\n%s\nwant\n%s", got, list.Encode())
	}
	for p, want := range map[string]imagefs.Type{"usr/bin/tool-link": imagefs.TypeRegular, "bin": imagefs.TypeSymlink, "var/cache/b": imagefs.TypeRegular} {
		if e, ok := list.Lookup(p); !ok || e.Type != want {
			t.Errorf("list: %s = %+v, want a %v", p, e, want)
		}
	}
	for _, p := range []string{"etc/old", "var/cache/a"} {
		if _, ok := list.Lookup(p); ok {
			t.Errorf("list has %s, which a whiteout removed", p)
		}
	}
	if got := readFile(t, out, enclave.LauncherPath); !bytes.Equal(got, testLauncher) {
		t.Fatal("the launcher in the image is not the launcher given")
	}
	if got := readFile(t, out, enclave.LibPALPath); !bytes.Equal(got, gramine.StandInELF("libpal.so")) {
		t.Fatal("the runtime's libpal.so is not in the image")
	}
	gm := readFile(t, out, enclave.GramineManifestPath)
	if !bytes.Equal(gm, res.GramineManifest) {
		t.Fatal("Result.GramineManifest is not the image's")
	}
	if gmr, err := gramine.Measure(gm, gramine.StandInELF("libpal.so")); err != nil || gmr.MRENCLAVE != res.MRENCLAVE {
		t.Fatalf("MRENCLAVE of the image's Gramine manifest = %v, %v; want %x", gmr, err, res.MRENCLAVE)
	}
	mb := readFile(t, out, enclave.ManifestPath)
	if !bytes.Equal(mb, res.Manifest) {
		t.Fatal("Result.Manifest is not the image's manifest")
	}
	m, err := enclave.ParseManifest(mb)
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := []enclave.EnvVar{{Name: "MODE", Value: "prod"}, {Name: "PATH", Value: "/usr/bin:/bin"}}
	if !slices.Equal(m.Entrypoint, []string{"/usr/bin/hello"}) || !slices.Equal(m.Args, []string{"--default"}) || !slices.Equal(m.Env, wantEnv) ||
		m.WorkingDir != "/srv" || m.User != "65532" || m.TrustedFiles != enclave.Digest(list.Encode()) || m.Launcher != enclave.Digest(testLauncher) ||
		m.MemorySize != 64<<20 || m.Threads != 2 || *m.Certificate != *testApp().Certificate || m.AppID != "app_hello" {
		t.Fatalf("manifest = %s", mb)
	}
	sig, err := sgx.ParseSigStruct(readFile(t, out, enclave.SigStructPath))
	if err != nil {
		t.Fatal(err)
	}
	if err := sig.Verify(); err != nil || sig.EnclaveHash != res.MRENCLAVE || sig.DateString() != "2026-05-01" || sig.MRSIGNER() != res.MRSIGNER {
		t.Fatalf("SIGSTRUCT: %v, hash %x, date %s", err, sig.EnclaveHash, sig.DateString())
	}

	// Recomputed without trusting the converter.
	meas, err := enclave.MeasureImage(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if !meas.Match || meas.MRENCLAVE != res.MRENCLAVE || meas.MRSIGNER != res.MRSIGNER || meas.ISVProdID != 7 || meas.ISVSVN != 3 {
		t.Fatalf("MeasureImage = %+v, want a match with %x", meas, res.MRENCLAVE)
	}

	// Altering one file of one input layer, keeping the labels and the
	// cloister layer, is caught.
	ls, err := out.Layers()
	if err != nil {
		t.Fatal(err)
	}
	altered := handMadeLayers(t, "tool v3")[1]
	ls[1] = altered
	cf2 := cf.DeepCopy()
	cf2.RootFS.DiffIDs[1], err = altered.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	bad, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		t.Fatal(err)
	}
	if bad, err = mutate.ConfigFile(bad, cf2); err != nil {
		t.Fatal(err)
	}
	g.put(t, "team/app-sgx:altered", bad)
	meas, err = enclave.MeasureImage(ctx, g.pull(t, g.ref("team/app-sgx:altered")))
	if err != nil {
		t.Fatal(err)
	}
	if meas.Match || len(meas.Problems) == 0 || !strings.Contains(meas.Problems[0], "trusted-file list") || !strings.Contains(meas.Problems[0], "usr/bin/tool") ||
		!slices.ContainsFunc(meas.Problems, func(p string) bool { return strings.HasPrefix(p, "file /") && strings.Contains(p, "bin/tool:") }) {
		t.Fatalf("MeasureImage(altered) = Match %v, problems %q; want them to name usr/bin/tool in the trusted-file list and the Gramine manifest", meas.Match, meas.Problems)
	}
}

func TestConvertAcrossRegistries(t *testing.T) {
	src, dst := newRegistry(t), newRegistry(t)
	rnd, err := random.Image(256<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	rnd, err = mutate.Config(rnd, v1.Config{Cmd: []string{"/random_file"}})
	if err != nil {
		t.Fatal(err)
	}
	src.put(t, "team/app:1", rnd)
	in := src.pull(t, src.ref("team/app:1"))
	inDigests := digests(t, in)
	n := len(inDigests)
	src.reset()

	res := mustConvert(t, request(t, src.ref("team/app:1"), dst.ref("other/app-sgx:1")))
	out := dst.pull(t, res.Ref)
	if err := validate.Image(out); err != nil {
		t.Fatalf("validate.Image(output) = %v", err)
	}
	outDigests := digests(t, out)
	if !slices.Equal(outDigests[:n], inDigests) {
		t.Fatalf("output layers %v, want the input's %v first", outDigests, inDigests)
	}

	// Each input blob is read twice from the source, once to list its
	// files and once to copy it; the destination receives every blob once,
	// the input's exactly as they were compressed.
	var want int64
	for i, d := range inDigests {
		if got := src.blobGets(d); got != 2 {
			t.Errorf("source: layer %d fetched %d times, want 2", i, got)
		}
		ref, _ := name.NewDigest(dst.ref("other/app-sgx@" + d.String()))
		l, err := remote.Layer(ref)
		if err != nil {
			t.Fatal(err)
		}
		copied := compressedBytes(t, l)
		inLayer, err := in.LayerByDigest(d)
		if err != nil {
			t.Fatal(err)
		}
		if orig := compressedBytes(t, inLayer); !bytes.Equal(copied, orig) {
			t.Errorf("layer %d: the destination's blob (%d bytes) is not the source's (%d bytes)", i, len(copied), len(orig))
		}
		want += int64(len(copied))
	}
	for _, d := range outDigests[n:] {
		l, _ := out.LayerByDigest(d)
		size, _ := l.Size()
		want += size
	}
	m, _ := out.Manifest()
	want += m.Config.Size
	dst.mu.Lock()
	got := dst.patched
	dst.mu.Unlock()
	if got != want {
		t.Errorf("destination received %d bytes, want %d (input layers, runtime and top layers, config)", got, want)
	}
	if got := dst.count("PATCH upload"); got != n+3 {
		t.Errorf("destination PATCHes = %d, want %d", got, n+3)
	}
	if got := dst.count("mounted"); got != 0 {
		t.Errorf("destination mounted %d blobs from another registry", got)
	}
}

func compressedBytes(t testing.TB, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConvertWithCredentials(t *testing.T) {
	g := newRegistry(t)
	creds := &authn.Basic{Username: "robot", Password: "s3cret"}
	g.auth = "robot:s3cret"
	g.put(t, "team/app:1", handMade(t), remote.WithAuth(creds))
	r := request(t, g.ref("team/app:1"), g.ref("team/app-sgx:1"))
	r.InputAuth, r.OutputAuth = creds, creds
	res := mustConvert(t, r)
	if res.Layers != 5 {
		t.Fatalf("Result.Layers = %d, want 5", res.Layers)
	}
}

func TestConvertDeterministic(t *testing.T) {
	g := newRegistry(t)
	g.put(t, "team/app:1", handMade(t))
	r := request(t, g.ref("team/app:1"), g.ref("team/app-sgx:a"))
	a := mustConvert(t, r)
	r.Output = g.ref("team/app-sgx:b")
	b := mustConvert(t, r)
	if a.Digest != b.Digest || a.MRENCLAVE != b.MRENCLAVE || !bytes.Equal(a.Manifest, b.Manifest) {
		t.Fatalf("two conversions of the same input: %s %x and %s %x", a.Digest, a.MRENCLAVE, b.Digest, b.MRENCLAVE)
	}
	r.Output, r.Now = g.ref("team/app-sgx:c"), testNow.AddDate(0, 1, 3)
	c := mustConvert(t, r)
	if c.MRENCLAVE != a.MRENCLAVE {
		t.Fatalf("MRENCLAVE changed with the date: %x, %x", a.MRENCLAVE, c.MRENCLAVE)
	}
	if c.Digest == a.Digest {
		t.Fatal("the image digest did not change with the SIGSTRUCT's date")
	}
	sig, err := sgx.ParseSigStruct(readFile(t, g.pull(t, c.Ref), enclave.SigStructPath))
	if err != nil || sig.DateString() != "2026-06-04" {
		t.Fatalf("SIGSTRUCT date = %q, %v; want 2026-06-04", sig.DateString(), err)
	}
}

// The runtime layer waits in an unlinked temporary file, or in memory
// where no temporary file can be made: the image is the same either way,
// and the layer's file leaves no name behind.
func TestRuntimeLayerWithoutATempDir(t *testing.T) {
	g := newRegistry(t)
	g.put(t, "team/app:1", handMade(t))
	r := request(t, g.ref("team/app:1"), g.ref("team/app-sgx:file"))
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	runtimeLayers.Clear()
	t.Cleanup(func() { runtimeLayers.Clear() })
	onDisk := mustConvert(t, r)
	if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
		t.Fatalf("the temporary directory holds %v (%v), want nothing", left, err)
	}

	t.Setenv("TMPDIR", filepath.Join(tmp, "missing"))
	runtimeLayers.Clear()
	r.Output = g.ref("team/app-sgx:memory")
	inMemory := mustConvert(t, r)
	if inMemory.Digest != onDisk.Digest {
		t.Fatalf("without a temporary directory the image is %s, with one %s", inMemory.Digest, onDisk.Digest)
	}
	img := g.pull(t, inMemory.Ref)
	if got := readFile(t, img, enclave.LauncherPath); !bytes.Equal(got, testLauncher) {
		t.Fatal("the launcher in the image converted without a temporary directory is not the launcher")
	}
}

func TestConvertMeasurementChanges(t *testing.T) {
	g := newRegistry(t)
	other := slices.Clone(testLauncher)
	other[len(other)/2] ^= 1
	cases := []struct {
		name     string
		img      v1.Image
		app      func(*App)
		launcher []byte
	}{
		{name: "base"},
		{name: "one byte of one file", img: imageOf(t, appConfig, handMadeLayers(t, "tool v3")...)},
		{name: "an image env value", img: imageOf(t, func() v1.Config {
			c := appConfig
			c.Env = []string{"PATH=/usr/bin", "MODE=image"}
			return c
		}(), handMadeLayers(t, "tool v2")...)},
		{name: "an app env value", app: func(a *App) { a.Env = []enclave.EnvVar{{Name: "MODE", Value: "staging"}} }},
		{name: "memory size", app: func(a *App) { a.MemorySize = 128 << 20 }},
		{name: "thread count", app: func(a *App) { a.Threads = 3 }},
		{name: "arguments", app: func(a *App) { a.Args = []string{"--port", "8443"} }},
		{name: "launcher", launcher: other},
	}
	seen := map[[32]byte]string{}
	for i, tc := range cases {
		img := tc.img
		if img == nil {
			img = handMade(t)
		}
		repo := fmt.Sprintf("team/v%d", i)
		g.put(t, repo+":1", img)
		r := request(t, g.ref(repo+":1"), g.ref(repo+"-sgx:1"))
		if tc.app != nil {
			tc.app(&r.App)
		}
		if tc.launcher != nil {
			r.Launcher = tc.launcher
		}
		res := mustConvert(t, r)
		if prev, ok := seen[res.MRENCLAVE]; ok {
			t.Errorf("%s: same MRENCLAVE as %s", tc.name, prev)
		}
		seen[res.MRENCLAVE] = tc.name
	}
}

func TestConvertIndex(t *testing.T) {
	g := newRegistry(t)
	archImage := func(arch string) v1.Image {
		return imageOf(t, appConfig, layerOf(t, tarOf(t, dir("usr/bin/", 0o755), reg("usr/bin/hello", 0o755, "hello for "+arch))))
	}
	platform := func(os, arch, variant string) v1.Descriptor {
		return v1.Descriptor{Platform: &v1.Platform{OS: os, Architecture: arch, Variant: variant}}
	}
	amd := archImage("amd64")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: archImage("arm64"), Descriptor: platform("linux", "arm64", "v8")},
		mutate.IndexAddendum{Add: amd, Descriptor: platform("linux", "amd64", "")},
		mutate.IndexAddendum{Add: archImage("attestation"), Descriptor: platform("unknown", "unknown", "")},
	)
	g.putIndex(t, "team/multi:1", idx)
	res := mustConvert(t, request(t, g.ref("team/multi:1"), g.ref("team/multi-sgx:1")))
	out := g.pull(t, res.Ref)
	if got := readFile(t, out, enclave.TrustedFilesPath); !bytes.Equal(got, trustedFiles(t, withRuntime(t, amd)).Encode()) {
		t.Fatalf("converted the wrong platform: trusted files\n%s", got)
	}
	if err := validate.Image(out); err != nil {
		t.Fatal(err)
	}
}

// TestConvertLayerMediaTypes converts OCI images with gzip, zstd and
// uncompressed layers and a Docker image with an uncompressed layer.
func TestConvertLayerMediaTypes(t *testing.T) {
	g := newRegistry(t)
	raw := func(i int) []byte {
		return tarOf(t, dir(fmt.Sprintf("l%d/", i), 0o755), reg(fmt.Sprintf("l%d/f", i), 0o644, strings.Repeat("x", 1000*i)))
	}
	oci := mutate.MediaType(imageOf(t, appConfig,
		layerOf(t, raw(1), tarball.WithMediaType(types.OCILayer)),
		layerOf(t, raw(2), tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd)),
		static.NewLayer(raw(3), types.OCIUncompressedLayer),
	), types.OCIManifestSchema1)
	oci = mutate.ConfigMediaType(oci, types.OCIConfigJSON)
	docker := imageOf(t, appConfig, layerOf(t, raw(1)), static.NewLayer(raw(2), types.DockerUncompressedLayer))
	for _, tc := range []struct {
		name      string
		img       v1.Image
		wantLayer types.MediaType
	}{
		{"oci", oci, types.OCILayer},
		{"docker", docker, types.DockerLayer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.put(t, "team/"+tc.name+":1", tc.img)
			r := request(t, g.ref("team/"+tc.name+":1"), g.ref("team/"+tc.name+"-sgx:1"))
			var pulled Progress
			r.Progress = func(p Progress) {
				if p.Phase == PhasePull {
					pulled = p
				}
			}
			res := mustConvert(t, r)
			if pulled.Layers != pulled.TotalLayers || pulled.Bytes != pulled.TotalBytes {
				t.Errorf("last pull progress %+v: every layer is read to its end", pulled)
			}
			// validate.Image reads every layer as gzip, so it cannot check
			// these; the config's diff IDs are checked here instead.
			out := g.pull(t, res.Ref)
			if !slices.Equal(digests(t, out)[:len(digests(t, tc.img))], digests(t, tc.img)) {
				t.Fatal("the input layers were not kept as they were")
			}
			cf, _ := out.ConfigFile()
			ls, _ := out.Layers()
			for i, l := range ls {
				rc, err := l.Uncompressed()
				if err != nil {
					t.Fatal(err)
				}
				d, _, err := v1.SHA256(rc)
				rc.Close()
				if err != nil || d != cf.RootFS.DiffIDs[i] {
					t.Fatalf("layer %d: diff ID %s, %v; the config says %s", i, d, err, cf.RootFS.DiffIDs[i])
				}
			}
			if got := readFile(t, out, enclave.TrustedFilesPath); !bytes.Equal(got, trustedFiles(t, withRuntime(t, tc.img)).Encode()) {
				t.Fatalf("trusted files =\n%s", got)
			}
			m, _ := out.Manifest()
			inMT, _ := tc.img.MediaType()
			if m.MediaType != inMT || m.Layers[len(m.Layers)-1].MediaType != tc.wantLayer {
				t.Fatalf("output manifest %s with top layer %s, want %s and %s", m.MediaType, m.Layers[len(m.Layers)-1].MediaType, inMT, tc.wantLayer)
			}
		})
	}
}

func TestConvertErrors(t *testing.T) {
	g := newRegistry(t)
	g.put(t, "team/app:1", handMade(t))
	locked := newRegistry(t)
	locked.auth = "robot:s3cret"
	locked.put(t, "team/app:1", handMade(t), remote.WithAuth(&authn.Basic{Username: "robot", Password: "s3cret"}))
	flaky := newRegistry(t)
	flaky.put(t, "team/app:1", handMade(t))
	flaky.fail = func(r *http.Request) int {
		if strings.Contains(r.URL.Path, "/manifests/") {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	busy := newRegistry(t)
	busy.put(t, "team/app:1", handMade(t))
	layerDigests := digests(t, handMade(t))
	busy.fail = func(r *http.Request) int {
		_, kind, d := splitPath(r.URL.Path)
		if kind == "blobs" && r.Method == http.MethodGet && slices.ContainsFunc(layerDigests, func(h v1.Hash) bool { return h.String() == d }) {
			return http.StatusTooManyRequests
		}
		return 0
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	g.putRaw(t, "team/schema1:1", string(types.DockerManifestSchema1Signed), `{"schemaVersion":1,"name":"team/schema1","tag":"1","fsLayers":[]}`)
	g.putRaw(t, "team/odd:1", "application/vnd.example.thing.v1+json", `{"schemaVersion":2,"mediaType":"application/vnd.example.thing.v1+json"}`)
	helm := mutate.ConfigMediaType(handMade(t), "application/vnd.cncf.helm.config.v1+json")
	g.put(t, "team/helm:1", helm)
	blob, err := mutate.Append(handMade(t), mutate.Addendum{Layer: static.NewLayer([]byte("not a tar"), types.OCIUncompressedLayer), MediaType: "application/vnd.example.blob"})
	if err != nil {
		t.Fatal(err)
	}
	g.put(t, "team/blob:1", blob)
	platform := func(os, arch, variant string) v1.Descriptor {
		return v1.Descriptor{Platform: &v1.Platform{OS: os, Architecture: arch, Variant: variant}}
	}
	g.putIndex(t, "team/arm:1", mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: handMade(t), Descriptor: platform("linux", "arm64", "v8")},
		mutate.IndexAddendum{Add: handMade(t), Descriptor: platform("linux", "arm", "v7")},
		mutate.IndexAddendum{Add: handMade(t), Descriptor: platform("windows", "amd64", "")},
	))
	rndIdx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	g.putIndex(t, "team/random-index:1", rndIdx)
	armImage, err := mutate.ConfigFile(handMade(t), func() *v1.ConfigFile {
		cf, _ := handMade(t).ConfigFile()
		cf = cf.DeepCopy()
		cf.Architecture = "arm64"
		return cf
	}())
	if err != nil {
		t.Fatal(err)
	}
	g.put(t, "team/arm-image:1", armImage)
	g.put(t, "team/nocmd:1", imageOf(t, v1.Config{Env: []string{"A=1"}}, handMadeLayers(t, "x")...))
	g.put(t, "team/escape:1", imageOf(t, appConfig, layerOf(t, tarOf(t, reg("../etc/passwd", 0o644, "root")))))
	g.put(t, "team/hardlink:1", imageOf(t, appConfig, layerOf(t, tarOf(t, ent{name: "a", typ: tar.TypeLink, link: "missing"}))))
	converted := mustConvert(t, request(t, g.ref("team/app:1"), g.ref("team/app-sgx:1")))
	_ = converted
	fast := []remote.Option{remote.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Steps: 1})}

	for _, tc := range []struct {
		name   string
		req    func(*Request)
		reason Reason
		msg    string // in the message
	}{
		{"missing tag", func(r *Request) { r.Input = g.ref("team/app:nope") }, ReasonNotFound, "team/app:nope"},
		{"missing repository", func(r *Request) { r.Input = g.ref("team/none:1") }, ReasonNotFound, "no such image"},
		{"input registry needs credentials", func(r *Request) { r.Input = locked.ref("team/app:1") }, ReasonUnauthorized, "pulling"},
		{"wrong input credentials", func(r *Request) {
			r.Input, r.InputAuth = locked.ref("team/app:1"), &authn.Basic{Username: "robot", Password: "guess"}
		}, ReasonUnauthorized, "pulling"},
		{"output registry needs credentials", func(r *Request) { r.Output = locked.ref("team/app-sgx:1") }, ReasonUnauthorized, "pushing"},
		{"schema 1", func(r *Request) { r.Input = g.ref("team/schema1:1") }, ReasonUnsupportedMedia, "schema 1"},
		{"unknown manifest type", func(r *Request) { r.Input = g.ref("team/odd:1") }, ReasonUnsupportedMedia, "application/vnd.example.thing.v1+json"},
		{"artifact", func(r *Request) { r.Input = g.ref("team/helm:1") }, ReasonUnsupportedMedia, "helm"},
		{"unknown layer type", func(r *Request) { r.Input = g.ref("team/blob:1") }, ReasonUnsupportedMedia, "application/vnd.example.blob"},
		{"index without linux/amd64", func(r *Request) { r.Input = g.ref("team/arm:1") }, ReasonNoPlatform, "linux/arm64/v8, linux/arm/v7, windows/amd64"},
		{"index without platforms", func(r *Request) { r.Input = g.ref("team/random-index:1") }, ReasonNoPlatform, "no platforms"},
		{"arm64 image", func(r *Request) { r.Input = g.ref("team/arm-image:1") }, ReasonNoPlatform, "linux/arm64"},
		{"memory too small for the threads", func(r *Request) { r.App.MemorySize = 1 << 20; r.App.Threads = 4 }, ReasonInvalidApp, "memory_size 1M is too small"},
		{"memory not a power of two", func(r *Request) { r.App.MemorySize = 96 << 20 }, ReasonInvalidApp, "memory_size: enclave size 96M is not a power of two: the nearest valid sizes are 64M and 128M"},
		{"no threads", func(r *Request) { r.App.Threads = 0 }, ReasonInvalidApp, "threads: 0, want 1 to 1024"},
		{"too many threads", func(r *Request) { r.App.Threads = 1000 }, ReasonInvalidApp, "threads"},
		{"env set twice", func(r *Request) { r.App.Env = append(r.App.Env, r.App.Env...) }, ReasonInvalidApp, "set twice"},
		{"bad output reference", func(r *Request) { r.Output = "Not A Reference" }, ReasonInvalidApp, "output image"},
		{"no entrypoint", func(r *Request) { r.Input = g.ref("team/nocmd:1") }, ReasonInvalidImage, "set the application's entrypoint"},
		{"path escapes the root", func(r *Request) { r.Input = g.ref("team/escape:1") }, ReasonInvalidImage, "escapes the image root"},
		{"hard link to nothing", func(r *Request) { r.Input = g.ref("team/hardlink:1") }, ReasonInvalidImage, "hard link"},
		{"converted already", func(r *Request) { r.Input = g.ref("team/app-sgx:1") }, ReasonInvalidImage, "already has /opt/cloister"},
		{"registry unavailable", func(r *Request) { r.Input, r.Options = flaky.ref("team/app:1"), fast }, ReasonTimeout, "pulling"},
		{"registry rate limit on a layer", func(r *Request) { r.Input, r.Options = busy.ref("team/app:1"), fast }, ReasonTimeout, "reading the layers"},
		{"registry down", func(r *Request) { r.Input, r.Options = strings.TrimPrefix(gone.URL, "http://")+"/team/app:1", fast }, ReasonTimeout, "pulling"},
		{"no signing key", func(r *Request) { r.Signer = nil }, ReasonInternal, "signing key"},
		{"no launcher", func(r *Request) { r.Launcher = nil }, ReasonInternal, "launcher"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := request(t, g.ref("team/app:1"), g.ref("team/out:1"))
			tc.req(&r)
			res, err := Convert(context.Background(), r)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Convert = %+v, %v; want an *Error", res, err)
			}
			t.Logf("%v", err)
			if e.Reason != tc.reason || !strings.HasPrefix(err.Error(), string(tc.reason)+": ") || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Convert = %v; want reason %s and %q in the message", err, tc.reason, tc.msg)
			}
			if e.Transient() != (tc.reason == ReasonTimeout) {
				t.Fatalf("Transient() = %v for %s", e.Transient(), tc.reason)
			}
		})
	}
}

func TestConvertCancel(t *testing.T) {
	g := newRegistry(t)
	rnd, err := random.Image(4<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	rnd, err = mutate.Config(rnd, v1.Config{Cmd: []string{"/random"}})
	if err != nil {
		t.Fatal(err)
	}
	g.put(t, "team/big:1", rnd)
	m, _ := rnd.Manifest()
	var total int64
	for _, l := range m.Layers {
		total += l.Size
	}
	g.reset()

	t.Run("during the pull", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := request(t, g.ref("team/big:1"), g.ref("team/big-sgx:1"))
		r.Progress = func(p Progress) {
			if p.Phase == PhasePull && p.Bytes > 0 {
				cancel()
			}
		}
		_, err := Convert(ctx, r)
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonTimeout || !errors.Is(err, context.Canceled) {
			t.Fatalf("Convert = %v, want a cancelled registry_timeout", err)
		}
		g.mu.Lock()
		served := g.served
		g.mu.Unlock()
		if served >= total {
			t.Fatalf("the registry served %d bytes of %d: the conversion went on after the cancel", served, total)
		}
		ref, err := name.ParseReference(g.ref("team/big-sgx:1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Head(ref); err == nil {
			t.Fatal("a cancelled conversion pushed its output")
		}
	})
	t.Run("before it starts", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		g.reset()
		_, err := Convert(ctx, request(t, g.ref("team/big:1"), g.ref("team/big-sgx:1")))
		if !errors.Is(err, context.Canceled) || g.count("GET manifest") != 0 {
			t.Fatalf("Convert = %v after %d manifest GETs, want a cancellation and none", err, g.count("GET manifest"))
		}
	})
}

func TestConvertProgress(t *testing.T) {
	g := newRegistry(t)
	rnd, err := random.Image(3<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	rnd, err = mutate.Config(rnd, v1.Config{Cmd: []string{"/random"}})
	if err != nil {
		t.Fatal(err)
	}
	g.put(t, "team/app:1", rnd)
	var got []Progress
	r := request(t, g.ref("team/app:1"), g.ref("team/app-sgx:1"))
	r.Progress = func(p Progress) { got = append(got, p) }
	mustConvert(t, r)

	phases := []string{}
	last := map[string]Progress{}
	for _, p := range got {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
		if prev, ok := last[p.Phase]; ok && (p.Bytes < prev.Bytes || p.Layers < prev.Layers) {
			t.Errorf("%s went back: %+v after %+v", p.Phase, p, prev)
		}
		last[p.Phase] = p
	}
	if !slices.Equal(phases, []string{PhasePull, PhaseMeasure, PhasePush}) {
		t.Fatalf("phases %v, want pull, measure, push", phases)
	}
	m, _ := rnd.Manifest()
	var total int64
	for _, l := range m.Layers {
		total += l.Size
	}
	if p := last[PhasePull]; p.Layers != 3 || p.TotalLayers != 3 || p.Bytes != total || p.TotalBytes != total {
		t.Errorf("last pull progress %+v, want 3 of 3 layers and %d of %d bytes", p, total, total)
	}
	if p := last[PhaseMeasure]; p.Layers != 1 || p.TotalLayers != 1 {
		t.Errorf("last measure progress %+v", p)
	}
	if p := last[PhasePush]; p.Layers != 5 || p.TotalLayers != 5 || p.Bytes != p.TotalBytes || p.TotalBytes < total {
		t.Errorf("last push progress %+v, want 5 of 5 layers and all of at least %d bytes", p, total)
	}
	if n := len(got); n < 10 {
		t.Errorf("%d progress reports for %d MiB, want more", n, total>>20)
	}
}

func TestManifestFor(t *testing.T) {
	base := App{MemorySize: 64 << 20, Threads: 1}
	for _, tc := range []struct {
		name     string
		app      func(*App)
		cfg      v1.Config
		ep, args []string
		env      []enclave.EnvVar
		reason   Reason
	}{
		{name: "app entrypoint wins and drops CMD", app: func(a *App) { a.Entrypoint = []string{"/app"} },
			cfg: v1.Config{Entrypoint: []string{"/img"}, Cmd: []string{"x"}}, ep: []string{"/app"}, args: nil},
		{name: "image entrypoint with its CMD", cfg: v1.Config{Entrypoint: []string{"/img", "-v"}, Cmd: []string{"x"}},
			ep: []string{"/img", "-v"}, args: []string{"x"}},
		{name: "image entrypoint with the app's args", app: func(a *App) { a.Args = []string{"y"} },
			cfg: v1.Config{Entrypoint: []string{"/img"}, Cmd: []string{"x"}}, ep: []string{"/img"}, args: []string{"y"}},
		{name: "CMD only", cfg: v1.Config{Cmd: []string{"/bin/sh", "-c", "run"}}, ep: []string{"/bin/sh"}, args: []string{"-c", "run"}},
		{name: "CMD only with the app's args", app: func(a *App) { a.Args = []string{"y"} },
			cfg: v1.Config{Cmd: []string{"/bin/sh", "-c", "run"}}, ep: []string{"/bin/sh"}, args: []string{"y"}},
		{name: "nothing to run", cfg: v1.Config{}, reason: ReasonInvalidImage},
		{name: "app env overrides the image's", app: func(a *App) { a.Env = []enclave.EnvVar{{Name: "B", Value: "app"}, {Name: "C", Value: "new"}} },
			cfg: v1.Config{Cmd: []string{"/x"}, Env: []string{"B=img", "A=1=2", "NOVALUE"}}, ep: []string{"/x"},
			env: []enclave.EnvVar{{Name: "A", Value: "1=2"}, {Name: "B", Value: "app"}, {Name: "C", Value: "new"}, {Name: "NOVALUE"}}},
		{name: "env name with =", app: func(a *App) { a.Env = []enclave.EnvVar{{Name: "A=B"}} }, cfg: v1.Config{Cmd: []string{"/x"}}, reason: ReasonInvalidApp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := base
			if tc.app != nil {
				tc.app(&app)
			}
			m, err := manifestFor(app, tc.cfg)
			if tc.reason != "" {
				var e *Error
				if !errors.As(err, &e) || e.Reason != tc.reason {
					t.Fatalf("manifestFor = %v, want %s", err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(m.Entrypoint, tc.ep) || !slices.Equal(m.Args, tc.args) || (tc.env != nil && !slices.Equal(m.Env, tc.env)) {
				t.Fatalf("manifestFor = %q %q %v, want %q %q %v", m.Entrypoint, m.Args, m.Env, tc.ep, tc.args, tc.env)
			}
		})
	}
}
