package store

import (
	"context"
	"errors"
	"time"

	"github.com/cloister-cc/cloister/libs/kv"
)

// BucketVCEKs keeps the AMD VCEKs admins uploaded, by chip and TCB.
const BucketVCEKs = "attestation_vceks"

// VCEKs keeps uploaded VCEKs, keyed as snp.VCEKInfo.Key names them.
type VCEKs struct{ kv *kv.Store[vcekRecord] }

type vcekRecord struct {
	DER      []byte    `json:"der"`
	NotAfter time.Time `json:"not_after"`
}

// Get returns the VCEK stored under key, or nil.
func (s *VCEKs) Get(ctx context.Context, key string) ([]byte, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, nil
	}
	return e.Value.DER, err
}

// Put stores a VCEK under key, in place of any.
func (s *VCEKs) Put(ctx context.Context, key string, der []byte, notAfter time.Time) error {
	r := vcekRecord{DER: der, NotAfter: notAfter}
	for range 5 {
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			_, err = s.kv.Create(ctx, key, r)
		case err == nil:
			_, err = s.kv.Update(ctx, key, r, e.Version)
		}
		if !errors.Is(err, kv.ErrConflict) && !errors.Is(err, kv.ErrExists) {
			return err
		}
	}
	return errors.New("storing the VCEK: changed concurrently, again and again")
}
