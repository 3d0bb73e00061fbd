package enclave

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cloister-cc/cloister/libs/gramine"
	"github.com/cloister-cc/cloister/libs/imagefs"
	"github.com/cloister-cc/cloister/libs/sgx"
)

// Files is what the top layer of a converted image holds, in
// /opt/cloister: everything that differs from one image of a deployment to
// the next. The converter writes it with Tar; MeasureImage reads it back.
type Files struct {
	Config       []byte // the launcher's manifest (ManifestPath), canonical
	TrustedFiles []byte // the encoded trusted-file list of the layers below
	Manifest     []byte // the Gramine manifest, App.manifest.sgx: what is measured
	SigStruct    []byte // App.sig
}

// TopLayerPaths are the files of the top layer.
var TopLayerPaths = []string{GramineManifestPath, SigStructPath, ManifestPath, TrustedFilesPath}

// Fixed metadata of the layers' entries: the same Files always give the
// same bytes, so the same input gives the same layer digest.
var (
	layerTime  = time.Unix(0, 0).UTC()
	dirMode    = fs.FileMode(0o755)
	layerFiles = []layerFile{ // in byte order of their paths, as the layer writes them
		{GramineManifestPath, func(f *Files) *[]byte { return &f.Manifest }},
		{SigStructPath, func(f *Files) *[]byte { return &f.SigStruct }},
		{ManifestPath, func(f *Files) *[]byte { return &f.Config }},
		{TrustedFilesPath, func(f *Files) *[]byte { return &f.TrustedFiles }},
	}
)

type layerFile struct {
	path string
	get  func(*Files) *[]byte
}

