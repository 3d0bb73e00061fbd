// Package enclave is what a converted image carries under /opt/cloister
// and how it is measured: Gramine's runtime and the launcher, the
// launcher's manifest, the trusted-file list, the Gramine manifest that
// binds them to MRENCLAVE, its SIGSTRUCT, the labels
// (docs/enclave-layout.md). The converter writes these; the launcher and
// `cloister image measure` read them.
package enclave

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/cloister-cc/cloister/libs/imagefs"
)

// Where a converted image keeps the enclave's parts.
const (
	Dir          = "/opt/cloister"
	LauncherPath = Dir + "/launcher"
	// ManifestPath is the launcher's manifest: what it runs and the
	// certificate it obtains.
	ManifestPath     = Dir + "/manifest.json"
	TrustedFilesPath = Dir + "/trusted-files"
	// App is the application's name for Gramine's loader, which reads
	// App.manifest.sgx and App.sig.
	App                 = Dir + "/app"
	GramineManifestPath = App + ".manifest.sgx"
	SigStructPath       = App + ".sig"
)

// Entrypoint is a converted image's entrypoint: the launcher, then "--",
// so that every argument of `docker run IMAGE ARGS...` is the
// application's (the launcher decides whether the manifest allows them).
var Entrypoint = []string{LauncherPath, "--"}

// Untracked are the paths the container runtime provides or replaces
// (/proc, /sys, /dev, and the files it writes into /etc): never in the
// trusted-file list, and not checked by the launcher.
var Untracked = []string{"/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/mtab",
	"/.dockerenv", "/run/.containerenv", "/run/secrets"}

// systemDirs may not be read-write directories, nor lie under one: they
// hold the programs and libraries the measurement must cover.
var systemDirs = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/etc", "/opt", "/proc", "/sys", "/dev", "/boot", "/root"}

// CheckRWDir tells whether d may be a read-write directory: absolute and
// clean, not the root, not a system directory (/usr, /etc, /lib...), not
// under one and not above one. Read-write directories are left out of the
// measurement, so they must not hold what the application runs.
func CheckRWDir(d string) error {
	if !strings.HasPrefix(d, "/") || path.Clean(d) != d || d == "/" {
		return fmt.Errorf("%q must be an absolute, clean path other than /", d)
	}
	for _, s := range systemDirs {
		if under(d, s) || under(s, d) {
			return fmt.Errorf("%q cannot be writable: %s holds programs, libraries or configuration the measurement covers", d, s)
		}
	}
	return nil
}

// under tells whether p is dir or below it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// Trusted returns the trusted-file list of an image's files: all of them
// but the untracked paths and what lies under the application's
// read-write directories, which the application changes and a volume may
// replace (they are not measured; the API says so).
func Trusted(all *imagefs.List, rwDirs []string) (*imagefs.List, error) {
	for _, d := range rwDirs {
		if err := CheckRWDir(d); err != nil {
			return nil, fmt.Errorf("read-write directory %w", err)
		}
	}
	skip := append(slices.Clone(Untracked), rwDirs...)
	var keep []imagefs.Entry
	for e := range all.All() {
		p := "/" + e.Path
		if !slices.ContainsFunc(skip, func(d string) bool { return under(p, d) }) {
			keep = append(keep, e)
		}
	}
	return imagefs.NewList(keep)
}

// Skipped tells whether the launcher leaves path out of its check: an
// untracked path, a read-write directory or what is below one, or one of
// the top layer's files (bound to MRENCLAVE by the Gramine manifest
// instead).
func Skipped(p string, rwDirs []string) bool {
	return slices.ContainsFunc(Untracked, func(d string) bool { return under(p, d) }) ||
		slices.ContainsFunc(rwDirs, func(d string) bool { return under(p, d) }) || slices.Contains(TopLayerPaths, p)
}

// Labels of a converted image's config.
const (
	LabelMRENCLAVE = "cc.cloister.mrenclave"
	LabelMRSIGNER  = "cc.cloister.mrsigner"
	LabelISVProdID = "cc.cloister.isvprodid"
	LabelISVSVN    = "cc.cloister.isvsvn"
	// LabelEnclave names the kind of enclave: EnclaveGramineSGX.
	LabelEnclave      = "cc.cloister.enclave"
	EnclaveGramineSGX = "gramine-sgx"
	// LabelRuntime is the Gramine runtime image the runtime layer was
	// copied from, by digest.
	LabelRuntime = "cc.cloister.gramine-runtime"
)

