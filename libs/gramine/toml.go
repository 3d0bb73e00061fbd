package gramine

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Table is a TOML table that keeps its keys in the order they were first
// defined, as the Python dict that Gramine's signer parses a manifest into:
// that order is the order in which the manifest is written back, and so
// part of MRENCLAVE.
//
// Values are string, int64, float64, bool, []any (an array, whose
// elements are values) and *Table.
type Table struct {
	keys []string
	vals map[string]any
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{vals: map[string]any{}} }

// Get returns the value of key.
func (t *Table) Get(key string) (any, bool) {
	v, ok := t.vals[key]
	return v, ok
}

// Set sets key to v: a new key goes last, an existing one keeps its place.
func (t *Table) Set(key string, v any) {
	if t.vals == nil {
		t.vals = map[string]any{}
	}
	if _, ok := t.vals[key]; !ok {
		t.keys = append(t.keys, key)
	}
	t.vals[key] = v
}

// SetDefault sets key to v unless it is set (Python's dict.setdefault),
// and returns key's value.
func (t *Table) SetDefault(key string, v any) any {
	if old, ok := t.vals[key]; ok {
		return old
	}
	t.Set(key, v)
	return v
}

// Keys returns the keys in order.
func (t *Table) Keys() []string { return append([]string(nil), t.keys...) }

// Len is the number of keys.
func (t *Table) Len() int { return len(t.keys) }

// Table returns the sub-table at key, and false when key is unset or
// holds another kind of value.
func (t *Table) Table(key string) (*Table, bool) {
	v, ok := t.vals[key].(*Table)
	return v, ok
}

// MaxManifestSize bounds the manifests ParseTOML reads: Gramine's
// manifests list every trusted file, so a large image makes a manifest of
// a few MiB; 64 MiB is far beyond any, and stops a hostile one early.
const MaxManifestSize = 64 << 20

// ErrTOML is returned, wrapped, for bytes that are not a TOML document
// this package reads.
var ErrTOML = errors.New("gramine: invalid TOML")

// ParseTOML reads a TOML 1.0 document into an ordered table, as Python's
// tomli does. Dates and times, which Gramine's manifests never hold and
// whose Python rendering this package does not reproduce, are refused.
func ParseTOML(b []byte) (*Table, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d MiB a manifest may have", ErrTOML, len(b), MaxManifestSize>>20)
	}
	// go-toml's decoder checks what its parser does not: keys defined
	// twice, tables redefined, arrays of tables extending a static array.
	var check map[string]any
	if err := toml.Unmarshal(b, &check); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("%w: line %d, column %d: %s", ErrTOML, row, col, de.Error())
		}
		return nil, fmt.Errorf("%w: %v", ErrTOML, err)
	}
	var p unstable.Parser
	p.Reset(b)
	root := NewTable()
	cur := root
	for p.NextExpression() {
		e := p.Expression()
		var err error
		switch e.Kind {
		case unstable.Table:
			cur, err = descend(root, keyParts(e.Key()))
		case unstable.ArrayTable:
			cur, err = appendTable(root, keyParts(e.Key()))
		case unstable.KeyValue:
			err = setKeyValue(cur, e)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrTOML, p.Shape(e.Raw).Start.Line, err)
		}
	}
	if err := p.Error(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTOML, err)
	}
	return root, nil
}

func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

// descend walks from t down the dotted key parts, creating the tables
// that do not exist; through an array of tables it goes into the last.
func descend(t *Table, parts []string) (*Table, error) {
	for i, k := range parts {
		v, ok := t.vals[k]
		if !ok {
			sub := NewTable()
			t.Set(k, sub)
			t = sub
			continue
		}
		switch v := v.(type) {
		case *Table:
			t = v
		case []any:
			last, ok := lastTable(v)
			if !ok {
				return nil, fmt.Errorf("key %q is an array, not a table", strings.Join(parts[:i+1], "."))
			}
			t = last
		default:
			return nil, fmt.Errorf("key %q is a value, not a table", strings.Join(parts[:i+1], "."))
		}
	}
	return t, nil
}

