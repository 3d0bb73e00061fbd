package enclave

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// ParseImageReference parses an image reference as a user gives it
// (registry/repository:tag or @digest), with errors that say what to
// change rather than the parser's own words. opts are the parser's (e.g.
// name.Insecure).
func ParseImageReference(s string, opts ...name.Option) (name.Reference, error) {
	if err := schemeless(s); err != nil {
		return nil, err
	}
	last := s[strings.LastIndex(s, "/")+1:]
	if !strings.Contains(last, ":") && !strings.Contains(last, "@") {
		return nil, fmt.Errorf("%q has no tag: name one, e.g. %s:1 (a digest, @sha256:..., also does)", s, s)
	}
	ref, err := name.ParseReference(s, append(opts, name.StrictValidation)...)
	if err != nil {
		return nil, fmt.Errorf("%q is not an image reference: want a registry, a repository and a tag, e.g. registry.example.com/team/app:1", s)
	}
	return ref, nil
}

// ParseRepository parses a repository without tag or digest, as a
// converted image's destination is given.
func ParseRepository(s string, opts ...name.Option) (name.Repository, error) {
	if err := schemeless(s); err != nil {
		return name.Repository{}, err
	}
	if last := s[strings.LastIndex(s, "/")+1:]; strings.ContainsAny(last, ":@") {
		return name.Repository{}, fmt.Errorf("%q names a tag or digest: give the repository alone, e.g. registry.example.com/team/app-sgx (the tag is chosen at each conversion)", s)
	}
	repo, err := name.NewRepository(s, append(opts, name.StrictValidation)...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%q is not a repository: want a registry and a path, e.g. registry.example.com/team/app-sgx", s)
	}
	return repo, nil
}

// schemeless refuses a URL where a reference is wanted.
func schemeless(s string) error {
	for _, p := range []string{"http://", "https://", "oci://", "docker://"} {
		if strings.HasPrefix(strings.ToLower(s), p) {
			return fmt.Errorf("%q is a URL: give the image as registry/repository:tag, without %s (plain HTTP is chosen per registry, not in the name)", s, p)
		}
	}
	return nil
}
