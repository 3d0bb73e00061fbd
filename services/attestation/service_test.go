package attestation_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/events"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/services/attestation"
)

const vectors = "../../libs/sgx/testdata/"

// inWindow is when the shared vector's collateral is valid.
var inWindow = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(vectors + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func start(t *testing.T) (*attestationv1.AttestationClient, jetstream.JetStream) {
	t.Helper()
	n := testkit.StartNATS(t)
	nc, js := n.JetStream(t)
	svc, err := attestation.Start(context.Background(), attestation.Config{Options: service.Options{NATS: nc, Assertions: n.Verifier("attestation")}, Clock: func() time.Time { return inWindow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	return attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t)), js
}

func verify(t *testing.T, c *attestationv1.AttestationClient, account string, quote, binding, nonce []byte) *attestationv1.Verdict {
	t.Helper()
	resp, err := c.Verify(context.Background(), &attestationv1.VerifyRequest{AccountId: account, Quote: quote, Binding: binding, Nonce: nonce})
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	return resp.GetVerdict()
}

func TestVerifyUnderPolicy(t *testing.T) {
	c, js := start(t)
	ctx := context.Background()
	account := uuid.NewString()
	quote := read(t, "phala_sgx_quote_v3.bin")

	if v := verify(t, c, account, quote, nil, nil); v.GetOk() || v.GetReason() != "no_collateral" {
		t.Fatalf("verdict without collateral = %v, want no_collateral", v)
	}
	put, err := c.PutCollateral(ctx, &attestationv1.PutCollateralRequest{CollateralJson: read(t, "phala_sgx_quote_v3_collateral.json")})
	if err != nil || hex.EncodeToString(put.GetFmspc()) != "00a067110000" {
		t.Fatalf("PutCollateral = %v, %v; want FMSPC 00a067110000", put, err)
	}
	v := verify(t, c, account, quote, nil, nil)
	if v.GetOk() || v.GetReason() != "tcb" || v.GetTcbStatus() != "ConfigurationAndSWHardeningNeeded" {
		t.Fatalf("verdict under the default policy = %v, want refused for its TCB status (and the status reported)", v)
	}
	if _, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"UpToDate", "ConfigurationAndSWHardeningNeeded"}}}); err != nil {
		t.Fatal(err)
	}
	v = verify(t, c, account, quote, nil, nil)
	if !v.GetOk() || hex.EncodeToString(v.GetMrenclave()) != "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" || v.GetSimulated() {
		t.Fatalf("verdict under an accepting policy = %v", v)
	}
	// Another account keeps the default policy.
	if v := verify(t, c, uuid.NewString(), quote, nil, nil); v.GetOk() {
		t.Fatalf("another account's verdict = %v, want its own (default) policy applied", v)
	}

	// The binding of REPORTDATA: "Hello, world!" then zeros.
	rd := append([]byte("Hello, world!"), make([]byte, 51)...)
	if v := verify(t, c, account, quote, rd[:32], rd[32:]); !v.GetOk() {
		t.Fatalf("verdict with the right binding = %v", v)
	}
	wrong := bytes.Clone(rd[:32])
	wrong[0] ^= 1
	if v := verify(t, c, account, quote, wrong, rd[32:]); v.GetOk() || v.GetReason() != "report_data_binding" {
		t.Fatalf("verdict with a wrong binding = %v, want report_data_binding", v)
	}
	tampered := bytes.Clone(quote)
	tampered[48+64] ^= 1
	if v := verify(t, c, account, tampered, nil, nil); v.GetOk() || v.GetReason() != "quote_signature" {
		t.Fatalf("verdict for a tampered quote = %v, want quote_signature", v)
	}

	// Every verdict was announced, successes and failures apart.
	want := map[string]int{"AttestationFailed": 5, "AttestationSucceeded": 2, "PolicyChanged": 1}
	testkit.Eventually(t, 5*time.Second, func() bool {
		got := map[string]int{}
		for name := range want {
			st, err := js.Stream(ctx, events.StreamEvents)
			if err != nil {
				return false
			}
			info, err := st.Info(ctx, jetstream.WithSubjectFilter("events.attestation.v1."+name))
			if err != nil {
				return false
			}
			for _, n := range info.State.Subjects {
				got[name] += int(n)
			}
		}
		for k, n := range want {
			if got[k] != n {
				return false
			}
		}
		return true
	}, "attestation events do not match %v", want)
}

