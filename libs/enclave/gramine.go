package enclave

import (
	"archive/tar"
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cloister-cc/cloister/libs/gramine"
	"github.com/cloister-cc/cloister/libs/imagefs"
)

// Where a converted image keeps Gramine's runtime, copied from the
// runtime image's RuntimeSourceDir, and the files Gramine's loader needs.
const (
	GramineDir   = Dir + "/gramine"
	LibPALPath   = GramineDir + "/sgx/libpal.so"
	LoaderPath   = GramineDir + "/sgx/loader"
	LibSysDBPath = GramineDir + "/libsysdb.so"
	// RuntimeSourceDir is where Gramine's packages install the runtime,
	// in the Gramine project's images and in any image built on them.
	RuntimeSourceDir = "/usr/lib/x86_64-linux-gnu/gramine"
)

// Runtime is Gramine's runtime as a converted image carries it: the files
// of a Gramine runtime image below RuntimeSourceDir.
type Runtime struct {
	// Ref names the runtime image by digest (repo@sha256:...).
	Ref string
	// StandIn is true for Cloister's stand-in runtime, whose libraries
	// are stand-ins that start no enclave (tests and -dev).
	StandIn bool
	// Files are below GramineDir, in path order, directories included.
	Files []RuntimeFile
}

// RuntimeFile is one entry of the runtime.
type RuntimeFile struct {
	Path string // relative to GramineDir, e.g. "sgx/libpal.so"
	Type byte   // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	Mode fs.FileMode
	Data []byte
	Link string
}

// LabelStandInRuntime marks Cloister's stand-in Gramine runtime image.
const LabelStandInRuntime = "cc.cloister.gramine-runtime.stand-in"

// MaxRuntimeSize bounds the runtime files copied from a runtime image:
// Gramine's are about 30 MiB.
const MaxRuntimeSize = 512 << 20

// LoadRuntime reads the runtime files from a Gramine runtime image: every
// file, directory and symlink below RuntimeSourceDir of its final
// filesystem. The image must hold libpal.so, the loader and libsysdb.so.
func LoadRuntime(img v1.Image, ref string) (*Runtime, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the runtime image's config: %w", err)
	}
	rt := &Runtime{Ref: ref, StandIn: cfg.Config.Labels[LabelStandInRuntime] == "true"}
	rc := mutate.Extract(img)
	defer rc.Close()
	prefix := strings.TrimPrefix(RuntimeSourceDir, "/") + "/"
	byPath := map[string]int{}
	var total int64
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the runtime image: %w", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		rel, ok := strings.CutPrefix(name+"/", prefix)
		if !ok || rel == "" {
			continue
		}
		rel = strings.TrimSuffix(rel, "/")
		f := RuntimeFile{Path: rel, Type: h.Typeflag, Mode: fs.FileMode(h.Mode).Perm()}
		switch h.Typeflag {
		case tar.TypeReg:
			if total += h.Size; total > MaxRuntimeSize {
				return nil, fmt.Errorf("the runtime below %s is larger than %d MiB", RuntimeSourceDir, MaxRuntimeSize>>20)
			}
			if f.Data, err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("reading %s: %w", name, err)
			}
		case tar.TypeDir:
		case tar.TypeSymlink:
			f.Link = h.Linkname
		case tar.TypeLink: // a hard link: a copy of what it links to
			target := strings.TrimPrefix(path.Clean("/"+h.Linkname), "/")
			t, ok := strings.CutPrefix(target, prefix)
			i, found := byPath[t]
			if !ok || !found || rt.Files[i].Type != tar.TypeReg {
				return nil, fmt.Errorf("%s: a hard link to %s, outside the runtime's files", name, h.Linkname)
			}
			f.Type, f.Data = tar.TypeReg, rt.Files[i].Data
		default:
			continue // devices and FIFOs have no place in a runtime
		}
		if i, dup := byPath[rel]; dup {
			rt.Files[i] = f
			continue
		}
		byPath[rel] = len(rt.Files)
		rt.Files = append(rt.Files, f)
	}
	slices.SortFunc(rt.Files, func(a, b RuntimeFile) int { return strings.Compare(a.Path, b.Path) })
	for _, need := range []string{LibPALPath, LoaderPath, LibSysDBPath} {
		if _, ok := rt.File(need); !ok {
			return nil, fmt.Errorf("not a Gramine runtime image: it has no %s%s", RuntimeSourceDir, strings.TrimPrefix(need, GramineDir))
		}
	}
	if _, err := gramine.LoadPAL(mustFile(rt, LibPALPath)); err != nil {
		return nil, fmt.Errorf("the runtime's libpal.so: %w", err)
	}
	return rt, nil
}

