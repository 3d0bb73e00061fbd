package kv

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
)

// Records is one kind of versioned value in a store: where each is kept
// (Key), where it carries its version (Version), how the events of a
// write become its outbox messages (Messages), and the store's own
// refusals. It gives every service's store the same create, get, list,
// update and delete.
type Records[T, E any] struct {
	Store    *Store[T]
	Key      func(*T) string
	Version  func(*T) *uint64
	Messages func(ctx context.Context, evs ...E) ([]*nats.Msg, error)
	// NotFound answers a missing key, Exists a taken one and Conflict a
	// write that lost the race; nil leaves kv's own error.
	NotFound, Exists, Conflict error
}

// Create stores a new value with its events and returns it with its
// version.
func (r Records[T, E]) Create(ctx context.Context, v T, evs ...E) (T, error) {
	msgs, err := r.Messages(ctx, evs...)
	if err != nil {
		var zero T
		return zero, err
	}
	e, err := r.Store.Create(ctx, r.Key(&v), v, msgs...)
	return r.value(e, err)
}

// Get returns the value under key with its version.
func (r Records[T, E]) Get(ctx context.Context, key string) (T, error) {
	e, err := r.Store.Get(ctx, key)
	return r.value(e, err)
}

// List returns the values whose keys match filter, sorted by key, each
// with its version.
func (r Records[T, E]) List(ctx context.Context, filter string) ([]T, error) {
	es, err := r.Store.List(ctx, filter)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(es))
	for i, e := range es {
		out[i] = e.Value
		*r.Version(&out[i]) = e.Version
	}
	return out, nil
}

// Update replaces v if its version is still the stored one, with its
// events, and returns it with its new version.
func (r Records[T, E]) Update(ctx context.Context, v T, evs ...E) (T, error) {
	msgs, err := r.Messages(ctx, evs...)
	if err != nil {
		var zero T
		return zero, err
	}
	e, err := r.Store.Update(ctx, r.Key(&v), v, *r.Version(&v), msgs...)
	return r.value(e, err)
}

// Delete removes v if its version is still the stored one, with its
// events.
func (r Records[T, E]) Delete(ctx context.Context, v T, evs ...E) error {
	msgs, err := r.Messages(ctx, evs...)
	if err != nil {
		return err
	}
	return r.refusal(r.Store.Delete(ctx, r.Key(&v), *r.Version(&v), msgs...))
}

// value is an entry's value with its version, or err as the store's own
// refusal.
func (r Records[T, E]) value(e Entry[T], err error) (T, error) {
	if err != nil {
		var zero T
		return zero, r.refusal(err)
	}
	v := e.Value
	*r.Version(&v) = e.Version
	return v, nil
}

func (r Records[T, E]) refusal(err error) error {
	switch {
	case errors.Is(err, ErrNotFound) && r.NotFound != nil:
		return r.NotFound
	case errors.Is(err, ErrExists) && r.Exists != nil:
		return r.Exists
	case errors.Is(err, ErrConflict) && r.Conflict != nil:
		return r.Conflict
	}
	return err
}
