package deployments

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeTellsTheTruth holds the README to what the repository does:
// the quick start names every tool .ci/run installs for `make test`; its
// journeys keep join tokens off the command line and write their files
// outside the repository.
func TestReadmeTellsTheTruth(t *testing.T) {
	readme := read(t, "../README.md")
	ci := read(t, "../.ci/run")
	for _, problem := range readmeProblems(readme, ci) {
		t.Error(problem)
	}
}

// TestReadmeChecksCanFail feeds the checks a README that breaks each rule.
func TestReadmeChecksCanFail(t *testing.T) {
	ci := "missing+=(gcc)\nmissing+=(chromium)\n"
	bad := "`make test` needs gcc.\n```sh\ncloister-node-agent --join-token \"$(cloister node token create x)\"\ncloister ca show > ca.pem\n```\n"
	got := strings.Join(readmeProblems(bad, ci), "\n")
	for _, want := range []string{"chromium", "--join-token", "ca.pem"} {
		if !strings.Contains(got, want) {
			t.Errorf("the checks did not complain about %s:\n%s", want, got)
		}
	}
}

// ciPackage is a Debian package .ci/run installs, and the name the README
// gives the tool.
var ciPackageNames = map[string]string{"gcc": "gcc", "redis-server": "Redis", "openssl": "openssl", "chromium": "Chromium",
	"podman": "podman", "runc": "runc", "protobuf-compiler": "protoc"}

func readmeProblems(readme, ci string) []string {
	var out []string
	quick, _, _ := strings.Cut(readme, "### In the browser")
	for _, m := range regexp.MustCompile(`missing\+=\(([a-z0-9-]+)\)`).FindAllStringSubmatch(ci, -1) {
		name, ok := ciPackageNames[m[1]]
		if !ok {
			name = m[1]
		}
		if !strings.Contains(quick, name) {
			out = append(out, "the README's quick start does not say that make test needs "+name+" (.ci/run installs "+m[1]+")")
		}
	}
	for _, block := range regexp.MustCompile("(?s)```(?:sh|bash)\n(.*?)```").FindAllStringSubmatch(readme, -1) {
		for _, line := range strings.Split(block[1], "\n") {
			// What a shell would run: no comment, no <PLACEHOLDER>.
			line, _, _ = strings.Cut(line, " #")
			line = regexp.MustCompile(`<[A-Z_]+>`).ReplaceAllString(line, "X")
			if regexp.MustCompile(`--join-token[ =]`).MatchString(line) {
				out = append(out, "a README command passes the join token on the command line, where the process list shows it: "+line)
			}
			for _, m := range regexp.MustCompile(`>\s*([^\s&|;]+)`).FindAllStringSubmatch(line, -1) {
				if f := m[1]; !strings.HasPrefix(f, "/") && !strings.HasPrefix(f, "~") && !strings.HasPrefix(f, "$") && !strings.HasPrefix(f, "&") {
					out = append(out, "a README command writes "+f+" into the working directory (the repository): "+line)
				}
			}
		}
	}
	return out
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