// Tar returns the uncompressed tar of the top layer: its four files, in
// path order, mode 0644, in USTAR format, owned by 0:0, with modification
// time 0 and nothing else that varies. The directories are the runtime
// layer's.
func (f Files) Tar() ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, lf := range layerFiles {
		data := *lf.get(&f)
		name := strings.TrimPrefix(lf.path, "/")
		if err := tw.WriteHeader(header(name, tar.TypeReg, 0o644, int64(len(data)))); err != nil {
			return nil, fmt.Errorf("writing %s: %w", name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, fmt.Errorf("writing %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing the layer: %w", err)
	}
	return b.Bytes(), nil
}

func header(name string, typ byte, mode fs.FileMode, size int64) *tar.Header {
	return &tar.Header{Typeflag: typ, Name: name, Mode: int64(unixBits(mode)), Size: size, ModTime: layerTime, Format: tar.FormatUSTAR}
}

// Measured is the measurement of a converted image, recomputed from its
// layers, and whether everything the converter wrote agrees with it.
type Measured struct {
	// MRENCLAVE is recomputed from the Gramine manifest of the top layer
	// and the runtime's libpal.so (zero when either is unusable);
	// MRSIGNER, ISVProdID and ISVSVN are the SIGSTRUCT's.
	MRENCLAVE, MRSIGNER [32]byte
	ISVProdID, ISVSVN   uint16
	// Debug is the Gramine manifest's sgx.debug: a debug enclave, whose
	// memory a debugger on the host can read.
	Debug bool
	// Labels are the image config's cc.cloister.* labels.
	Labels map[string]string
	// Match is true when the trusted-file list, both manifests, the
	// SIGSTRUCT, the labels and the entrypoint all agree with each other
	// and with the image's layers.
	Match bool
	// Problems says what disagrees, one sentence each; empty when Match.
	// A file that differs from what the manifests list is named.
	Problems []string
	// Manifest is what the enclave runs and how (nil when unusable): a
	// matching measurement means little until someone has read it.
	Manifest *Manifest
	// Launcher is the digest of the launcher binary in the image.
	Launcher string
	// Areas are the enclave's memory areas, as gramine-sgx-sign lists them.
	Areas []gramine.Area
}

func (m *Measured) problem(format string, args ...any) {
	m.Problems = append(m.Problems, fmt.Sprintf(format, args...))
}

// Bounds on the files read from the top layer.
const maxLayerFile = 256 << 20

// MeasureImage recomputes the measurement of a converted image without
// trusting the converter: it reads the top layer's four files, lists the
// files of all the other layers itself (imagefs.TrustedFiles, which
// streams each layer once), checks that the Gramine manifest lists every
// one of them with its SHA-256 and is the one Cloister writes for the
// launcher's manifest, recomputes MRENCLAVE from the Gramine manifest and
// the runtime's libpal.so as Gramine's signer does, verifies the
// SIGSTRUCT, and compares all of it with the labels and the entrypoint.
//
// A disagreement is a Problem, not an error: the result says what is
// wrong, naming the first file that differs. MeasureImage returns an error
// only when it cannot measure: the image cannot be read, the top layer
// lacks one of its four files, or a lower layer cannot be applied.
func MeasureImage(ctx context.Context, img v1.Image) (*Measured, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	if len(layers) < 2 {
		return nil, errors.New("enclave: the image has fewer than two layers, so no runtime layer and " + Dir)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the image config: %w", err)
	}
	m := &Measured{Labels: map[string]string{}}
	for k, v := range cfg.Config.Labels {
		if strings.HasPrefix(k, "cc.cloister.") {
			m.Labels[k] = v
		}
	}

	top := len(layers) - 1
	files, err := readTop(ctx, layers[top], m)
	if err != nil {
		return nil, fmt.Errorf("reading the top layer (%d): %w", top, err)
	}
	below := lowerImage{Image: img, layers: layers[:top]}
	lower, err := imagefs.TrustedFiles(ctx, below)
	if err != nil {
		return nil, fmt.Errorf("listing the files of the other layers: %w", err)
	}

	if err := checkRuntimeLayer(ctx, layers[top-1], lower, m); err != nil {
		return nil, fmt.Errorf("reading the runtime layer (%d): %w", top-1, err)
	}
	man, err := ParseManifest(files.Config)
	m.Manifest = man
	if err != nil {
		m.problem("manifest: %s: %v", ManifestPath, err)
	}
	if e, ok := lower.Lookup(strings.TrimPrefix(LauncherPath, "/")); ok {
		m.Launcher = "sha256:" + hex.EncodeToString(e.SHA256[:])
	}
	// The list leaves out the application's read-write directories.
	var rwDirs []string
	if man != nil {
		rwDirs = man.UnmeasuredDirs()
	}
	if trusted, err := Trusted(lower, rwDirs); err != nil {
		m.problem("manifest: %v", err) // e.g. a read-write /usr would hide programs
	} else {
		lower = trusted
	}
	if want := lower.Encode(); !bytes.Equal(files.TrustedFiles, want) {
		m.problem("trusted-file list: %s does not match the files of the image's other layers: %s", TrustedFilesPath, listDiff(files.TrustedFiles, lower))
	}
	if man != nil {
		if d := Digest(files.TrustedFiles); man.TrustedFiles != d {
			m.problem("trusted-file list: the manifest's trusted_files is %s, but %s has digest %s", man.TrustedFiles, TrustedFilesPath, d)
		}
		if man.Launcher != m.Launcher {
			m.problem("launcher: the manifest's launcher is %s, but %s has digest %s", man.Launcher, LauncherPath, m.Launcher)
		}
	}

	gm, gErr := gramine.ParseTOML(files.Manifest)
	if gErr != nil {
		m.problem("Gramine manifest: %s: %v", GramineManifestPath, gErr)
	} else {
		checkGramineFiles(m, gm, lower, files)
		if man != nil {
			checkGramineManifest(m, man, files, lower)
		}
	}
	var measured *gramine.Measurement
	if gErr == nil {
		libpal, err := imagefs.ReadFile(ctx, below, strings.TrimPrefix(LibPALPath, "/"))
		if err != nil {
			m.problem("runtime: %s: %v", LibPALPath, err)
		} else if measured, err = gramine.Measure(files.Manifest, libpal); err != nil {
			m.problem("Gramine manifest: %v", err)
		} else {
			m.MRENCLAVE, m.Debug, m.Areas = measured.MRENCLAVE, measured.Params.Debug, measured.Areas
		}
	}

	sig, err := sgx.ParseSigStruct(files.SigStruct)
	if err != nil {
		m.problem("SIGSTRUCT: %s: %v", SigStructPath, err)
	} else {
		m.MRSIGNER, m.ISVProdID, m.ISVSVN = sig.MRSIGNER(), sig.ISVProdID, sig.ISVSVN
		if err := sig.Verify(); err != nil {
			m.problem("SIGSTRUCT: the signature does not verify: %v", err)
		}
		if measured != nil {
			checkSigStruct(m, sig, measured)
		}
	}

	checkLabels(m, measured != nil, sig != nil)
	if ep := cfg.Config.Entrypoint; !slices.Equal(ep, Entrypoint) {
		m.problem("entrypoint: the image config's entrypoint is %q, want %q", ep, Entrypoint)
	}
	m.Match = len(m.Problems) == 0
	return m, nil
}

// checkGramineFiles compares the Gramine manifest's trusted files with
// the files of the image: every regular file of the layers below, with its
// SHA-256, and the launcher's manifest and trusted-file list of the top
// layer. It names the first file that differs.
func checkGramineFiles(m *Measured, gm *gramine.Table, lower *imagefs.List, files *Files) {
	listed, err := gramine.TrustedFiles(gm)
	if err != nil {
		m.problem("Gramine manifest: %v", err)
		return
	}
	want := map[string][32]byte{
		gramine.URI(ManifestPath):     sha256.Sum256(files.Config),
		gramine.URI(TrustedFilesPath): sha256.Sum256(files.TrustedFiles),
	}
	imgFiles, err := imageFiles(lower)
	if err != nil {
		m.problem("image: %v", err)
		return
	}
	for _, f := range imgFiles {
		want[f.URI] = f.SHA256
	}
	for _, f := range listed {
		h, ok := want[f.URI]
		switch {
		case !ok:
			m.problem("file %s: the Gramine manifest lists it, but the image has no such regular file (nor a symlink to one)", strings.TrimPrefix(f.URI, "file:"))
			return
		case h != f.SHA256:
			m.problem("file %s: the image's has sha256 %x, but the Gramine manifest lists %x", strings.TrimPrefix(f.URI, "file:"), h, f.SHA256)
			return
		}
		delete(want, f.URI)
	}
	for _, u := range slices.Sorted(maps.Keys(want)) {
		m.problem("file %s: in the image, but not a trusted file of the Gramine manifest, so the enclave could not open it", strings.TrimPrefix(u, "file:"))
		return
	}
}

// checkGramineManifest checks that the Gramine manifest is, byte for
// byte, the one Cloister writes for the launcher's manifest and the
// image's files: no other argv, environment or mount slipped in.
func checkGramineManifest(m *Measured, man *Manifest, files *Files, lower *imagefs.List) {
	g, err := Gramine(man, GramineInputs{Listed: lower, Config: files.Config, TrustedFiles: files.TrustedFiles})
	if err != nil {
		m.problem("Gramine manifest: %v", err)
		return
	}
	want, err := g.Marshal()
	if err != nil {
		m.problem("Gramine manifest: %v", err)
		return
	}
	if bytes.Equal(want, files.Manifest) {
		return
	}
	got, wantLines := strings.Split(string(files.Manifest), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(got), len(wantLines)) {
		var a, b string
		if i < len(got) {
			a = got[i]
		}
		if i < len(wantLines) {
			b = wantLines[i]
		}
		if a != b {
			m.problem("Gramine manifest: %s is not the one Cloister writes for %s: line %d is %q, want %q", GramineManifestPath, ManifestPath, i+1, a, b)
			return
		}
	}
}

// checkRuntimeLayer checks the image's shape below the top layer: the
// runtime layer holds only /opt/cloister, and everything in /opt/cloister
// is the runtime layer's (the converter refuses inputs that have one).
func checkRuntimeLayer(ctx context.Context, l v1.Layer, lower *imagefs.List, m *Measured) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("opening: %w", err)
	}
	defer rc.Close()
	dir := strings.TrimPrefix(Dir, "/")
	ours := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		name := cleanName(h.Name)
		if name != dir && !strings.HasPrefix(name, dir+"/") {
			m.problem("runtime layer: it holds %q, outside %s", h.Name, Dir)
			return nil
		}
		ours[name] = true
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("reading past the tar's end: %w", err)
	}
	for e := range lower.All() {
		if (e.Path == dir || strings.HasPrefix(e.Path, dir+"/")) && !ours[e.Path] {
			m.problem("runtime layer: /%s is in %s, but not from the runtime layer", e.Path, Dir)
			return nil
		}
	}
	return nil
}

