// Package depcheck holds the one dependency test over every service and
// command of the repository (docs/architecture.md, "Layers inside a
// service").
package depcheck

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const repo = "github.com/cloister-cc/cloister/"

// rule forbids the packages matching pkg from depending, directly or
// not, on any package with one of the prefixes.
type rule struct {
	what      string
	pkg       func(string) bool
	forbidden []string
}

var rules = []rule{
	{
		what: "domain and app, the inner layers, depend on no transport, storage or wire type",
		pkg: func(p string) bool {
			return strings.HasPrefix(p, repo+"services/") && (strings.HasSuffix(p, "/internal/domain") || strings.HasSuffix(p, "/internal/app"))
		},
		forbidden: []string{"github.com/nats-io/", "github.com/redis/", "net/http", "google.golang.org/protobuf/",
			repo + "libs/gen/", repo + "libs/natsrpc", repo + "libs/events", repo + "libs/kv", repo + "libs/service",
			"/internal/store", "/internal/transport", "/internal/endpoint", "/internal/wire"},
	},
	{
		what: "store adapts storage and peers, and never reaches back into an endpoint or a transport",
		pkg: func(p string) bool {
			return strings.HasPrefix(p, repo+"services/") && strings.HasSuffix(p, "/internal/store")
		},
		forbidden: []string{"/internal/transport", "/internal/endpoint", repo + "services/gateway"},
	},
	{
		what: "wire converts values only: it reaches no store, endpoint or transport",
		pkg: func(p string) bool {
			return strings.HasPrefix(p, repo+"services/") && strings.HasSuffix(p, "/internal/wire")
		},
		forbidden: []string{"/internal/store", "/internal/transport", "/internal/endpoint", repo + "libs/kv", repo + "libs/service"},
	},
	{
		what: "peers adapt other services to the app's ports: no store, endpoint or transport",
		pkg: func(p string) bool {
			return strings.HasPrefix(p, repo+"services/") && strings.HasSuffix(p, "/internal/peers")
		},
		forbidden: []string{"/internal/store", "/internal/transport", "/internal/endpoint", repo + "libs/kv"},
	},
	{
		what: "endpoints convert through wire and call the app, never the store",
		pkg: func(p string) bool {
			return strings.HasPrefix(p, repo+"services/") && strings.HasSuffix(p, "/internal/endpoint")
		},
		forbidden: []string{"/internal/store", "/internal/transport", repo + "libs/kv"},
	},
	{
		what: "the launcher, inside every enclave, carries no registry, NATS or service client",
		pkg:  func(p string) bool { return p == repo+"cmd/cloister-launcher" },
		forbidden: []string{"github.com/google/go-containerregistry/pkg/v1/remote", "github.com/google/go-containerregistry/pkg/registry", "net/http/httptest", "github.com/nats-io/", repo + "libs/natsrpc",
			repo + "libs/gen/", repo + "services/"},
	},
}

// TestDependencies lists every package of the workspace with all it
// depends on, and holds each to the rules.
func TestDependencies(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	patterns := []string{repo + "cmd/...", repo + "libs/...", repo + "services/account/...", repo + "services/attestation/...",
		repo + "services/ca/...", repo + "services/gateway/...", repo + "services/imageconverter/...", repo + "services/noderegistry/..."}
	cmd := exec.Command("go", append([]string{"list", "-deps=false", "-f", `{{.ImportPath}} {{join .Deps " "}}`}, patterns...)...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	matched := map[int]int{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg, deps := fields[0], fields[1:]
		for i, r := range rules {
			if !r.pkg(pkg) {
				continue
			}
			matched[i]++
			for _, d := range deps {
				for _, f := range r.forbidden {
					if strings.HasPrefix(d, f) || (strings.HasPrefix(f, "/") && strings.Contains(d, f) && strings.HasPrefix(d, repo)) {
						t.Errorf("%s depends on %s: %s", pkg, d, r.what)
					}
				}
			}
		}
	}
	for i, r := range rules {
		if matched[i] == 0 {
			t.Errorf("no package matched the rule %q: the test looks in the wrong place", r.what)
		}
	}
}