func TestBadRequests(t *testing.T) {
	c, _ := start(t)
	ctx := context.Background()
	quote := read(t, "phala_sgx_quote_v3.bin")
	account := uuid.NewString()
	col := read(t, "phala_sgx_quote_v3_collateral.json")
	var raw map[string]string
	_ = json.Unmarshal(col, &raw)
	raw["tcb_info"] = raw["tcb_info"][:len(raw["tcb_info"])-2] + " }"
	tamperedCol, _ := json.Marshal(raw)
	delete(raw, "pck_crl")

	tests := []struct {
		name string
		call func() error
	}{
		{"account id not a uuid", func() error {
			_, err := c.Verify(ctx, &attestationv1.VerifyRequest{AccountId: "a.>", Quote: quote})
			return err
		}},
		{"empty quote", func() error { _, err := c.Verify(ctx, &attestationv1.VerifyRequest{AccountId: account}); return err }},
		{"short binding", func() error {
			_, err := c.Verify(ctx, &attestationv1.VerifyRequest{AccountId: account, Quote: quote, Binding: []byte{1}, Nonce: make([]byte, 32)})
			return err
		}},
		{"unknown status", func() error {
			_, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{AcceptStatuses: []string{"Fine"}}})
			return err
		}},
		{"empty policy", func() error {
			_, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{}})
			return err
		}},
		{"tampered collateral", func() error {
			_, err := c.PutCollateral(ctx, &attestationv1.PutCollateralRequest{CollateralJson: tamperedCol})
			return err
		}},
		{"garbage collateral", func() error {
			_, err := c.PutCollateral(ctx, &attestationv1.PutCollateralRequest{CollateralJson: []byte("{")})
			return err
		}},
		{"PCS form without CRLs", func() error {
			_, err := c.PutCollateral(ctx, &attestationv1.PutCollateralRequest{TcbInfo: []byte(`{}`)})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); errs.KindOf(err) != errs.Invalid {
				t.Fatalf("%s = %v (kind %v), want Invalid", tt.name, err, errs.KindOf(err))
			}
		})
	}
}

// TestPutCollateralPCSForm stores collateral given as Intel's PCS serves it.
func TestPutCollateralPCSForm(t *testing.T) {
	c, _ := start(t)
	var raw map[string]string
	if err := json.Unmarshal(read(t, "phala_sgx_quote_v3_collateral.json"), &raw); err != nil {
		t.Fatal(err)
	}
	unhex := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	put, err := c.PutCollateral(context.Background(), &attestationv1.PutCollateralRequest{
		TcbInfo:      []byte(`{"tcbInfo":` + raw["tcb_info"] + `,"signature":"` + raw["tcb_info_signature"] + `"}`),
		QeIdentity:   []byte(`{"enclaveIdentity":` + raw["qe_identity"] + `,"signature":"` + raw["qe_identity_signature"] + `"}`),
		SigningChain: []byte(raw["tcb_info_issuer_chain"]),
		RootCrl:      unhex(raw["root_ca_crl"]),
		PckCrl:       unhex(raw["pck_crl"]),
	})
	if err != nil || hex.EncodeToString(put.GetFmspc()) != "00a067110000" {
		t.Fatalf("PutCollateral(PCS form) = %v, %v", put, err)
	}
}

// TestPolicyRequireNodeAttestation: require_node_attestation is off by
// default and round-trips through SetPolicy and GetPolicy, on and off.
func TestPolicyRequireNodeAttestation(t *testing.T) {
	c, _ := start(t)
	ctx := context.Background()
	account := uuid.NewString()
	get := func() *attestationv1.Policy {
		t.Helper()
		r, err := c.GetPolicy(ctx, &attestationv1.GetPolicyRequest{AccountId: account})
		if err != nil {
			t.Fatalf("GetPolicy = %v", err)
		}
		return r.GetPolicy()
	}
	if get().GetRequireNodeAttestation() {
		t.Fatal("the default policy requires node attestation")
	}
	for _, want := range []bool{true, false} {
		set, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
			AcceptStatuses: []string{"UpToDate"}, AllowSimulation: true, RequireNodeAttestation: want}})
		if err != nil || set.GetPolicy().GetRequireNodeAttestation() != want {
			t.Fatalf("SetPolicy(require_node_attestation=%v) = %v, %v", want, set, err)
		}
		if got := get(); got.GetRequireNodeAttestation() != want || !got.GetAllowSimulation() {
			t.Fatalf("GetPolicy after setting require_node_attestation=%v = %v", want, got)
		}
	}
}

