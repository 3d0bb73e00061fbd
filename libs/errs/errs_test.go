package errs_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cloister-cc/cloister/libs/errs"
)

// TestIsComparesReasons: a refusal matches its sentinel by kind and
// reason, whatever its message says (it may be reworded, or come back
// over the wire as a new value); errors without a reason match only
// themselves.
func TestIsComparesReasons(t *testing.T) {
	sentinel := errs.Define(errs.NotFound, "image_not_found", "image not found")
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"itself", sentinel, true},
		{"wrapped", fmt.Errorf("getting image: %w", sentinel), true},
		{"off the wire, reworded", &errs.Error{Kind: errs.NotFound, Reason: "image_not_found", Message: "no such image"}, true},
		{"another reason", errs.Define(errs.NotFound, "app_not_found", "image not found"), false},
		{"another kind", &errs.Error{Kind: errs.Conflict, Reason: "image_not_found", Message: "image not found"}, false},
		{"same message, no reason", errs.New(errs.NotFound, "image not found"), false},
	} {
		if got := errors.Is(c.err, sentinel); got != c.want {
			t.Errorf("%s: errors.Is = %v, want %v", c.name, got, c.want)
		}
	}
	oneOff := errs.New(errs.Invalid, "bad")
	if errors.Is(errs.New(errs.Invalid, "bad"), oneOff) || !errors.Is(oneOff, oneOff) {
		t.Error("an error without a reason must match itself only")
	}
}

func TestReasonOf(t *testing.T) {
	if r := errs.ReasonOf(fmt.Errorf("x: %w", errs.Define(errs.Conflict, "name_taken", "taken"))); r != "name_taken" {
		t.Errorf("ReasonOf = %q", r)
	}
	if r := errs.ReasonOf(errs.Define(errs.Internal, "disk_full", "disk full")); r != "" {
		t.Errorf("an internal error's reason %q is shown", r)
	}
	if r := errs.ReasonOf(errors.New("plain")); r != "" {
		t.Errorf("ReasonOf(plain error) = %q", r)
	}
}

func TestDefineRefusesMalformedReasons(t *testing.T) {
	for _, r := range []string{"", "Image", "image-not-found", "1st", "image not found", string(make([]byte, 65))} {
		if errs.ValidReason(r) {
			t.Errorf("ValidReason(%q) = true", r)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Define with reason %q did not panic", r)
				}
			}()
			errs.Define(errs.Invalid, r, "x")
		}()
	}
	if !errs.ValidReason("tcb_out_of_date2") {
		t.Error("a valid reason is refused")
	}
}
