package enclave

import (
	"strings"
	"testing"
)

func TestParseImageReference(t *testing.T) {
	for _, ok := range []string{"registry.example.com/team/app:1", "127.0.0.1:5000/x:2", "r.example.com/a@sha256:" + strings.Repeat("ab", 32)} {
		if _, err := ParseImageReference(ok); err != nil {
			t.Errorf("ParseImageReference(%q) = %v", ok, err)
		}
	}
	for in, says := range map[string]string{
		"registry.example.com/team/app":   "has no tag: name one, e.g. registry.example.com/team/app:1",
		"127.0.0.1:5000/x":                "has no tag",
		"http://registry.example.com/x:1": "is a URL",
		"registry.example.com/Team/app:1": "is not an image reference",
		"registry.example.com/app:":       "is not an image reference",
	} {
		_, err := ParseImageReference(in)
		if err == nil || !strings.Contains(err.Error(), says) || strings.Contains(err.Error(), "name.") {
			t.Errorf("ParseImageReference(%q) = %v, want it to say %q and nothing of the library", in, err, says)
		}
	}
	for in, says := range map[string]string{
		"registry.example.com/team/app:1": "names a tag or digest",
		"https://registry.example.com/x":  "is a URL",
		"registry.example.com/Team":       "is not a repository",
	} {
		_, err := ParseRepository(in)
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("ParseRepository(%q) = %v, want it to say %q", in, err, says)
		}
	}
	if _, err := ParseRepository("127.0.0.1:5000/team/app-sgx"); err != nil {
		t.Errorf("ParseRepository(with a port) = %v", err)
	}
}

func FuzzParseImageReference(f *testing.F) {
	for _, s := range []string{"registry.example.com/team/app:1", "a/b", "http://x/y:1", "x@sha256:00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ref, err := ParseImageReference(s); err == nil && ref.Context().RegistryStr() == "" {
			t.Fatalf("%q parsed without a registry", s)
		}
		_, _ = ParseRepository(s)
	})
}
