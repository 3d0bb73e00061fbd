package enclave

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

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

// testLauncher is arbitrary bytes: the launcher is hashed as one of the
// image's trusted files, so no real binary is needed.
var testLauncher = bytes.Repeat([]byte("not really a launcher; measured as opaque bytes\n"), 200)

type tarEnt struct {
	name string
	typ  byte
	mode int64
	body string
	link string
}

func tarOf(t testing.TB, ents ...tarEnt) []byte {
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

func layerOf(t testing.TB, raw []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func file(name string, mode int64, body string) tarEnt {
	return tarEnt{name: name, typ: tar.TypeReg, mode: mode, body: body}
}
func folder(name string, mode int64) tarEnt { return tarEnt{name: name, typ: tar.TypeDir, mode: mode} }

// lowerLayers are an application's layers: files, a symlink, a hard
// link, a whiteout, an opaque directory, and /opt of mode 0750.
func lowerLayers(t testing.TB, hello string) []v1.Layer {
	return []v1.Layer{
		layerOf(t, tarOf(t,
			folder("etc/", 0o755), file("etc/hosts", 0o644, "127.0.0.1 localhost\n"), file("etc/old", 0o644, "old"),
			folder("usr/bin/", 0o755), file("usr/bin/hello", 0o755, hello),
			tarEnt{name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
			folder("opt/", 0o750), folder("var/lib/", 0o755), file("var/lib/x", 0o644, "x"))),
		layerOf(t, tarOf(t,
			file("etc/.wh.old", 0o644, ""), file("var/lib/.wh..wh..opq", 0o644, ""), file("var/lib/y", 0o644, "y"),
			tarEnt{name: "usr/bin/hi", typ: tar.TypeLink, link: "usr/bin/hello"})),
	}
}

// parts are what a converted image is made of, to be tampered with.
type parts struct {
	lower      []v1.Layer // the input's layers and the runtime layer
	files      Files
	extra      []tarEnt // more entries in the top layer
	labels     map[string]string
	entrypoint []string
	mrenclave  [32]byte
}

var sigDate = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// testRuntime is the stand-in Gramine runtime.
var testRuntime = sync.OnceValues(func() (*Runtime, error) { return StandInRuntime("registry.test/gramine-runtime-standin") })

// runtimeLayer is the layer of the stand-in runtime and a launcher.
func runtimeLayer(t testing.TB, launcher []byte) v1.Layer {
	t.Helper()
	rt, err := testRuntime()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := RuntimeLayer(rt, launcher)
	if err != nil {
		t.Fatal(err)
	}
	return layerOf(t, raw)
}

// convertedParts does what the converter does, from the input's layers
// and a manifest without its digests; sign, if set, changes the
// SIGSTRUCT's fields before signing.
func convertedParts(t testing.TB, input []v1.Layer, man Manifest, launcher []byte, sign func(sgx.SigStructFields) sgx.SigStructFields) *parts {
	t.Helper()
	lower := append(slices.Clone(input), runtimeLayer(t, launcher))
	all, err := imagefs.TrustedFiles(context.Background(), lowerImage{layers: lower})
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := testRuntime()
	libpal, _ := rt.File(LibPALPath)
	key := testKey(t)
	s, err := Seal(man, all, libpal, key, sigDate)
	if err != nil {
		t.Fatal(err)
	}
	if sign != nil {
		if s.Files.SigStruct, err = sgx.SignSigStruct(sign(s.Measurement.SigStructFields(sigDate)), key); err != nil {
			t.Fatal(err)
		}
	}
	mr := s.Measurement.MRENCLAVE
	mrsigner := sgx.MRSIGNEROf(&key.PublicKey)
	return &parts{
		lower: lower,
		files: s.Files,
		labels: map[string]string{
			"maintainer":   "someone",
			LabelMRENCLAVE: hex.EncodeToString(mr[:]), LabelMRSIGNER: hex.EncodeToString(mrsigner[:]),
			LabelISVProdID: strconv.Itoa(int(man.ISVProdID)), LabelISVSVN: strconv.Itoa(int(man.ISVSVN)), LabelEnclave: EnclaveGramineSGX,
		},
		entrypoint: Entrypoint,
		mrenclave:  mr,
	}
}

func (p *parts) image(t testing.TB) v1.Image {
	t.Helper()
	top, err := p.files.Tar()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.extra) > 0 {
		top = appendEntries(t, top, p.extra)
	}
	img, err := mutate.AppendLayers(empty.Image, append(slices.Clone(p.lower), layerOf(t, top))...)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Entrypoint: p.entrypoint, Labels: maps.Clone(p.labels), Env: []string{"PATH=/usr/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// appendEntries copies a tar and adds entries at its end.
func appendEntries(t testing.TB, raw []byte, extra []tarEnt) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range extra {
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

func testManifest() Manifest {
	return Manifest{
		Entrypoint: []string{"/usr/bin/hello"}, Args: []string{"--port", "8443"}, Env: []EnvVar{{"PATH", "/usr/bin"}},
		MemorySize: 64 << 20, Threads: 2, ISVProdID: 7, ISVSVN: 3,
		Certificate: &Certificate{Domain: "hello.example.com", KeyType: "ec-p256", KeyPath: "/run/cloister/key.pem", CertPath: "/run/cloister/cert.pem"},
	}
}

// The entries WriteRuntimeLayer returns are the tar it writes: the same
// headers in the same order, each file with the SHA-256 of its contents.
func TestRuntimeLayerEntries(t *testing.T) {
	rt, err := testRuntime()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	entries, err := WriteRuntimeLayer(&b, rt, []byte("launcher"))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&b)
	for i := 0; ; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if i != len(entries) {
				t.Errorf("the tar has %d entries, the list %d", i, len(entries))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(entries) {
			t.Fatalf("the tar's entry %d, %s, is not listed", i, h.Name)
		}
		e := entries[i]
		if e.Header.Name != h.Name || e.Header.Typeflag != h.Typeflag || e.Header.Mode != h.Mode || e.Header.Size != h.Size || e.Header.Linkname != h.Linkname {
			t.Errorf("entry %d: listed %+v, written %+v", i, e.Header, *h)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg && e.SHA256 != sha256.Sum256(body) {
			t.Errorf("entry %d, %s: the listed SHA-256 is not its contents'", i, h.Name)
		}
	}
}

func TestFilesTar(t *testing.T) {
	f := Files{Config: []byte("{}\n"), TrustedFiles: []byte("cloister-trusted-files v1\n"), Manifest: []byte("[libos]\n"), SigStruct: make([]byte, sgx.SigStructSize)}
	a, err := f.Tar()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := f.Tar()
	if !bytes.Equal(a, b) {
		t.Fatal("Tar gave two different layers for the same files")
	}
	type got struct {
		name string
		typ  byte
		mode int64
		size int64
	}
	var entries []got
	tr := tar.NewReader(bytes.NewReader(a))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(time.Unix(0, 0)) || h.Format != tar.FormatUSTAR {
			t.Errorf("%s: uid %d gid %d %q %q mtime %v format %v, want 0 0 \"\" \"\" the epoch USTAR", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime, h.Format)
		}
		entries = append(entries, got{h.Name, h.Typeflag, h.Mode, h.Size})
	}
	want := []got{
		{"opt/cloister/app.manifest.sgx", tar.TypeReg, 0o644, 8},
		{"opt/cloister/app.sig", tar.TypeReg, 0o644, sgx.SigStructSize},
		{"opt/cloister/manifest.json", tar.TypeReg, 0o644, 3},
		{"opt/cloister/trusted-files", tar.TypeReg, 0o644, 26},
	}
	if !slices.Equal(entries, want) {
		t.Fatalf("Tar entries = %v, want %v", entries, want)
	}
}

func TestMeasureImage(t *testing.T) {
	ctx := context.Background()
	p := convertedParts(t, lowerLayers(t, "hello v1"), testManifest(), testLauncher, nil)
	m, err := MeasureImage(ctx, p.image(t))
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t)
	if !m.Match || len(m.Problems) != 0 {
		t.Fatalf("MeasureImage of a good image: Match %v, problems %q", m.Match, m.Problems)
	}
	if m.MRENCLAVE != p.mrenclave || m.MRSIGNER != sgx.MRSIGNEROf(&key.PublicKey) || m.ISVProdID != 7 || m.ISVSVN != 3 {
		t.Fatalf("MeasureImage = %x %x %d %d, want %x %x 7 3", m.MRENCLAVE, m.MRSIGNER, m.ISVProdID, m.ISVSVN, p.mrenclave, sgx.MRSIGNEROf(&key.PublicKey))
	}
	if _, ok := m.Labels["maintainer"]; ok || len(m.Labels) != 5 {
		t.Fatalf("Labels = %v, want the five cc.cloister.* labels", m.Labels)
	}
}

func TestMeasureImageProblems(t *testing.T) {
	ctx := context.Background()
	man := testManifest()
	good := func() *parts { return convertedParts(t, lowerLayers(t, "hello v1"), man, testLauncher, nil) }
	resign := func(f func(sgx.SigStructFields) sgx.SigStructFields) func(*parts) {
		return func(p *parts) {
			p.files.SigStruct = convertedParts(t, p.lower, man, testLauncher, f).files.SigStruct
		}
	}
	for _, tc := range []struct {
		name   string
		tamper func(*parts)
		want   string // in one of the problems
	}{
		{"a file of a lower layer changed", func(p *parts) { p.lower = lowerLayers(t, "hello v2") }, "trusted-file list"},
		{"list and layers changed together", func(p *parts) {
			p.lower = lowerLayers(t, "hello v2")
			p.files.TrustedFiles = convertedParts(t, p.lower, man, testLauncher, nil).files.TrustedFiles
		}, "the manifest's trusted_files"},
		{"everything rebuilt but the signature", func(p *parts) {
			q := convertedParts(t, lowerLayers(t, "hello v2"), man, testLauncher, nil)
			q.files.SigStruct, q.labels = p.files.SigStruct, p.labels
			*p = *q
		}, "ENCLAVEHASH"},
		{"launcher replaced", func(p *parts) {
			p.lower = append(slices.Clone(p.lower[:len(p.lower)-1]), runtimeLayer(t, append(slices.Clone(testLauncher), 'x')))
		}, "launcher"},
		{"manifest not canonical", func(p *parts) { p.files.Config = bytes.Replace(p.files.Config, []byte(`":`), []byte(`": `), 1) }, "manifest"},
		{"Gramine manifest edited", func(p *parts) {
			p.files.Manifest = bytes.Replace(p.files.Manifest, []byte("\"/opt/cloister/launcher\",\n    \"--\","), []byte(`"/usr/bin/hello",`), 1)
		}, "not the one Cloister writes"},
		{"Gramine manifest with a file left out", func(p *parts) {
			p.files.Manifest = bytes.Replace(p.files.Manifest, []byte(`uri = "file:/usr/bin/hello"`), []byte(`uri = "file:/usr/bin/hellO"`), 1)
		}, "file /usr/bin/hellO"},
		{"SIGSTRUCT signature corrupted", func(p *parts) {
			p.files.SigStruct = slices.Clone(p.files.SigStruct)
			p.files.SigStruct[600] ^= 1
		}, "signature does not verify"},
		{"SIGSTRUCT for a debug enclave", resign(func(f sgx.SigStructFields) sgx.SigStructFields {
			f.Attributes[0] |= 0x2 // DEBUG
			return f
		}), "ATTRIBUTES"},
		{"SIGSTRUCT with another ISVSVN", resign(func(f sgx.SigStructFields) sgx.SigStructFields { f.ISVSVN = 4; return f }), "ISVPRODID/ISVSVN"},
		{"SIGSTRUCT with a relaxed mask", resign(func(f sgx.SigStructFields) sgx.SigStructFields { f.AttributeMask[0] = 0xfd; return f }), "ATTRIBUTEMASK"},
		{"MRENCLAVE label wrong", func(p *parts) { p.labels[LabelMRENCLAVE] = strings.Repeat("00", 32) }, "label " + LabelMRENCLAVE},
		{"MRSIGNER label missing", func(p *parts) { delete(p.labels, LabelMRSIGNER) }, "label " + LabelMRSIGNER + ": missing"},
		{"ISVSVN label wrong", func(p *parts) { p.labels[LabelISVSVN] = "9" }, "label " + LabelISVSVN},
		{"enclave label wrong", func(p *parts) { p.labels[LabelEnclave] = "v1" }, "label " + LabelEnclave},
		{"entrypoint not the launcher", func(p *parts) { p.entrypoint = []string{"/usr/bin/hello"} }, "entrypoint"},
		{"extra file in the top layer", func(p *parts) { p.extra = []tarEnt{file("usr/bin/hello", 0o755, "evil")} }, `"usr/bin/hello"`},
		{"whiteout in the top layer", func(p *parts) { p.extra = []tarEnt{file("etc/.wh.hosts", 0o644, "")} }, "top layer"},
		{"a file added below the top layer", func(p *parts) {
			p.lower = append(slices.Clone(p.lower), layerOf(t, tarOf(t, file("opt/cloister/gramine/extra.so", 0o644, "x"))))
		}, "trusted-file list"},
		{"input layers with /opt/cloister", func(p *parts) {
			in := append(slices.Clone(p.lower[:len(p.lower)-1]), layerOf(t, tarOf(t, file("opt/cloister/extra", 0o644, "x"))))
			q := convertedParts(t, in, man, testLauncher, nil)
			*p = *q
		}, "runtime layer: /opt/cloister/extra is in /opt/cloister, but not from the runtime layer"},
		{"runtime layer with more", func(p *parts) {
			rt := p.lower[len(p.lower)-1]
			rc, err := rt.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(rc)
			rc.Close()
			p.lower[len(p.lower)-1] = layerOf(t, appendEntries(t, raw, []tarEnt{file("etc/passwd", 0o644, "root::0:0::/:/bin/sh\n")}))
		}, `runtime layer: it holds "etc/passwd"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			tc.tamper(p)
			m, err := MeasureImage(ctx, p.image(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("problems: %q", m.Problems)
			if m.Match || !slices.ContainsFunc(m.Problems, func(s string) bool { return strings.Contains(s, tc.want) }) {
				t.Fatalf("MeasureImage: Match %v, problems %q; want one containing %q", m.Match, m.Problems, tc.want)
			}
		})
	}
}

func TestMeasureImageErrors(t *testing.T) {
	ctx := context.Background()
	p := convertedParts(t, lowerLayers(t, "hello"), testManifest(), testLauncher, nil)
	rnd, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	f := p.files
	noSig, err := mutate.AppendLayers(empty.Image, append(slices.Clone(p.lower), layerOf(t, tarOf(t,
		file("opt/cloister/app.manifest.sgx", 0o644, string(f.Manifest)),
		file("opt/cloister/manifest.json", 0o644, string(f.Config)), file("opt/cloister/trusted-files", 0o644, string(f.TrustedFiles)))))...)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		img  v1.Image
	}{
		{"not a converted image", ctx, rnd},
		{"no layers", ctx, empty.Image},
		{"no SIGSTRUCT", ctx, noSig},
		{"cancelled", cancelled, p.image(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := MeasureImage(tc.ctx, tc.img); err == nil {
				t.Fatalf("MeasureImage = %+v, want an error", m)
			}
		})
	}
}
