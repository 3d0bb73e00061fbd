package sgx

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// The decoders replace encoding/json, which reads TCB Info and QE
// Identity as the reference: what they accept, it must accept and read
// into the same wire struct.
func checkLikeEncodingJSON(t *testing.T, raw []byte) {
	t.Helper()
	var tcb, tcbRef tcbInfoWire
	if err := decodeTCBInfoWire(raw, &tcb); err == nil {
		if err := json.Unmarshal(raw, &tcbRef); err != nil {
			t.Fatalf("TCB Info: accepted what encoding/json refuses (%v): %q", err, raw)
		}
		if !reflect.DeepEqual(tcb, tcbRef) {
			t.Fatalf("TCB Info: read %+v, encoding/json %+v: %q", tcb, tcbRef, raw)
		}
	}
	var qe, qeRef qeIdentityWire
	if err := decodeQEIdentityWire(raw, &qe); err == nil {
		if err := json.Unmarshal(raw, &qeRef); err != nil {
			t.Fatalf("QE Identity: accepted what encoding/json refuses (%v): %q", err, raw)
		}
		if !reflect.DeepEqual(qe, qeRef) {
			t.Fatalf("QE Identity: read %+v, encoding/json %+v: %q", qe, qeRef, raw)
		}
	}
}

func FuzzWireDecoders(f *testing.F) {
	for _, name := range []string{"phala_sgx_quote_v3_collateral.json", "phala_tdx_quote_v4_collateral.json"} {
		c, err := ParseCollateralJSON(readVector(f, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c.TCBInfoJSON)
		f.Add(c.QEIdentityJSON)
	}
	for _, s := range wireOddities {
		f.Add([]byte(s.doc))
	}
	f.Fuzz(checkLikeEncodingJSON)
}

// wireOddities are documents that encoding/json reads one way and a naive
// walk another; want is what the decoder says of them ("" = accepted).
var wireOddities = []struct{ doc, want string }{
	{`{"version":3,"Version":2}`, `member "Version", want "version"`},
	{`{"ver\u0073ion":3}`, `member "version", want "version"`},
	{`{"version":3,"version":2}`, `/version: member "version" given twice`},
	{`{"other":1,"other":2,"version":2}`, ""},
	{`{"version":3}{}`, "data after the top-level value"},
	{`{"version":3.0}`, "/version: 3.0 is not an integer"},
	{`{"version":1e2}`, "/version: 1e2 is not an integer"},
	{`{"version":"3"}`, "/version: want a number, found a string"},
	{"{\"id\":\"S\xffX\"}", "invalid UTF-8"},
	{`{"tcbLevels":{}}`, "/tcbLevels: want an array, found an object"},
	{`{"tcbLevels":[{"tcb":{"sgxtcbcomponents":[{"svn":1},null]}}]}`, ""},
	{`{"tcbLevels":[null,{"advisoryIDs":[null,"INTEL-SA-1"]}]}`, ""},
	{`{"tcbLevels":[{"tcb":{"sgxtcbcomponents":[{"svn":255},{"svn":0},{"svn":1234},{"svn":7,"category":"x"}]}}]}`, ""},
	{`{"tcbLevels":[{"tcb":{"sgxtcbcomponents":[{"svn":01}]}}]}`, "want ',' or '}' after a member"},
	{`{"tcbLevels":[{"tcb":{"sgxtcbcomponents":[{"svn":-1}]}}]}`, ""},
	{`{"tcbLevels":null,"id":null,"version":-0}`, ""},
	{`{"other":{"Version":[1,{"x":null}]},"version":2}`, ""},
	{` null `, ""},
	{`[]`, "want an object, found an array"},
	{``, "offset 0: unexpected end of input, want an object"},
	{`{"version":3,}`, "offset 13: want a member name"},
	{`{"version":3 "id":"SGX"}`, "offset 13: want ',' or '}' after a member"},
	{`{"x":[1 2]}`, "offset 8: want ',' or ']' after an element"},
	{`{"x":[tru]}`, "offset 6: invalid literal"},
	{`{"x":01}`, "offset 6: want ',' or '}' after a member"},
	{`{"x":-}`, "offset 5: invalid number"},
	{"{\"x\":\"a\x01\"}", "offset 7: control character in a string"},
	{`{"x":"\q"}`, "offset 7: invalid escape"},
	{`{"x":"\u12"}`, `offset 7: invalid \u escape`},
	{`{"x":"\ud800"}`, ""},
	{`{"id":"\ud800"}`, "invalid surrogate"},
	{`{"x":"abc}`, "offset 5: unterminated string"},
	{`{"x":` + strings.Repeat("[", 100), "nested more than 64 deep"},
	{`{"x":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}`, ""},
}

func TestWireOddities(t *testing.T) {
	for _, s := range wireOddities {
		var w tcbInfoWire
		err := decodeTCBInfoWire([]byte(s.doc), &w)
		switch {
		case s.want == "" && err != nil:
			t.Errorf("%q: %v, want it accepted", s.doc, err)
		case s.want != "" && (err == nil || !strings.Contains(err.Error(), s.want)):
			t.Errorf("%q: %v, want an error saying %q", s.doc, err, s.want)
		}
		checkLikeEncodingJSON(t, []byte(s.doc))
	}
}

// An error names where in the document it is.
func TestWireErrorsSayWhere(t *testing.T) {
	doc := `{"version":3,"tcbLevels":[{"tcb":{"sgxtcbcomponents":[{"svn":1},{"svn":"2"}]}}]}`
	_, err := ParseTCBInfo([]byte(doc))
	if err == nil || !strings.Contains(err.Error(), "/tcbLevels/0/tcb/sgxtcbcomponents/1/svn: want a number, found a string") {
		t.Fatalf("ParseTCBInfo = %v, want the path of the bad svn", err)
	}
}
