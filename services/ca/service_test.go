package ca_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/errs"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/libs/testkit/servicetest"
	"github.com/cloister-cc/cloister/services/account"
	"github.com/cloister-cc/cloister/services/ca"
)

// TestCAFollowsAccounts: creating an account gives it a CA (once, however
// often the event comes), its CRL is signed by that CA, and deleting the
// account removes the CA.
func TestCAFollowsAccounts(t *testing.T) {
	ctx := context.Background()
	st := servicetest.New(t)
	n := st.NATS
	servicetest.Start(st, "account", func(ctx context.Context, o service.Options) (*account.Service, error) {
		return account.Start(ctx, account.Config{Options: o, PasswordCost: &account.PasswordCost{Memory: 1024, Time: 1, Threads: 1}})
	})
	kek, _ := pki.NewKEK(bytes.Repeat([]byte{5}, pki.KEKSize))
	servicetest.Start(st, "ca", func(ctx context.Context, o service.Options) (*ca.Service, error) {
		return ca.Start(ctx, ca.Config{Options: o, KEK: kek})
	})

	accounts := accountv1.NewAccountClient(n.Connect(t), n.Vouching(t))
	if _, err := accounts.SignUp(ctx, &accountv1.SignUpRequest{Email: "ada@example.com", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	login, err := accounts.Login(ctx, &accountv1.LoginRequest{Email: "ada@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	who, err := accounts.Authenticate(ctx, &accountv1.AuthenticateRequest{Token: login.GetToken()})
	if err != nil {
		t.Fatal(err)
	}
	created, err := accounts.CreateAccount(ctx, &accountv1.CreateAccountRequest{Actor: who.GetPrincipal(), Name: "A"})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetAccount().GetId()

	c := cav1.NewCAClient(n.Connect(t), n.Vouching(t))
	var got *cav1.GetCAResponse
	testkit.EventuallyMsg(t, 10*time.Second, func() bool {
		got, err = c.GetCA(ctx, &cav1.GetCARequest{AccountId: id})
		return err == nil
	}, func() string { return fmt.Sprintf("no CA for the new account: %v", err) })

	root, issuer := parsePEM(t, got.GetRootPem()), parsePEM(t, got.GetIssuerPem())
	if root.PublicKeyAlgorithm != x509.ECDSA || !strings.Contains(root.Subject.String(), id) || issuer.CheckSignatureFrom(root) != nil {
		t.Fatalf("CA = root %v, issuer %v; want an issuer signed by the account's root", root.Subject, issuer.Subject)
	}

	crlResp, err := c.GetCRL(ctx, &cav1.GetCRLRequest{AccountId: id})
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(crlResp.GetCrl())
	if err != nil || crl.CheckSignatureFrom(issuer) != nil || !crl.NextUpdate.After(time.Now()) {
		t.Fatalf("CRL = %v, %v; want one signed by the issuing CA with a future nextUpdate", crl, err)
	}
	openSSLChecksCRL(t, crlResp.GetCrl(), got.GetChainPem())

	// The CA is made once, however often AccountCreated is delivered.
	again, err := c.GetCA(ctx, &cav1.GetCARequest{AccountId: id})
	if err != nil || !bytes.Equal(again.GetRootPem(), got.GetRootPem()) {
		t.Fatalf("CA changed between reads: %v", err)
	}

	if _, err := accounts.DeleteAccount(ctx, &accountv1.DeleteAccountRequest{Actor: who.GetPrincipal(), AccountId: id}); err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyMsg(t, 10*time.Second, func() bool {
		_, err = c.GetCA(ctx, &cav1.GetCARequest{AccountId: id})
		return errs.KindOf(err) == errs.NotFound
	}, func() string { return fmt.Sprintf("the deleted account's CA is still there: %v", err) })
}

func parsePEM(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	p, _ := pem.Decode(b)
	if p == nil {
		t.Fatalf("not PEM: %q", b)
	}
	c, err := x509.ParseCertificate(p.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// openSSLChecksCRL has openssl parse the CRL and check its signature.
func openSSLChecksCRL(t *testing.T, der, chainPEM []byte) {
	t.Helper()
	bin := testkit.Tool(t, "openssl")
	dir := t.TempDir()
	crlPath, chainPath := filepath.Join(dir, "a.crl"), filepath.Join(dir, "chain.pem")
	if err := os.WriteFile(crlPath, der, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chainPath, chainPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "crl", "-inform", "DER", "-in", crlPath, "-CAfile", chainPath, "-noout", "-nextupdate").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verify OK") || !strings.Contains(string(out), "nextUpdate=") {
		t.Fatalf("openssl crl = %v: %s", err, out)
	}
}

func TestCAStartNeedsKEK(t *testing.T) {
	st := servicetest.New(t)
	n := st.NATS
	if _, err := ca.Start(context.Background(), ca.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("ca")}}); err == nil {
		t.Fatal("Start without a key-encryption key succeeded")
	}
}
