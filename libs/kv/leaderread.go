package kv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	Message *struct {
		Sequence uint64 `json:"seq"`
		Header   []byte `json:"hdrs"`
		Data     []byte `json:"data"`
	} `json:"message"`
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
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultReadTimeout)
		defer cancel()
	}
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{s.subject + key})
	if err != nil {
		return rawEntry{}, err
	}
	// A stream electing a leader (seconds, after its leader's server
	// died) answers that it is unavailable: the read waits it out, until
	// ctx ends, and then says to try again later.
	for {
		attempt, cancel := context.WithTimeout(ctx, attemptTimeout)
		e, err := s.leaderGetOnce(attempt, req)
		cancel()
		if !natsrpc.Transient(err) {
			return e, err
		}
		select {
		case <-ctx.Done():
			return rawEntry{}, errs.Newf(errs.Unavailable, "%v; try again", err)
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

func (s *Store[T]) leaderGetOnce(ctx context.Context, req []byte) (rawEntry, error) {
	reply, err := s.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+s.bucket, req)
	if err != nil {
		return rawEntry{}, err
	}
	var resp msgGetResponse
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return rawEntry{}, fmt.Errorf("decoding the stream's answer: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrCode == jetstream.JSErrCodeMessageNotFound {
			return rawEntry{}, ErrNotFound
		}
		return rawEntry{}, &jetstream.APIError{Code: resp.Error.Code, ErrorCode: resp.Error.ErrCode, Description: resp.Error.Description}
	}
	if resp.Message == nil {
		return rawEntry{}, errors.New("the stream answered without a message")
	}
	if len(resp.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Header)
		if err != nil {
			return rawEntry{}, fmt.Errorf("decoding the message's headers: %w", err)
		}
		if op := h.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			return rawEntry{}, ErrNotFound
		}
	}
	return rawEntry{value: resp.Message.Data, revision: resp.Message.Sequence}, nil
}