// lowerImage is an image reduced to some of its layers, for imagefs,
// which needs nothing but Layers.
type lowerImage struct {
	v1.Image
	layers []v1.Layer
}

func (l lowerImage) Layers() ([]v1.Layer, error) { return l.layers, nil }

// readTop reads the top layer, which must hold the four files and nothing
// else: anything else is a problem; a missing file is an error.
func readTop(ctx context.Context, l v1.Layer, m *Measured) (*Files, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("opening: %w", err)
	}
	defer rc.Close()
	var (
		f    Files
		seen = map[string]bool{}
	)
	tr := tar.NewReader(rc)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading tar: %w", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name := cleanName(h.Name)
		if seen[name] {
			m.problem("top layer: %q appears twice", h.Name)
		}
		seen[name] = true
		i := slices.IndexFunc(layerFiles, func(lf layerFile) bool { return strings.TrimPrefix(lf.path, "/") == name })
		if i < 0 {
			m.problem("top layer: it holds %q, but may hold only its four files in %s", h.Name, Dir)
			continue
		}
		if h.Typeflag != tar.TypeReg {
			m.problem("top layer: %q is not a regular file", h.Name)
			continue
		}
		if h.Size > maxLayerFile {
			return nil, fmt.Errorf("%s: %d bytes, more than %d", layerFiles[i].path, h.Size, maxLayerFile)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", layerFiles[i].path, err)
		}
		*layerFiles[i].get(&f) = data
	}
	// Read to the end, so that a verifying reader checks the digest.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, fmt.Errorf("reading past the tar's end: %w", err)
	}
	for _, lf := range layerFiles {
		if *lf.get(&f) == nil {
			return nil, fmt.Errorf("%s is missing: this is not an image Cloister converted for Gramine", lf.path)
		}
	}
	return &f, nil
}

