// Package peers adapts the services the CA calls to the ports its app
// declares: the attestation service's verdicts.
package peers

import (
	"context"

	"github.com/cloister-cc/cloister/libs/errs"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/services/ca/internal/app"
	"github.com/cloister-cc/cloister/services/ca/internal/domain"
)

// Verdicts fetches verdicts from the attestation service.
type Verdicts struct {
	C *attestationv1.AttestationClient
}

var _ app.Verdicts = (*Verdicts)(nil)

// Get implements app.Verdicts.
func (s *Verdicts) Get(ctx context.Context, accountID, id string) (domain.Verdict, error) {
	resp, err := s.C.GetVerdict(ctx, &attestationv1.GetVerdictRequest{AccountId: accountID, Id: id})
	if errs.KindOf(err) == errs.NotFound {
		return domain.Verdict{}, app.ErrVerdictNotFound
	}
	if err != nil {
		return domain.Verdict{}, err
	}
	v := resp.GetVerdict()
	return domain.Verdict{ID: v.GetId(), AccountID: v.GetAccountId(), OK: v.GetOk(), Reason: v.GetReason(),
		AppID: v.GetAppId(), ImageID: v.GetImageId(), MRENCLAVE: v.GetMrenclave(), MRSIGNER: v.GetMrsigner(),
		ISVProdID: v.GetIsvprodid(), ISVSVN: v.GetIsvsvn(), TCBStatus: v.GetTcbStatus(), Debug: v.GetDebug(), Simulated: v.GetSimulated(),
		ReportData: v.GetReportData(), VerifiedAt: v.GetVerifiedAt().AsTime()}, nil
}
