package gramine

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

func testManifest() *Manifest {
	return &Manifest{
		LibOSEntrypoint:  "/opt/cloister/launcher",
		LoaderEntrypoint: File{URI: "file:/opt/cloister/gramine/libsysdb.so", SHA256: sha256.Sum256([]byte("libsysdb"))},
		Argv:             []string{"/opt/cloister/launcher", "--", "/app/server", "--port", "8443"},
		Env: []Env{{Name: "GREETING", Value: "héllo \"world\"\t\x01"}, {Name: "TZ", Passthrough: true},
			{Name: "weird.name", Value: "x"}},
		Mounts: []Mount{{Path: "/tmp", Type: MountTmpfs}, {Path: "/data", Type: MountChroot, URI: "file:/data"},
			{Path: "/vault", Type: MountEncrypted, URI: "file:/vault", KeyName: "vault-key"}},
		AllowedFiles:      []string{"file:/data/"},
		EnclaveSize:       1 << 30,
		MaxThreads:        16,
		ISVProdID:         7,
		ISVSVN:            3,
		RemoteAttestation: "dcap",
		TrustedFiles: []File{{URI: "file:/app/server", SHA256: sha256.Sum256([]byte("server"))},
			{URI: "file:/opt/cloister/launcher", SHA256: sha256.Sum256([]byte("launcher"))}},
	}
}

// TestManifestFixedPoint: what Cloister writes reads back to the same
// bytes, holds the signer's defaults, and gives the values it was made
// with.
func TestManifestFixedPoint(t *testing.T) {
	for _, debug := range []bool{false, true} {
		m := testManifest()
		m.Debug = debug
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := ParseTOML(b)
		if err != nil {
			t.Fatalf("ParseTOML(Marshal) = %v\n%s", err, b)
		}
		again, err := MarshalTOML(tbl)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("not a fixed point (%v):\n%s\n---\n%s", err, b, again)
		}
		for _, want := range []string{"[[sgx.trusted_files]]\nuri = \"file:/app/server\"\n", "[loader.env.TZ]\npassthrough = true\n",
			"\"weird.name\" = \"x\"\n", "mounts = [\n    { path = \"/tmp\", type = \"tmpfs\" },\n    { path = \"/data\", uri = \"file:/data\" },\n" +
				"    { path = \"/vault\", type = \"encrypted\", uri = \"file:/vault\", key_name = \"vault-key\" },\n]\n",
			"GREETING = \"héllo \\\"world\\\"\t\\u0001\"\n", "[sgx.cpu_features]\navx = \"unspecified\"\n", "enable_stats = false\n"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("manifest lacks %q:\n%s", want, b)
			}
		}
		p, err := ReadParams(tbl)
		if err != nil {
			t.Fatal(err)
		}
		if p.EnclaveSize != 1<<30 || p.MaxThreads != 16 || p.Debug != debug || p.ISVProdID != 7 || p.ISVSVN != 3 || p.EDMM {
			t.Errorf("ReadParams = %+v", p)
		}
		files, err := TrustedFiles(tbl)
		if err != nil || len(files) != 2 || files[1] != m.TrustedFiles[1] {
			t.Errorf("TrustedFiles = %v, %v; want %v", files, err, m.TrustedFiles)
		}
		if h, ok := TrustedFile(tbl, "file:/app/server"); !ok || h != m.TrustedFiles[0].SHA256 {
			t.Errorf("TrustedFile(/app/server) = %x, %v", h, ok)
		}
	}
}

func TestManifestRefusals(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Manifest)
		want   string
	}{
		{"size not a power of two", func(m *Manifest) { m.EnclaveSize = 3 << 28 }, "nearest valid sizes are 512M and 1G"},
		{"no threads", func(m *Manifest) { m.MaxThreads = 0 }, "max_threads 0"},
		{"argv and cmdline", func(m *Manifest) { m.UseCmdlineArgv = true }, "exclude each other"},
		{"no argv", func(m *Manifest) { m.Argv = nil }, "loader.argv is empty"},
		{"env twice", func(m *Manifest) { m.Env = append(m.Env, Env{Name: "TZ"}) }, "TZ is set twice"},
		{"env with =", func(m *Manifest) { m.Env = []Env{{Name: "A=B"}} }, "holds '='"},
		{"relative mount", func(m *Manifest) { m.Mounts = []Mount{{Path: "tmp", Type: MountTmpfs}} }, "absolute"},
		{"encrypted without a key", func(m *Manifest) { m.Mounts[2].KeyName = "" }, "names its key"},
		{"a key on a chroot mount", func(m *Manifest) { m.Mounts[1].KeyName = "k" }, "names its key"},
		{"Gramine's own key name", func(m *Manifest) { m.Mounts[2].KeyName = "_sgx_mrenclave" }, "starting with '_'"},
		{"encrypted without a uri", func(m *Manifest) { m.Mounts[2].URI = "/vault" }, "not a file: URI"},
		{"file twice", func(m *Manifest) { m.TrustedFiles = append(m.TrustedFiles, m.TrustedFiles[0]) }, "listed twice"},
		{"attestation", func(m *Manifest) { m.RemoteAttestation = "epid" }, "remote_attestation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testManifest()
			tt.change(m)
			_, err := m.Marshal()
			if !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Marshal = %v, want ErrManifest saying %q", err, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"256M": 256 << 20, "1G": 1 << 30, "64G": 64 << 30, "4K": 4096, "1000": 1000, "0x1000K": 0x1000 << 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
		if got := FormatSize(want); in != "0x1000K" && got != in {
			t.Errorf("FormatSize(%d) = %q, want %q", want, got, in)
		}
	}
	for _, in := range []string{"", "M", "-1G", "+1G", "1T", "1.5G", " 1G", "99999999999999999999G", "1_000", "0256M"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestValidateSizeSuggestions(t *testing.T) {
	for size, want := range map[uint64]string{
		96 << 20:   "the nearest valid sizes are 64M and 128M",
		3 << 10:    "the nearest valid size is 8K",
		3072 << 30: "the nearest valid size is 1024G",
		4 << 40:    "is outside 8K to 1024G",
	} {
		if err := ValidateSize(size); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateSize(%s) = %v, want %q", FormatSize(size), err, want)
		}
	}
}
