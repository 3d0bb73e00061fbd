package main

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// ANSI styles, used only when standard output is a terminal.
const (
	styleHeading = "\x1b[1;36m"
	styleCommand = "\x1b[1m"
	styleOutput  = "\x1b[2m"
	styleNote    = "\x1b[32m"
	styleFail    = "\x1b[1;31m"
	styleReset   = "\x1b[0m"
)

// Layout of the narration.
const (
	textIndent   = "    "   // why a step happens, notes, commands
	outputIndent = "      " // what a command printed
	wrapAt       = 78       // columns of the prose
	maxLines     = 14       // of one command's output, unless a view says otherwise
)

// narrator prints the demo: numbered headings, commands as a user would
// type them, their output indented, notes. It is safe for concurrent use
// (a background process's lines arrive while a step runs).
type narrator struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
	width int    // terminal columns that output lines are cut to; 0: no limit
	home  string // the demo's directory, shown as $DEMO
	steps []string
	clock func() string // the time since the demo began, shown in headings; nil: none
}

func (n *narrator) paint(style, s string) string {
	if !n.color || s == "" {
		return s
	}
	return style + s + styleReset
}

func (n *narrator) println(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintln(n.w, s)
}

// step prints the next numbered heading and why the step happens.
func (n *narrator) step(title, why string) {
	n.mu.Lock()
	n.steps = append(n.steps, title)
	num := len(n.steps)
	n.mu.Unlock()
	n.println("")
	heading := n.paint(styleHeading, fmt.Sprintf("%2d. %s", num, title))
	if n.clock != nil {
		heading += "  " + n.paint(styleOutput, fmt.Sprintf("[%s]", n.clock()))
	}
	n.println(heading)
	for _, l := range wrap(why, wrapAt-len(textIndent)) {
		n.println(textIndent + l)
	}
}

// current is the heading of the step under way, for a failure message.
func (n *narrator) current() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.steps) == 0 {
		return "preparing"
	}
	return fmt.Sprintf("step %d (%s)", len(n.steps), n.steps[len(n.steps)-1])
}

// command prints a command line as the user would type it, its words
// already quoted for the shell, broken into lines that end with a
// backslash when it is long.
func (n *narrator) command(words ...string) {
	for i, l := range commandLines(words, wrapAt-len(textIndent)-4) {
		if i == 0 {
			l = "$ " + l
		} else {
			l = "    " + l
		}
		n.println(textIndent + n.paint(styleCommand, l))
	}
}

// commandLines packs words into lines of about width columns, keeping a
// flag with its value, a redirection with its file and a pipe or an
// ampersand with what precedes it, each line but the
// last ending with a backslash.
func commandLines(words []string, width int) []string {
	var units []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if i+1 < len(words) && (w == ">" || strings.HasPrefix(w, "-") && !strings.HasPrefix(words[i+1], "-") &&
			!slices.Contains([]string{"|", ">", "&", "2>&1"}, words[i+1])) {
			w += " " + words[i+1]
			i++
		}
		for i+1 < len(words) && slices.Contains([]string{"|", "&", "2>&1"}, words[i+1]) {
			w += " " + words[i+1]
			i++
		}
		units = append(units, w)
	}
	var lines []string
	line := ""
	for _, u := range units {
		switch {
		case line == "":
			line = u
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(u) > width:
			lines, line = append(lines, line+" \\"), u
		default:
			line += " " + u
		}
	}
	return append(lines, line)
}

// note prints a remark of the demo's own (not a command's output).
func (n *narrator) note(format string, args ...any) {
	mark := "→ "
	for _, para := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		for _, l := range wrap(para, wrapAt-len(textIndent)-2) {
			n.println(textIndent + n.paint(styleNote, mark+l))
			mark = "  "
		}
	}
}

// output prints lines a command printed, indented, the demo's directory
// as $DEMO.
func (n *narrator) output(lines []string) {
	for _, l := range lines {
		if n.home != "" {
			l = strings.ReplaceAll(l, n.home, "$DEMO")
		}
		n.println(n.paint(styleOutput, n.cut(outputIndent+l)))
	}
}

// fail prints what failed and the output that explains it.
func (n *narrator) fail(what string, detail string) {
	n.println("")
	n.println(n.paint(styleFail, "✗ "+what))
	for _, l := range screenLines(detail) {
		n.println(outputIndent + l)
	}
}

