package allowlist_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/allowlist"
	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/testkit"
)

type entry struct {
	App  string `json:"app"`
	Task string `json:"task"`
}

var caches = []struct {
	name string
	make func(t *testing.T) cache.Cache
}{
	{"memory", func(t *testing.T) cache.Cache {
		m := cache.NewMemory(0)
		t.Cleanup(func() { m.Close() })
		return m
	}},
	{"redis", func(t *testing.T) cache.Cache {
		r := testkit.StartRedis(t)
		return cache.NewRedis(r.Client, r.Prefix)
	}},
}

func open(t *testing.T, c cache.Cache) *allowlist.List[entry] {
	t.Helper()
	_, js := testkit.StartNATS(t).JetStream(t)
	l, err := allowlist.Open[entry](context.Background(), js, "test_allowlist", 1, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestChangesAreSeenAtOnce(t *testing.T) {
	for _, cc := range caches {
		t.Run(cc.name, func(t *testing.T) {
			ctx := context.Background()
			l := open(t, cc.make(t))
			key := "acct1.app1.hello.example.com"
			lookup := func(wantFound bool, want entry) {
				t.Helper()
				for range 2 { // the first may fill the cache, the second reads it
					got, found, err := l.Lookup(ctx, key)
					if err != nil || found != wantFound || got != want {
						t.Fatalf("Lookup = %+v, %v, %v; want %+v, %v", got, found, err, want, wantFound)
					}
				}
			}
			lookup(false, entry{})
			if err := l.Put(ctx, key, entry{"app1", "t1"}); err != nil {
				t.Fatal(err)
			}
			lookup(true, entry{"app1", "t1"})
			if err := l.Put(ctx, key, entry{"app1", "t2"}); err != nil {
				t.Fatal(err)
			}
			lookup(true, entry{"app1", "t2"})
			if err := l.Remove(ctx, key); err != nil {
				t.Fatal(err)
			}
			lookup(false, entry{})
			if err := l.Remove(ctx, key); err != nil {
				t.Fatalf("removing an absent key: %v", err)
			}
		})
	}
}

// TestLookupsRacingChangesEndFresh runs lookups (which fill the cache)
// concurrently with changes; once the changes stop, every lookup must see
// the last one, however the fills and writes interleaved.
func TestLookupsRacingChangesEndFresh(t *testing.T) {
	for _, cc := range caches {
		t.Run(cc.name, func(t *testing.T) {
			ctx := context.Background()
			l := open(t, cc.make(t))
			const keys = 4
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for r := range 4 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						if _, _, err := l.Lookup(ctx, fmt.Sprintf("k%d", (i+r)%keys)); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			final := map[string]bool{}
			for i := range 60 {
				k := fmt.Sprintf("k%d", i%keys)
				if i%3 == 2 {
					final[k] = false
					if err := l.Remove(ctx, k); err != nil {
						t.Fatal(err)
					}
				} else {
					final[k] = true
					if err := l.Put(ctx, k, entry{App: "a", Task: fmt.Sprint(i)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			close(stop)
			wg.Wait()
			for k, want := range final {
				if _, found, err := l.Lookup(ctx, k); err != nil || found != want {
					t.Errorf("after the changes, Lookup(%s) found = %v, %v; want %v", k, found, err, want)
				}
			}
		})
	}
}

func TestRemoveMatching(t *testing.T) {
	ctx := context.Background()
	l := open(t, cache.NewMemory(0))
	for _, k := range []string{"a1.app1.x.example", "a1.app1.y.example", "a1.app2.x.example", "a2.app1.x.example"} {
		if err := l.Put(ctx, k, entry{App: k}); err != nil {
			t.Fatal(err)
		}
		if _, found, _ := l.Lookup(ctx, k); !found {
			t.Fatalf("%s not found after Put", k)
		}
	}
	gone, err := l.RemoveMatching(ctx, "a1.app1.>")
	if err != nil || len(gone) != 2 {
		t.Fatalf("RemoveMatching = %d entries, %v; want 2", len(gone), err)
	}
	for k, want := range map[string]bool{"a1.app1.x.example": false, "a1.app1.y.example": false, "a1.app2.x.example": true, "a2.app1.x.example": true} {
		if _, found, _ := l.Lookup(ctx, k); found != want {
			t.Errorf("Lookup(%s) found = %v, want %v", k, found, want)
		}
	}
}

// TestLedgerWithdrawalIsFinal: an approval handled after its withdrawal
// (a retried event overtaken) changes nothing.
func TestLedgerWithdrawalIsFinal(t *testing.T) {
	ctx := context.Background()
	l := open(t, cache.NewMemory(0))
	_, js := testkit.StartNATS(t).JetStream(t)
	ledger, err := allowlist.OpenLedger(ctx, js, "test_ledger", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := "acct.app.hello.example.com"
	approve := func() error {
		return ledger.Apply(ctx, "acct.task1",
			func(ctx context.Context) error { return l.Put(ctx, key, entry{App: "app", Task: "task1"}) },
			func(ctx context.Context) error { return l.Remove(ctx, key) })
	}
	if err := approve(); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := l.Lookup(ctx, key); !found {
		t.Fatal("the approval did not apply")
	}
	if err := ledger.Withdraw(ctx, "acct.task1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := approve(); err != nil { // the retried approval
		t.Fatal(err)
	}
	if _, found, _ := l.Lookup(ctx, key); found {
		t.Fatal("a late approval brought a withdrawn one back")
	}
	if err := ledger.Withdraw(ctx, "acct.task1"); err != nil {
		t.Fatalf("withdrawing twice: %v", err)
	}
}

// hookedCache runs beforeAdd once, just before the first Add reaches the
// real cache: the moment between a lookup's bucket read and its fill.
type hookedCache struct {
	cache.Cache
	once      sync.Once
	beforeAdd func()
}

func (h *hookedCache) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	h.once.Do(h.beforeAdd)
	return h.Cache.Add(ctx, key, value, ttl)
}

// TestFillCannotUndoAChange pins the interleaving the design is about: a
// lookup reads the bucket (approved), the approval is removed, and only
// then does the lookup fill the cache. The removal must win.
func TestFillCannotUndoAChange(t *testing.T) {
	for _, cc := range caches {
		t.Run(cc.name, func(t *testing.T) {
			ctx := context.Background()
			h := &hookedCache{Cache: cc.make(t)}
			l := open(t, h)
			key := "acct1.app1.hello.example.com"
			h.once.Do(func() {}) // Put's own path does not Add; arm the hook below
			if err := l.Put(ctx, key, entry{"app1", "t1"}); err != nil {
				t.Fatal(err)
			}
			// Put wrote the entry through; drop it so the next lookup fills.
			if err := h.Cache.Delete(ctx, "allowlist:test_allowlist:"+key); err != nil {
				t.Fatal(err)
			}
			h.once = sync.Once{}
			h.beforeAdd = func() {
				if err := l.Remove(ctx, key); err != nil {
					t.Error(err)
				}
			}
			if _, found, err := l.Lookup(ctx, key); err != nil || !found {
				t.Fatalf("the racing lookup = %v, %v; it read the bucket before the removal, so found", found, err)
			}
			if _, found, err := l.Lookup(ctx, key); err != nil || found {
				t.Fatalf("after the removal, Lookup found = %v, %v; the racing fill brought the old answer back", found, err)
			}
		})
	}
}
