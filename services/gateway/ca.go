package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"strings"

	"github.com/cloister-cc/cloister/libs/errs"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

func (g *Gateway) getCA(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	if err := g.authorize(r, p, "ca.get"); err != nil {
		return reply{}, err
	}
	resp, err := g.ca.GetCA(r.Context(), &cav1.GetCARequest{AccountId: r.PathValue("account_id")})
	if err != nil {
		return reply{}, err
	}
	out := api.CA{ChainPEM: string(resp.GetChainPem()), RootPEM: string(resp.GetRootPem()), IssuerPEM: string(resp.GetIssuerPem())}
	if b, _ := pem.Decode(resp.GetRootPem()); b != nil {
		sum := sha256.Sum256(b.Bytes)
		out.RootSHA256 = hex.EncodeToString(sum[:])
	}
	return reply{http.StatusOK, out}, nil
}

// serveCRL answers GET /v1/crl/<account>.crl with the account's CRL. CRLs
// are public by nature: relying parties fetch them without credentials.
func (g *Gateway) serveCRL(w http.ResponseWriter, r *http.Request) {
	account, ok := strings.CutSuffix(r.PathValue("account_crl"), ".crl")
	if !ok {
		writeProblem(w, errs.New(errs.NotFound, "CRLs are at /v1/crl/<account id>.crl"))
		return
	}
	resp, err := g.ca.GetCRL(r.Context(), &cav1.GetCRLRequest{AccountId: account})
	if err != nil {
		g.finish(w, r, reply{}, err)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(resp.GetCrl())
}
