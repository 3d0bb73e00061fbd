package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(o options) bool
		want  string
	}{
		{"defaults", nil, nil, func(o options) bool {
			return o.server == "http://127.0.0.1:8080" && o.nodeServer == "https://127.0.0.1:8443" && o.listen == "127.0.0.1:9092" &&
				o.heartbeatEvery == 30*time.Second && !o.simulation && o.reattestEvery == 12*time.Hour && strings.HasSuffix(o.dataDir, "cloister-node-agent")
		}, "the documented defaults"},
		{"environment", nil, map[string]string{"CLOISTER_AGENT_NODE_SERVER": "https://gw:8443", "CLOISTER_AGENT_HEARTBEAT_EVERY": "5s",
			"CLOISTER_AGENT_SIMULATION": "true", "CLOISTER_AGENT_JOIN_TOKEN": "cjt_x", "CLOISTER_AGENT_DATA_DIR": "/d", "CLOISTER_AGENT_NAME": "n",
			"CLOISTER_AGENT_REATTEST_EVERY": "6h"},
			func(o options) bool {
				return o.nodeServer == "https://gw:8443" && o.heartbeatEvery == 5*time.Second && o.simulation && o.joinToken == "cjt_x" &&
					o.dataDir == "/d" && o.name == "n" && o.reattestEvery == 6*time.Hour
			}, "every flag from its variable"},
		{"flag wins", []string{"--listen", "0.0.0.0:9092"}, map[string]string{"CLOISTER_AGENT_LISTEN": "127.0.0.1:1"},
			func(o options) bool { return o.listen == "0.0.0.0:9092" }, "the flag over the variable"},
		{"token file flag wins over token variable", []string{"--join-token-file", "/t"}, map[string]string{"CLOISTER_AGENT_JOIN_TOKEN": "cjt_x"},
			func(o options) bool { return o.joinTokenFile == "/t" && o.joinToken == "" }, "the file, and no token from the environment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseArgs(tt.args, envOf(tt.env), &bytes.Buffer{})
			if err != nil || !tt.check(o) {
				t.Errorf("parseArgs(%q, %v) = %+v, %v, want %s", tt.args, tt.env, o, err, tt.want)
			}
		})
	}
}

func TestHelpNamesEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseArgs([]string{"--help"}, envOf(nil), &out); !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("parseArgs(--help) = %v, want ErrHelp", err)
	}
	for _, flag := range []string{"server", "node-server", "server-ca", "join-token", "join-token-file", "name", "data-dir", "listen",
		"heartbeat-every", "simulation", "reattest-every"} {
		if !strings.Contains(out.String(), "--"+flag+" ") || !strings.Contains(out.String(), "[$"+envName(flag)+"]") {
			t.Errorf("--help does not show --%s with $%s:\n%s", flag, envName(flag), out.String())
		}
	}
	for _, code := range []string{"64", "77", "78", "79"} {
		if !strings.Contains(out.String(), code) {
			t.Errorf("--help does not explain exit code %s", code)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"--nope"}, nil, "--help"},
		{"argument", []string{"extra"}, nil, "flags only"},
		{"bad variable", nil, map[string]string{"CLOISTER_AGENT_HEARTBEAT_EVERY": "often"}, "$CLOISTER_AGENT_HEARTBEAT_EVERY"},
		{"token twice", []string{"--join-token", "cjt_a", "--join-token-file", "/t"}, nil, "not both"},
		{"bad name", []string{"--name", "a b"}, nil, "--name"},
		{"plain node server", []string{"--node-server", "http://127.0.0.1:8443"}, nil, "https"},
		{"zero interval", []string{"--heartbeat-every", "0s"}, nil, "positive"},
		{"zero re-attestation interval", []string{"--reattest-every", "0s"}, nil, "--reattest-every must be positive"},
		{"bad re-attestation variable", nil, map[string]string{"CLOISTER_AGENT_REATTEST_EVERY": "daily"}, "$CLOISTER_AGENT_REATTEST_EVERY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			args := append([]string{"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"}, tt.args...)
			code := runMain(context.Background(), args, envOf(tt.env), &bytes.Buffer{}, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("runMain(%q) = %d, stderr %q; want %d saying %q", tt.args, code, stderr.String(), exitUsage, tt.want)
			}
		})
	}
}

// TestRunMainExitCodes runs the command as a user would, against the
// real gateway: a refused join token ends it with the server's message.
func TestRunMainExitCodes(t *testing.T) {
	tests := []struct {
		name string
		// secret is the join token to give (none when it returns "");
		// refuse, when set, is answered in the gateway's place.
		secret func(g *testGateway) string
		refuse *api.Problem
		code   int
		says   []string
	}{
		{"unknown token", func(*testGateway) string { return "cjt_" + strings.Repeat("A", 43) }, nil, exitNoPerm,
			[]string{"the join token is unknown", "cloister node token create"}},
		{"attestation required", func(g *testGateway) string {
			return g.JoinToken(g.admin, g.account, api.CreateJoinToken{Name: "attested", RequireAttestation: true}).Secret
		}, nil, exitNoPerm, []string{"requires attestation evidence", "cloister node token create"}},
		{"invalid", func(g *testGateway) string { return g.token }, &api.Problem{Status: http.StatusBadRequest, Detail: "csr: the key must be EC P-256"},
			exitConfig, []string{"the key must be EC P-256"}},
		{"no token", func(*testGateway) string { return "" }, nil, exitUsage, []string{"no identity", "--join-token-file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGateway(t)
			g.enrollErr = tt.refuse
			dir := t.TempDir()
			ca := filepath.Join(t.TempDir(), "server-ca.pem")
			if err := os.WriteFile(ca, g.serverCA(), 0o644); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"CLOISTER_AGENT_SERVER": g.public.URL, "CLOISTER_AGENT_NODE_SERVER": g.node.URL,
				"CLOISTER_AGENT_SERVER_CA": ca}
			secret := tt.secret(g)
			if secret != "" {
				tokenFile := filepath.Join(t.TempDir(), "token")
				if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				env["CLOISTER_AGENT_JOIN_TOKEN_FILE"] = tokenFile
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			code := runMain(ctx, []string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--name", "node-a"}, envOf(env), &bytes.Buffer{}, &stderr)
			if code != tt.code {
				t.Fatalf("runMain() = %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			for _, s := range tt.says {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr does not say %q:\n%s", s, stderr.String())
				}
			}
			noSecrets(t, stderr.String(), cmp.Or(secret, g.token))
			if _, err := os.Stat(filepath.Join(dir, nodeFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s after a failed enrolment: %v, want none", nodeFile, err)
			}
		})
	}
}
