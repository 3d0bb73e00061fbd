// Package store implements the attestation service's ports on JetStream
// KV buckets, and gives its events their wire form.
package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/allowlist"
	"github.com/cloister-cc/cloister/libs/cache"
	"github.com/cloister-cc/cloister/libs/events"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/tee"
	"github.com/cloister-cc/cloister/services/attestation/internal/app"
	"github.com/cloister-cc/cloister/services/attestation/internal/domain"
	"github.com/cloister-cc/cloister/services/attestation/internal/wire"
)

// Producer names this service in events.
const Producer = attestationv1.AttestationServiceName

// Buckets.
const (
	BucketPolicies   = "attestation_policies"
	BucketCollateral = "attestation_collateral"
	BucketVerdicts   = "attestation_verdicts"
	BucketImages     = "attestation_images"
	BucketWithdrawn  = "attestation_withdrawn_tasks"
	// VerdictTTL is how long a verdict can be referred to (by the CA).
	VerdictTTL = time.Hour
	// collateralsDecoded bounds the decoded collateral kept: a platform
	// (FMSPC) and CA each.
	collateralsDecoded = 1024
	// policiesDecoded bounds the policies kept decoded: one per account
	// that verified lately.
	policiesDecoded = 4096
)

// Stores are the KV adapters of every port.
type Stores struct {
	Policies    *Policies
	Collaterals *Collaterals
	Verdicts    *Verdicts
	Activity    *Activity
	Images      *Images
	Withdrawals *allowlist.Ledger
	VCEKs       *VCEKs
}

// Open opens every bucket; approved images are looked up through c, and
// activity is kept by clock's hours.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, c cache.Cache, clock func() time.Time, logger *slog.Logger, opts ...kv.Option) (*Stores, error) {
	// An account's policy is read by each of its verifications and
	// changes rarely: decoded once per revision.
	p, err := kv.Open[policyRecord](ctx, js, kv.Config{Bucket: BucketPolicies, Replicas: replicas},
		append(slices.Clone(opts), kv.WithDecodedCache(policiesDecoded))...)
	if err != nil {
		return nil, err
	}
	// Collateral (about 14 KB of JSON) is read by every verification and
	// changes rarely: decoded once per revision.
	col, err := kv.Open[domain.Collateral](ctx, js, kv.Config{Bucket: BucketCollateral, Replicas: replicas},
		append(slices.Clone(opts), kv.WithDecodedCache(collateralsDecoded))...)
	if err != nil {
		return nil, err
	}
	v, err := kv.Open[verdictRecord](ctx, js, kv.Config{Bucket: BucketVerdicts, Replicas: replicas, TTL: VerdictTTL}, opts...)
	if err != nil {
		return nil, err
	}
	act, err := OpenActivity(ctx, js, replicas, clock, logger, opts...)
	if err != nil {
		return nil, err
	}
	imgs, err := allowlist.Open[domain.ApprovedImage](ctx, js, BucketImages, replicas, c, logger)
	if err != nil {
		return nil, err
	}
	ledger, err := allowlist.OpenLedger(ctx, js, BucketWithdrawn, replicas, logger)
	if err != nil {
		return nil, err
	}
	vceks, err := kv.Open[vcekRecord](ctx, js, kv.Config{Bucket: BucketVCEKs, Replicas: replicas}, opts...)
	if err != nil {
		return nil, err
	}
	return &Stores{Policies: &Policies{p}, Collaterals: &Collaterals{col}, Verdicts: &Verdicts{kv: v, js: js}, Activity: act, Images: &Images{imgs},
		Withdrawals: ledger, VCEKs: &VCEKs{vceks}}, nil
}

type policyRecord struct {
	AcceptStatuses  []sgx.TCBStatus `json:"accept_statuses"`
	AllowDebug      bool            `json:"allow_debug"`
	AllowSimulation bool            `json:"allow_simulation"`
	MinISVSVN       uint16          `json:"min_isvsvn"`
	// Absent in records written before it existed: false.
	RequireNodeAttestation bool `json:"require_node_attestation,omitempty"`
	// Absent in records written before they existed: the defaults.
	TDX *tdxPolicyRecord `json:"tdx,omitempty"`
	SNP *snpPolicyRecord `json:"sev_snp,omitempty"`
}