// File returns the contents of the regular file at p (an absolute path
// below GramineDir).
func (rt *Runtime) File(p string) ([]byte, bool) {
	rel, ok := strings.CutPrefix(p, GramineDir+"/")
	if !ok {
		return nil, false
	}
	i, found := slices.BinarySearchFunc(rt.Files, rel, func(f RuntimeFile, r string) int { return strings.Compare(f.Path, r) })
	if !found || rt.Files[i].Type != tar.TypeReg {
		return nil, false
	}
	return rt.Files[i].Data, true
}

func mustFile(rt *Runtime, p string) []byte {
	b, _ := rt.File(p)
	return b
}

// RuntimeLayer returns the uncompressed tar of the layer that every image
// of a deployment shares (WriteRuntimeLayer).
func RuntimeLayer(rt *Runtime, launcher []byte) ([]byte, error) {
	var b bytes.Buffer
	if _, err := WriteRuntimeLayer(&b, rt, launcher); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteRuntimeLayer writes the uncompressed tar of the layer that every
// image of a deployment shares: the directory /opt/cloister, the runtime
// below GramineDir and the launcher, in path order, owned by 0:0 with
// modification time 0. The same runtime and launcher give the same bytes.
// It does not touch /opt itself, which keeps the input's mode. It returns
// the entries it wrote, each file's with its SHA-256, for listing the
// layer without reading it again (imagefs.ListedLayer).
func WriteRuntimeLayer(w io.Writer, rt *Runtime, launcher []byte) ([]imagefs.LayerEntry, error) {
	if len(launcher) == 0 {
		return nil, errors.New("enclave: no launcher binary")
	}
	tw := tar.NewWriter(w)
	var entries []imagefs.LayerEntry
	write := func(name string, typ byte, mode fs.FileMode, data []byte, link string) error {
		h := header(strings.TrimPrefix(name, "/"), typ, mode, int64(len(data)))
		if typ == tar.TypeDir {
			h.Name += "/"
		}
		h.Linkname = link
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		e := imagefs.LayerEntry{Header: *h}
		if typ == tar.TypeReg {
			e.SHA256 = sha256.Sum256(data)
		}
		entries = append(entries, e)
		return nil
	}
	if err := write(Dir, tar.TypeDir, dirMode, nil, ""); err != nil {
		return nil, err
	}
	if err := write(GramineDir, tar.TypeDir, dirMode, nil, ""); err != nil {
		return nil, err
	}
	for _, f := range rt.Files {
		if err := write(GramineDir+"/"+f.Path, f.Type, f.Mode, f.Data, f.Link); err != nil {
			return nil, err
		}
	}
	if err := write(LauncherPath, tar.TypeReg, 0o755, launcher, ""); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing the runtime layer: %w", err)
	}
	return entries, nil
}

