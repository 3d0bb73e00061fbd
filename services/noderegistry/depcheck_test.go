package noderegistry

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestInnerLayersImportNoTransport keeps domain and app free of NATS,
// Redis, HTTP and protobuf: dependencies point inward.
func TestInnerLayersImportNoTransport(t *testing.T) {
	forbidden := []string{
		"github.com/nats-io/", "github.com/redis/", "net/http", "google.golang.org/protobuf",
		"github.com/cloister-cc/cloister/libs/gen", "github.com/cloister-cc/cloister/libs/natsrpc",
		"github.com/cloister-cc/cloister/libs/events", "github.com/cloister-cc/cloister/libs/kv",
		"github.com/cloister-cc/cloister/services/noderegistry/internal/store",
		"github.com/cloister-cc/cloister/services/noderegistry/internal/transport",
		"github.com/cloister-cc/cloister/services/noderegistry/client",
		"github.com/cloister-cc/cloister/services/attestation/client",
		"github.com/cloister-cc/cloister/services/ca/client",
	}
	checked := 0
	for _, dir := range []string{"internal/domain", "internal/app"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, file := range files {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				for _, bad := range forbidden {
					if strings.HasPrefix(path, bad) {
						t.Errorf("%s imports %s; the %s layer must not depend on transport or storage", file, path, dir)
					}
				}
			}
			checked++
		}
	}
	if checked < 3 {
		t.Fatalf("checked %d files, expected the domain and app sources", checked)
	}
}
