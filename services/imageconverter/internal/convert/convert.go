// Package convert turns an ordinary container image into a Gramine SGX
// enclave image (docs/enclave-layout.md, docs/trusted-files.md): it pulls
// the input, lists its final filesystem while streaming every layer once,
// writes the launcher's manifest and the Gramine manifest, measures the
// enclave as Gramine's signer does, signs its SIGSTRUCT, and pushes the
// input's layers unchanged, the runtime layer (the launcher and Gramine's
// runtime, the same for every image) and one small layer with the
// manifests and the signature.
package convert

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/imagefs"
	"github.com/cloister-cc/cloister/libs/sgx"
)

// App is how the enclave runs the application.
type App struct {
	// AppID is the Cloister application's id, written into the manifest
	// for the launcher's certificate request.
	AppID string
	// Entrypoint, if set, replaces the image's ENTRYPOINT, and Args its
	// CMD. Without it the image's ENTRYPOINT runs with Args, or with the
	// image's CMD when Args is empty; an image without ENTRYPOINT runs
	// CMD[0] with Args, or with the rest of CMD.
	Entrypoint       []string
	Args             []string
	AllowCmdlineArgs bool
	// Env is fixed; it overrides the image's variables of the same name.
	Env            []enclave.EnvVar
	PassthroughEnv []string
	RWDirs         []string
	MemorySize     uint64
	Threads        uint32
	ISVProdID      uint16
	ISVSVN         uint16
	Debug          bool
	Certificate    *enclave.Certificate // nil: none
	// Secrets and Volumes are how the enclave takes the secrets and volume
	// keys delivered with its certificate.
	Secrets *enclave.Secrets // nil: none
	Volumes []enclave.Volume
}

// Request is one conversion.
type Request struct {
	// Input is the image to convert, by tag or digest; an index resolves
	// to its linux/amd64 image.
	Input     string
	InputAuth authn.Authenticator // nil: anonymous
	// Output is the tag to push, e.g. registry.example.com/team/app-sgx:1.
	Output     string
	OutputAuth authn.Authenticator // nil: anonymous
	App        App
	// Launcher is the launcher binary, placed at enclave.LauncherPath.
	Launcher []byte
	// Runtime is Gramine's runtime, copied to enclave.GramineDir.
	Runtime *enclave.Runtime
	// Signer is the account's enclave signing key: RSA-3072, e = 3.
	Signer *rsa.PrivateKey
	// Now is the SIGSTRUCT's date (the zero time: time.Now). Nothing else
	// depends on it: the same input gives the same MRENCLAVE whatever the
	// day, and the same image digest on the same day.
	Now time.Time
	// Progress, if set, is called often, from one goroutine at a time and
	// never after Convert returns; it must be cheap.
	Progress func(Progress)
	// Options are appended to the go-containerregistry options Convert
	// sets (context, auth, platform, progress), e.g. WithTransport.
	Options []remote.Option
}

// The phases of a conversion, in order.
const (
	// PhasePull streams the input's layers once, listing their files
	// while they download: Bytes and TotalBytes count compressed bytes.
	PhasePull = "pull"
	// PhaseMeasure builds the manifests, MRENCLAVE, the SIGSTRUCT and the
	// top layer: one step (Layers 0 then 1 of 1).
	PhaseMeasure = "measure"
	// PhasePush writes the output: Bytes and TotalBytes count every blob,
	// mounted and existing ones included; Layers reaches TotalLayers when
	// the push is done.
	PhasePush = "push"
)

// Progress is a conversion's progress within its current phase.
type Progress struct {
	Phase       string // PhasePull, PhaseMeasure or PhasePush
	Layers      int    // layers finished in this phase
	TotalLayers int
	Bytes       int64 // bytes done in this phase
	TotalBytes  int64 // when known, else 0
}

// Result is a converted image.
type Result struct {
	Ref                 string // the pushed repository with its digest: repo@sha256:...
	Digest              string // "sha256:..." of the pushed manifest
	MRENCLAVE, MRSIGNER [32]byte
	ISVProdID, ISVSVN   uint16
	Layers              int    // layers of the output image
	Manifest            []byte // the launcher's manifest, canonical bytes
	GramineManifest     []byte // the .manifest.sgx: what MRENCLAVE measures
	Runtime             string // the Gramine runtime image, by digest
	RuntimeStandIn      bool   // the runtime is Cloister's stand-in
}

var linuxAMD64 = v1.Platform{OS: "linux", Architecture: "amd64"}