type tdxPolicyRecord struct {
	AcceptStatuses []sgx.TCBStatus `json:"accept_statuses,omitempty"`
	AllowDebug     bool            `json:"allow_debug,omitempty"`
	MRTDs          [][48]byte      `json:"mrtds,omitempty"`
	RTMRs          [4]*[48]byte    `json:"rtmrs"`
}

type snpPolicyRecord struct {
	AllowDebug   bool       `json:"allow_debug,omitempty"`
	Measurements [][48]byte `json:"measurements,omitempty"`
	HostData     *[32]byte  `json:"host_data,omitempty"`
	MinTCB       uint64     `json:"min_tcb,omitempty"`
}

// Policies keeps policies by account id.
type Policies struct{ kv *kv.Store[policyRecord] }

var _ app.Policies = (*Policies)(nil)

// Get implements app.Policies.
func (s *Policies) Get(ctx context.Context, accountID string) (domain.Policy, error) {
	e, err := s.kv.Get(ctx, accountID)
	if errors.Is(err, kv.ErrNotFound) {
		return domain.Policy{}, domain.ErrPolicyNotFound
	}
	if err != nil {
		return domain.Policy{}, err
	}
	r := e.Value
	p := domain.Policy{AcceptStatuses: r.AcceptStatuses, AllowDebug: r.AllowDebug, AllowSimulation: r.AllowSimulation,
		MinISVSVN: r.MinISVSVN, RequireNodeAttestation: r.RequireNodeAttestation, Version: e.Version}
	if t := r.TDX; t != nil {
		p.TDX = domain.TDXPolicy{AcceptStatuses: t.AcceptStatuses, AllowDebug: t.AllowDebug, MRTDs: t.MRTDs, RTMRs: t.RTMRs}
	}
	if n := r.SNP; n != nil {
		p.SNP = domain.SNPPolicy{AllowDebug: n.AllowDebug, Measurements: n.Measurements, HostData: n.HostData, MinTCB: n.MinTCB}
	}
	return p, nil
}

// Put implements app.Policies.
func (s *Policies) Put(ctx context.Context, accountID string, p domain.Policy, evs ...domain.Event) (domain.Policy, error) {
	msgs, err := messages(ctx, evs)
	if err != nil {
		return domain.Policy{}, err
	}
	r := policyRecord{AcceptStatuses: p.AcceptStatuses, AllowDebug: p.AllowDebug, AllowSimulation: p.AllowSimulation, MinISVSVN: p.MinISVSVN,
		RequireNodeAttestation: p.RequireNodeAttestation,
		TDX:                    &tdxPolicyRecord{AcceptStatuses: p.TDX.AcceptStatuses, AllowDebug: p.TDX.AllowDebug, MRTDs: p.TDX.MRTDs, RTMRs: p.TDX.RTMRs},
		SNP:                    &snpPolicyRecord{AllowDebug: p.SNP.AllowDebug, Measurements: p.SNP.Measurements, HostData: p.SNP.HostData, MinTCB: p.SNP.MinTCB}}
	var e kv.Entry[policyRecord]
	if p.Version == 0 {
		e, err = s.kv.Create(ctx, accountID, r, msgs...)
	} else {
		e, err = s.kv.Update(ctx, accountID, r, p.Version, msgs...)
	}
	if errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrExists) {
		return domain.Policy{}, domain.ErrConcurrentChange
	}
	if err != nil {
		return domain.Policy{}, err
	}
	p.Version = e.Version
	return p, nil
}

// Collaterals keeps the newest collateral per platform, keyed
// <fmspc>.<ca>.
type Collaterals struct{ kv *kv.Store[domain.Collateral] }

var _ app.Collaterals = (*Collaterals)(nil)

func collateralKey(fmspc [6]byte, ca string) string { return hex.EncodeToString(fmspc[:]) + "." + ca }

// Get implements app.Collaterals.
func (s *Collaterals) Get(ctx context.Context, fmspc [6]byte, ca string) (domain.Collateral, error) {
	e, err := s.kv.Get(ctx, collateralKey(fmspc, ca))
	if errors.Is(err, kv.ErrNotFound) {
		return domain.Collateral{}, domain.ErrCollateralNotFound
	}
	return e.Value, err
}

