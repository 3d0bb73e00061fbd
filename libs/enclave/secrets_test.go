package enclave

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/cloister-cc/cloister/libs/gramine"
	"github.com/cloister-cc/cloister/libs/imagefs"
)

func withSecrets() Manifest {
	m := sample()
	m.Secrets = &Secrets{Dir: DefaultSecretsDir, Env: []SecretEnv{{Name: "DB_PASSWORD", Secret: "db-password"}}}
	m.Volumes = []Volume{{Path: "/var/lib/app", KeyName: "app-data"}}
	return m
}

func TestManifestSecretsRoundTrip(t *testing.T) {
	b, err := withSecrets().Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"secrets":{"dir":"/run/cloister/secrets","env":[{"name":"DB_PASSWORD","secret":"db-password"}]},"volumes":[{"path":"/var/lib/app","key_name":"app-data"}]`)) {
		t.Fatalf("Encode = %s", b)
	}
	if _, err := ParseManifest(b); err != nil {
		t.Fatal(err)
	}
	// A manifest without them keeps the bytes it had before they existed.
	plain, _ := sample().Encode()
	if bytes.Contains(plain, []byte("secrets")) || bytes.Contains(plain, []byte("volumes")) {
		t.Fatalf("a manifest without secrets or volumes names them: %s", plain)
	}
	if got := withSecrets().UnmeasuredDirs(); strings.Join(got, " ") != "/tmp /var/lib/app" {
		t.Errorf("UnmeasuredDirs = %v", got)
	}
}

func TestManifestSecretsRefusals(t *testing.T) {
	for name, tt := range map[string]struct {
		change func(*Manifest)
		want   string
	}{
		"relative dir":         {func(m *Manifest) { m.Secrets.Dir = "run/secrets" }, "absolute"},
		"dir in a rw dir":      {func(m *Manifest) { m.Secrets.Dir = "/tmp/secrets" }, "host's disk"},
		"dir in a volume":      {func(m *Manifest) { m.Secrets.Dir = "/var/lib/app/s" }, "host's disk"},
		"bad env name":         {func(m *Manifest) { m.Secrets.Env[0].Name = "1X" }, "environment variable name"},
		"bad secret name":      {func(m *Manifest) { m.Secrets.Env[0].Secret = "../x" }, "secret name"},
		"env also fixed":       {func(m *Manifest) { m.Secrets.Env[0].Name = "A" }, "set twice"},
		"env passed through":   {func(m *Manifest) { m.Secrets.Env[0].Name = "TZ" }, "set twice"},
		"env twice":            {func(m *Manifest) { m.Secrets.Env = append(m.Secrets.Env, m.Secrets.Env[0]) }, "set twice"},
		"launcher's variable":  {func(m *Manifest) { m.Secrets.Env[0].Name = "NODE_AGENT_BASE_URL" }, "set twice"},
		"volume in /usr":       {func(m *Manifest) { m.Volumes[0].Path = "/usr/data" }, "cannot be writable"},
		"volume key name":      {func(m *Manifest) { m.Volumes[0].KeyName = "_sgx_mrsigner" }, "key name"},
		"volume in a rw dir":   {func(m *Manifest) { m.Volumes[0].Path = "/tmp/v" }, "overlaps /tmp"},
		"volumes nested":       {func(m *Manifest) { m.Volumes = append(m.Volumes, Volume{"/var/lib/app/x", "k2"}) }, "overlaps /var/lib/app"},
		"one key, two volumes": {func(m *Manifest) { m.Volumes = append(m.Volumes, Volume{"/srv/b", "app-data"}) }, "another volume's"},
	} {
		t.Run(name, func(t *testing.T) {
			m := withSecrets()
			tt.change(&m)
			if _, err := m.Encode(); !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Encode = %v, want ErrManifest saying %q", err, tt.want)
			}
		})
	}
}

// The Gramine manifest mounts the secrets directory as a tmpfs and each
// volume as an encrypted mount of the host's directory.
func TestGramineSecretsAndVolumes(t *testing.T) {
	lib := sha256.Sum256([]byte("lib"))
	listed := listOf(t, imagefs.Entry{Path: "opt", Type: imagefs.TypeDir, Mode: 0o755},
		imagefs.Entry{Path: "opt/cloister", Type: imagefs.TypeDir, Mode: 0o755},
		imagefs.Entry{Path: "opt/cloister/gramine", Type: imagefs.TypeDir, Mode: 0o755},
		imagefs.Entry{Path: "opt/cloister/gramine/libsysdb.so", Type: imagefs.TypeRegular, Mode: 0o644, Size: 3, SHA256: lib},
		imagefs.Entry{Path: "srv", Type: imagefs.TypeDir, Mode: 0o755},
		imagefs.Entry{Path: "srv/index.html", Type: imagefs.TypeRegular, Mode: 0o644, Size: 3, SHA256: lib})
	m := withSecrets()
	g, err := Gramine(&m, GramineInputs{Listed: listed})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mt := range g.Mounts {
		got = append(got, mt.String())
	}
	want := "/run/cloister (tmpfs) /run/cloister/secrets (tmpfs) /tmp (file:/tmp) /var/lib/app (file:/var/lib/app, encrypted with key app-data)"
	if strings.Join(got, " ") != want {
		t.Errorf("mounts = %q, want %q", strings.Join(got, " "), want)
	}
	b, err := g.Marshal()
	if err != nil || !bytes.Contains(b, []byte(`{ path = "/var/lib/app", type = "encrypted", uri = "file:/var/lib/app", key_name = "app-data" }`)) {
		t.Errorf("the Gramine manifest lacks the encrypted mount (%v):\n%s", err, b)
	}
	for _, uri := range g.AllowedFiles {
		if strings.HasPrefix(uri, "file:/var/lib/app") {
			t.Errorf("the volume is an allowed (unchecked) file: %s", uri)
		}
	}

	m.Volumes[0].Path = "/srv"
	if _, err := Gramine(&m, GramineInputs{Listed: listed}); !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), "holds the image's /srv/index.html") {
		t.Errorf("a volume over the image's files: Gramine = %v", err)
	}
}

func TestKeyBinding(t *testing.T) {
	spki := sha256.Sum256([]byte("spki"))
	if KeyBinding(spki, nil) != spki {
		t.Error("without a recipient key the binding is not SHA-256 of the SPKI")
	}
	a, b := KeyBinding(spki, bytes.Repeat([]byte{1}, 32)), KeyBinding(spki, bytes.Repeat([]byte{2}, 32))
	if a == b || a == spki {
		t.Error("the binding does not depend on the recipient key")
	}
	want := sha256.Sum256(append(append([]byte("cloister/reportdata/v2\x00"), spki[:]...), bytes.Repeat([]byte{1}, 32)...))
	if a != want {
		t.Errorf("KeyBinding = %x, want %x (docs/secrets.md)", a, want)
	}
}

func TestSealBundle(t *testing.T) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b := Bundle{Secrets: map[string][]byte{"db-password": []byte("hunter2"), "api.key": bytes.Repeat([]byte{0}, MaxSecretSize)},
		VolumeKeys: map[string][]byte{"app-data": bytes.Repeat([]byte{7}, VolumeKeySize)}}
	info := BundleInfo("app-1", "0a1b")
	sealed, err := SealBundle(priv.PublicKey().Bytes(), info, b)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("the sealed bundle holds a value in clear")
	}
	got, err := OpenBundle(priv, info, sealed)
	if err != nil || string(got.Secrets["db-password"]) != "hunter2" || len(got.Secrets["api.key"]) != MaxSecretSize ||
		!bytes.Equal(got.VolumeKeys["app-data"], b.VolumeKeys["app-data"]) {
		t.Fatalf("OpenBundle = %v, %v", got, err)
	}

	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for name, open := range map[string]func() (Bundle, error){
		"another key":         func() (Bundle, error) { return OpenBundle(other, info, sealed) },
		"another certificate": func() (Bundle, error) { return OpenBundle(priv, BundleInfo("app-1", "0a1c"), sealed) },
		"another app":         func() (Bundle, error) { return OpenBundle(priv, BundleInfo("app-2", "0a1b"), sealed) },
		"a flipped bit":       func() (Bundle, error) { return OpenBundle(priv, info, flipped) },
		"truncated":           func() (Bundle, error) { return OpenBundle(priv, info, sealed[:20]) },
	} {
		if _, err := open(); !errors.Is(err, ErrBundle) {
			t.Errorf("%s: OpenBundle = %v, want ErrBundle", name, err)
		}
	}
	if _, err := SealBundle([]byte("short"), info, b); !errors.Is(err, ErrBundle) {
		t.Errorf("SealBundle to a malformed key = %v, want ErrBundle", err)
	}
}

func TestParseBundleRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"not JSON":        `{`,
		"unknown field":   `{"secrets":{},"extra":1}`,
		"bad secret name": `{"secrets":{"../x":"YQ=="}}`,
		"short key":       `{"volume_keys":{"k":"YQ=="}}`,
		"reserved key":    `{"volume_keys":{"_sgx_mrenclave":"AAAAAAAAAAAAAAAAAAAAAA=="}}`,
		"trailing data":   `{} {}`,
		"big secret":      `{"secrets":{"x":"` + strings.Repeat("A", (MaxSecretSize/3+1)*4) + `"}}`,
	} {
		if _, err := ParseBundle([]byte(in)); !errors.Is(err, ErrBundle) {
			t.Errorf("%s: ParseBundle = %v, want ErrBundle", name, err)
		}
	}
}

func FuzzParseBundle(f *testing.F) {
	f.Add([]byte(`{"secrets":{"a":"YQ=="},"volume_keys":{"k":"AAAAAAAAAAAAAAAAAAAAAA=="}}`))
	f.Add([]byte(`{"secrets":null}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := ParseBundle(in)
		if err != nil {
			if !errors.Is(err, ErrBundle) {
				t.Fatalf("error %v is not ErrBundle", err)
			}
			return
		}
		for name, k := range b.VolumeKeys {
			if len(k) != VolumeKeySize || gramine.CheckKeyName(name) != nil {
				t.Fatalf("accepted volume key %q of %d bytes", name, len(k))
			}
		}
	})
}