// TestPolicyChangeReachesEveryReplica: replicas keep what they read of a
// policy (here for an hour), yet a change made through one of them
// applies on every one at once: its PolicyChanged event drops their copy.
func TestPolicyChangeReachesEveryReplica(t *testing.T) {
	n := testkit.StartNATS(t)
	ctx := context.Background()
	for range 2 {
		svc, err := attestation.Start(ctx, attestation.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("attestation")},
			Clock: func() time.Time { return inWindow }, ReadTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Stop)
	}
	c := attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t))
	if _, err := c.PutCollateral(ctx, &attestationv1.PutCollateralRequest{CollateralJson: read(t, "phala_sgx_quote_v3_collateral.json")}); err != nil {
		t.Fatal(err)
	}
	account, quote := uuid.NewString(), read(t, "phala_sgx_quote_v3.bin")
	// Both replicas read the default policy (which refuses this platform's
	// status), nearly certainly: requests go to either at random.
	for range 30 {
		if v := verify(t, c, account, quote, nil, nil); v.GetOk() {
			t.Fatalf("verdict under the default policy = %v, want refused", v)
		}
	}
	if _, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"ConfigurationAndSWHardeningNeeded"}}}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		for range 30 {
			if !verify(t, c, account, quote, nil, nil).GetOk() {
				return false
			}
		}
		return true
	}, "a replica still verifies under the policy from before the change")
}

// A TDX quote is verified with TDX collateral, which is stored beside
// the platform's SGX collateral, under the account's TDX rules; its
// verdict says what the TD is.
func TestTDXEvidence(t *testing.T) {
	c, _ := start(t)
	ctx := context.Background()
	account := uuid.NewString()
	quote := read(t, "phala_tdx_quote_v4.bin")
	if v := verify(t, c, account, quote, nil, nil); v.GetOk() || v.GetReason() != "no_collateral" || v.GetTee() != "tdx" {
		t.Fatalf("verdict without TDX collateral = %v, want no_collateral", v)
	}
	for _, name := range []string{"phala_tdx_quote_v4_collateral.json", "phala_sgx_quote_v3_collateral.json"} {
		if _, err := c.PutCollateral(ctx, &attestationv1.PutCollateralRequest{CollateralJson: read(t, name)}); err != nil {
			t.Fatalf("PutCollateral(%s) = %v", name, err)
		}
	}
	v := verify(t, c, account, quote, nil, nil)
	const mrtd = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
	if !v.GetOk() || v.GetTee() != "tdx" || v.GetTcbStatus() != "UpToDate" || hex.EncodeToString(v.GetMeasurement()) != mrtd ||
		len(v.GetRtmrs()) != 4 || len(v.GetMrenclave()) != 32 || !bytes.Equal(v.GetMrenclave(), make([]byte, 32)) {
		t.Fatalf("verdict for the TDX vector = %v", v)
	}
	if v := verify(t, c, account, quote, make([]byte, 32), make([]byte, 32)); v.GetOk() || v.GetReason() != "report_data_binding" {
		t.Fatalf("verdict with a binding the TD did not make = %v, want report_data_binding", v)
	}

	// The account's TDX rules: a measurement list without its MRTD refuses it.
	other := bytes.Repeat([]byte{1}, 48)
	if _, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"UpToDate"}, Tdx: &attestationv1.TDXPolicy{Mrtds: [][]byte{other}}}}); err != nil {
		t.Fatal(err)
	}
	if v := verify(t, c, account, quote, nil, nil); v.GetOk() || v.GetReason() != "policy" || !strings.Contains(v.GetError(), "MRTD") {
		t.Fatalf("verdict under a policy without its MRTD = %v, want policy", v)
	}
	// The SGX quote of the same deployment is unaffected.
	if v := verify(t, c, account, read(t, "phala_sgx_quote_v3.bin"), nil, nil); v.GetTee() != "sgx" || v.GetReason() != "tcb" {
		t.Fatalf("the SGX vector's verdict = %v, want sgx refused for its status", v)
	}
	// Malformed rules are refused with what is wrong.
	for _, bad := range []*attestationv1.TDXPolicy{{Mrtds: [][]byte{{1, 2}}}, {Rtmrs: [][]byte{other}}, {AcceptStatuses: []string{"Fine"}}} {
		_, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{AcceptStatuses: []string{"UpToDate"}, Tdx: bad}})
		if errs.KindOf(err) != errs.Invalid || !strings.Contains(err.Error(), "tdx.") {
			t.Errorf("SetPolicy(tdx %v) = %v, want invalid naming the tdx field", bad, err)
		}
	}
}