// cleanName is a tar entry name as a path from the root: "./opt/" is
// "opt".
func cleanName(n string) string {
	for {
		t := strings.TrimPrefix(strings.TrimPrefix(n, "/"), "./")
		if t == n {
			break
		}
		n = t
	}
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

func unixBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// listDiff says how the stored list differs from the one recomputed from
// the layers: the first path where they part.
func listDiff(stored []byte, lower *imagefs.List) string {
	got, err := imagefs.ParseList(stored)
	if err != nil {
		return fmt.Sprintf("it is not a trusted-file list (%v)", err)
	}
	a, b := slices.Collect(got.All()), slices.Collect(lower.All())
	for i := 0; ; i++ {
		switch {
		case i == len(a) && i == len(b):
			return "they differ"
		case i == len(a):
			return fmt.Sprintf("%q is not listed", b[i].Path)
		case i == len(b):
			return fmt.Sprintf("%q is listed but not in the layers", a[i].Path)
		case a[i].Path < b[i].Path:
			return fmt.Sprintf("%q is listed but not in the layers", a[i].Path)
		case a[i].Path > b[i].Path:
			return fmt.Sprintf("%q is not listed", b[i].Path)
		case a[i] != b[i]:
			return fmt.Sprintf("%q is listed as %s, but the layers have %s", a[i].Path, describe(a[i]), describe(b[i]))
		}
	}
}

func describe(e imagefs.Entry) string {
	switch e.Type {
	case imagefs.TypeRegular:
		return fmt.Sprintf("a file of mode %04o, %d bytes, sha256 %x", unixBits(e.Mode), e.Size, e.SHA256)
	case imagefs.TypeDir:
		return fmt.Sprintf("a directory of mode %04o", unixBits(e.Mode))
	case imagefs.TypeSymlink:
		return fmt.Sprintf("a symlink to %q", e.Target)
	}
	return e.Type.String()
}

// checkSigStruct compares the SIGSTRUCT with the recomputed measurement
// and the fields Gramine's signer derives from the manifest.
func checkSigStruct(m *Measured, sig *sgx.SigStruct, g *gramine.Measurement) {
	if sig.EnclaveHash != m.MRENCLAVE {
		m.problem("SIGSTRUCT: its ENCLAVEHASH is %x, but the recomputed MRENCLAVE is %x", sig.EnclaveHash, m.MRENCLAVE)
	}
	var date time.Time
	if d := sig.DateString(); d != "" {
		date, _ = time.Parse(time.DateOnly, d)
	}
	want := g.SigStructFields(date)
	if sig.Attributes != want.Attributes {
		m.problem("SIGSTRUCT: its ATTRIBUTES are %x, but the manifest's are %x", sig.Attributes, want.Attributes)
	}
	if sig.AttributeMask != want.AttributeMask {
		m.problem("SIGSTRUCT: its ATTRIBUTEMASK is %x, want %x", sig.AttributeMask, want.AttributeMask)
	}
	if sig.MiscSelect != want.MiscSelect || sig.MiscMask != want.MiscMask {
		m.problem("SIGSTRUCT: MISCSELECT/MISCMASK are %#x/%#x, want %#x/%#x", sig.MiscSelect, sig.MiscMask, want.MiscSelect, want.MiscMask)
	}
	if sig.ISVProdID != want.ISVProdID || sig.ISVSVN != want.ISVSVN {
		m.problem("SIGSTRUCT: ISVPRODID/ISVSVN are %d/%d, but the Gramine manifest has %d/%d", sig.ISVProdID, sig.ISVSVN, want.ISVProdID, want.ISVSVN)
	}
}

// checkLabels compares the labels with the recomputed values; a value
// that could not be recomputed is not compared (its problem is reported
// already).
func checkLabels(m *Measured, measured, signed bool) {
	want := map[string]string{LabelEnclave: EnclaveGramineSGX}
	if measured {
		want[LabelMRENCLAVE] = hex.EncodeToString(m.MRENCLAVE[:])
	}
	if signed {
		want[LabelMRSIGNER] = hex.EncodeToString(m.MRSIGNER[:])
		want[LabelISVProdID] = strconv.Itoa(int(m.ISVProdID))
		want[LabelISVSVN] = strconv.Itoa(int(m.ISVSVN))
	}
	for _, k := range []string{LabelMRENCLAVE, LabelMRSIGNER, LabelISVProdID, LabelISVSVN, LabelEnclave} {
		w, ok := want[k]
		if !ok {
			continue
		}
		switch got, ok := m.Labels[k]; {
		case !ok:
			m.problem("label %s: missing, want %s", k, w)
		case got != w:
			m.problem("label %s: %s, but the recomputed value is %s", k, got, w)
		}
	}
}
