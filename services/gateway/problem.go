package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

// Problem is an RFC 9457 problem document.
type Problem = api.Problem

var kindStatus = map[errs.Kind]int{
	errs.Invalid:          http.StatusBadRequest,
	errs.Unauthenticated:  http.StatusUnauthorized,
	errs.PermissionDenied: http.StatusForbidden,
	errs.NotFound:         http.StatusNotFound,
	errs.Conflict:         http.StatusConflict,
	errs.TooLarge:         http.StatusRequestEntityTooLarge,
	errs.Unavailable:      http.StatusServiceUnavailable,
	errs.RateLimited:      http.StatusTooManyRequests,
	errs.Internal:         http.StatusInternalServerError,
}

// writeProblem sends err as problem+json: the one place where errors
// become HTTP. The status and code come from its kind, the reason from
// its errs reason.
func writeProblem(w http.ResponseWriter, err error) {
	status, code := kindStatus[errs.KindOf(err)], errs.KindOf(err).String()
	if status == 0 {
		status = http.StatusInternalServerError
	}
	detail, reason := errs.PublicMessage(err), errs.ReasonOf(err)
	var me *methodError
	if errors.As(err, &me) {
		status, code, detail = http.StatusMethodNotAllowed, "method_not_allowed", me.msg
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cloister"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{
		Type: "about:blank", Title: http.StatusText(status), Status: status,
		Detail: detail, Code: code, Reason: reason,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// decodeJSON reads exactly one JSON object into v, strictly: the content
// type must be JSON, the body at most MaxBodyBytes, every field known, and
// nothing may follow the object. Errors say what is wrong.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		return &errs.Error{Kind: errs.Invalid, Message: fmt.Sprintf("Content-Type must be application/json, not %q", ct)}
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	return DecodeStrict(body, v)
}

// DecodeStrict decodes one JSON value from body into v with the rules of
// decodeJSON but for the content type.
func DecodeStrict(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return jsonError(err)
		}
		return errs.New(errs.Invalid, "request body must hold a single JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
		tooBig  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooBig):
		return errs.Newf(errs.TooLarge, "request body is larger than %d bytes", MaxBodyBytes)
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

// pageParams reads ?limit= and ?cursor=.
func pageParams(r *http.Request) (int32, string, error) {
	q := r.URL.Query()
	var limit int32
	if s := q.Get("limit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || n < 1 || n > 200 {
			return 0, "", errs.Newf(errs.Invalid, "limit must be a whole number from 1 to 200, not %q", s)
		}
		limit = int32(n)
	}
	cursor := q.Get("cursor")
	if len(cursor) > 512 {
		return 0, "", errs.New(errs.Invalid, "cursor is not one this API returned")
	}
	return limit, cursor, nil
}