// An SEV-SNP report is verified with the VCEK that comes with it, under
// the account's SEV-SNP rules.
func TestSNPEvidence(t *testing.T) {
	c, _ := start(t)
	ctx := context.Background()
	account := uuid.NewString()
	report, vcek := snpVector(t)
	snpVerify := func(aux []byte) *attestationv1.Verdict {
		t.Helper()
		resp, err := c.Verify(ctx, &attestationv1.VerifyRequest{AccountId: account, Tee: "sev-snp", Quote: report, EvidenceAux: aux})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetVerdict()
	}
	const measurement = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
	if v := snpVerify(vcek); !v.GetOk() || v.GetTee() != "sev-snp" || hex.EncodeToString(v.GetMeasurement()) != measurement || len(v.GetHostData()) != 32 {
		t.Fatalf("verdict for the SNP vector = %v", v)
	}
	if v := snpVerify(nil); v.GetOk() || v.GetReason() != "chain" {
		t.Fatalf("verdict without its VCEK = %v, want chain", v)
	}
	if _, err := c.SetPolicy(ctx, &attestationv1.SetPolicyRequest{AccountId: account, Policy: &attestationv1.Policy{
		AcceptStatuses: []string{"UpToDate"}, SevSnp: &attestationv1.SNPPolicy{MinTcb: 0x7309000000000003}}}); err != nil {
		t.Fatal(err)
	}
	if v := snpVerify(vcek); v.GetOk() || v.GetReason() != "tcb" || hex.EncodeToString(v.GetMeasurement()) != measurement {
		t.Fatalf("verdict under a higher minimum TCB = %v, want tcb, with what the report proves", v)
	}
	if _, err := c.Verify(ctx, &attestationv1.VerifyRequest{AccountId: account, Tee: "z80", Quote: report}); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("an unknown TEE = %v, want invalid", err)
	}
}

// TestSNPVCEKFromKDS: an SEV-SNP report that comes without its VCEK has it
// fetched from the key distribution service configured (a local one here,
// by AMD's URL scheme), once: it is kept until it expires.
func TestSNPVCEKFromKDS(t *testing.T) {
	report, vcek := snpVector(t)
	const hwid = "d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc15d7af38db757039029f0efacfd08e244324884738c72b082e2f87a44d541eb6"
	var asked []string
	var mu sync.Mutex
	kds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.String())
		mu.Unlock()
		if r.URL.Path != "/vcek/v1/Milan/"+hwid || r.URL.RawQuery != "blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(vcek)
	}))
	defer kds.Close()
	n := testkit.StartNATS(t)
	svc, err := attestation.Start(context.Background(), attestation.Config{Options: service.Options{NATS: n.Connect(t), Assertions: n.Verifier("attestation")},
		KDSURL: kds.URL, Clock: func() time.Time { return inWindow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	c := attestationv1.NewAttestationClient(n.Connect(t), n.Vouching(t))
	for i := range 2 {
		resp, err := c.Verify(context.Background(), &attestationv1.VerifyRequest{AccountId: uuid.NewString(), Tee: "sev-snp", Quote: report})
		if err != nil || !resp.GetVerdict().GetOk() {
			t.Fatalf("verification %d with a KDS = %v, %v", i, resp.GetVerdict(), err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 {
		t.Fatalf("the KDS was asked %v, want once (the VCEK is kept)", asked)
	}
}

// TestUploadedVCEK: an admin uploads a chip's VCEK once; its reports then
// verify without one. A VCEK that does not chain to AMD's root is refused.
func TestUploadedVCEK(t *testing.T) {
	c, _ := start(t)
	ctx := context.Background()
	report, vcek := snpVector(t)
	account := uuid.NewString()
	verifySNP := func() *attestationv1.Verdict {
		t.Helper()
		resp, err := c.Verify(ctx, &attestationv1.VerifyRequest{AccountId: account, Tee: "sev-snp", Quote: report})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetVerdict()
	}
	if v := verifySNP(); v.GetOk() || v.GetReason() != "chain" {
		t.Fatalf("verdict before the upload = %v, want chain (no VCEK)", v)
	}
	put, err := c.PutVCEK(ctx, &attestationv1.PutVCEKRequest{Vcek: vcek})
	if err != nil || put.GetProduct() != "Milan" || put.GetTcb() != "0x7308000000000003" || len(put.GetHwid()) != 64 {
		t.Fatalf("PutVCEK = %v, %v", put, err)
	}
	if v := verifySNP(); !v.GetOk() {
		t.Fatalf("verdict after the upload = %v", v)
	}
	forged := bytes.Clone(vcek)
	forged[len(forged)-10] ^= 1 // in the signature
	for name, b := range map[string][]byte{"nonsense": []byte("nonsense"), "a forged signature": forged, "none": nil} {
		if _, err := c.PutVCEK(ctx, &attestationv1.PutVCEKRequest{Vcek: b}); errs.KindOf(err) != errs.Invalid {
			t.Errorf("PutVCEK(%s) = %v, want invalid", name, err)
		}
	}
}

// snpVector is the SEV-SNP vector: the Milan report (hex) and its VCEK.
func snpVector(t *testing.T) (report, vcek []byte) {
	t.Helper()
	const dir = "../../libs/snp/testdata/"
	var err error
	if report, err = os.ReadFile(dir + "report_milan.hex"); err != nil {
		t.Fatal(err)
	}
	if vcek, err = os.ReadFile(dir + "vcek_milan.der"); err != nil {
		t.Fatal(err)
	}
	return report, vcek
}