// StandInRuntimeImage is Cloister's stand-in for a Gramine runtime image,
// labelled as such, for tests and `cloister server -dev` where Gramine's
// own image cannot be had: libpal.so and libsysdb.so are gramine.StandInELF
// libraries that start no enclave, and the loader is a script that says
// so. A converted image measures and attests in simulation with it just
// as with Gramine's runtime; on an SGX host it refuses to start.
func StandInRuntimeImage() (v1.Image, error) {
	loader := "#!/bin/sh\necho 'Cloister stand-in Gramine runtime: this loader cannot start an SGX enclave; convert the image with a real Gramine runtime (--gramine-image)' >&2\nexit 70\n"
	src := strings.TrimPrefix(RuntimeSourceDir, "/")
	var dirs []string
	for d := src; d != "."; d = path.Dir(d) {
		dirs = append([]string{d}, dirs...)
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, d := range append(dirs, src+"/sgx") {
		if err := tw.WriteHeader(header(d+"/", tar.TypeDir, dirMode, 0)); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name string
		mode fs.FileMode
		data []byte
	}{
		{src + "/libsysdb.so", 0o644, gramine.StandInELF("libsysdb.so")},
		{src + "/sgx/libpal.so", 0o644, gramine.StandInELF("libpal.so")},
		{src + "/sgx/loader", 0o755, []byte(loader)},
	} {
		if err := tw.WriteHeader(header(f.name, tar.TypeReg, f.mode, int64(len(f.data)))); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := b.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Labels = map[string]string{LabelStandInRuntime: "true",
		"org.opencontainers.image.description": "Cloister's stand-in for a Gramine runtime image: for tests and -dev only; it cannot start an SGX enclave"}
	return mutate.ConfigFile(img, cf)
}

// GramineInputs are what the Gramine manifest of a converted image is made
// from, besides the launcher's manifest.
type GramineInputs struct {
	// Listed is the trusted-file list of the image's files below the top
	// layer (the input's and the runtime layer's), already without the
	// read-write directories and untracked paths (Trusted).
	Listed *imagefs.List
	// Config and TrustedFiles are the bytes of ManifestPath and
	// TrustedFilesPath, which the top layer holds next to the Gramine
	// manifest: listed as trusted files, they are bound to MRENCLAVE.
	Config, TrustedFiles []byte
}

// MaxThreads bounds an application's threads: sgx.max_threads.
const MaxThreads = 1024

// TmpDir is the scratch directory every enclave has: an in-enclave tmpfs.
const TmpDir = "/tmp"

// launcherEnv are the variables the launcher itself reads from the host.
var launcherEnv = []string{"NODE_AGENT_BASE_URL"}

// hostFiles are what the container runtime writes into /etc: outside the
// measurement, readable by the enclave as Gramine's allowed files.
var hostFiles = []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}

// Gramine returns the Gramine manifest of a converted image: the launcher
// as libos.entrypoint, Gramine's libsysdb.so as loader.entrypoint, the
// argument policy (the launcher's fixed "--", or the host's command line
// when the application takes arguments), the environment (fixed values
// and pass-through names, the launcher's own included), a tmpfs at /tmp
// and at the directories of the key and certificate, the read-write
// directories mounted from the host and allowed, the enclave's size,
// threads, debug and ISV values, DCAP attestation and every listed regular
// file with its SHA-256.
func Gramine(m *Manifest, in GramineInputs) (*gramine.Manifest, error) {
	libsysdb, ok := in.Listed.Lookup(strings.TrimPrefix(LibSysDBPath, "/"))
	if !ok || libsysdb.Type != imagefs.TypeRegular {
		return nil, fmt.Errorf("%w: the image has no %s: the runtime layer is missing", ErrManifest, LibSysDBPath)
	}
	g := &gramine.Manifest{
		LibOSEntrypoint:   LauncherPath,
		LoaderEntrypoint:  gramine.File{URI: gramine.URI(LibSysDBPath), SHA256: libsysdb.SHA256},
		EnclaveSize:       m.MemorySize,
		MaxThreads:        int(m.Threads),
		Debug:             m.Debug,
		ISVProdID:         m.ISVProdID,
		ISVSVN:            m.ISVSVN,
		RemoteAttestation: "dcap",
	}
	if m.AllowCmdlineArgs {
		g.UseCmdlineArgv = true
	} else {
		g.Argv = slices.Clone(Entrypoint)
	}
	for _, e := range m.Env {
		g.Env = append(g.Env, gramine.Env{Name: e.Name, Value: e.Value})
	}
	// A fixed value wins over the host's, as the launcher applies them.
	for _, name := range slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(m.PassthroughEnv), launcherEnv...)))) {
		if !slices.ContainsFunc(g.Env, func(e gramine.Env) bool { return e.Name == name }) {
			g.Env = append(g.Env, gramine.Env{Name: name, Passthrough: true})
		}
	}

	tmpfs := []string{}
	if !slices.Contains(m.RWDirs, TmpDir) {
		tmpfs = append(tmpfs, TmpDir)
	}
	var secretDirs []string
	if c := m.Certificate; c != nil {
		secretDirs = append(secretDirs, c.KeyPath, c.CertPath)
	}
	if m.Secrets != nil {
		secretDirs = append(secretDirs, m.Secrets.Dir+"/secret")
	}
	for _, p := range secretDirs {
		d := path.Dir(p)
		if err := secretDir(d, m.UnmeasuredDirs(), in.Listed); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrManifest, d, err)
		}
		if !slices.Contains(tmpfs, d) {
			tmpfs = append(tmpfs, d)
		}
	}
	for _, d := range tmpfs {
		g.Mounts = append(g.Mounts, gramine.Mount{Path: d, Type: gramine.MountTmpfs})
	}
	for _, d := range m.RWDirs {
		g.Mounts = append(g.Mounts, gramine.Mount{Path: d, Type: gramine.MountChroot, URI: gramine.URI(d)})
		g.AllowedFiles = append(g.AllowedFiles, gramine.URI(d+"/"))
	}
	// An encrypted volume is the host's directory, read and written
	// through Gramine's protected files with the volume's key.
	for _, v := range m.Volumes {
		if err := mountDir(v.Path, in.Listed); err != nil {
			return nil, fmt.Errorf("%w: volume %s: %v", ErrManifest, v.Path, err)
		}
		g.Mounts = append(g.Mounts, gramine.Mount{Path: v.Path, Type: gramine.MountEncrypted, URI: gramine.URI(v.Path), KeyName: v.KeyName})
	}
	for _, f := range hostFiles {
		g.AllowedFiles = append(g.AllowedFiles, gramine.URI(f))
	}

	files, err := imageFiles(in.Listed)
	if err != nil {
		return nil, err
	}
	g.TrustedFiles = append(files,
		gramine.File{URI: gramine.URI(ManifestPath), SHA256: sha256.Sum256(in.Config)},
		gramine.File{URI: gramine.URI(TrustedFilesPath), SHA256: sha256.Sum256(in.TrustedFiles)})
	gramine.SortFiles(g.TrustedFiles)
	return g, nil
}