// historyTime is the Created time of the output's history entry: fixed, so
// that the same input gives the same image digest.
var historyTime = v1.Time{Time: time.Unix(0, 0).UTC()}

// Convert converts r.Input and pushes the result to r.Output. Every
// failure is an *Error whose Reason says what to do about it.
func Convert(ctx context.Context, r Request) (*Result, error) {
	in, out, err := r.check()
	if err != nil {
		return nil, err
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	rep := reporter{fn: r.Progress}
	pullOpts := append([]remote.Option{remote.WithContext(ctx), remote.WithAuth(orAnonymous(r.InputAuth)), remote.WithPlatform(linuxAMD64)}, r.Options...)

	src, err := pull(in, pullOpts)
	if err != nil {
		return nil, err
	}
	mt := types.OCILayer
	if src.mediaType == types.DockerManifestSchema2 {
		mt = types.DockerLayer
	}
	rtLayer, err := runtimeLayer(r.Runtime, r.Launcher, mt)
	if err != nil {
		return nil, err
	}
	list, err := src.walk(ctx, rep, rtLayer)
	if err != nil {
		return nil, err
	}

	rep.send(Progress{Phase: PhaseMeasure, TotalLayers: 1})
	if err := checkOpt(list, r.Runtime); err != nil {
		return nil, err
	}
	m, err := manifestFor(r.App, src.config.Config)
	if err != nil {
		return nil, err
	}
	libpal, _ := r.Runtime.File(enclave.LibPALPath)
	sealed, err := enclave.Seal(m, list, libpal, r.Signer, now)
	if err != nil {
		switch {
		case errors.Is(err, enclave.ErrManifest):
			return nil, &Error{Reason: ReasonInvalidApp, Err: err}
		case errors.Is(err, enclave.ErrImage):
			return nil, &Error{Reason: ReasonInvalidImage, Err: err}
		}
		return nil, &Error{Reason: ReasonInternal, Err: err}
	}
	mrenclave := sealed.Measurement.MRENCLAVE
	mrsigner := sgx.MRSIGNEROf(&r.Signer.PublicKey)
	img, err := src.output(rtLayer, sealed.Files, mrenclave, mrsigner, r.App, r.Runtime, mt)
	if err != nil {
		return nil, err
	}
	rep.send(Progress{Phase: PhaseMeasure, Layers: 1, TotalLayers: 1})

	pushOpts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(orAnonymous(r.OutputAuth))}
	if err := push(out, img, len(src.layers)+2, pushOpts, r.Options, rep); err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, &Error{Reason: ReasonInternal, Err: fmt.Errorf("digest of the output: %w", err)}
	}
	return &Result{
		Ref:             out.Context().Digest(d.String()).String(),
		Digest:          d.String(),
		MRENCLAVE:       mrenclave,
		MRSIGNER:        mrsigner,
		ISVProdID:       r.App.ISVProdID,
		ISVSVN:          r.App.ISVSVN,
		Layers:          len(src.layers) + 2,
		Manifest:        sealed.Files.Config,
		GramineManifest: sealed.Files.Manifest,
		Runtime:         r.Runtime.Ref,
		RuntimeStandIn:  r.Runtime.StandIn,
	}, nil
}

// runtimeLayers caches the runtime layer, which is the same for every
// conversion with the same runtime, launcher and media type: building and
// compressing it each time would cost more than converting a small image.
var runtimeLayers sync.Map // runtimeKey → *sharedLayer

type runtimeKey struct {
	runtime  *enclave.Runtime
	launcher [32]byte
	mt       types.MediaType
}

func runtimeLayer(rt *enclave.Runtime, launcher []byte, mt types.MediaType) (*sharedLayer, error) {
	k := runtimeKey{rt, sha256.Sum256(launcher), mt}
	if l, ok := runtimeLayers.Load(k); ok {
		return l.(*sharedLayer), nil
	}
	l, err := newSharedLayer(mt, func(w io.Writer) ([]imagefs.LayerEntry, error) { return enclave.WriteRuntimeLayer(w, rt, launcher) })
	if err != nil {
		return nil, &Error{Reason: ReasonInternal, Err: fmt.Errorf("building the runtime layer: %w", err)}
	}
	if prev, loaded := runtimeLayers.LoadOrStore(k, l); loaded {
		l.close()
		return prev.(*sharedLayer), nil
	}
	return l, nil
}

