package attestation_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/attestation"
)

// pcsServer serves the shared vector's collateral the way Intel's PCS v4
// does: signed bodies, issuer chains URL-encoded in headers, CRLs in DER.
func pcsServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var raw map[string]string
	if err := json.Unmarshal(read(t, "phala_sgx_quote_v3_collateral.json"), &raw); err != nil {
		t.Fatal(err)
	}
	var tdx map[string]string
	if err := json.Unmarshal(read(t, "phala_tdx_quote_v4_collateral.json"), &tdx); err != nil {
		t.Fatal(err)
	}
	unhex := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	var tcbRequests atomic.Int32
	mux := http.NewServeMux()
	// The TDX API, beside the SGX API: the TDX platform's TCB Info and the TD_QE.
	mux.HandleFunc("GET /tdx/certification/v4/tcb", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fmspc") != "B0C06F000000" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("TCB-Info-Issuer-Chain", url.PathEscape(tdx["tcb_info_issuer_chain"]))
		_, _ = w.Write([]byte(`{"tcbInfo":` + tdx["tcb_info"] + `,"signature":"` + tdx["tcb_info_signature"] + `"}`))
	})
	mux.HandleFunc("GET /tdx/certification/v4/qe/identity", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("SGX-Enclave-Identity-Issuer-Chain", url.PathEscape(tdx["qe_identity_issuer_chain"]))
		_, _ = w.Write([]byte(`{"enclaveIdentity":` + tdx["qe_identity"] + `,"signature":"` + tdx["qe_identity_signature"] + `"}`))
	})
	mux.HandleFunc("GET /sgx/certification/v4/tcb", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fmspc") != "00A067110000" {
			http.NotFound(w, r)
			return
		}
		tcbRequests.Add(1)
		w.Header().Set("TCB-Info-Issuer-Chain", url.PathEscape(raw["tcb_info_issuer_chain"]))
		_, _ = w.Write([]byte(`{"tcbInfo":` + raw["tcb_info"] + `,"signature":"` + raw["tcb_info_signature"] + `"}`))
	})
	mux.HandleFunc("GET /sgx/certification/v4/qe/identity", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("SGX-Enclave-Identity-Issuer-Chain", url.PathEscape(raw["qe_identity_issuer_chain"]))
		_, _ = w.Write([]byte(`{"enclaveIdentity":` + raw["qe_identity"] + `,"signature":"` + raw["qe_identity_signature"] + `"}`))
	})
	mux.HandleFunc("GET /sgx/certification/v4/pckcrl", func(w http.ResponseWriter, r *http.Request) {
		// The SGX vector's platform has a processor CA, the TDX vector's a platform CA.
		col := map[string]map[string]string{"processor": raw, "platform": tdx}[r.URL.Query().Get("ca")]
		if col == nil {
			http.Error(w, "wrong ca", http.StatusBadRequest)
			return
		}
		w.Header().Set("SGX-PCK-CRL-Issuer-Chain", url.PathEscape(col["pck_crl_issuer_chain"]))
		_, _ = w.Write(unhex(col["pck_crl"]))
	})
	mux.HandleFunc("GET /sgx/certification/v4/rootcacrl", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(unhex(raw["root_ca_crl"]))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &tcbRequests
}

// TestFetchesCollateralFromPCS: with a PCS configured, missing collateral
// is fetched, checked, stored, and reused until its nextUpdate.
func TestFetchesCollateralFromPCS(t *testing.T) {
	srv, tcbRequests := pcsServer(t)
	n := testkit.StartNATS(t)
	now := inWindow
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	svc, err := attestation.Start(context.Background(), attestation.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("attestation")}, PCSURL: srv.URL + "/sgx/certification/v4", Clock: func() time.Time { return *clock.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	c := attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t))
	account := uuid.NewString()
	if _, err := c.SetPolicy(context.Background(), &attestationv1.SetPolicyRequest{AccountId: account,
		Policy: &attestationv1.Policy{AcceptStatuses: []string{"ConfigurationAndSWHardeningNeeded"}}}); err != nil {
		t.Fatal(err)
	}
	quote := read(t, "phala_sgx_quote_v3.bin")
	// A quote whose PCK chain does not verify never sends its FMSPC to the PCS.
	forged := bytes.Clone(quote)
	// Inside the PCK certificate, the first of the PEM chain (the root at
	// its end is trusted for its key, whatever its own signature says).
	forged[bytes.Index(forged, []byte("-----BEGIN CERTIFICATE-----"))+300] ^= 1
	if v := verify(t, c, account, forged, nil, nil); v.GetOk() || v.GetReason() == "no_collateral" || tcbRequests.Load() != 0 {
		t.Fatalf("verdict for a forged chain = %v after %d PCS requests; want a chain failure and none", v, tcbRequests.Load())
	}
	for i := range 3 {
		if v := verify(t, c, account, quote, nil, nil); !v.GetOk() {
			t.Fatalf("verification %d with a PCS = %v", i, v)
		}
	}
	if got := tcbRequests.Load(); got != 1 {
		t.Fatalf("the PCS was asked for TCB Info %d times, want once (then the stored copy is used)", got)
	}
	// Past nextUpdate the service asks again; the PCS has nothing newer,
	// so the verdict names what expired.
	late := time.Date(2025, 7, 20, 0, 0, 0, 0, time.UTC)
	clock.Store(&late)
	v := verify(t, c, account, quote, nil, nil)
	if v.GetOk() || v.GetReason() != "expired" || tcbRequests.Load() != 2 {
		t.Fatalf("verdict past nextUpdate = %v after %d TCB requests; want expired after a second request", v, tcbRequests.Load())
	}
}

// TestFetchesTDXCollateralFromPCS: a TDX quote's collateral comes from the
// PCS's TDX API, beside its SGX API.
func TestFetchesTDXCollateralFromPCS(t *testing.T) {
	srv, _ := pcsServer(t)
	n := testkit.StartNATS(t)
	svc, err := attestation.Start(context.Background(), attestation.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("attestation")},
		PCSURL: srv.URL + "/sgx/certification/v4/", Clock: func() time.Time { return inWindow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	c := attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t))
	if v := verify(t, c, uuid.NewString(), read(t, "phala_tdx_quote_v4.bin"), nil, nil); !v.GetOk() || v.GetTee() != "tdx" || v.GetTcbStatus() != "UpToDate" {
		t.Fatalf("verdict for the TDX vector with a PCS = %v", v)
	}
}

func TestPCSUnreachable(t *testing.T) {
	n := testkit.StartNATS(t)
	svc, err := attestation.Start(context.Background(), attestation.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("attestation")}, PCSURL: "http://127.0.0.1:1/sgx/certification/v4", Clock: func() time.Time { return inWindow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	v := verify(t, attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t)), uuid.NewString(), read(t, "phala_sgx_quote_v3.bin"), nil, nil)
	if v.GetOk() || v.GetReason() != "no_collateral" || !strings.Contains(v.GetError(), "PCS") {
		t.Fatalf("verdict with the PCS down = %v, want no_collateral naming the PCS", v)
	}
}
