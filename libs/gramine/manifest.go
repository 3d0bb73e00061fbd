package gramine

import (
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Manifest is the part of Gramine's manifest syntax that Cloister writes.
// Table turns it into the document gramine-sgx-sign would write for it:
// every default the signer adds is already there, in the place the signer
// keeps, so that signing Cloister's .manifest.sgx again with Gramine's
// tool gives the same bytes.
type Manifest struct {
	// LibOSEntrypoint is libos.entrypoint: the first program the LibOS
	// runs (Cloister's launcher).
	LibOSEntrypoint string
	// LoaderEntrypoint is loader.entrypoint: Gramine's libsysdb.so, with
	// its SHA-256.
	LoaderEntrypoint File
	// Argv is loader.argv, the whole argument vector (argv[0] first),
	// fixed at signing; nil when UseCmdlineArgv.
	Argv []string
	// UseCmdlineArgv is loader.insecure__use_cmdline_argv: the host's
	// command line is passed in, unmeasured.
	UseCmdlineArgv bool
	// Env is loader.env: fixed values, and names passed through from the
	// host.
	Env []Env
	// Mounts is fs.mounts, in order; fs.root is the image's root.
	Mounts []Mount
	// AllowedFiles is sgx.allowed_files: host files the enclave may read
	// and write unchecked (a read-write directory ends with "/").
	AllowedFiles []string

	EnclaveSize       uint64 // sgx.enclave_size: a power of two
	MaxThreads        int    // sgx.max_threads
	EDMM              bool   // sgx.edmm_enable
	Debug             bool   // sgx.debug: a debug enclave has another MRENCLAVE
	ISVProdID, ISVSVN uint16
	// RemoteAttestation is sgx.remote_attestation: "dcap" or "none".
	RemoteAttestation string
	// TrustedFiles is sgx.trusted_files: the files the enclave may open,
	// each checked against its SHA-256 when it is opened.
	TrustedFiles []File
}

// File is a file by its URI ("file:/path") and SHA-256.
type File struct {
	URI    string
	SHA256 [32]byte
}

// Env is a variable of loader.env: a fixed Value, or Passthrough from the
// host (unmeasured).
type Env struct {
	Name        string
	Value       string
	Passthrough bool
}

// Mount is an entry of fs.mounts.
type Mount struct {
	Path string
	Type string // "chroot", "tmpfs" or "encrypted"
	URI  string // for chroot and encrypted: "file:/host/path"
	// KeyName is an encrypted mount's key_name: the key Gramine reads
	// from /dev/attestation/keys/<KeyName>, set by the enclave before the
	// mount is first used.
	KeyName string
}

// Mount types Cloister writes.
const (
	MountChroot = "chroot"
	MountTmpfs  = "tmpfs"
	// MountEncrypted is a host directory whose files Gramine encrypts
	// and authenticates with the mount's key (its protected files).
	MountEncrypted = "encrypted"
)

// keyNameRE is what Cloister accepts as a key_name: Gramine reserves
// names starting with '_' for its own keys (_sgx_mrenclave...).
var keyNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// CheckKeyName tells whether name can be an encrypted mount's key_name.
func CheckKeyName(name string) error {
	if !keyNameRE.MatchString(name) {
		return fmt.Errorf("key name %q must be 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or digit (Gramine keeps names starting with '_' for its own keys)", name)
	}
	return nil
}

// URI returns the "file:" URI of an absolute path.
func URI(p string) string { return "file:" + p }

// Table returns the manifest as gramine-sgx-sign writes it: [libos],
// [loader] (argv or the command-line option, then env, then the
// entrypoint), [fs], and [sgx] with the signer's defaults, the trusted
// files and the CPU features in the signer's order.
func (m *Manifest) Table() (*Table, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	root := NewTable()

	libos := NewTable()
	libos.Set("entrypoint", m.LibOSEntrypoint)
	root.Set("libos", libos)

	loader := NewTable()
	if m.UseCmdlineArgv {
		loader.Set("insecure__use_cmdline_argv", true)
	} else {
		loader.Set("argv", strings2any(m.Argv))
	}
	if len(m.Env) > 0 {
		env := NewTable()
		for _, e := range m.Env {
			if e.Passthrough {
				pt := NewTable()
				pt.Set("passthrough", true)
				env.Set(e.Name, pt)
			} else {
				env.Set(e.Name, e.Value)
			}
		}
		loader.Set("env", env)
	}
	ep := NewTable()
	ep.Set("uri", m.LoaderEntrypoint.URI)
	ep.Set("sha256", hex.EncodeToString(m.LoaderEntrypoint.SHA256[:]))
	loader.Set("entrypoint", ep)
	root.Set("loader", loader)

	fs := NewTable()
	mounts := make([]any, 0, len(m.Mounts))
	for _, mt := range m.Mounts {
		t := NewTable()
		t.Set("path", mt.Path)
		switch mt.Type {
		case MountTmpfs:
			t.Set("type", MountTmpfs)
		case MountEncrypted:
			t.Set("type", MountEncrypted)
			t.Set("uri", mt.URI)
			t.Set("key_name", mt.KeyName)
		default:
			t.Set("uri", mt.URI)
		}
		mounts = append(mounts, t)
	}
	fs.Set("mounts", mounts)
	fsRoot := NewTable()
	fsRoot.Set("uri", "file:/")
	fs.Set("root", fsRoot)
	root.Set("fs", fs)

	sgx := NewTable()
	sgx.Set("enclave_size", FormatSize(m.EnclaveSize))
	sgx.Set("max_threads", int64(m.MaxThreads))
	sgx.Set("edmm_enable", m.EDMM)
	sgx.Set("debug", m.Debug)
	sgx.Set("isvprodid", int64(m.ISVProdID))
	sgx.Set("isvsvn", int64(m.ISVSVN))
	sgx.Set("remote_attestation", m.RemoteAttestation)
	sgx.Set("enable_stats", false)
	sgx.Set("use_exinfo", false)
	if len(m.AllowedFiles) > 0 {
		sgx.Set("allowed_files", strings2any(m.AllowedFiles))
	}
	files := make([]any, 0, len(m.TrustedFiles))
	for _, f := range m.TrustedFiles {
		t := NewTable()
		t.Set("uri", f.URI)
		t.Set("sha256", hex.EncodeToString(f.SHA256[:]))
		files = append(files, t)
	}
	sgx.Set("trusted_files", files)
	cpu := NewTable()
	for _, kv := range [][2]string{{"avx", "unspecified"}, {"avx512", "unspecified"}, {"amx", "unspecified"}, {"mpx", "disabled"}, {"pkru", "disabled"}} {
		cpu.Set(kv[0], kv[1])
	}
	sgx.Set("cpu_features", cpu)
	root.Set("sgx", sgx)
	return root, nil
}

// Marshal returns the .manifest.sgx bytes: what is measured.
func (m *Manifest) Marshal() ([]byte, error) {
	t, err := m.Table()
	if err != nil {
		return nil, err
	}
	return MarshalTOML(t)
}

func strings2any(s []string) []any {
	a := make([]any, len(s))
	for i, v := range s {
		a[i] = v
	}
	return a
}

// check refuses what Gramine would refuse or misread.
func (m *Manifest) check() error {
	switch {
	case !path.IsAbs(m.LibOSEntrypoint):
		return manifestErrorf("libos.entrypoint %q is not an absolute path", m.LibOSEntrypoint)
	case !strings.HasPrefix(m.LoaderEntrypoint.URI, "file:/"):
		return manifestErrorf("loader.entrypoint.uri %q is not a file: URI", m.LoaderEntrypoint.URI)
	case !m.UseCmdlineArgv && len(m.Argv) == 0:
		return manifestErrorf("loader.argv is empty: it needs at least argv[0]")
	case m.UseCmdlineArgv && m.Argv != nil:
		return manifestErrorf("loader.argv and loader.insecure__use_cmdline_argv exclude each other")
	case m.MaxThreads < 1 || m.MaxThreads > maxMeasuredThread:
		return manifestErrorf("sgx.max_threads %d, want 1 to %d", m.MaxThreads, maxMeasuredThread)
	case m.RemoteAttestation != "dcap" && m.RemoteAttestation != "none":
		return manifestErrorf("sgx.remote_attestation %q, want \"dcap\" or \"none\"", m.RemoteAttestation)
	}
	if err := ValidateSize(m.EnclaveSize); err != nil {
		return manifestErrorf("sgx.enclave_size: %v", err)
	}
	names := map[string]bool{}
	for _, e := range m.Env {
		if e.Name == "" || strings.ContainsAny(e.Name, "=\x00") {
			return manifestErrorf("loader.env: variable name %q is empty or holds '=' or NUL", e.Name)
		}
		if names[e.Name] {
			return manifestErrorf("loader.env: %s is set twice", e.Name)
		}
		names[e.Name] = true
	}
	paths := map[string]bool{}
	for _, mt := range m.Mounts {
		switch {
		case !path.IsAbs(mt.Path) || path.Clean(mt.Path) != mt.Path || mt.Path == "/":
			return manifestErrorf("fs.mounts: %q is not an absolute, clean path other than /", mt.Path)
		case paths[mt.Path]:
			return manifestErrorf("fs.mounts: %s is mounted twice", mt.Path)
		case (mt.Type == MountChroot || mt.Type == MountEncrypted) && !strings.HasPrefix(mt.URI, "file:/"):
			return manifestErrorf("fs.mounts: %s: uri %q is not a file: URI", mt.Path, mt.URI)
		case mt.Type != MountChroot && mt.Type != MountTmpfs && mt.Type != MountEncrypted:
			return manifestErrorf("fs.mounts: %s: type %q, want chroot, tmpfs or encrypted", mt.Path, mt.Type)
		case (mt.Type == MountEncrypted) != (mt.KeyName != ""):
			return manifestErrorf("fs.mounts: %s: an encrypted mount, and only one, names its key", mt.Path)
		case mt.Type == MountEncrypted && CheckKeyName(mt.KeyName) != nil:
			return manifestErrorf("fs.mounts: %s: %v", mt.Path, CheckKeyName(mt.KeyName))
		}
		paths[mt.Path] = true
	}
	seen := map[string]bool{}
	for _, f := range m.TrustedFiles {
		if !strings.HasPrefix(f.URI, "file:/") {
			return manifestErrorf("sgx.trusted_files: %q is not a file: URI", f.URI)
		}
		if seen[f.URI] { // the signer would keep the first, silently
			return manifestErrorf("sgx.trusted_files: %s is listed twice", f.URI)
		}
		seen[f.URI] = true
	}
	return nil
}

// TrustedFile returns the SHA-256 that the manifest's sgx.trusted_files
// gives uri, and whether it lists it.
func TrustedFile(manifest *Table, uri string) ([32]byte, bool) {
	sgx, ok := manifest.Table("sgx")
	if !ok {
		return [32]byte{}, false
	}
	files, _ := get[[]any](sgx, "trusted_files")
	for _, f := range files {
		t, ok := f.(*Table)
		if !ok {
			continue
		}
		if u, _ := get[string](t, "uri"); u != uri {
			continue
		}
		h, _ := get[string](t, "sha256")
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			return [32]byte{}, false
		}
		return [32]byte(b), true
	}
	return [32]byte{}, false
}

