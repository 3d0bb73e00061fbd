package attestation_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/cloister-cc/cloister/libs/errs"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/services/attestation/internal/domain"
	"github.com/cloister-cc/cloister/services/attestation/internal/store"
)

// A verdict is fetched as it was returned, by its account only, and one
// stored before verdicts had their own record layout (domain.Verdict as
// encoding/json writes it, measurements as arrays of numbers) still reads.
func TestVerdictsAreKeptAsReturned(t *testing.T) {
	c, js := start(t)
	ctx := context.Background()
	account := uuid.NewString()
	if _, err := c.PutCollateral(ctx, &attestationv1.PutCollateralRequest{CollateralJson: read(t, "phala_sgx_quote_v3_collateral.json")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"ConfigurationAndSWHardeningNeeded"}}}); err != nil {
		t.Fatal(err)
	}
	rd := append([]byte("Hello, world!"), make([]byte, 51)...)
	for _, v := range []*attestationv1.Verdict{
		verify(t, c, account, read(t, "phala_sgx_quote_v3.bin"), rd[:32], rd[32:]),
		verify(t, c, account, []byte("not a quote"), nil, nil),
	} {
		got, err := c.GetVerdict(ctx, &attestationv1.GetVerdictRequest{AccountId: account, Id: v.GetId()})
		if err != nil || !proto.Equal(got.GetVerdict(), v) {
			t.Fatalf("GetVerdict(%s) = %v, %v; want %v", v.GetId(), got.GetVerdict(), err, v)
		}
		if _, err := c.GetVerdict(ctx, &attestationv1.GetVerdictRequest{AccountId: uuid.NewString(), Id: v.GetId()}); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("another account's GetVerdict = %v, want not found", err)
		}
	}

	old, err := kv.Open[domain.Verdict](ctx, js, kv.Config{Bucket: store.BucketVerdicts, TTL: store.VerdictTTL})
	if err != nil {
		t.Fatal(err)
	}
	v := domain.Verdict{ID: uuid.NewString(), AccountID: account, OK: true, TCBStatus: sgx.StatusUpToDate, Advisories: []string{"INTEL-SA-00615"},
		ISVProdID: 7, ISVSVN: 3, VerifiedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	for i := range v.MRENCLAVE {
		v.MRENCLAVE[i], v.MRSIGNER[i] = byte(i), byte(255-i)
	}
	v.ReportData[63], v.FMSPC[5] = 0xaa, 0xbb
	if _, err := old.Create(ctx, account+"."+v.ID, v); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetVerdict(ctx, &attestationv1.GetVerdictRequest{AccountId: account, Id: v.ID})
	g := got.GetVerdict()
	if err != nil || g.GetId() != v.ID || !g.GetOk() || string(g.GetMrenclave()) != string(v.MRENCLAVE[:]) || string(g.GetMrsigner()) != string(v.MRSIGNER[:]) ||
		string(g.GetReportData()) != string(v.ReportData[:]) || string(g.GetFmspc()) != string(v.FMSPC[:]) || g.GetIsvsvn() != 3 || g.GetIsvprodid() != 7 ||
		g.GetTcbStatus() != string(sgx.StatusUpToDate) || len(g.GetAdvisories()) != 1 || !g.GetVerifiedAt().AsTime().Equal(v.VerifiedAt) {
		t.Fatalf("GetVerdict of a verdict in the earlier layout = %v, %v; want %+v", g, err, v)
	}
}