// Put implements app.Collaterals: newer decides against what is stored,
// and the write is conditional on that not having changed meanwhile.
func (s *Collaterals) Put(ctx context.Context, fmspc [6]byte, ca string, c domain.Collateral, newer func(domain.Collateral) error) error {
	key := collateralKey(fmspc, ca)
	for range 5 {
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			_, err = s.kv.Create(ctx, key, c)
		case err == nil:
			if err := newer(e.Value); err != nil {
				return err
			}
			_, err = s.kv.Update(ctx, key, c, e.Version)
		}
		if !errors.Is(err, kv.ErrConflict) && !errors.Is(err, kv.ErrExists) {
			return err
		}
	}
	return domain.ErrConcurrentChange
}

// publishTimeout bounds the wait for a verdict's events to be stored.
const publishTimeout = 10 * time.Second

// verdictRecord is a stored verdict: domain.Verdict's fields under the
// same names, but its measurements as byte slices, which JSON holds as
// base64: encoding/json writes a byte array as an array of numbers, a
// third of a verdict's encoding time. Slices also read the arrays that
// records written before this type hold.
type verdictRecord struct {
	ID         string
	AccountID  string
	OK         bool
	Reason     string
	Error      string
	TCBStatus  sgx.TCBStatus
	Advisories []string
	MRENCLAVE  []byte
	MRSIGNER   []byte
	ISVProdID  uint16
	ISVSVN     uint16
	Debug      bool
	Simulated  bool
	ReportData []byte
	FMSPC      []byte
	VerifiedAt time.Time
	AppID      string
	ImageID    string
	// A confidential VM's; absent in records written before they
	// existed, and an enclave's.
	TEE         string     `json:",omitempty"`
	Measurement *[48]byte  `json:",omitempty"`
	RTMRs       [][48]byte `json:",omitempty"`
	HostData    *[32]byte  `json:",omitempty"`
}

func toVerdictRecord(v domain.Verdict) verdictRecord {
	r := verdictRecord{ID: v.ID, AccountID: v.AccountID, OK: v.OK, Reason: v.Reason, Error: v.Error, TCBStatus: v.TCBStatus,
		Advisories: v.Advisories, MRENCLAVE: v.MRENCLAVE[:], MRSIGNER: v.MRSIGNER[:], ISVProdID: v.ISVProdID, ISVSVN: v.ISVSVN,
		Debug: v.Debug, Simulated: v.Simulated, ReportData: v.ReportData[:], FMSPC: v.FMSPC[:], VerifiedAt: v.VerifiedAt,
		AppID: v.AppID, ImageID: v.ImageID, TEE: v.TEE, RTMRs: v.RTMRs}
	if v.TEE == tee.TDX || v.TEE == tee.SEVSNP {
		r.Measurement = &v.Measurement
	}
	if v.TEE == tee.SEVSNP {
		r.HostData = &v.HostData
	}
	return r
}

// verdict returns the verdict r holds; a measurement of the wrong length
// (a damaged record) is an error rather than a verdict that is not the one
// stored.
func (r verdictRecord) verdict() (domain.Verdict, error) {
	v := domain.Verdict{ID: r.ID, AccountID: r.AccountID, OK: r.OK, Reason: r.Reason, Error: r.Error, TCBStatus: r.TCBStatus,
		Advisories: r.Advisories, ISVProdID: r.ISVProdID, ISVSVN: r.ISVSVN, Debug: r.Debug, Simulated: r.Simulated,
		VerifiedAt: r.VerifiedAt, AppID: r.AppID, ImageID: r.ImageID, TEE: r.TEE, RTMRs: r.RTMRs}
	if r.Measurement != nil {
		v.Measurement = *r.Measurement
	}
	if r.HostData != nil {
		v.HostData = *r.HostData
	}
	for _, f := range []struct {
		name     string
		dst, src []byte
	}{{"mrenclave", v.MRENCLAVE[:], r.MRENCLAVE}, {"mrsigner", v.MRSIGNER[:], r.MRSIGNER},
		{"report_data", v.ReportData[:], r.ReportData}, {"fmspc", v.FMSPC[:], r.FMSPC}} {
		if len(f.src) != len(f.dst) {
			return domain.Verdict{}, fmt.Errorf("verdict %s: stored %s is %d bytes, want %d", r.ID, f.name, len(f.src), len(f.dst))
		}
		copy(f.dst, f.src)
	}
	return v, nil
}

