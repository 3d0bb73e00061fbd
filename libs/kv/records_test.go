package kv_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/cloister-cc/cloister/libs/kv"
)

type versioned struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version uint64 `json:"-"`
}

// TestRecords: values come back with their versions, writes publish their
// events, and kv's refusals become the store's own.
func TestRecords(t *testing.T) {
	ctx := context.Background()
	_, js, st := setup(t)
	s, err := kv.Open[versioned](ctx, js, kv.Config{Bucket: "records"})
	if err != nil {
		t.Fatal(err)
	}
	notFound, exists, conflict := errors.New("no such thing"), errors.New("taken"), errors.New("changed meanwhile")
	r := kv.Records[versioned, string]{Store: s,
		Key:     func(v *versioned) string { return "a." + v.ID },
		Version: func(v *versioned) *uint64 { return &v.Version },
		Messages: func(_ context.Context, ids ...string) ([]*nats.Msg, error) {
			var out []*nats.Msg
			for _, id := range ids {
				out = append(out, event(id))
			}
			return out, nil
		},
		NotFound: notFound, Exists: exists, Conflict: conflict}

	one, err := r.Create(ctx, versioned{ID: "1", Name: "one"}, "ev-1")
	if err != nil || one.Version == 0 {
		t.Fatalf("Create = %+v, %v", one, err)
	}
	if _, err := r.Create(ctx, versioned{ID: "1"}); !errors.Is(err, exists) {
		t.Errorf("Create of a taken key = %v, want the store's own", err)
	}
	got, err := r.Get(ctx, "a.1")
	if err != nil || got.Name != "one" || got.Version != one.Version {
		t.Fatalf("Get = %+v, %v; want one at version %d", got, err, one.Version)
	}
	if _, err := r.Get(ctx, "a.2"); !errors.Is(err, notFound) {
		t.Errorf("Get of a missing key = %v, want the store's own", err)
	}
	got.Name = "uno"
	updated, err := r.Update(ctx, got, "ev-2")
	if err != nil || updated.Version == one.Version {
		t.Fatalf("Update = %+v, %v", updated, err)
	}
	if _, err := r.Update(ctx, got); !errors.Is(err, conflict) {
		t.Errorf("Update at a stale version = %v, want the store's conflict", err)
	}
	if err := r.Delete(ctx, got); !errors.Is(err, conflict) {
		t.Errorf("Delete at a stale version = %v, want the store's conflict", err)
	}
	all, err := r.List(ctx, "a.*")
	if err != nil || len(all) != 1 || all[0].Name != "uno" || all[0].Version != updated.Version {
		t.Fatalf("List = %+v, %v", all, err)
	}
	if err := r.Delete(ctx, updated, "ev-3"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "a.1"); !errors.Is(err, notFound) {
		t.Errorf("Get after Delete = %v, want the store's not-found", err)
	}
	// The three writes that succeeded published their events.
	if n := streamMsgs(t, st); n != 3 {
		t.Errorf("the stream holds %d events, want 3", n)
	}
}