// cut shortens a line to the terminal's width, so that a wide table does
// not wrap into a jumble.
func (n *narrator) cut(s string) string {
	if n.width <= 0 || utf8.RuneCountInString(s) <= n.width {
		return s
	}
	r := []rune(s)
	return string(r[:n.width-1]) + "…"
}

// shown is a command line as a user would type it: the binaries by name
// (they are on the PATH in the user's shell), the demo's directory as
// $DEMO, and words quoted for a POSIX shell.
func (n *narrator) shown(argv []string) string {
	return strings.Join(n.words(argv), " ")
}

// words are argv's words as shown.
func (n *narrator) words(argv []string) []string {
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = n.word(a)
	}
	return words
}

func (n *narrator) word(a string) string {
	if n.home != "" && (a == n.home || strings.HasPrefix(a, n.home+"/")) {
		rest := strings.TrimPrefix(a, n.home)
		if rest == "" {
			return "$DEMO"
		}
		return "$DEMO" + shellQuote(rest)
	}
	if k, v, ok := strings.Cut(a, "="); ok && envName.MatchString(k) && n.home != "" && strings.HasPrefix(v, n.home) {
		return k + "=" + n.word(v)
	}
	return shellQuote(a)
}

var (
	envName  = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	shellOK  = regexp.MustCompile(`^[A-Za-z0-9_./:=,@%+-]+$`)
	ansiCode = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]")
)

// shellQuote quotes a word for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	if shellOK.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// screenLines is what text leaves on a terminal, line by line: a carriage
// return (a progress bar) starts the line again, escape sequences and
// trailing blank lines go.
func screenLines(text string) []string {
	text = ansiCode.ReplaceAllString(text, "")
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	out := lines[:0]
	for _, l := range lines {
		l = strings.TrimRight(l, "\r")
		if i := strings.LastIndexByte(l, '\r'); i >= 0 {
			l = l[i+1:]
		}
		out = append(out, strings.TrimRight(l, " \t"))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	if len(out) == 1 && out[0] == "" {
		return nil
	}
	return out
}

// A view chooses the lines of a command's output worth showing.
type view func(lines []string) []string

// head keeps the first max lines and says how many it left out.
func head(max int) view {
	return func(lines []string) []string {
		if len(lines) <= max {
			return lines
		}
		rest := len(lines) - max + 1
		return append(lines[:max-1:max-1], fmt.Sprintf("… (%d more lines)", rest))
	}
}

// fields keeps the lines that give one of keys, in a JSON document
// (`"key": value`) or a FIELD/VALUE table (`key  value`), and the table's
// heading; each run of lines left out becomes "…".
func fields(keys ...string) view {
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	return func(lines []string) []string {
		var out []string
		skipped := false
		for i, l := range lines {
			if want[lineKey(l)] || (i == 0 && strings.HasPrefix(l, "FIELD ")) {
				if skipped {
					out = append(out, "…")
				}
				out, skipped = append(out, l), false
				continue
			}
			skipped = true
		}
		if skipped && len(out) > 0 {
			out = append(out, "…")
		}
		return out
	}
}

// lineKey is the key a line gives: `"key": value` or `key  value`.
func lineKey(l string) string {
	w := strings.Fields(l)
	if len(w) == 0 {
		return ""
	}
	k, _, _ := strings.Cut(w[0], ":")
	return strings.Trim(k, `"`)
}

// pemView shows each PEM block as its BEGIN and END lines.
func pemView(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-----BEGIN ") {
			out = append(out, l, "  …")
		} else if strings.HasPrefix(l, "-----END ") {
			out = append(out, l)
		}
	}
	return out
}

// wrap breaks prose into lines of at most width columns.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		switch {
		case line == "":
			line = w
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) > width:
			lines, line = append(lines, line), w
		default:
			line += " " + w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// prefixWriter writes each complete line it is given to the narrator
// behind a prefix, as a background process prints it.
type prefixWriter struct {
	n      *narrator
	prefix string
	mu     sync.Mutex
	buf    []byte
	all    strings.Builder // everything since reset, for an error message
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all.Write(b)
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		for _, l := range screenLines(string(p.buf[:i])) {
			p.n.output([]string{p.prefix + l})
		}
		p.buf = p.buf[i+1:]
	}
}

// flush prints a last line that has no newline.
func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range screenLines(string(p.buf)) {
		p.n.output([]string{p.prefix + l})
	}
	p.buf = nil
}

// reset forgets what was written so far (a new attempt begins).
func (p *prefixWriter) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all.Reset()
	p.buf = nil
}

func (p *prefixWriter) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all.String()
}
