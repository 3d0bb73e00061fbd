package kv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/natsrpc"
)

// rawEntry is a key's latest stored message.
type rawEntry struct {
	value    []byte
	revision uint64
}

func (e rawEntry) Value() []byte    { return e.value }
func (e rawEntry) Revision() uint64 { return e.revision }

// defaultReadTimeout bounds a read when the context has no deadline.
const defaultReadTimeout = 5 * time.Second

// msgGetResponse is JetStream's answer to $JS.API.STREAM.MSG.GET.
type msgGetResponse struct {
	Error *struct {
		Code        int                 `json:"code"`
		ErrCode     jetstream.ErrorCode `json:"err_code"`
		Description string              `json:"description"`
	} `json:"error"`
	Message *storedMsg `json:"message"`
}

// storedMsg is a message as the stream's leader gives it.
type storedMsg struct {
	Subject  string `json:"subject"`
	Sequence uint64 `json:"seq"`
	Header   []byte `json:"hdrs"`
	Data     []byte `json:"data"`
}

// deleted says whether m is a delete or purge marker.
func (m *storedMsg) deleted() (bool, error) {
	if len(m.Header) == 0 {
		return false, nil
	}
	h, err := nats.DecodeHeadersMsg(m.Header)
	if err != nil {
		return false, fmt.Errorf("decoding the message's headers: %w", err)
	}
	op := h.Get("KV-Operation")
	return op == "DEL" || op == "PURGE", nil
}

// leaderGet reads key's latest message from the bucket stream's leader
// ($JS.API.STREAM.MSG.GET) rather than with a direct get, which any
// replica may answer before it has applied the latest write (nats-server
// lets a follower answer them once it holds 90% of the stream): on a
// cluster, a record that another process had just written, and been told
// was stored, could read as absent or as its previous value. The
// attestation service's verdict, looked up by the CA a moment after it
// was recorded, was not found that way under load. A bucket of one replica is read
// with direct gets, which its one stream answers. A delete or purge
// marker reads as absent.
func (s *Store[T]) leaderGet(ctx context.Context, key string) (rawEntry, error) {
	m, err := s.leaderMsg(ctx, msgGetRequest{LastFor: s.subject + key})
	if err != nil {
		return rawEntry{}, err
	}
	if del, err := m.deleted(); err != nil {
		return rawEntry{}, err
	} else if del {
		return rawEntry{}, ErrNotFound
	}
	return rawEntry{value: m.Data, revision: m.Sequence}, nil
}

// msgGetRequest asks for the last message of a subject, or the first at
// or after Seq on subjects matching NextFor.
type msgGetRequest struct {
	LastFor string `json:"last_by_subj,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

// leaderList lists the keys matching filter, and their latest values, from
// the bucket stream's leader, one message at a time: what List does when
// a replica lags behind, and so might host the consumer a watcher reads
// through. Deleted keys are left out.
func (s *Store[T]) leaderList(ctx context.Context, filter string) (map[string]rawEntry, error) {
	latest := map[string]rawEntry{}
	for seq := uint64(1); ; {
		m, err := s.leaderMsg(ctx, msgGetRequest{Seq: seq, NextFor: s.subject + filter})
		if errors.Is(err, ErrNotFound) {
			return latest, nil
		}
		if err != nil {
			return nil, err
		}
		key := strings.TrimPrefix(m.Subject, s.subject)
		if del, err := m.deleted(); err != nil {
			return nil, err
		} else if del {
			delete(latest, key)
		} else {
			latest[key] = rawEntry{value: m.Data, revision: m.Sequence}
		}
		seq = m.Sequence + 1
	}
}

// leaderMsg asks the bucket stream's leader for a message.
func (s *Store[T]) leaderMsg(ctx context.Context, r msgGetRequest) (*storedMsg, error) {
	req, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return retrying(ctx, func(attempt context.Context) (*storedMsg, error) { return s.leaderMsgOnce(attempt, req) })
}

// retrying asks JetStream with ask, each time for at most attemptTimeout:
// a request can go unanswered (lost right after a partition heals), and a
// stream electing a leader (seconds, after its leader's server died)
// answers that it is unavailable. It waits those out, until ctx ends (5 s
// if it has no deadline), and then says to try again later.
func retrying[R any](ctx context.Context, ask func(context.Context) (R, error)) (R, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultReadTimeout)
		defer cancel()
	}
	for {
		attempt, cancel := context.WithTimeout(ctx, attemptTimeout)
		r, err := ask(attempt)
		cancel()
		if !natsrpc.Transient(err) {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, errs.Newf(errs.Unavailable, "%v; try again", err)
		case <-time.After(retryPause):
		}
	}
}

// attemptTimeout bounds one request of a read, retryPause is the pause
// after one that found the stream without a leader.
const (
	attemptTimeout = 2 * time.Second
	retryPause     = 100 * time.Millisecond
)

func (s *Store[T]) leaderMsgOnce(ctx context.Context, req []byte) (*storedMsg, error) {
	reply, err := s.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+s.bucket, req)
	if err != nil {
		return nil, err
	}
	var resp msgGetResponse
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, fmt.Errorf("decoding the stream's answer: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrCode == jetstream.JSErrCodeMessageNotFound {
			return nil, ErrNotFound
		}
		return nil, &jetstream.APIError{Code: resp.Error.Code, ErrorCode: resp.Error.ErrCode, Description: resp.Error.Description}
	}
	if resp.Message == nil {
		return nil, errors.New("the stream answered without a message")
	}
	return resp.Message, nil
}

// leaderLast is the stream sequence of the last message (a write or a
// deletion) whose key matches filter, as the bucket stream's leader has
// it; 0 when none does.
func (s *Store[T]) leaderLast(ctx context.Context, filter string) (uint64, error) {
	m, err := s.leaderMsg(ctx, msgGetRequest{LastFor: s.subject + filter})
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}