func (r *Request) check() (name.Reference, name.Tag, error) {
	switch {
	case r.Signer == nil:
		return nil, name.Tag{}, fail(ReasonInternal, "no enclave signing key")
	case len(r.Launcher) == 0:
		return nil, name.Tag{}, fail(ReasonInternal, "no launcher binary")
	case r.Runtime == nil:
		return nil, name.Tag{}, fail(ReasonInternal, "no Gramine runtime")
	}
	in, err := name.ParseReference(r.Input)
	if err != nil {
		return nil, name.Tag{}, fail(ReasonInvalidApp, "input image %q: %w", r.Input, err)
	}
	out, err := name.NewTag(r.Output)
	if err != nil {
		return nil, name.Tag{}, fail(ReasonInvalidApp, "output image %q is not a tag: %w", r.Output, err)
	}
	return in, out, nil
}

func orAnonymous(a authn.Authenticator) authn.Authenticator {
	if a == nil {
		return authn.Anonymous
	}
	return a
}

// source is the pulled input image: its manifest and config are read,
// its layers not yet.
type source struct {
	ref       name.Reference
	img       v1.Image
	mediaType types.MediaType // of the manifest, as its content says
	config    *v1.ConfigFile
	layers    []v1.Layer
	sizes     []int64
}

// pull fetches the input's manifest, resolving an index to its
// linux/amd64 image, and its config, and checks that every part is a
// kind this converter reads.
func pull(ref name.Reference, opts []remote.Option) (*source, error) {
	what := "pulling " + ref.String()
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, registryError(err, ReasonInvalidImage, what)
	}
	mt, err := manifestType(ref, desc)
	if err != nil {
		return nil, err
	}
	if mt.IsIndex() {
		child, err := platformChild(desc.Manifest)
		if err != nil {
			return nil, err
		}
		index := ref
		ref = ref.Context().Digest(child.String())
		what = fmt.Sprintf("pulling %s (linux/amd64 of %s)", ref, index)
		if desc, err = remote.Get(ref, opts...); err != nil {
			return nil, registryError(err, ReasonInvalidImage, what)
		}
		if mt, err = manifestType(ref, desc); err != nil {
			return nil, err
		}
		if !mt.IsImage() {
			return nil, fail(ReasonUnsupportedMedia, "%s: the index's linux/amd64 entry is a %s, not an image", what, mt)
		}
	}
	img, err := desc.Image()
	if err != nil {
		return nil, registryError(err, ReasonInvalidImage, what)
	}
	if mt != desc.MediaType {
		// The registry sent another Content-Type than the manifest has.
		img = mutate.MediaType(img, mt)
	}
	s := &source{ref: ref, img: img, mediaType: mt}
	m, err := img.Manifest()
	if err != nil {
		return nil, registryError(err, ReasonInvalidImage, what)
	}
	if !m.Config.MediaType.IsConfig() {
		return nil, fail(ReasonUnsupportedMedia, "%s: its config has media type %q: it is an artifact, not a container image", what, m.Config.MediaType)
	}
	for i, l := range m.Layers {
		if !readableLayer(l.MediaType) {
			return nil, fail(ReasonUnsupportedMedia, "%s: layer %d (%s) has media type %q; layers must be tar, tar+gzip or tar+zstd", what, i, l.Digest, l.MediaType)
		}
		s.sizes = append(s.sizes, l.Size)
	}
	if s.config, err = img.ConfigFile(); err != nil {
		return nil, registryError(err, ReasonInvalidImage, what+": reading its config")
	}
	if c := s.config; (c.OS != "" && c.OS != linuxAMD64.OS) || (c.Architecture != "" && c.Architecture != linuxAMD64.Architecture) {
		return nil, fail(ReasonNoPlatform, "%s: the image is for %s/%s; the enclave runs linux/amd64", what, c.OS, c.Architecture)
	}
	if d, l := len(s.config.RootFS.DiffIDs), len(m.Layers); d != l {
		return nil, fail(ReasonInvalidImage, "%s: its config lists %d layers and its manifest %d", what, d, l)
	}
	if s.layers, err = img.Layers(); err != nil {
		return nil, registryError(err, ReasonInvalidImage, what)
	}
	return s, nil
}

