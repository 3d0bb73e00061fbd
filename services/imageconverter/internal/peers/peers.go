// Package peers adapts the services the image converter calls to the
// ports its app declares: the CA, whose records say which enclave a
// secret may be sealed to.
package peers

import (
	"context"

	"github.com/cloister-cc/cloister/libs/errs"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/services/imageconverter/internal/app"
)

// CA reads certificates from the account CA.
type CA struct{ C *cav1.CAClient }

var _ app.Certificates = CA{}

// Get implements app.Certificates.
func (c CA) Get(ctx context.Context, accountID, serial string) (app.IssuedCertificate, error) {
	resp, err := c.C.GetCertificate(ctx, &cav1.GetCertificateRequest{AccountId: accountID, Serial: serial})
	if errs.KindOf(err) == errs.NotFound {
		return app.IssuedCertificate{}, app.ErrCertificateNotFound
	}
	if err != nil {
		return app.IssuedCertificate{}, err
	}
	got := resp.GetCertificate()
	return app.IssuedCertificate{Kind: got.GetKind(), SubjectID: got.GetSubjectId(), Revoked: got.GetRevoked(),
		NotBefore: got.GetNotBefore().AsTime(), RecipientKey: got.GetRecipientKey()}, nil
}
