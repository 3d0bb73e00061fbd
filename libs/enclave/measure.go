package enclave

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cloister-cc/cloister/libs/imagefs"
	"github.com/cloister-cc/cloister/libs/sgx"
)

// Files is what the top layer of a converted image holds under
// /opt/cloister. The converter writes it with Tar; MeasureImage reads it
// back.
type Files struct {
	Launcher     []byte
	Manifest     []byte // canonical manifest bytes
	TrustedFiles []byte // the encoded trusted-file list of the other layers
	SigStruct    []byte
	// OptMode is the mode of the layer's opt/ entry. The converter sets it
	// to the mode of the input image's own /opt, so that the layer does
	// not change a directory the trusted-file list records; 0 means 0755.
	OptMode fs.FileMode
}

// Fixed metadata of the top layer's entries: the same Files always give
// the same bytes, so the same input gives the same layer digest.
var (
	layerTime  = time.Unix(0, 0).UTC()
	dirMode    = fs.FileMode(0o755)
	layerFiles = []layerFile{ // in byte order of their paths, as the layer writes them
		{LauncherPath, 0o755, func(f *Files) *[]byte { return &f.Launcher }},
		{ManifestPath, 0o644, func(f *Files) *[]byte { return &f.Manifest }},
		{SigStructPath, 0o644, func(f *Files) *[]byte { return &f.SigStruct }},
		{TrustedFilesPath, 0o644, func(f *Files) *[]byte { return &f.TrustedFiles }},
	}
)

type layerFile struct {
	path string
	mode fs.FileMode
	get  func(*Files) *[]byte
}

