package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAttestVerify(t *testing.T) {
	const quote, collateral = "../../libs/sgx/testdata/phala_sgx_quote_v3.bin", "../../libs/sgx/testdata/phala_sgx_quote_v3_collateral.json"
	tests := []struct {
		name   string
		args   []string
		exit0  bool
		status string
		errHas string
	}{
		{"default policy refuses the platform's status", []string{"--at", "2025-07-01T00:00:00Z"}, false, "ConfigurationAndSWHardeningNeeded", "not accepted"},
		{"accepted when asked", []string{"--at", "1751328000", "--accept", "UpToDate,ConfigurationAndSWHardeningNeeded"}, true, "ConfigurationAndSWHardeningNeeded", ""},
		{"outside the window", []string{"--at", "2025-08-01T00:00:00Z", "--accept", "ConfigurationAndSWHardeningNeeded"}, false, "", "TCB Info: expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"attest", "verify", quote, "--collateral-json", collateral, "-o", "json"}, tt.args...)
			cmd := cloisterCmd(t, t.TempDir(), args...)
			out, err := cmd.Output()
			if (err == nil) != tt.exit0 {
				t.Fatalf("cloister %s: exit error %v, want success %v; output %s", strings.Join(args, " "), err, tt.exit0, out)
			}
			var res attestResult
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if res.OK != tt.exit0 || res.Status != tt.status || !strings.Contains(res.Error, tt.errHas) {
				t.Fatalf("result = %+v; want ok %v status %q error containing %q", res, tt.exit0, tt.status, tt.errHas)
			}
			if tt.status != "" && res.MRENCLAVE != "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" {
				t.Fatalf("mrenclave = %s", res.MRENCLAVE)
			}
		})
	}
}