// MaxTrustedFiles bounds the trusted files of a Gramine manifest: the
// files of an image and their paths through symlinks.
const MaxTrustedFiles = 1 << 20

// imageFiles are the trusted files of an image's listed files: every
// regular file, and every path through a symlink that leads to one.
// Gramine's file system has no symlinks of its own: the host resolves
// them, and Gramine checks a file by the path it was opened with, so
// /bin/sh in an image whose /bin links to usr/bin is a trusted file of
// its own, with /usr/bin/sh's hash.
func imageFiles(list *imagefs.List) ([]gramine.File, error) {
	var files []gramine.File
	seen := map[string]bool{}
	add := func(p string, sum [32]byte) error {
		if seen[p] {
			return nil
		}
		if len(files) >= MaxTrustedFiles {
			return fmt.Errorf("%w: more than %d trusted files, symlinked paths included", ErrImage, MaxTrustedFiles)
		}
		if !utf8.ValidString(p) {
			return fmt.Errorf("%w: the file name %q is not UTF-8, which a Gramine manifest cannot hold", ErrImage, p)
		}
		seen[p] = true
		files = append(files, gramine.File{URI: gramine.URI(p), SHA256: sum})
		return nil
	}
	for e := range list.All() {
		if e.Type == imagefs.TypeRegular {
			if err := add("/"+e.Path, e.SHA256); err != nil {
				return nil, err
			}
		}
	}
	for e := range list.All() {
		if e.Type != imagefs.TypeSymlink {
			continue
		}
		target, ok := resolveListed(list, e.Path)
		switch {
		case !ok:
			continue // dangling, a loop, or out of the list: nothing to open
		case target.Type == imagefs.TypeRegular:
			if err := add("/"+e.Path, target.SHA256); err != nil {
				return nil, err
			}
		case target.Type == imagefs.TypeDir:
			prefix := target.Path + "/"
			for f := range list.All() {
				if f.Type == imagefs.TypeRegular && strings.HasPrefix(f.Path, prefix) {
					if err := add("/"+e.Path+"/"+strings.TrimPrefix(f.Path, prefix), f.SHA256); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	gramine.SortFiles(files)
	return files, nil
}

// resolveListed follows the path p (without its leading "/") through the
// list's symlinks as the kernel would inside the image: a relative target
// from the link's directory, an absolute one from the root, ".." never
// above the root, at most 40 links. It reports false when a component is
// not in the list.
func resolveListed(list *imagefs.List, p string) (imagefs.Entry, bool) {
	const maxLinks = 40
	parts := strings.Split(p, "/")
	cur := ""
	for links := 0; len(parts) > 0; {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if cur != "" {
				cur = path.Dir("/" + cur)[1:]
			}
			continue
		}
		next := c
		if cur != "" {
			next = cur + "/" + c
		}
		e, ok := list.Lookup(next)
		if !ok {
			return imagefs.Entry{}, false
		}
		if e.Type == imagefs.TypeSymlink {
			if links++; links > maxLinks {
				return imagefs.Entry{}, false
			}
			if strings.HasPrefix(e.Target, "/") {
				cur = ""
			}
			parts = append(strings.Split(e.Target, "/"), parts...)
			continue
		}
		if len(parts) > 0 && e.Type != imagefs.TypeDir {
			return imagefs.Entry{}, false
		}
		cur = next
	}
	if cur == "" {
		return imagefs.Entry{}, false
	}
	return list.Lookup(cur)
}

// ErrImage is returned, wrapped, for an image a Gramine manifest cannot
// describe.
var ErrImage = errors.New("enclave: unusable image")

// secretDir checks that d can be an in-enclave tmpfs for the key or the
// certificate: not the root, not a read-write directory nor under one
// (the key would reach the host's disk), and holding no file of the image
// (the mount would hide it).
func secretDir(d string, rwDirs []string, listed *imagefs.List) error {
	if d == "/" || !path.IsAbs(d) {
		return fmt.Errorf("the directory %q cannot be an in-enclave tmpfs; choose a dedicated directory such as /run/cloister", d)
	}
	for _, rw := range rwDirs {
		if under(d, rw) || under(rw, d) {
			return fmt.Errorf("the directory %s is (or holds) the read-write directory %s, so the key would be written to the host's disk; choose another", d, rw)
		}
	}
	return mountDir(d, listed)
}

// mountDir checks that d can be mounted over: no symlink on its path
// (what is written through it would lead anywhere, the host's disk
// included) and no file of the image below it (the mount would hide it).
func mountDir(d string, listed *imagefs.List) error {
	for p := strings.TrimPrefix(d, "/"); p != "." && p != ""; p = path.Dir(p) {
		if e, ok := listed.Lookup(p); ok && e.Type == imagefs.TypeSymlink {
			return fmt.Errorf("the image's /%s is a symlink (to %q), so %s could lead anywhere, the host's disk included; choose a directory the image does not have, such as /run/cloister", p, e.Target, d)
		}
	}
	prefix := strings.TrimPrefix(d, "/") + "/"
	for e := range listed.All() {
		if strings.HasPrefix(e.Path, prefix) && e.Type != imagefs.TypeDir {
			return fmt.Errorf("the directory %s holds the image's /%s, which the mount over it would hide; choose a dedicated directory such as /run/cloister", d, e.Path)
		}
	}
	return nil
}

// Sealed is what Seal makes: the top layer's files and the enclave's
// measurement.
type Sealed struct {
	Files       Files
	Measurement *gramine.Measurement
}

// Seal makes the top layer of a converted image: from the launcher's
// manifest (without its digests) and the list of every file below the top
// layer (the input's and the runtime layer's), it writes the trusted-file
// list, the launcher's manifest, the Gramine manifest, measures it with
// the runtime's libpal.so as Gramine does, and signs the SIGSTRUCT with
// key, dated date. Errors wrapping ErrManifest are the application's to
// fix (an enclave size that is not a power of two, a key directory that
// would hide files...).
func Seal(man Manifest, listed *imagefs.List, libpal []byte, key *rsa.PrivateKey, date time.Time) (*Sealed, error) {
	if err := gramine.ValidateSize(man.MemorySize); err != nil {
		return nil, fmt.Errorf("%w: memory_size: %v", ErrManifest, err)
	}
	if man.Threads < 1 || man.Threads > MaxThreads {
		return nil, fmt.Errorf("%w: threads: %d, want 1 to %d", ErrManifest, man.Threads, MaxThreads)
	}
	trusted, err := Trusted(listed, man.UnmeasuredDirs())
	if err != nil {
		return nil, fmt.Errorf("%w: read-write directory %v", ErrManifest, err)
	}
	launcher, ok := trusted.Lookup(strings.TrimPrefix(LauncherPath, "/"))
	if !ok || launcher.Type != imagefs.TypeRegular {
		return nil, fmt.Errorf("enclave: the image has no %s: the runtime layer is missing", LauncherPath)
	}
	list := trusted.Encode()
	man.TrustedFiles, man.Launcher = Digest(list), "sha256:"+hex.EncodeToString(launcher.SHA256[:])
	config, err := man.Encode()
	if err != nil {
		return nil, err
	}
	g, err := Gramine(&man, GramineInputs{Listed: trusted, Config: config, TrustedFiles: list})
	if err != nil {
		return nil, err
	}
	gb, err := g.Marshal()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	m, err := gramine.Measure(gb, libpal)
	if errors.Is(err, gramine.ErrTooSmall) {
		return nil, fmt.Errorf("%w: memory_size %s is too small for %d threads: each thread takes %d KiB (stacks, TLS, SSA), and the runtime and manifest need room too; raise memory_size or lower threads",
			ErrManifest, gramine.FormatSize(man.MemorySize), man.Threads, gramine.ThreadFootprint>>10)
	}
	if err != nil {
		return nil, fmt.Errorf("measuring the enclave: %w", err)
	}
	sig, err := m.Sign(key, date)
	if err != nil {
		return nil, fmt.Errorf("signing the SIGSTRUCT: %w", err)
	}
	return &Sealed{Files: Files{Config: config, TrustedFiles: list, Manifest: gb, SigStruct: sig}, Measurement: m}, nil
}

// StandInRuntime is the runtime of StandInRuntimeImage, named by its
// digest under repo (e.g. "127.0.0.1:5000/cloister/gramine-runtime-standin").
func StandInRuntime(repo string) (*Runtime, error) {
	img, err := StandInRuntimeImage()
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	return LoadRuntime(img, repo+"@"+d.String())
}
