package cache

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultMaxEntries bounds a Memory cache created with maxEntries 0.
const DefaultMaxEntries = 100_000

// janitorInterval is how often a Memory cache drops expired entries that no
// Get has touched, so they do not hold memory until evicted.
const janitorInterval = time.Minute

var _ Cache = (*Memory)(nil)

// Memory is an in-process Cache bounded by a number of entries, evicting the
// least recently used. Expired entries are dropped when a Get finds them and
// by a periodic janitor. It is safe for concurrent use.
type Memory struct {
	max int

	mu    sync.Mutex
	order *list.List // of *entry, most recently used first
	items map[string]*list.Element

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type entry struct {
	key     string
	value   []byte
	expires time.Time
}

// NewMemory returns an in-process cache bounded to maxEntries (evicting the
// least recently used; 0 or less means DefaultMaxEntries), with lazy expiry
// on Get and periodic cleanup. Close stops the cleanup.
func NewMemory(maxEntries int) *Memory {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	m := &Memory{
		max:   maxEntries,
		order: list.New(),
		items: make(map[string]*list.Element),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go m.janitor(janitorInterval)
	return m
}

// Get returns a copy of the value under key, or ErrMiss.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("getting cache entry: %w", err)
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return nil, ErrMiss
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		m.remove(el)
		return nil, ErrMiss
	}
	m.order.MoveToFront(el)
	return clone(e.value), nil
}

// Set stores a copy of value under key for ttl, evicting the least recently
// used entry when the cache is full.
func (m *Memory) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("setting cache entry with ttl %v: %w", ttl, ErrInvalidTTL)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("setting cache entry: %w", err)
	}
	e := &entry{key: key, value: clone(value), expires: time.Now().Add(ttl)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		el.Value = e
		m.order.MoveToFront(el)
		return nil
	}
	for m.order.Len() >= m.max {
		m.remove(m.order.Back())
	}
	m.items[key] = m.order.PushFront(e)
	return nil
}

// Add stores a copy of value under key for ttl if key is absent or expired.
func (m *Memory) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("adding cache entry with ttl %v: %w", ttl, ErrInvalidTTL)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("adding cache entry: %w", err)
	}
	now := time.Now()
	e := &entry{key: key, value: clone(value), expires: now.Add(ttl)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		if now.Before(el.Value.(*entry).expires) {
			return false, nil
		}
		el.Value = e
		m.order.MoveToFront(el)
		return true, nil
	}
	for m.order.Len() >= m.max {
		m.remove(m.order.Back())
	}
	m.items[key] = m.order.PushFront(e)
	return true, nil
}

// Delete removes keys; absent keys are ignored.
func (m *Memory) Delete(ctx context.Context, keys ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deleting cache entries: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		if el, ok := m.items[k]; ok {
			m.remove(el)
		}
	}
	return nil
}

// Len reports the number of entries held, including expired entries not
// yet dropped.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}

// Close stops the janitor. The cache stays usable, with lazy expiry only.
// Close is idempotent and always returns nil.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
	})
	return nil
}

func (m *Memory) janitor(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.removeExpired(now)
		}
	}
}

// removeExpired drops every entry expired at now.
func (m *Memory) removeExpired(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for el := m.order.Back(); el != nil; {
		prev := el.Prev()
		if !now.Before(el.Value.(*entry).expires) {
			m.remove(el)
		}
		el = prev
	}
}

// remove drops el; m.mu must be held.
func (m *Memory) remove(el *list.Element) {
	m.order.Remove(el)
	delete(m.items, el.Value.(*entry).key)
}

// clone copies b so that neither the caller nor the cache can change the
// other's bytes; an empty value stays non-nil so it reads as a hit.
func clone(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}
