package attestation_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/errs"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/attestation"
)

// TestCollateralOnlyMovesForward stands a simulation root in for Intel's,
// so the test can sign collateral at two times: the newer is stored, and
// the older, though genuinely signed and still valid, is refused.
func TestCollateralOnlyMovesForward(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	root, err := sim.NewRoot(rand.Reader, t0.Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	p := sim.DefaultPlatform()
	older, err := root.Collateral(p, t0)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := root.Collateral(p, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	n := testkit.StartNATS(t)
	now := t0.Add(2 * time.Hour)
	svc, err := attestation.Start(context.Background(), attestation.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("attestation")}, IntelRoot: root.PublicKey(), IntelOptions: sim.VerifierOptions(), Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	c := attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t))
	put := func(col *sgx.Collateral) error {
		_, err := c.PutCollateral(context.Background(), &attestationv1.PutCollateralRequest{
			TcbInfo:      []byte(`{"tcbInfo":` + string(col.TCBInfoJSON) + `,"signature":"` + hexOf(col.TCBInfoSignature) + `"}`),
			QeIdentity:   []byte(`{"enclaveIdentity":` + string(col.QEIdentityJSON) + `,"signature":"` + hexOf(col.QEIdentitySignature) + `"}`),
			SigningChain: col.TCBInfoIssuerChain, RootCrl: col.RootCACRL, PckCrl: col.PCKCRL,
		})
		return err
	}
	if err := put(newer); err != nil {
		t.Fatalf("storing the newer collateral = %v", err)
	}
	err = put(older)
	if errs.KindOf(err) != errs.Conflict || !strings.Contains(err.Error(), "older than the stored") {
		t.Fatalf("storing older collateral over newer = %v, want a conflict saying it is older", err)
	}
	if err := put(newer); err != nil {
		t.Fatalf("storing the same collateral again = %v", err)
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