// manifestType is the media type of a fetched manifest. Registries that
// send a wrong Content-Type exist: an unknown one is checked against the
// manifest's own mediaType, or its shape when it has none (OCI allows it).
func manifestType(ref name.Reference, d *remote.Descriptor) (types.MediaType, error) {
	mt := d.MediaType
	if mt.IsImage() || mt.IsIndex() {
		return mt, nil
	}
	var probe struct {
		SchemaVersion int              `json:"schemaVersion"`
		MediaType     types.MediaType  `json:"mediaType"`
		Config        *json.RawMessage `json:"config"`
		Manifests     *json.RawMessage `json:"manifests"`
	}
	_ = json.Unmarshal(d.Manifest, &probe)
	switch {
	case mt.IsSchema1() || probe.SchemaVersion == 1:
		return "", fail(ReasonUnsupportedMedia, "%s is a Docker schema 1 image (%s), which is not supported: push it again with a current Docker, buildah or crane", ref, mt)
	case probe.MediaType.IsImage() || probe.MediaType.IsIndex():
		return probe.MediaType, nil
	case probe.MediaType == "" && probe.SchemaVersion == 2 && probe.Config != nil:
		return types.OCIManifestSchema1, nil
	case probe.MediaType == "" && probe.SchemaVersion == 2 && probe.Manifests != nil:
		return types.OCIImageIndex, nil
	}
	return "", fail(ReasonUnsupportedMedia, "%s has media type %q, which is not an OCI or Docker v2 image or index", ref, mt)
}

func readableLayer(mt types.MediaType) bool {
	switch mt {
	case types.DockerLayer, types.DockerUncompressedLayer, types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer:
		return true
	}
	return false
}

// platformChild returns the digest of an index's linux/amd64 image,
// preferring one without a variant; the error names the platforms the
// index has.
func platformChild(raw []byte) (v1.Hash, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Hash{}, fail(ReasonInvalidImage, "reading the image index: %w", err)
	}
	var (
		have  []string
		found *v1.Descriptor
	)
	for i, m := range idx.Manifests {
		p := m.Platform
		if p == nil || (p.OS == "unknown" && p.Architecture == "unknown") { // attestations
			continue
		}
		if p.OS == linuxAMD64.OS && p.Architecture == linuxAMD64.Architecture && (found == nil || found.Platform.Variant != "" && p.Variant == "") {
			found = &idx.Manifests[i]
		}
		s := p.OS + "/" + p.Architecture
		if p.Variant != "" {
			s += "/" + p.Variant
		}
		if !slices.Contains(have, s) {
			have = append(have, s)
		}
	}
	if found == nil {
		if len(have) == 0 {
			return v1.Hash{}, fail(ReasonNoPlatform, "the image index names no platforms; it needs a linux/amd64 image")
		}
		return v1.Hash{}, fail(ReasonNoPlatform, "the image index has no linux/amd64 image, only %s", strings.Join(have, ", "))
	}
	return found.Digest, nil
}

// checkOpt checks that the runtime layer landed in /opt/cloister as it
// is, on top of the input: the input's /opt, if it has one, is a
// directory, and the input has nothing in /opt/cloister (a converted image
// is not converted again), so that everything there is the runtime
// layer's.
func checkOpt(list *imagefs.List, rt *enclave.Runtime) error {
	if e, ok := list.Lookup("opt"); !ok || e.Type != imagefs.TypeDir {
		return fail(ReasonInvalidImage, "/opt is a %v in the input image; the enclave's files go to %s, so /opt must be a directory", e.Type, enclave.Dir)
	}
	ours := map[string]bool{strings.TrimPrefix(enclave.Dir, "/"): true, strings.TrimPrefix(enclave.GramineDir, "/"): true,
		strings.TrimPrefix(enclave.LauncherPath, "/"): true}
	for _, f := range rt.Files {
		ours[strings.TrimPrefix(enclave.GramineDir, "/")+"/"+f.Path] = true
	}
	prefix := strings.TrimPrefix(enclave.Dir, "/") + "/"
	for e := range list.All() {
		if strings.HasPrefix(e.Path, prefix) && !ours[e.Path] {
			return fail(ReasonInvalidImage, "the input image already has /%s in %s: convert the original image, not a converted one", e.Path, enclave.Dir)
		}
	}
	return nil
}

