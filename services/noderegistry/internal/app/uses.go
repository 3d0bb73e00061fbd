package app

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cloister-cc/cloister/services/noderegistry/internal/domain"
)

// uses coalesces the enrolments of this process that take uses of one
// token at the same time: a fleet booting with one token would otherwise
// have every enrolment retry the same conditional write until it wins,
// each round costing all but one of them a read and a refused write.
// Waiting enrolments are served in rounds; each round takes as many uses
// as are waiting (or left) in one conditional write, retried on conflict
// with writers elsewhere (other replicas), so that concurrent enrolments
// never take more uses than the token has, on any number of replicas.
type uses struct {
	mu sync.Mutex
	// waiting holds, by token, the enrolments waiting for a use; a token
	// has an entry while a goroutine serves its rounds.
	waiting map[string][]chan taken
}

type taken struct {
	tok domain.JoinToken
	err error
}

// roundTimeout bounds one round of taking uses; it runs on its own
// context, so that a caller giving up cannot leave a use taken and lost.
const roundTimeout = 10 * time.Second

// consume takes one use of a token if it still has one.
func (s *Service) consume(ref domain.TokenRef) (domain.JoinToken, error) {
	key := ref.AccountID + "." + ref.TokenID
	ch := make(chan taken, 1)
	s.uses.mu.Lock()
	if s.uses.waiting == nil {
		s.uses.waiting = map[string][]chan taken{}
	}
	q, serving := s.uses.waiting[key]
	s.uses.waiting[key] = append(q, ch)
	s.uses.mu.Unlock()
	if !serving {
		go s.serveUses(ref, key)
	}
	r := <-ch
	return r.tok, r.err
}

// serveUses runs rounds for a token until nobody waits.
func (s *Service) serveUses(ref domain.TokenRef, key string) {
	for {
		s.uses.mu.Lock()
		batch := s.uses.waiting[key]
		if len(batch) == 0 {
			delete(s.uses.waiting, key)
			s.uses.mu.Unlock()
			return
		}
		s.uses.waiting[key] = nil // still present: this goroutine serves it
		s.uses.mu.Unlock()
		s.takeUses(ref, batch)
	}
}

// takeUses takes a use for as many of batch as the token allows, in one
// conditional write, and tells each waiter how it went.
func (s *Service) takeUses(ref domain.TokenRef, batch []chan taken) {
	ctx, cancel := context.WithTimeout(context.Background(), roundTimeout)
	defer cancel()
	var (
		tok     domain.JoinToken
		granted int
	)
	err := retry(ctx, func() error {
		t, err := s.cfg.Tokens.Get(ctx, ref.AccountID, ref.TokenID)
		if errors.Is(err, domain.ErrTokenNotFound) {
			return domain.ErrTokenUnknown
		}
		if err != nil {
			return err
		}
		if err := t.Usable(s.now()); err != nil {
			return err
		}
		granted = len(batch)
		if t.MaxUses > 0 {
			granted = min(granted, int(t.MaxUses-t.Uses))
		}
		t.Uses += uint32(granted)
		tok, err = s.cfg.Tokens.Update(ctx, t, nil)
		return err
	})
	for i, ch := range batch {
		switch {
		case err != nil:
			ch <- taken{err: err}
		case i < granted:
			ch <- taken{tok: tok}
		default:
			ch <- taken{err: tok.Usable(s.now())} // used up by this round
		}
	}
}
