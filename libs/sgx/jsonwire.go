package sgx

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// TCB Info and QE Identity are read by a strict JSON reader that walks
// each document once into the same wire structs encoding/json filled,
// checking its syntax on the way, in about a quarter of encoding/json's
// time: with nothing cached, encoding/json took a sixth of a verification.
// Unescaping is jsontext's.
//
// What this accepts, encoding/json accepts and reads the same way, never
// more (FuzzWireDecoders checks it):
//   - invalid UTF-8, and a name the wire struct knows given twice in one
//     object, are errors (encoding/json replaced the one and took the
//     last of the other);
//   - names are exact. A name that encoding/json would have matched to a
//     field only by folding its case or unescaping it is an error, not an
//     unknown name to skip, so that no document reads differently here;
//   - nesting deeper than maxWireDepth is an error (Intel's nest 5 deep);
//   - null leaves a field unset, as encoding/json does.

const maxWireDepth = 64

// decodeWire runs read over raw, which must hold one JSON value and
// nothing more.
func decodeWire(raw []byte, read func(*wireReader) error) error {
	w := &wireReader{doc: string(raw)}
	if err := read(w); err != nil {
		return err
	}
	if w.skipSpace(); w.pos < len(w.doc) {
		return w.syntax("data after the top-level value")
	}
	return nil
}

// wireReader reads a document. The strings it reads are slices of doc,
// and the integers and strings that fields point to are kept in slabs: an
// allocation each would be a third of the time.
type wireReader struct {
	doc   string
	pos   int
	depth int
	ints  []int
	texts []string
}

// syntax is an error in the document's syntax at the reader's position.
func (w *wireReader) syntax(what string) error {
	return fmt.Errorf("offset %d: %s", w.pos, what)
}

// where names the value that starts at offset at, as a JSON pointer. It
// is for errors only: jsontext reads the document again up to there.
func (w *wireReader) where(at int) string {
	d := jsontext.NewDecoder(strings.NewReader(w.doc), jsontext.AllowDuplicateNames(true))
	for d.InputOffset() < int64(at) {
		if _, err := d.ReadToken(); err != nil {
			return "offset " + strconv.Itoa(at)
		}
	}
	if p := d.StackPointer(); p != "" {
		return string(p)
	}
	return "the top-level value"
}