// ManifestVersion names the manifest format.
const ManifestVersion = "cloister.manifest/v1"

// MaxManifestSize bounds a manifest read from an image.
const MaxManifestSize = 1 << 20

// EnvVar is a fixed environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Certificate is the TLS certificate the launcher obtains.
type Certificate struct {
	Domain   string `json:"domain"`
	KeyType  string `json:"key_type"`
	KeyPath  string `json:"key_path"`
	CertPath string `json:"cert_path"`
}

// Manifest is what the enclave runs and how; its canonical bytes are
// measured (they are pages of the enclave), so every field is part of
// MRENCLAVE.
type Manifest struct {
	Version string `json:"version"`
	// AppID is the Cloister application's id, which the launcher names
	// when it asks for the certificate.
	AppID            string       `json:"app_id"`
	Entrypoint       []string     `json:"entrypoint"`
	Args             []string     `json:"args"`
	AllowCmdlineArgs bool         `json:"allow_cmdline_args"`
	Env              []EnvVar     `json:"env"`
	PassthroughEnv   []string     `json:"passthrough_env"`
	WorkingDir       string       `json:"working_dir"`
	User             string       `json:"user"`
	RWDirs           []string     `json:"rw_dirs"`
	MemorySize       uint64       `json:"memory_size"`
	Threads          uint32       `json:"threads"`
	ISVProdID        uint16       `json:"isvprodid"`
	ISVSVN           uint16       `json:"isvsvn"`
	Debug            bool         `json:"debug"`
	Certificate      *Certificate `json:"certificate"`
	// Secrets is how the application receives the secrets delivered with
	// its certificate; nil when it takes none. Volumes are its encrypted
	// volumes. Both are left out of the encoding when empty, so that the
	// manifests of images converted before they existed keep their bytes.
	Secrets *Secrets `json:"secrets,omitempty"`
	Volumes []Volume `json:"volumes,omitempty"`
	// TrustedFiles and Launcher are "sha256:<hex>" digests of the
	// trusted-file list (libs/imagefs encoding) and the launcher binary.
	TrustedFiles string `json:"trusted_files"`
	Launcher     string `json:"launcher"`
}

// Encode returns the manifest's canonical bytes: JSON with the fields in
// declaration order, env sorted by name, lists never null, no spaces, and
// a final newline.
func (m Manifest) Encode() ([]byte, error) {
	m.Version = ManifestVersion
	m.Env = slices.Clone(m.Env)
	slices.SortFunc(m.Env, func(a, b EnvVar) int { return strings.Compare(a.Name, b.Name) })
	for _, l := range []*[]string{&m.Entrypoint, &m.Args, &m.PassthroughEnv, &m.RWDirs} {
		if *l == nil {
			*l = []string{}
		}
	}
	if m.Env == nil {
		m.Env = []EnvVar{}
	}
	if m.Secrets != nil && m.Secrets.Env == nil {
		m.Secrets = &Secrets{Dir: m.Secrets.Dir, Env: []SecretEnv{}}
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encoding manifest: %w", err)
	}
	return b.Bytes(), nil
}

// ErrManifest is returned for a manifest that is not canonical or not
// valid.
var ErrManifest = errors.New("enclave: invalid manifest")

// ParseManifest reads a manifest, accepting only its canonical bytes:
// one manifest has one encoding, so its measurement is unambiguous.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrManifest, MaxManifestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("%w: version %q, want %q", ErrManifest, m.Version, ManifestVersion)
	}
	again, err := m.Encode()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrManifest)
	}
	return &m, nil
}

func (m Manifest) check() error {
	switch {
	case len(m.Entrypoint) == 0:
		return fmt.Errorf("%w: no entrypoint", ErrManifest)
	case m.Threads == 0:
		return fmt.Errorf("%w: no threads", ErrManifest)
	case !isDigest(m.TrustedFiles):
		return fmt.Errorf("%w: trusted_files must be sha256:<64 hex digits>", ErrManifest)
	case !isDigest(m.Launcher):
		return fmt.Errorf("%w: launcher must be sha256:<64 hex digits>", ErrManifest)
	}
	for i := 1; i < len(m.Env); i++ {
		if m.Env[i].Name == m.Env[i-1].Name {
			return fmt.Errorf("%w: env %s is set twice", ErrManifest, m.Env[i].Name)
		}
	}
	if err := m.CheckSecrets(); err != nil {
		return fmt.Errorf("%w: %v", ErrManifest, err)
	}
	return nil
}

func isDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

// Digest is the "sha256:<hex>" form manifests use.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
