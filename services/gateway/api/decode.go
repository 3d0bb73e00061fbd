package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/cloister-cc/cloister/libs/errs"
)

// DecodeStrict decodes one JSON object from body into v, as the gateway
// and the node agent take request bodies: valid UTF-8, an object (not
// null, not an array), no field twice at any depth, no unknown field,
// nothing after it. Its errors are errs.Invalid (errs.TooLarge past an
// http.MaxBytesReader's limit) and say what is wrong.
func DecodeStrict(body io.Reader, v any) error {
	data, err := io.ReadAll(body)
	if err != nil {
		return jsonError(err)
	}
	if !utf8.Valid(data) {
		return errs.New(errs.Invalid, "request body is not valid UTF-8")
	}
	if err := checkObject(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errs.New(errs.Invalid, "request body must hold a single JSON object")
	}
	return nil
}

// checkObject refuses a body that is not a JSON object, or names a field
// twice in one object at any depth (encoding/json would keep the last,
// where another reader might keep the first).
func checkObject(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	first, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	if d, ok := first.(json.Delim); !ok || d != '{' {
		return errs.Newf(errs.Invalid, "request body must be a JSON object, not %s", jsonKind(first))
	}
	// fields holds, for each object open, the names seen; nil for arrays.
	fields := []map[string]bool{{}}
	expectKey := true
	for len(fields) > 0 {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the object is open: the body was cut short
		}
		if err != nil {
			return jsonError(err)
		}
		top := fields[len(fields)-1]
		if key, ok := tok.(string); ok && top != nil && expectKey {
			if top[key] {
				return errs.Newf(errs.Invalid, "field %q appears twice in one object", key)
			}
			top[key] = true
			expectKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			fields = append(fields, map[string]bool{})
			expectKey = true
			continue
		case json.Delim('['):
			fields = append(fields, nil)
		case json.Delim('}'), json.Delim(']'):
			fields = fields[:len(fields)-1]
		}
		// After a value inside an object comes the next key.
		expectKey = len(fields) > 0 && fields[len(fields)-1] != nil
	}
	return nil
}

// jsonKind names the JSON value a token starts.
func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	}
	return "an array"
}

func jsonError(err error) error {
	var (
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
		tooBig  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooBig):
		return errs.Newf(errs.TooLarge, "request body is larger than %d bytes", tooBig.Limit)
	case errors.Is(err, io.EOF):
		return errs.New(errs.Invalid, "request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.New(errs.Invalid, "request body is not complete JSON")
	case errors.As(err, &syntax):
		return errs.Newf(errs.Invalid, "request body is not valid JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return errs.Newf(errs.Invalid, "request body must be a JSON object, not %s", typeErr.Value)
		}
		return errs.Newf(errs.Invalid, "field %q must be %s, not %s", typeErr.Field, jsonType(typeErr.Type.Kind().String()), typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errs.Newf(errs.Invalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return errs.Newf(errs.Invalid, "request body is not valid JSON: %v", err)
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int32", "int64", "uint", "uint32", "uint64", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "ptr":
		return "a value of another type"
	}
	return "a " + goKind
}
