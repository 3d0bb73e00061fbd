package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gramineVectors are the vectors made by Gramine's own signer.
func gramineVectors(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("../../libs/gramine/testdata/[0-9]*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no Gramine vectors: %v", err)
	}
	return dirs
}

// TestEnclaveMeasureAndSign: the CLI measures and signs as
// gramine-sgx-sign does, and inspects the .sig it wrote.
func TestEnclaveMeasureAndSign(t *testing.T) {
	for _, dir := range gramineVectors(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var want struct {
				MRENCLAVE string `json:"mrenclave"`
				MRSIGNER  string `json:"mrsigner"`
				Inputs    struct {
					Date string `json:"date"`
				} `json:"inputs"`
			}
			b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			man, pal := filepath.Join(dir, "app.manifest.sgx"), filepath.Join(dir, "libpal.so")

			out, err := cloisterCmd(t, t.TempDir(), "enclave", "measure", "--manifest", man, "--libpal", pal, "-o", "json").Output()
			if err != nil {
				t.Fatalf("enclave measure = %v\n%s", err, out)
			}
			var m enclaveMeasurement
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatal(err)
			}
			if m.MRENCLAVE != want.MRENCLAVE || len(m.Areas) < 6 || m.Areas[0].Desc != "manifest" {
				t.Errorf("enclave measure = %+v, want mrenclave %s and the areas from the manifest down", m, want.MRENCLAVE)
			}

			sigPath := filepath.Join(t.TempDir(), "app.sig")
			out, err = cloisterCmd(t, t.TempDir(), "enclave", "sign", "--manifest", man, "--libpal", pal, "--key", filepath.Join(dir, "signing-key.pem"),
				"--date", want.Inputs.Date, "--output", sigPath, "-o", "json").CombinedOutput()
			if err != nil {
				t.Fatalf("enclave sign = %v\n%s", err, out)
			}
			got, err := os.ReadFile(sigPath)
			if err != nil {
				t.Fatal(err)
			}
			gramineSig, err := os.ReadFile(filepath.Join(dir, "app.sig"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, gramineSig) {
				t.Errorf("enclave sign wrote a .sig that differs from gramine-sgx-sign's")
			}

			out, err = cloisterCmd(t, t.TempDir(), "sgx", "sigstruct", "inspect", filepath.Join(dir, "app.sig"), "-o", "json").Output()
			if err != nil {
				t.Fatalf("sgx sigstruct inspect = %v\n%s", err, out)
			}
			var s sigstructOut
			if err := json.Unmarshal(out, &s); err != nil {
				t.Fatal(err)
			}
			if s.MRENCLAVE != want.MRENCLAVE || s.MRSIGNER != want.MRSIGNER || !s.SignatureValid {
				t.Errorf("inspect of Gramine's .sig = %+v, want mrenclave %s, mrsigner %s, valid", s, want.MRENCLAVE, want.MRSIGNER)
			}
		})
	}
}

// TestEnclaveRefusals: bad inputs fail with a message that says what is
// wrong, and write nothing.
func TestEnclaveRefusals(t *testing.T) {
	dir := gramineVectors(t)[0]
	tmp := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	man, pal, key := filepath.Join(dir, "app.manifest.sgx"), filepath.Join(dir, "libpal.so"), filepath.Join(dir, "signing-key.pem")
	notPow2 := write("odd.manifest.sgx", strings.Replace(mustRead(t, man), `enclave_size = "256M"`, `enclave_size = "300M"`, 1))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"not a power of two", []string{"enclave", "measure", "--manifest", notPow2, "--libpal", pal}, "nearest valid sizes are 256M and 512M"},
		{"not TOML", []string{"enclave", "measure", "--manifest", write("bad.manifest.sgx", "[sgx\n"), "--libpal", pal}, "invalid TOML"},
		{"not an ELF", []string{"enclave", "measure", "--manifest", man, "--libpal", man}, "invalid libpal ELF"},
		{"no libpal", []string{"enclave", "measure", "--manifest", man}, `"libpal" not set`},
		{"a 2048-bit key", []string{"enclave", "sign", "--manifest", man, "--libpal", pal, "--key", write("k.pem", rsa2048PEM(t)), "--output", filepath.Join(tmp, "x.sig")}, "want 3072"},
		{"a bad date", []string{"enclave", "sign", "--manifest", man, "--libpal", pal, "--key", key, "--date", "2025-13-01", "--output", filepath.Join(tmp, "x.sig")}, "want YYYY-MM-DD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := cloisterCmd(t, t.TempDir(), tt.args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tt.want) {
				t.Errorf("%v = %v\n%s\nwant a failure saying %q", tt.args, err, out, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tmp, "x.sig")); err == nil {
		t.Error("a refused sign wrote its output")
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rsa2048PEM is an RSA key of the wrong size for SGX.
func rsa2048PEM(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
}