// Verdicts keeps verdicts for VerdictTTL, keyed <account>.<id>.
type Verdicts struct {
	kv *kv.Store[verdictRecord]
	js jetstream.JetStream
}

var _ app.Verdicts = (*Verdicts)(nil)

// Create implements app.Verdicts: it records v and publishes its events at
// once, and returns once both are stored.
//
// A verdict is not written through the outbox, which would store its
// event inside the record and publish it after: a verdict is never
// changed, its id is new and only the caller learns it, from Create's
// success. So what the outbox guards against cannot happen to it: if
// either write fails, or the process dies before both are stored, the
// caller gets no verdict (a recorded one nobody knows the id of expires
// within VerdictTTL; an announced one is a verification that happened).
// Every verdict returned is recorded and announced. Written this way a
// verdict costs two stored messages rather than two larger ones and a
// share of a hint, and one wait rather than two: about a sixth of a
// verification's CPU.
func (s *Verdicts) Create(ctx context.Context, v domain.Verdict, evs ...domain.Event) error {
	msgs, err := messages(ctx, evs)
	if err != nil {
		return err
	}
	acks := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		if acks[i], err = s.js.PublishMsgAsync(m); err != nil {
			return fmt.Errorf("publishing %s: %w", m.Subject, err)
		}
	}
	_, err = s.kv.Create(ctx, v.AccountID+"."+v.ID, toVerdictRecord(v))
	// An asynchronous publish has no timeout of its own.
	timeout := time.NewTimer(publishTimeout)
	defer timeout.Stop()
	for i, f := range acks {
		select {
		case <-f.Ok():
		case perr := <-f.Err():
			err = errors.Join(err, fmt.Errorf("publishing %s: %w", msgs[i].Subject, perr))
		case <-ctx.Done():
			return errors.Join(err, fmt.Errorf("publishing %s: %w", msgs[i].Subject, ctx.Err()))
		case <-timeout.C:
			return errors.Join(err, fmt.Errorf("publishing %s: no acknowledgement in %v", msgs[i].Subject, publishTimeout))
		}
	}
	return err
}

// Get implements app.Verdicts.
func (s *Verdicts) Get(ctx context.Context, accountID, id string) (domain.Verdict, error) {
	e, err := s.kv.Get(ctx, accountID+"."+id)
	if errors.Is(err, kv.ErrNotFound) {
		return domain.Verdict{}, domain.ErrVerdictNotFound
	}
	if err != nil {
		return domain.Verdict{}, err
	}
	return e.Value.verdict()
}

// Images is the approved-image allowlist, keyed <account>.<mrenclave hex>.
type Images struct {
	list *allowlist.List[domain.ApprovedImage]
}

var _ app.Images = (*Images)(nil)

func imageKey(accountID string, mrenclave [32]byte) string {
	return accountID + "." + hex.EncodeToString(mrenclave[:])
}

// Lookup implements app.Images.
func (s *Images) Lookup(ctx context.Context, accountID string, mrenclave [32]byte) (domain.ApprovedImage, bool, error) {
	return s.list.Lookup(ctx, imageKey(accountID, mrenclave))
}

// Put implements app.Images.
func (s *Images) Put(ctx context.Context, accountID string, img domain.ApprovedImage) error {
	return s.list.Put(ctx, imageKey(accountID, img.MRENCLAVE), img)
}

// Remove implements app.Images.
func (s *Images) Remove(ctx context.Context, accountID string, mrenclave [32]byte) error {
	return s.list.Remove(ctx, imageKey(accountID, mrenclave))
}

// RemoveWhere implements app.Images.
func (s *Images) RemoveWhere(ctx context.Context, accountID string, drop func(domain.ApprovedImage) bool) error {
	es, err := s.list.List(ctx, accountID+".*")
	if err != nil {
		return err
	}
	for _, e := range es {
		if drop(e.Value) {
			if err := s.list.Remove(ctx, e.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// messages gives a write's events their wire form, ready for the outbox.
func messages(ctx context.Context, evs []domain.Event) ([]*nats.Msg, error) {
	return events.Messages(ctx, Producer, evs, wire.Event)
}