// manifestFor builds the launcher's manifest from the app and the image
// config; enclave.Seal adds its digests.
func manifestFor(app App, cfg v1.Config) (enclave.Manifest, error) {
	ep, args := app.Entrypoint, app.Args
	if len(ep) == 0 {
		switch {
		case len(cfg.Entrypoint) > 0:
			ep = cfg.Entrypoint
			if len(args) == 0 {
				args = cfg.Cmd
			}
		case len(cfg.Cmd) > 0:
			ep = cfg.Cmd[:1]
			if len(args) == 0 {
				args = cfg.Cmd[1:]
			}
		default:
			return enclave.Manifest{}, fail(ReasonInvalidImage, "the image has neither ENTRYPOINT nor CMD: set the application's entrypoint")
		}
	}

	env := map[string]string{}
	for _, kv := range cfg.Env {
		if k, v, _ := strings.Cut(kv, "="); k != "" {
			env[k] = v
		}
	}
	fixed := map[string]bool{}
	for _, e := range app.Env {
		switch {
		case e.Name == "" || strings.ContainsAny(e.Name, "=\x00"):
			return enclave.Manifest{}, fail(ReasonInvalidApp, "environment variable name %q is empty or holds '=' or NUL", e.Name)
		case fixed[e.Name]:
			return enclave.Manifest{}, fail(ReasonInvalidApp, "environment variable %s is set twice", e.Name)
		}
		fixed[e.Name] = true
		env[e.Name] = e.Value
	}
	vars := make([]enclave.EnvVar, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		vars = append(vars, enclave.EnvVar{Name: k, Value: env[k]})
	}

	return enclave.Manifest{
		AppID:            app.AppID,
		Entrypoint:       slices.Clone(ep),
		Args:             slices.Clone(args),
		AllowCmdlineArgs: app.AllowCmdlineArgs,
		Env:              vars,
		PassthroughEnv:   slices.Clone(app.PassthroughEnv),
		WorkingDir:       cfg.WorkingDir,
		User:             cfg.User,
		RWDirs:           slices.Clone(app.RWDirs),
		MemorySize:       app.MemorySize,
		Threads:          app.Threads,
		ISVProdID:        app.ISVProdID,
		ISVSVN:           app.ISVSVN,
		Debug:            app.Debug,
		Certificate:      app.Certificate,
		Secrets:          app.Secrets,
		Volumes:          slices.Clone(app.Volumes),
	}, nil
}

// output is the input with the runtime layer and the top layer on top,
// the launcher as entrypoint and the measurement and the runtime in the
// labels; the rest of the config (env, working dir, user, created...) is
// the input's.
func (s *source) output(rtLayer *sharedLayer, files enclave.Files, mrenclave, mrsigner [32]byte, app App, rt *enclave.Runtime, mt types.MediaType) (v1.Image, error) {
	raw, err := files.Tar()
	if err != nil {
		return nil, &Error{Reason: ReasonInternal, Err: err}
	}
	layer, err := newLayer(raw, mt)
	if err != nil {
		return nil, &Error{Reason: ReasonInternal, Err: err}
	}

	cf := s.config.DeepCopy()
	cf.Config.Entrypoint = enclave.Entrypoint
	cf.Config.Cmd = nil
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels[enclave.LabelMRENCLAVE] = hex.EncodeToString(mrenclave[:])
	cf.Config.Labels[enclave.LabelMRSIGNER] = hex.EncodeToString(mrsigner[:])
	cf.Config.Labels[enclave.LabelISVProdID] = strconv.Itoa(int(app.ISVProdID))
	cf.Config.Labels[enclave.LabelISVSVN] = strconv.Itoa(int(app.ISVSVN))
	cf.Config.Labels[enclave.LabelEnclave] = enclave.EnclaveGramineSGX
	cf.Config.Labels[enclave.LabelRuntime] = rt.Ref
	delete(cf.Config.Labels, enclave.LabelStandInRuntime)
	if rt.StandIn {
		cf.Config.Labels[enclave.LabelStandInRuntime] = "true"
	}

	base, err := mutate.ConfigFile(s.img, cf)
	if err != nil {
		return nil, &Error{Reason: ReasonInternal, Err: fmt.Errorf("setting the config: %w", err)}
	}
	img, err := mutate.Append(base,
		mutate.Addendum{Layer: rtLayer, History: v1.History{Created: historyTime, CreatedBy: "cloister image convert",
			Comment: "Cloister's launcher and Gramine's runtime (" + rt.Ref + ") in " + enclave.Dir}},
		mutate.Addendum{Layer: layer, History: v1.History{Created: historyTime, CreatedBy: "cloister image convert",
			Comment: "the enclave's manifests and SIGSTRUCT in " + enclave.Dir}})
	if err != nil {
		return nil, &Error{Reason: ReasonInternal, Err: fmt.Errorf("adding the enclave layers: %w", err)}
	}
	return img, nil
}
