package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestShown(t *testing.T) {
	n := &narrator{home: "/tmp/cloister-demo-1"}
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"cloister", "app", "create", "hello", "--domain", "hello.cloister.test"}, "cloister app create hello --domain hello.cloister.test"},
		{[]string{"cloister", "account", "create", "My team"}, "cloister account create 'My team'"},
		{[]string{"echo", "it's"}, `echo 'it'\''s'`},
		{[]string{"cloister-node-agent", "--data-dir", "/tmp/cloister-demo-1/agent"}, "cloister-node-agent --data-dir $DEMO/agent"},
		{[]string{"CLOISTER_CONFIG=/tmp/cloister-demo-1/config.json", "cloister"}, "CLOISTER_CONFIG=$DEMO/config.json cloister"},
		{[]string{"ls", "/tmp/cloister-demo-10"}, "ls /tmp/cloister-demo-10"}, // another directory
		{[]string{"x", "a b", "$HOME", ""}, "x 'a b' '$HOME' ''"},
	}
	for _, tt := range tests {
		if got := n.shown(tt.argv); got != tt.want {
			t.Errorf("shown(%q) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}

func TestScreenLines(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\n\n", nil},
		{"one\ntwo  \n\n", []string{"one", "two"}},
		// A progress bar redrawn with carriage returns leaves its last state.
		{"pending  [   ] 0/1\rconverting [=  ] 0/1\rconverted [===] 1/1\n{\n}\n", []string{"converted [===] 1/1", "{", "}"}},
		{"\x1b[1mbold\x1b[0m\r\n", []string{"bold"}},
	}
	for _, tt := range tests {
		if got := screenLines(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("screenLines(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestViews(t *testing.T) {
	json := screenLines(`{
  "id": "img-1",
  "status": "converted",
  "input_image": "r/in:1",
  "progress": {
    "phase": "push"
  },
  "mrenclave": "ab"
}`)
	if got, want := fields("status", "mrenclave")(json), []string{"…", `  "status": "converted",`, "…", `  "mrenclave": "ab"`, "…"}; !slices.Equal(got, want) {
		t.Errorf("fields(status, mrenclave) of JSON = %q, want %q", got, want)
	}
	table := []string{"FIELD   VALUE", "id      t-1", "kind    domain", "status  approved"}
	if got, want := fields("kind", "status")(table), []string{"FIELD   VALUE", "…", "kind    domain", "status  approved"}; !slices.Equal(got, want) {
		t.Errorf("fields(kind, status) of a table = %q, want %q", got, want)
	}
	lines := []string{"1", "2", "3", "4", "5"}
	if got, want := head(3)(slices.Clone(lines)), []string{"1", "2", "… (3 more lines)"}; !slices.Equal(got, want) {
		t.Errorf("head(3) = %q, want %q", got, want)
	}
	if got := head(5)(slices.Clone(lines)); !slices.Equal(got, lines) {
		t.Errorf("head(5) of 5 lines = %q, want them all", got)
	}
	pem := []string{"-----BEGIN CERTIFICATE-----", "MIIB", "AAAA", "-----END CERTIFICATE-----"}
	if got, want := pemView(pem), []string{pem[0], "  …", pem[3]}; !slices.Equal(got, want) {
		t.Errorf("pemView = %q, want %q", got, want)
	}
}

func TestNarration(t *testing.T) {
	var buf bytes.Buffer
	n := &narrator{w: &buf, home: "/tmp/d", width: 30}
	n.step("Start", "why it happens")
	n.command(n.words([]string{"cloister", "server", "--data-dir", "/tmp/d/server"})...)
	n.output([]string{"token kept in /tmp/d/config.json", strings.Repeat("x", 40)})
	n.note("ready")
	want := "\n 1. Start\n" +
		"    why it happens\n" +
		"    $ cloister server --data-dir $DEMO/server\n" +
		"      token kept in $DEMO/con…\n" +
		"      xxxxxxxxxxxxxxxxxxxxxxx…\n" +
		"    → ready\n"
	if got := buf.String(); got != want {
		t.Errorf("narration =\n%s\nwant\n%s", got, want)
	}
	if got := n.current(); got != "step 1 (Start)" {
		t.Errorf("current() = %q, want step 1 (Start)", got)
	}
	// Colours only when asked for (a terminal).
	buf.Reset()
	n.color = true
	n.command("ls")
	if got := buf.String(); !strings.Contains(got, "\x1b[") {
		t.Errorf("coloured command = %q, want an escape sequence", got)
	}
}

func TestHeading(t *testing.T) {
	for page, want := range map[string]string{
		"<h1>Hello from an attested enclave</h1>":           "Hello from an attested enclave",
		"<H1 class=x>Hello <em>there</em>\n &amp; you</H1>": "Hello there & you",
		"<p>no heading</p>":                                 "",
	} {
		if got := heading(page); got != want {
			t.Errorf("heading(%q) = %q, want %q", page, got, want)
		}
	}
}

func TestCommandLines(t *testing.T) {
	words := []string{"cloister-node-agent", "--server", "http://127.0.0.1:8080", "--simulation", "--name", "n1", ">", "$DEMO/agent.log", "2>&1", "&"}
	tests := []struct {
		width int
		want  []string
	}{
		{200, []string{"cloister-node-agent --server http://127.0.0.1:8080 --simulation --name n1 > $DEMO/agent.log 2>&1 &"}},
		{40, []string{
			`cloister-node-agent \`,
			`--server http://127.0.0.1:8080 \`,
			`--simulation --name n1 \`,
			`> $DEMO/agent.log 2>&1 &`,
		}},
	}
	for _, tt := range tests {
		if got := commandLines(words, tt.width); !slices.Equal(got, tt.want) {
			t.Errorf("commandLines(width %d) = %q, want %q", tt.width, got, tt.want)
		}
	}
}
