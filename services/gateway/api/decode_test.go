package api_test

import (
	"strings"
	"testing"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// TestDecodeStrict: the bodies encoding/json would take quietly (invalid
// UTF-8, a field twice at any depth, null) are refused, saying why; the
// rest decodes.
func TestDecodeStrict(t *testing.T) {
	type inner struct {
		A string `json:"a"`
		B []int  `json:"b"`
	}
	type body struct {
		Name  string  `json:"name"`
		Inner inner   `json:"inner"`
		List  []inner `json:"list"`
	}
	for _, c := range []struct {
		name, in, want string // want "" decodes
	}{
		{"good", `{"name":"x","inner":{"a":"y","b":[1,2]},"list":[{"a":"1"},{"a":"2"}]}`, ""},
		{"same key in two objects", `{"inner":{"a":"y"},"list":[{"a":"1"},{"a":"2"}]}`, ""},
		{"string values that look like keys", `{"name":"name","inner":{"a":"a"}}`, ""},
		{"duplicate at the top", `{"name":"x","name":"y"}`, `field "name" appears twice`},
		{"duplicate nested", `{"inner":{"a":"y","a":"z"}}`, `field "a" appears twice`},
		{"duplicate in an array's object", `{"list":[{"a":"1","a":"2"}]}`, `field "a" appears twice`},
		{"null", `null`, "not null"},
		{"array", `[1]`, "not an array"},
		{"string", `"x"`, "not a string"},
		{"invalid UTF-8", "{\"name\":\"\xc3\x28\"}", "not valid UTF-8"},
		{"trailing data", `{"name":"x"} {}`, "single JSON object"},
		{"empty", ``, "body is empty"},
		{"unknown field", `{"nope":1}`, "unknown field"},
	} {
		var b body
		err := api.DecodeStrict(strings.NewReader(c.in), &b)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: DecodeStrict = %v, want it decoded", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: DecodeStrict = %v, want an error saying %q", c.name, err, c.want)
		}
	}
}