// TrustedFiles returns the manifest's sgx.trusted_files as files, in
// order; entries that are plain strings (not yet hashed) are refused.
func TrustedFiles(manifest *Table) ([]File, error) {
	sgx, ok := manifest.Table("sgx")
	if !ok {
		return nil, manifestErrorf("no [sgx] table")
	}
	raw, set := sgx.Get("trusted_files")
	if !set {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, manifestErrorf("sgx.trusted_files is not an array")
	}
	out := make([]File, 0, len(list))
	for i, f := range list {
		t, ok := f.(*Table)
		if !ok {
			return nil, manifestErrorf("sgx.trusted_files[%d] is not a table with uri and sha256", i)
		}
		u, _ := get[string](t, "uri")
		h, _ := get[string](t, "sha256")
		b, err := hex.DecodeString(h)
		if u == "" || err != nil || len(b) != 32 {
			return nil, manifestErrorf("sgx.trusted_files[%d] needs a uri and a 64-digit sha256", i)
		}
		out = append(out, File{URI: u, SHA256: [32]byte(b)})
	}
	return out, nil
}

// SortFiles orders files by URI, the order Cloister lists them in.
func SortFiles(files []File) {
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.URI, b.URI) })
}

// String names a mount as the manifest does.
func (mt Mount) String() string {
	if mt.Type == MountTmpfs {
		return fmt.Sprintf("%s (tmpfs)", mt.Path)
	}
	if mt.Type == MountEncrypted {
		return fmt.Sprintf("%s (%s, encrypted with key %s)", mt.Path, mt.URI, mt.KeyName)
	}
	return fmt.Sprintf("%s (%s)", mt.Path, mt.URI)
}