// Tar returns the uncompressed tar of the top layer: the directories opt/
// and opt/cloister/ and the four files, in path order, in USTAR format,
// owned by 0:0, with modification time 0 and nothing else that varies.
func (f Files) Tar() ([]byte, error) {
	optMode := f.OptMode.Perm() | f.OptMode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
	if optMode == 0 {
		optMode = dirMode
	}
	size := 5 * 512
	for _, lf := range layerFiles {
		size += 512 + (len(*lf.get(&f))+511)/512*512
	}
	var b bytes.Buffer
	b.Grow(size + 1024)
	tw := tar.NewWriter(&b)
	dirs := []struct {
		name string
		mode fs.FileMode
	}{{strings.TrimPrefix(path.Dir(Dir), "/") + "/", optMode}, {strings.TrimPrefix(Dir, "/") + "/", dirMode}}
	for _, d := range dirs {
		if err := tw.WriteHeader(header(d.name, tar.TypeDir, d.mode, 0)); err != nil {
			return nil, fmt.Errorf("writing %s: %w", d.name, err)
		}
	}
	for _, lf := range layerFiles {
		data := *lf.get(&f)
		name := strings.TrimPrefix(lf.path, "/")
		if err := tw.WriteHeader(header(name, tar.TypeReg, lf.mode, int64(len(data)))); err != nil {
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
	// MRENCLAVE is recomputed from the launcher and manifest of the top
	// layer (zero when the manifest is unusable); MRSIGNER, ISVProdID and
	// ISVSVN are the SIGSTRUCT's.
	MRENCLAVE, MRSIGNER [32]byte
	ISVProdID, ISVSVN   uint16
	// Labels are the image config's cc.cloister.* labels.
	Labels map[string]string
	// Match is true when the trusted-file list, the manifest, the
	// launcher, the SIGSTRUCT, the labels and the entrypoint all agree with
	// each other and with the image's layers.
	Match bool
	// Problems says what disagrees, one sentence each; empty when Match.
	Problems []string
	// Manifest is what the enclave runs and how (nil when unusable): a
	// matching measurement means little until someone has read it.
	Manifest *Manifest
	// Launcher is the digest of the launcher binary in the image.
	Launcher string
}

func (m *Measured) problem(format string, args ...any) {
	m.Problems = append(m.Problems, fmt.Sprintf(format, args...))
}

// Bounds on the files read from the top layer.
const maxLayerFile = 256 << 20

// MeasureImage recomputes the measurement of a converted image without
// trusting the converter: it reads the top layer's /opt/cloister files,
// lists the files of all the other layers itself (imagefs.TrustedFiles,
// which streams each layer once), recomputes MRENCLAVE from the launcher
// and the manifest with the enclave layout, verifies the SIGSTRUCT, and
// compares all of it with the labels and the entrypoint.
//
// A disagreement is a Problem, not an error: the result says what is
// wrong. MeasureImage returns an error only when it cannot measure: the
// image cannot be read, the top layer lacks one of the four files, or a
// lower layer cannot be applied.
func MeasureImage(ctx context.Context, img v1.Image) (*Measured, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	if len(layers) == 0 {
		return nil, errors.New("enclave: the image has no layers, so no " + Dir)
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
	files, optMode, err := readTop(ctx, layers[top], m)
	if err != nil {
		return nil, fmt.Errorf("reading the top layer (%d): %w", top, err)
	}
	lower, err := imagefs.TrustedFiles(ctx, lowerImage{Image: img, layers: layers[:top]})
	if err != nil {
		return nil, fmt.Errorf("listing the files of the other layers: %w", err)
	}

	checkLowerOpt(m, lower, optMode)
	man, err := ParseManifest(files.Manifest)
	m.Manifest, m.Launcher = man, Digest(files.Launcher)
	if err != nil {
		m.problem("manifest: %s: %v", ManifestPath, err)
	}
	// The list leaves out the application's read-write directories.
	var rwDirs []string
	if man != nil {
		rwDirs = man.RWDirs
	}
	if trusted, err := Trusted(lower, rwDirs); err != nil {
		m.problem("manifest: %v", err) // e.g. a read-write /usr would hide programs
	} else {
		lower = trusted
	}
	if want := lower.Encode(); !bytes.Equal(files.TrustedFiles, want) {
		m.problem("trusted-file list: %s does not match the files of the image's other layers: %s", TrustedFilesPath, listDiff(files.TrustedFiles, lower))
	}
	var layout sgx.Layout
	measured := false
	if man != nil {
		if d := Digest(files.TrustedFiles); man.TrustedFiles != d {
			m.problem("trusted-file list: the manifest's trusted_files is %s, but %s has digest %s", man.TrustedFiles, TrustedFilesPath, d)
		}
		if d := Digest(files.Launcher); man.Launcher != d {
			m.problem("launcher: the manifest's launcher is %s, but %s has digest %s", man.Launcher, LauncherPath, d)
		}
		layout = Layout(files.Launcher, files.Manifest, man)
		if mr, err := layout.MRENCLAVE(); err != nil {
			m.problem("enclave layout: %v", err)
		} else {
			m.MRENCLAVE, measured = mr, true
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
		if measured {
			checkSigStruct(m, sig, man, layout)
		}
	}

	checkLabels(m, measured, sig != nil)
	if ep := cfg.Config.Entrypoint; !slices.Equal(ep, Entrypoint) {
		m.problem("entrypoint: the image config's entrypoint is %q, want [%q]", ep, LauncherPath)
	}
	m.Match = len(m.Problems) == 0
	return m, nil
}

// lowerImage is an image reduced to some of its layers, for
// imagefs.TrustedFiles, which needs nothing but Layers.
type lowerImage struct {
	v1.Image
	layers []v1.Layer
}

func (l lowerImage) Layers() ([]v1.Layer, error) { return l.layers, nil }

// readTop reads the top layer, which must hold the directories opt/ and
// opt/cloister/ and the four files and nothing else: anything else is a
// problem; a missing file is an error. It returns the mode of opt/, or nil
// if the layer does not declare it.
func readTop(ctx context.Context, l v1.Layer, m *Measured) (*Files, *fs.FileMode, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, nil, fmt.Errorf("opening: %w", err)
	}
	defer rc.Close()
	optDir, cloisterDir := strings.TrimPrefix(path.Dir(Dir), "/"), strings.TrimPrefix(Dir, "/")
	var (
		f       Files
		optMode *fs.FileMode
		seen    = map[string]bool{}
	)
	tr := tar.NewReader(rc)
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading tar: %w", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name := cleanName(h.Name)
		if seen[name] {
			m.problem("top layer: %q appears twice", h.Name)
		}
		seen[name] = true
		switch name {
		case optDir, cloisterDir:
			if h.Typeflag != tar.TypeDir {
				m.problem("top layer: %q is not a directory", h.Name)
				continue
			}
			if name == optDir {
				mode := fs.FileMode(h.Mode).Perm() | modeBits(h.Mode)
				optMode = &mode
			}
			continue
		}
		i := slices.IndexFunc(layerFiles, func(lf layerFile) bool { return strings.TrimPrefix(lf.path, "/") == name })
		if i < 0 {
			m.problem("top layer: it holds %q, but may hold only %s/, %s/ and its four files", h.Name, path.Dir(Dir), Dir)
			continue
		}
		if h.Typeflag != tar.TypeReg {
			m.problem("top layer: %q is not a regular file", h.Name)
			continue
		}
		if h.Size > maxLayerFile {
			return nil, nil, fmt.Errorf("%s: %d bytes, more than %d", layerFiles[i].path, h.Size, maxLayerFile)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", layerFiles[i].path, err)
		}
		*layerFiles[i].get(&f) = data
	}
	// Read to the end, so that a verifying reader checks the digest.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, nil, fmt.Errorf("reading past the tar's end: %w", err)
	}
	for _, d := range []string{optDir, cloisterDir} {
		if !seen[d] {
			m.problem("top layer: the directory %q is missing", d+"/")
		}
	}
	for _, lf := range layerFiles {
		if *lf.get(&f) == nil {
			return nil, nil, fmt.Errorf("%s is missing: this is not a converted image", lf.path)
		}
	}
	return &f, optMode, nil
}

func modeBits(m int64) fs.FileMode {
	var b fs.FileMode
	if m&0o4000 != 0 {
		b |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		b |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		b |= fs.ModeSticky
	}
	return b
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

// checkLowerOpt checks that the top layer lands where the launcher will
// look and leaves the listed files as they are: /opt, if the other layers
// have it, is a directory with the mode the top layer gives it, and
// nothing of theirs is below /opt/cloister.
func checkLowerOpt(m *Measured, lower *imagefs.List, optMode *fs.FileMode) {
	optDir, cloisterDir := strings.TrimPrefix(path.Dir(Dir), "/"), strings.TrimPrefix(Dir, "/")
	if e, ok := lower.Lookup(optDir); ok {
		switch {
		case e.Type != imagefs.TypeDir:
			m.problem("top layer: the other layers make /%s a %v, which the top layer replaces", optDir, e.Type)
		case optMode != nil && e.Mode != *optMode:
			m.problem("top layer: it gives /%s mode %04o, but the trusted-file list has %04o", optDir, unixBits(*optMode), unixBits(e.Mode))
		}
	}
	if _, ok := lower.Lookup(cloisterDir); ok {
		m.problem("top layer: the other layers already have %s, which the top layer overwrites", Dir)
	}
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
// and the fields a v1 enclave's SIGSTRUCT carries.
func checkSigStruct(m *Measured, sig *sgx.SigStruct, man *Manifest, layout sgx.Layout) {
	if sig.EnclaveHash != m.MRENCLAVE {
		m.problem("SIGSTRUCT: its ENCLAVEHASH is %x, but the recomputed MRENCLAVE is %x", sig.EnclaveHash, m.MRENCLAVE)
	}
	want := SigStructFields(layout, m.MRENCLAVE, man.ISVProdID, man.ISVSVN, sig.Date)
	if sig.Attributes != want.Attributes {
		m.problem("SIGSTRUCT: its ATTRIBUTES are %x, but the layout's are %x", sig.Attributes, want.Attributes)
	}
	if sig.AttributeMask != want.AttributeMask {
		m.problem("SIGSTRUCT: its ATTRIBUTEMASK is %x, want %x", sig.AttributeMask, want.AttributeMask)
	}
	if sig.MiscSelect != want.MiscSelect || sig.MiscMask != want.MiscMask {
		m.problem("SIGSTRUCT: MISCSELECT/MISCMASK are %#x/%#x, want %#x/%#x", sig.MiscSelect, sig.MiscMask, want.MiscSelect, want.MiscMask)
	}
	if sig.ISVProdID != man.ISVProdID || sig.ISVSVN != man.ISVSVN {
		m.problem("SIGSTRUCT: ISVPRODID/ISVSVN are %d/%d, but the manifest has %d/%d", sig.ISVProdID, sig.ISVSVN, man.ISVProdID, man.ISVSVN)
	}
}

// checkLabels compares the labels with the recomputed values; a value
// that could not be recomputed is not compared (its problem is reported
// already).
func checkLabels(m *Measured, measured, signed bool) {
	want := map[string]string{LabelLayout: LayoutV1}
	if measured {
		want[LabelMRENCLAVE] = hex.EncodeToString(m.MRENCLAVE[:])
	}
	if signed {
		want[LabelMRSIGNER] = hex.EncodeToString(m.MRSIGNER[:])
		want[LabelISVProdID] = strconv.Itoa(int(m.ISVProdID))
		want[LabelISVSVN] = strconv.Itoa(int(m.ISVSVN))
	}
	for _, k := range []string{LabelMRENCLAVE, LabelMRSIGNER, LabelISVProdID, LabelISVSVN, LabelLayout} {
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
