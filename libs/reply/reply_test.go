package reply_test

import (
	"errors"
	"strconv"
	"testing"

	"github.com/cloister-cc/cloister/libs/reply"
)

func TestWith(t *testing.T) {
	built := 0
	build := func() *string { built++; s := "ok"; return &s }
	boom := errors.New("boom")
	if r, err := reply.With(boom, build); r != nil || !errors.Is(err, boom) || built != 0 {
		t.Fatalf("With(err) = %v, %v; built %d times", r, err, built)
	}
	if r, err := reply.With(nil, build); err != nil || r == nil || *r != "ok" || built != 1 {
		t.Fatalf("With(nil) = %v, %v; built %d times", r, err, built)
	}
}

func TestMap(t *testing.T) {
	if got := reply.Map([]int{1, 2, 3}, strconv.Itoa); len(got) != 3 || got[0] != "1" || got[2] != "3" {
		t.Fatalf("Map = %q", got)
	}
	if got := reply.Map[int, string](nil, strconv.Itoa); got != nil {
		t.Fatalf("Map(nil) = %q, want nil", got)
	}
}