func (w *wireReader) skipSpace() {
	for w.pos < len(w.doc) {
		switch w.doc[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

// next is the first byte of the next token (after whitespace), or 0.
func (w *wireReader) next() byte {
	w.skipSpace()
	if w.pos < len(w.doc) {
		return w.doc[w.pos]
	}
	return 0
}

// literal reads true, false or null.
func (w *wireReader) literal(lit string) error {
	if !strings.HasPrefix(w.doc[w.pos:], lit) {
		return w.syntax("invalid literal")
	}
	w.pos += len(lit)
	return nil
}

// null reads a null if one is next.
func (w *wireReader) null() bool {
	if w.next() == 'n' && strings.HasPrefix(w.doc[w.pos:], "null") {
		w.pos += len("null")
		return true
	}
	return false
}

// mismatch says that the next value is not what was wanted.
func (w *wireReader) mismatch(what string) error {
	found := ""
	switch w.next() {
	case 't', 'f':
		found = "a boolean"
	case '"':
		found = "a string"
	case '{':
		found = "an object"
	case '[':
		found = "an array"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		found = "a number"
	case 0:
		return w.syntax("unexpected end of input, want " + what)
	default:
		return w.syntax(fmt.Sprintf("invalid character %q, want %s", w.doc[w.pos], what))
	}
	return fmt.Errorf("%s: want %s, found %s", w.where(w.pos), what, found)
}

// scanString reads a string, quotes included, checking its escapes and
// its UTF-8.
func (w *wireReader) scanString() (string, error) {
	start, high := w.pos, false
	for i := start + 1; i < len(w.doc); i++ {
		switch c := w.doc[i]; {
		case c == '"':
			w.pos = i + 1
			raw := w.doc[start:w.pos]
			if high && !utf8.ValidString(raw) {
				w.pos = start
				return "", w.syntax("invalid UTF-8 in a string")
			}
			return raw, nil
		case c == '\\':
			i++
			if i >= len(w.doc) {
				break
			}
			switch w.doc[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(w.doc) || !isHex4(w.doc[i+1:i+5]) {
					w.pos = i
					return "", w.syntax("invalid \\u escape")
				}
				i += 4
			default:
				w.pos = i
				return "", w.syntax("invalid escape")
			}
		case c < 0x20:
			w.pos = i
			return "", w.syntax("control character in a string")
		case c >= 0x80:
			high = true
		}
	}
	w.pos = start
	return "", w.syntax("unterminated string")
}

func isHex4(s string) bool {
	for i := range 4 {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// scanNumber reads a number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (w *wireReader) scanNumber() (string, error) {
	start, i := w.pos, w.pos
	digits := func() int {
		n := 0
		for i < len(w.doc) && '0' <= w.doc[i] && w.doc[i] <= '9' {
			i, n = i+1, n+1
		}
		return n
	}
	if i < len(w.doc) && w.doc[i] == '-' {
		i++
	}
	if i < len(w.doc) && w.doc[i] == '0' {
		i++
	} else if digits() == 0 {
		return "", w.syntax("invalid number")
	}
	if i < len(w.doc) && w.doc[i] == '.' {
		i++
		if digits() == 0 {
			return "", w.syntax("invalid number")
		}
	}
	if i < len(w.doc) && (w.doc[i] == 'e' || w.doc[i] == 'E') {
		i++
		if i < len(w.doc) && (w.doc[i] == '+' || w.doc[i] == '-') {
			i++
		}
		if digits() == 0 {
			return "", w.syntax("invalid number")
		}
	}
	w.pos = i
	return w.doc[start:i], nil
}

// unquote returns a string's value.
func unquote(raw string) (string, error) {
	if strings.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	s, err := jsontext.AppendUnquote(nil, raw)
	return string(s), err
}

// skipValue reads the next value, whatever it is, and keeps nothing.
func (w *wireReader) skipValue() error {
	var err error
	switch w.next() {
	case '"':
		_, err = w.scanString()
	case '{':
		err = w.object(nil, nil)
	case '[':
		err = w.array(w.skipValue)
	case 't':
		err = w.literal("true")
	case 'f':
		err = w.literal("false")
	case 'n':
		err = w.literal("null")
	case 0:
		err = w.syntax("unexpected end of input, want a value")
	default:
		_, err = w.scanNumber()
	}
	return err
}

// enter and leave count the containers the reader is in.
func (w *wireReader) enter() error {
	if w.depth++; w.depth > maxWireDepth {
		return w.syntax(fmt.Sprintf("nested more than %d deep", maxWireDepth))
	}
	w.pos++
	return nil
}

func (w *wireReader) leave() {
	w.depth--
	w.pos++
}

// object reads an object (or null), calling member with the index in names
// of each member's name; member must read the value. Members of other
// names are skipped; one of names given twice is an error.
func (w *wireReader) object(names []string, member func(i int) error) error {
	if w.null() {
		return nil
	}
	if w.next() != '{' {
		return w.mismatch("an object")
	}
	if err := w.enter(); err != nil {
		return err
	}
	if w.next() == '}' {
		w.leave()
		return nil
	}
	var seen uint64
	for {
		if w.next() != '"' {
			return w.syntax("want a member name")
		}
		raw, err := w.scanString()
		if err != nil {
			return err
		}
		if w.next() != ':' {
			return w.syntax("want ':' after a member name")
		}
		w.pos++
		i, err := w.name(raw, names)
		switch {
		case err != nil:
			return err
		case i < 0:
			err = w.skipValue()
		case seen&(1<<i) != 0:
			return fmt.Errorf("%s: member %s given twice", w.where(w.pos), raw)
		default:
			seen |= 1 << i
			err = member(i)
		}
		if err != nil {
			return err
		}
		switch w.next() {
		case ',':
			w.pos++
		case '}':
			w.leave()
			return nil
		default:
			return w.syntax("want ',' or '}' after a member")
		}
	}
}

// name finds a member's name (raw, quoted) in names: its index, or -1 for
// a name that is not there. A name that is one of names only once
// unescaped or folded to another case is an error.
func (w *wireReader) name(raw string, names []string) (int, error) {
	for i, n := range names {
		if len(raw) == len(n)+2 && raw[1:len(raw)-1] == n {
			return i, nil
		}
	}
	if len(names) == 0 {
		return -1, nil
	}
	name, err := unquote(raw)
	if err != nil {
		return -1, err
	}
	for _, n := range names {
		if strings.EqualFold(name, n) {
			return -1, fmt.Errorf("%s: member %q, want %q (names are case-sensitive and unescaped)", w.where(w.pos), name, n)
		}
	}
	return -1, nil
}

// array reads an array (or null), calling elem for each element; elem
// must read it.
func (w *wireReader) array(elem func() error) error {
	if w.null() {
		return nil
	}
	if w.next() != '[' {
		return w.mismatch("an array")
	}
	if err := w.enter(); err != nil {
		return err
	}
	if w.next() == ']' {
		w.leave()
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch w.next() {
		case ',':
			w.pos++
		case ']':
			w.leave()
			return nil
		default:
			return w.syntax("want ',' or ']' after an element")
		}
	}
}

// stringValue reads a string into *out; null leaves *out as it is.
func (w *wireReader) stringValue(out *string) error {
	if w.null() {
		return nil
	}
	if w.next() != '"' {
		return w.mismatch("a string")
	}
	raw, err := w.scanString()
	if err != nil {
		return err
	}
	s, err := unquote(raw)
	if err != nil {
		return err
	}
	*out = s
	return nil
}

// stringField reads a string into a new *out; null leaves it nil.
func (w *wireReader) stringField(out **string) error {
	if w.null() {
		return nil
	}
	if len(w.texts) == 0 {
		w.texts = make([]string, 32)
	}
	s := &w.texts[0]
	if err := w.stringValue(s); err != nil {
		return err
	}
	w.texts = w.texts[1:]
	*out = s
	return nil
}

// intField reads an integer into a new *out; null leaves it nil. Like
// encoding/json, a number with a fraction or an exponent is an error.
func (w *wireReader) intField(out **int) error {
	if w.null() {
		return nil
	}
	switch w.next() {
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
	default:
		return w.mismatch("a number")
	}
	start := w.pos
	raw, err := w.scanNumber()
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(raw, 10, 0)
	if err != nil {
		return fmt.Errorf("%s: %s is not an integer that fits", w.where(start), raw)
	}
	*out = w.newInt(int(n))
	return nil
}

// newInt returns a pointer to n, kept in the reader's slab.
func (w *wireReader) newInt(n int) *int {
	if len(w.ints) == 0 {
		w.ints = make([]int, 256)
	}
	v := &w.ints[0]
	w.ints = w.ints[1:]
	*v = n
	return v
}

// strings reads an array of strings; null leaves *out nil, and a null
// element is "", as encoding/json reads them.
func (w *wireReader) strings(out *[]string) error {
	if w.null() {
		return nil
	}
	list := make([]string, 0, 16)
	err := w.array(func() error {
		list = append(list, "")
		return w.stringValue(&list[len(list)-1])
	})
	if err == nil {
		*out = list
	}
	return err
}

// signedNames are signedWire's members, first in both documents' lists.
var signedNames = []string{"id", "version", "issueDate", "nextUpdate", "tcbEvaluationDataNumber"}

// signed reads signedWire's member signedNames[i].
func (w *wireReader) signed(s *signedWire, i int) error {
	switch i {
	case 0:
		return w.stringField(&s.ID)
	case 1:
		return w.intField(&s.Version)
	case 2:
		return w.stringField(&s.IssueDate)
	case 3:
		return w.stringField(&s.NextUpdate)
	}
	return w.intField(&s.TCBEvaluationDataNumber)
}

var tcbInfoNames = append(slices.Clip(signedNames), "fmspc", "pceId", "tcbType", "tcbLevels", "tdxModule", "tdxModuleIdentities")

var tdxModuleNames = []string{"mrsigner", "attributes", "attributesMask", "id", "tcbLevels"}

// tdxModule reads a TDX TCB Info's "tdxModule", or (withID) one of its
// "tdxModuleIdentities".
func (w *wireReader) tdxModule(m *tdxModuleWire, id **string, levels *[]qeLevelWire) error {
	return w.object(tdxModuleNames, func(i int) error {
		switch i {
		case 0:
			return w.stringField(&m.MRSIGNER)
		case 1:
			return w.stringField(&m.Attributes)
		case 2:
			return w.stringField(&m.AttributesMask)
		case 3:
			if id != nil {
				return w.stringField(id)
			}
		case 4:
			if levels != nil {
				return w.isvsvnLevels(levels)
			}
		}
		return w.skipValue()
	})
}

func decodeTCBInfoWire(raw []byte, t *tcbInfoWire) error {
	return decodeWire(raw, func(w *wireReader) error {
		return w.object(tcbInfoNames, func(i int) error {
			switch i - len(signedNames) {
			case 0:
				return w.stringField(&t.FMSPC)
			case 1:
				return w.stringField(&t.PCEID)
			case 2:
				return w.intField(&t.TCBType)
			case 3:
				return readLevels(w, &t.TCBLevels, func(l *tcbLevelWire) *levelWire { return &l.levelWire },
					func(l *tcbLevelWire) error {
						l.TCB = new(tcbWire)
						return w.tcb(l.TCB)
					})
			case 4:
				if w.null() {
					return nil
				}
				t.TDXModule = new(tdxModuleWire)
				return w.tdxModule(t.TDXModule, nil, nil)
			case 5:
				if w.null() {
					return nil
				}
				ids := make([]tdxModuleIdentityWire, 0, 4)
				err := w.array(func() error {
					ids = append(ids, tdxModuleIdentityWire{})
					m := &ids[len(ids)-1]
					return w.tdxModule(&m.tdxModuleWire, &m.ID, &m.TCBLevels)
				})
				if err == nil {
					t.TDXModuleIdentities = ids
				}
				return err
			}
			return w.signed(&t.signedWire, i)
		})
	})
}

var levelNames = []string{"tcb", "tcbDate", "tcbStatus", "advisoryIDs"}

// readLevels reads "tcbLevels" of either document: rest gives the part of
// a level that both have, and tcb reads a level's "tcb" when it is not
// null.
func readLevels[L any](w *wireReader, out *[]L, rest func(*L) *levelWire, tcb func(*L) error) error {
	if w.null() {
		return nil
	}
	levels := make([]L, 0, 16)
	err := w.array(func() error {
		var zero L
		levels = append(levels, zero)
		l := &levels[len(levels)-1]
		common := rest(l)
		return w.object(levelNames, func(i int) error {
			switch i {
			case 0:
				if w.null() {
					return nil
				}
				return tcb(l)
			case 1:
				return w.stringField(&common.TCBDate)
			case 2:
				return w.stringField(&common.TCBStatus)
			}
			return w.strings(&common.AdvisoryIDs)
		})
	})
	if err == nil {
		*out = levels
	}
	return err
}

// tcbNames are a level's "tcb" members: v3's list, v2's sixteen named
// components (indexes 1 to 16) and the PCESVN.
var tcbNames = []string{"sgxtcbcomponents",
	"sgxtcbcomp01svn", "sgxtcbcomp02svn", "sgxtcbcomp03svn", "sgxtcbcomp04svn",
	"sgxtcbcomp05svn", "sgxtcbcomp06svn", "sgxtcbcomp07svn", "sgxtcbcomp08svn",
	"sgxtcbcomp09svn", "sgxtcbcomp10svn", "sgxtcbcomp11svn", "sgxtcbcomp12svn",
	"sgxtcbcomp13svn", "sgxtcbcomp14svn", "sgxtcbcomp15svn", "sgxtcbcomp16svn",
	"pcesvn", "tdxtcbcomponents"}

var svnNames = []string{"svn"}

func (w *wireReader) tcb(t *tcbWire) error {
	v2 := [16]**int{&t.C01, &t.C02, &t.C03, &t.C04, &t.C05, &t.C06, &t.C07, &t.C08,
		&t.C09, &t.C10, &t.C11, &t.C12, &t.C13, &t.C14, &t.C15, &t.C16}
	return w.object(tcbNames, func(i int) error {
		switch {
		case i == 0:
			return w.components(&t.SGXComponents)
		case i <= 16:
			return w.intField(v2[i-1])
		case i == 17:
			return w.intField(&t.PCESVN)
		}
		return w.components(&t.TDXComponents)
	})
}

// components reads a list of TCB components, [{"svn": n, …}, …].
func (w *wireReader) components(out *[]svnWire) error {
	if w.null() {
		return nil
	}
	comps := make([]svnWire, 0, 16)
	err := w.array(func() error {
		comps = append(comps, svnWire{})
		c := &comps[len(comps)-1]
		if w.plainSVN(&c.SVN) {
			return nil
		}
		return w.object(svnNames, func(int) error { return w.intField(&c.SVN) })
	})
	if err == nil {
		*out = comps
	}
	return err
}

// plainSVN reads a component written as Intel writes them, {"svn":N}
// with N of one to three digits, into *out, and reports whether it did;
// it reads nothing otherwise, for the general path to read. Two hundred of
// them make a TCB Info: the general path took a third of its time.
func (w *wireReader) plainSVN(out **int) bool {
	const head = `{"svn":`
	rest := w.doc[w.pos:]
	if !strings.HasPrefix(rest, head) {
		return false
	}
	n, i := 0, len(head)
	for ; i < len(rest) && i < len(head)+3 && '0' <= rest[i] && rest[i] <= '9'; i++ {
		n = n*10 + int(rest[i]-'0')
	}
	digits := i - len(head)
	if digits == 0 || i >= len(rest) || rest[i] != '}' || (digits > 1 && rest[len(head)] == '0') {
		return false
	}
	*out = w.newInt(n)
	w.pos += i + 1
	return true
}

var qeIdentityNames = append(slices.Clip(signedNames),
	"miscselect", "miscselectMask", "attributes", "attributesMask", "mrsigner", "isvprodid", "tcbLevels")

var isvsvnNames = []string{"isvsvn"}

func decodeQEIdentityWire(raw []byte, q *qeIdentityWire) error {
	return decodeWire(raw, func(w *wireReader) error {
		return w.object(qeIdentityNames, func(i int) error {
			switch i - len(signedNames) {
			case 0:
				return w.stringField(&q.MiscSelect)
			case 1:
				return w.stringField(&q.MiscSelectMask)
			case 2:
				return w.stringField(&q.Attributes)
			case 3:
				return w.stringField(&q.AttributesMask)
			case 4:
				return w.stringField(&q.MRSIGNER)
			case 5:
				return w.intField(&q.ISVProdID)
			case 6:
				return w.isvsvnLevels(&q.TCBLevels)
			}
			return w.signed(&q.signedWire, i)
		})
	})
}

// isvsvnLevels reads "tcbLevels" whose "tcb" is {"isvsvn": n}: a QE
// Identity's, or a TDX module identity's.
func (w *wireReader) isvsvnLevels(out *[]qeLevelWire) error {
	return readLevels(w, out, func(l *qeLevelWire) *levelWire { return &l.levelWire },
		func(l *qeLevelWire) error {
			l.TCB = new(isvsvnWire)
			return w.object(isvsvnNames, func(int) error { return w.intField(&l.TCB.ISVSVN) })
		})
}

var versionNames = []string{"version"}

// wireVersion reads a document's "version" alone, or nil.
func wireVersion(raw []byte) *int {
	var v *int
	err := decodeWire(raw, func(w *wireReader) error {
		return w.object(versionNames, func(int) error { return w.intField(&v) })
	})
	if err != nil {
		return nil
	}
	return v
}