func lastTable(a []any) (*Table, bool) {
	if len(a) == 0 {
		return nil, false
	}
	t, ok := a[len(a)-1].(*Table)
	return t, ok
}

// appendTable handles [[a.b]]: a new table at the end of the array a.b.
func appendTable(root *Table, parts []string) (*Table, error) {
	parent, err := descend(root, parts[:len(parts)-1])
	if err != nil {
		return nil, err
	}
	k := parts[len(parts)-1]
	var a []any
	if v, ok := parent.vals[k]; ok {
		if a, ok = v.([]any); !ok {
			return nil, fmt.Errorf("key %q is not an array of tables", strings.Join(parts, "."))
		}
	}
	t := NewTable()
	parent.Set(k, append(a, t))
	return t, nil
}

func setKeyValue(t *Table, kv *unstable.Node) error {
	parts := keyParts(kv.Key())
	parent, err := descend(t, parts[:len(parts)-1])
	if err != nil {
		return err
	}
	v, err := value(kv.Value())
	if err != nil {
		return fmt.Errorf("key %q: %w", strings.Join(parts, "."), err)
	}
	parent.Set(parts[len(parts)-1], v)
	return nil
}

func value(n *unstable.Node) (any, error) {
	switch n.Kind {
	case unstable.String:
		return string(n.Data), nil
	case unstable.Bool:
		return string(n.Data) == "true", nil
	case unstable.Integer:
		i, err := strconv.ParseInt(string(n.Data), 0, 64)
		if err != nil {
			return nil, fmt.Errorf("integer %s: %w", n.Data, err)
		}
		return i, nil
	case unstable.Float:
		return parseFloat(string(n.Data))
	case unstable.Array:
		a := []any{}
		for it := n.Children(); it.Next(); {
			if it.Node().Kind == unstable.Comment {
				continue
			}
			v, err := value(it.Node())
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		return a, nil
	case unstable.InlineTable:
		t := NewTable()
		for it := n.Children(); it.Next(); {
			if it.Node().Kind != unstable.KeyValue {
				continue
			}
			if err := setKeyValue(t, it.Node()); err != nil {
				return nil, err
			}
		}
		return t, nil
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return nil, fmt.Errorf("dates and times are not supported in a manifest")
	}
	return nil, fmt.Errorf("unexpected %s", n.Kind)
}

func parseFloat(s string) (float64, error) {
	s = strings.ReplaceAll(s, "_", "")
	switch strings.TrimLeft(s, "+-") {
	case "nan":
		return math.NaN(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("float %s: %w", s, err)
	}
	return f, nil
}

// MarshalTOML writes t as Python's tomli_w 1.0.0 does with its defaults,
// the writer of Gramine's signer: every table's plain values first, then
// its sub-tables as [name] sections and its arrays of long tables as
// [[name]] sections, a blank line before each section but the first;
// arrays one element a line; strings in double quotes with tomli_w's
// escapes.
func MarshalTOML(t *Table) ([]byte, error) {
	var w tomlWriter
	if err := w.table(t, "", false); err != nil {
		return nil, err
	}
	return []byte(w.b.String()), nil
}

// tomli_w's layout constants.
const (
	arrayIndent   = "    "
	maxLineLength = 100
)

type tomlWriter struct {
	b strings.Builder
}

type section struct {
	key   string
	t     *Table
	inAOT bool
}

func (w *tomlWriter) table(t *Table, name string, insideAOT bool) error {
	var literals []string
	var sections []section
	for _, k := range t.keys {
		switch v := t.vals[k].(type) {
		case *Table:
			sections = append(sections, section{k, v, false})
		case []any:
			if isAOT(v) && !allInline(v) {
				for _, e := range v {
					sections = append(sections, section{k, e.(*Table), true})
				}
				continue
			}
			literals = append(literals, k)
		default:
			literals = append(literals, k)
		}
	}

	yielded := false
	if insideAOT || (name != "" && (len(literals) > 0 || len(sections) == 0)) {
		yielded = true
		if insideAOT {
			w.b.WriteString("[[" + name + "]]\n")
		} else {
			w.b.WriteString("[" + name + "]\n")
		}
	}
	for _, k := range literals {
		yielded = true
		s, err := literal(t.vals[k], 0)
		if err != nil {
			return fmt.Errorf("%s: %w", joinName(name, formatKey(k)), err)
		}
		w.b.WriteString(formatKey(k) + " = " + s + "\n")
	}
	for _, s := range sections {
		if yielded {
			w.b.WriteString("\n")
		}
		yielded = true
		if err := w.table(s.t, joinName(name, formatKey(s.key)), s.inAOT); err != nil {
			return err
		}
	}
	return nil
}

func joinName(name, key string) string {
	if name == "" {
		return key
	}
	return name + "." + key
}

// isAOT tells whether a is a non-empty array of tables only.
func isAOT(a []any) bool {
	if len(a) == 0 {
		return false
	}
	for _, e := range a {
		if _, ok := e.(*Table); !ok {
			return false
		}
	}
	return true
}

// allInline is tomli_w's heuristic: an array of tables is written inline
// when every table, rendered inline and indented as an array element,
// fits one line of at most 100 characters.
func allInline(a []any) bool {
	for _, e := range a {
		s, err := inlineTable(e.(*Table))
		if err != nil || strings.Contains(s, "\n") || utf8.RuneCountInString(arrayIndent+s+",") > maxLineLength {
			return false
		}
	}
	return true
}

func literal(v any, nest int) (string, error) {
	switch v := v.(type) {
	case bool:
		if v {
			return "true", nil
		}
		return "false", nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case int:
		return strconv.Itoa(v), nil
	case float64:
		return formatFloat(v), nil
	case string:
		return formatString(v)
	case []any:
		if len(v) == 0 {
			return "[]", nil
		}
		var b strings.Builder
		b.WriteString("[\n")
		for i, e := range v {
			s, err := literal(e, nest+1)
			if err != nil {
				return "", err
			}
			if i > 0 {
				b.WriteString(",\n")
			}
			b.WriteString(strings.Repeat(arrayIndent, nest+1) + s)
		}
		b.WriteString(",\n" + strings.Repeat(arrayIndent, nest) + "]")
		return b.String(), nil
	case *Table:
		return inlineTable(v)
	}
	return "", fmt.Errorf("a value of type %T cannot be written", v)
}

func inlineTable(t *Table) (string, error) {
	if len(t.keys) == 0 {
		return "{}", nil
	}
	parts := make([]string, 0, len(t.keys))
	for _, k := range t.keys {
		s, err := literal(t.vals[k], 0)
		if err != nil {
			return "", err
		}
		parts = append(parts, formatKey(k)+" = "+s)
	}
	return "{ " + strings.Join(parts, ", ") + " }", nil
}

// formatFloat writes f as Python's repr: the shortest digits that read
// back as f, in positional notation with at least one decimal when the
// decimal exponent is from -4 to 15, in scientific notation with a signed
// two-digit-or-more exponent otherwise.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// formatKey writes a key bare when it is made of A-Z a-z 0-9 _ and -,
// quoted otherwise.
func formatKey(k string) string {
	if k != "" && strings.IndexFunc(k, func(r rune) bool { return !isBareKeyChar(r) }) < 0 {
		return k
	}
	s, _ := formatString(k)
	return s
}

func isBareKeyChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// formatString writes a basic string as tomli_w does: ", \ and the
// control characters but tab escaped, \b \t... in their short forms and
// the others as \u00XX in lower-case hex.
func formatString(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("string %q is not valid UTF-8", s)
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}