// TestAttestVerifyPCSFiles feeds the collateral as Intel's PCS serves it:
// TCB Info and QE Identity bodies, the signing chain, CRLs in DER.
func TestAttestVerifyPCSFiles(t *testing.T) {
	raw, err := os.ReadFile("../../libs/sgx/testdata/phala_sgx_quote_v3_collateral.json")
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]string
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tcb := write("tcb.json", []byte(`{"tcbInfo":`+c["tcb_info"]+`,"signature":"`+c["tcb_info_signature"]+`"}`))
	qe := write("qe.json", []byte(`{"enclaveIdentity":`+c["qe_identity"]+`,"signature":"`+c["qe_identity_signature"]+`"}`))
	chain := write("chain.pem", []byte(c["tcb_info_issuer_chain"]))
	rootCRL := write("root.crl", unhex(c["root_ca_crl"]))
	pckCRL := write("pck.crl", unhex(c["pck_crl"]))
	args := []string{"attest", "verify", "../../libs/sgx/testdata/phala_sgx_quote_v3.bin", "--tcb-info", tcb, "--qe-identity", qe,
		"--tcb-signing-chain", chain, "--root-crl", rootCRL, "--pck-crl", pckCRL, "--at", "2025-07-01T00:00:00Z",
		"--accept", "ConfigurationAndSWHardeningNeeded", "-o", "json"}
	out, err := cloisterCmd(t, t.TempDir(), args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"ok": true`) {
		t.Fatalf("attest verify with PCS files = %v\n%s", err, out)
	}
	// Without CRLs it fails unless --skip-crl says so.
	args = []string{"attest", "verify", "../../libs/sgx/testdata/phala_sgx_quote_v3.bin", "--tcb-info", tcb, "--qe-identity", qe,
		"--tcb-signing-chain", chain, "--at", "2025-07-01T00:00:00Z", "--accept", "ConfigurationAndSWHardeningNeeded", "-o", "json"}
	if out, err := cloisterCmd(t, t.TempDir(), args...).CombinedOutput(); err == nil || !strings.Contains(string(out), "CRLs are missing") {
		t.Fatalf("attest verify without CRLs = %v\n%s; want a refusal naming the CRLs", err, out)
	}
	if out, err := cloisterCmd(t, t.TempDir(), append(args, "--skip-crl")...).CombinedOutput(); err != nil {
		t.Fatalf("attest verify --skip-crl = %v\n%s", err, out)
	}
}

func TestSigStructInspect(t *testing.T) {
	out, err := cloisterCmd(t, t.TempDir(), "sgx", "sigstruct", "inspect", "../../libs/sgx/testdata/intel_launch_enclave.sigstruct.bin", "-o", "json").Output()
	if err != nil {
		t.Fatalf("sgx sigstruct inspect = %v\n%s", err, out)
	}
	var got sigstructOut
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := sigstructOut{MRENCLAVE: "c0acdca38163ef4d4ef3bd51a4b98f4b00fb8d81045e7c6cd4fdeb3beb3b4574",
		MRSIGNER: "acb77012053e05a63d413b8bbae8fb6c5d73b3f2996d91c43bbbf90959c0f8d4", ISVProdID: 0, ISVSVN: 1,
		Attributes: "24000000000000000300000000000000", AttributeMask: "ffffffffffffffff1bffffffffffffff", Debug: false, XFRM: "0x3", MiscSelect: "0x0", Vendor: "0x8086", Date: "2015-06-16", SignatureValid: true}
	if got != want {
		t.Fatalf("inspect = %+v\nwant      %+v", got, want)
	}
	bad, err := os.ReadFile("../../libs/sgx/testdata/intel_launch_enclave.sigstruct.bin")
	if err != nil {
		t.Fatal(err)
	}
	bad[960] ^= 1 // ENCLAVEHASH
	p := filepath.Join(t.TempDir(), "bad.sig")
	if err := os.WriteFile(p, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = cloisterCmd(t, t.TempDir(), "sgx", "sigstruct", "inspect", p, "-o", "json").Output()
	if err == nil || !strings.Contains(string(out), `"signature_valid": false`) {
		t.Fatalf("inspect of a tampered SIGSTRUCT = %v\n%s; want exit 1 and signature_valid false", err, out)
	}
}

// TestAttestVerifySNP: the real Milan report verifies from the command
// line, and each way of getting it wrong is refused with its reason.
func TestAttestVerifySNP(t *testing.T) {
	const dir = "../../libs/snp/testdata/"
	dataHex, err := os.ReadFile(dir + "report_milan.hex")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(dataHex)))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin, flipped := filepath.Join(tmp, "report.bin"), filepath.Join(tmp, "flipped.bin")
	if err := os.WriteFile(bin, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	raw[21] ^= 0x80
	if err := os.WriteFile(flipped, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	const measurement = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
	at := []string{"--at", "2025-07-01T00:00:00Z"}
	for _, tt := range []struct {
		name   string
		args   []string
		exit0  bool
		errHas string
	}{
		{"hex, with its chain", []string{dir + "report_milan.hex", "--vcek", dir + "vcek_milan.der", "--cert-chain", dir + "cert_chain_milan"}, true, ""},
		{"binary, its measurement and TCB required", []string{bin, "--vcek", dir + "vcek_milan.der", "--measurement", measurement, "--min-tcb", "0x7308000000000003"}, true, ""},
		{"a flipped bit", []string{flipped, "--vcek", dir + "vcek_milan.der"}, false, "report_signature"},
		{"a Turin VCEK", []string{bin, "--vcek", dir + "vcek_turin.der"}, false, "mismatch"},
		{"a Turin chain", []string{bin, "--vcek", dir + "vcek_milan.der", "--cert-chain", dir + "cert_chain_turin"}, false, "not AMD's Milan root"},
		{"a higher TCB required", []string{bin, "--vcek", dir + "vcek_milan.der", "--min-tcb", "7309000000000003"}, false, "below the minimum"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"attest", "verify-snp", "-o", "json"}, tt.args...), at...)
			out, err := cloisterCmd(t, t.TempDir(), args...).Output()
			if (err == nil) != tt.exit0 {
				t.Fatalf("cloister %s: exit error %v, want success %v; output %s", strings.Join(args, " "), err, tt.exit0, out)
			}
			var res snpResult
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if res.OK != tt.exit0 || res.TEE != "sev-snp" || !strings.Contains(res.Error, tt.errHas) {
				t.Fatalf("result = %+v; want ok %v, tee sev-snp, error containing %q", res, tt.exit0, tt.errHas)
			}
			if tt.exit0 && (res.Measurement != measurement || res.Status != "Verified" || res.Debug || res.TCB == nil ||
				res.TCB.Reported != "0x7308000000000003" || res.TCB.Levels["microcode"] != 115 || res.Product != "Milan") {
				t.Fatalf("result = %+v", res)
			}
		})
	}
	if out, err := cloisterCmd(t, t.TempDir(), "attest", "verify-snp", bin).CombinedOutput(); err == nil || !strings.Contains(string(out), "--vcek is required") {
		t.Fatalf("without --vcek: %v, %s", err, out)
	}
}

// TestAttestVerifyTDX: the real TDX quote verifies from the command line
// as UpToDate with no advisories, and says what the TD is.
func TestAttestVerifyTDX(t *testing.T) {
	const dir = "../../libs/sgx/testdata/"
	quote, err := os.ReadFile(dir + "phala_tdx_quote_v4.bin")
	if err != nil {
		t.Fatal(err)
	}
	flipped := filepath.Join(t.TempDir(), "flipped.bin")
	quote[48+136] ^= 1 // MRTD
	if err := os.WriteFile(flipped, quote, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, quote, collateral string
		exit0                   bool
		errHas                  string
	}{
		{"the vector", dir + "phala_tdx_quote_v4.bin", dir + "phala_tdx_quote_v4_collateral.json", true, ""},
		{"a flipped MRTD", flipped, dir + "phala_tdx_quote_v4_collateral.json", false, "quote_signature"},
		{"SGX collateral", dir + "phala_tdx_quote_v4.bin", dir + "phala_sgx_quote_v3_collateral.json", false, "mismatch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"attest", "verify", tt.quote, "--collateral-json", tt.collateral, "--at", "2025-07-01T00:00:00Z", "-o", "json"}
			out, err := cloisterCmd(t, t.TempDir(), args...).Output()
			if (err == nil) != tt.exit0 {
				t.Fatalf("cloister %s: exit error %v, want success %v; output %s", strings.Join(args, " "), err, tt.exit0, out)
			}
			var res attestResult
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if res.OK != tt.exit0 || res.TEE != "tdx" || !strings.Contains(res.Error, tt.errHas) {
				t.Fatalf("result = %+v; want ok %v, tee tdx, error containing %q", res, tt.exit0, tt.errHas)
			}
			if tt.exit0 && (res.Status != "UpToDate" || len(res.Advisories) != 0 || len(res.RTMRs) != 4 || res.TCB == nil || res.TCB.Module != "UpToDate" ||
				res.Measurement != "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7" || res.Debug || res.MRENCLAVE != "") {
				t.Fatalf("result = %+v", res)
			}
		})
	}
}
