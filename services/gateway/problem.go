package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"

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

// DecodeStrict is api.DecodeStrict: the gateway's rules for a JSON body.
var DecodeStrict = api.DecodeStrict

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
