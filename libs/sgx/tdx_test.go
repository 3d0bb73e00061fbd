package sgx

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"
)

// tdxCollateral is the TDX vector's collateral.
func tdxCollateral(t testing.TB) *Collateral {
	t.Helper()
	return collateralVector(t, "phala_tdx_quote_v4_collateral.json")
}

// The real TDX quote verifies as UpToDate with no advisories, and its TD
// report reads as the vectors' README says.
func TestVerifyTDXVector(t *testing.T) {
	quote := readVector(t, "phala_tdx_quote_v4.bin")
	res, err := Verify(quote, Options{At: inWindow, Collateral: tdxCollateral(t)})
	if err != nil {
		t.Fatalf("Verify(TDX vector) = %v", err)
	}
	if res.TEE != "tdx" || res.Status != StatusUpToDate || res.PlatformStatus != StatusUpToDate || res.QEStatus != StatusUpToDate ||
		res.ModuleStatus != StatusUpToDate || len(res.Advisories) != 0 {
		t.Errorf("result = %s %s (platform %s, module %s, QE %s), advisories %v; want tdx, UpToDate everywhere, none",
			res.TEE, res.Status, res.PlatformStatus, res.ModuleStatus, res.QEStatus, res.Advisories)
	}
	td := res.TD
	if td == nil {
		t.Fatal("no TD report in the result")
	}
	if got := hex.EncodeToString(td.MRTD[:]); got != "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7" {
		t.Errorf("MRTD = %s", got)
	}
	if hex.EncodeToString(td.TDAttributes[:]) != "0000001000000000" || res.Debug || hex.EncodeToString(res.FMSPC[:]) != "b0c06f000000" {
		t.Errorf("TDATTRIBUTES %x, debug %v, FMSPC %x", td.TDAttributes, res.Debug, res.FMSPC)
	}
	if hex.EncodeToString(td.TEETCBSVN[:3]) != "060103" || td.MRSIGNERSEAM != [48]byte{} || res.TCBDate.Format("2006-01-02") != "2024-03-13" {
		t.Errorf("TEE_TCB_SVN %x, MRSIGNERSEAM %x, TCB date %s", td.TEETCBSVN, td.MRSIGNERSEAM, res.TCBDate)
	}
	if res.ReportData != td.ReportData || res.MRENCLAVE != [32]byte{} {
		t.Error("a TDX result carries the TD's report data and no enclave identity")
	}
	if err := DefaultPolicy().Check(res); err != nil {
		t.Errorf("the default policy refuses an up-to-date TD: %v", err)
	}
}

// Each way a TDX quote or its collateral can be wrong fails with the
// reason that names it.
func TestVerifyTDXNegatives(t *testing.T) {
	quote := readVector(t, "phala_tdx_quote_v4.bin")
	flip := func(off int) []byte { b := bytes.Clone(quote); b[off] ^= 0x01; return b }
	const qeReport = TDXSignedSize + 4 + 64 + 64 + 2 + 4
	sgxQuote := readVector(t, "phala_sgx_quote_v3.bin")
	tests := []refusal{
		{"flipped MRTD", flip(HeaderSize + 136), nil, inWindow, ReasonQuoteSignature, "quote"},
		{"flipped RTMR0", flip(HeaderSize + 328), nil, inWindow, ReasonQuoteSignature, "quote"},
		{"flipped report data", flip(HeaderSize + 583), nil, inWindow, ReasonQuoteSignature, "quote"},
		{"flipped TEE_TCB_SVN", flip(HeaderSize + 1), nil, inWindow, ReasonQuoteSignature, "quote"},
		{"flipped QE report byte", flip(qeReport + 100), nil, inWindow, ReasonQESignature, "QE report"},
		{"flipped QE auth data", flip(qeReport + 384 + 64 + 2), nil, inWindow, ReasonQEReportData, "QE report"},
		{"flipped quote signature", flip(TDXSignedSize + 4 + 10), nil, inWindow, ReasonQuoteSignature, "quote"},
		{"a non-zero byte in the padding", flip(len(quote) - 1), nil, inWindow, ReasonMalformed, "quote"},
		{"flipped TCB Info", quote, func(c *Collateral) { c.TCBInfoJSON = flipJSON(c.TCBInfoJSON) }, inWindow, ReasonCollateralSignature, "TCB Info"},
		{"flipped QE Identity", quote, func(c *Collateral) { c.QEIdentityJSON = flipJSON(c.QEIdentityJSON) }, inWindow, ReasonCollateralSignature, "QE Identity"},
		{"flipped PCK CRL", quote, func(c *Collateral) { c.PCKCRL = flipLast(c.PCKCRL) }, inWindow, ReasonCollateralSignature, "PCK CRL"},
		{"SGX collateral", quote, func(c *Collateral) { *c = *vectorCollateral(t) }, inWindow, ReasonMismatch, "TCB Info"},
		{"after the window", quote, nil, time.Date(2025, 7, 20, 0, 0, 0, 0, time.UTC), ReasonExpired, ""},
		{"an SGX quote with TDX collateral", sgxQuote, nil, inWindow, ReasonMismatch, "TCB Info"},
	}
	runRefusals(t, tests, tdxCollateral)
}

// The TDX module and platform rules of Intel's QVL, on the vector's TCB
// Info: a module version picks its identity, whose levels judge the
// module's SVN; bytes 0 and 1 of TEE_TCB_SVN are the module's only when
// byte 1 names a version.
func TestTDXTCBRules(t *testing.T) {
	info, err := ParseTCBInfo(tdxCollateral(t).TCBInfoJSON)
	if err != nil {
		t.Fatal(err)
	}
	var zero [48]byte
	svn := func(b ...byte) (s [16]byte) { copy(s[:], b); return s }
	for _, tc := range []struct {
		name   string
		tee    [16]byte
		seam   [8]byte
		signer [48]byte
		status TCBStatus
		reason Reason
	}{
		{"TDX_01 at SVN 6", svn(6, 1, 3), [8]byte{}, zero, StatusUpToDate, ""},
		{"TDX_01 at SVN 3", svn(3, 1, 3), [8]byte{}, zero, StatusOutOfDate, ""},
		{"TDX_01 below every level", svn(1, 1, 3), [8]byte{}, zero, "", ReasonTCB},
		{"TDX_03 at SVN 3", svn(3, 3, 3), [8]byte{}, zero, StatusUpToDate, ""},
		{"no identity TDX_02", svn(6, 2, 3), [8]byte{}, zero, "", ReasonMismatch},
		{"SEAMATTRIBUTES set", svn(6, 1, 3), [8]byte{1}, zero, "", ReasonMismatch},
		{"another module signer", svn(6, 1, 3), [8]byte{}, [48]byte{1}, "", ReasonMismatch},
		{"version 0: tdxModule, no level", svn(6, 0, 3), [8]byte{}, zero, "", ""},
	} {
		l, err := info.TDXModuleLevel(tc.signer, tc.seam, tc.tee)
		switch {
		case ReasonOf(err) != tc.reason:
			t.Errorf("%s: TDXModuleLevel = %v, want reason %q", tc.name, err, tc.reason)
		case err == nil && tc.status == "" && l != nil:
			t.Errorf("%s: a level (%s) for version 0", tc.name, l.Status)
		case err == nil && tc.status != "" && (l == nil || l.Status != tc.status):
			t.Errorf("%s: level %+v, want %s", tc.name, l, tc.status)
		}
	}
	sgxComps, pcesvn := [16]uint8{3, 3, 2, 2, 4, 1, 0, 5}, uint16(11)
	for _, tc := range []struct {
		name   string
		tee    [16]byte
		status TCBStatus
		reason Reason
	}{
		{"the vector's", svn(6, 1, 3), StatusUpToDate, ""},
		{"module bytes below the level, version set: not compared", svn(0, 1, 3), StatusUpToDate, ""},
		{"version 0: byte 0 compared", svn(4, 0, 3), "", ReasonTCB},
		{"version 0 at the level", svn(5, 0, 2), StatusUpToDate, ""},
		{"late microcode below every level", svn(6, 1, 0), "", ReasonTCB},
	} {
		l, err := info.TDXLevel(sgxComps, pcesvn, tc.tee)
		if ReasonOf(err) != tc.reason || (err == nil && l.Status != tc.status) {
			t.Errorf("%s: TDXLevel = %+v, %v; want %q %q", tc.name, l, err, tc.status, tc.reason)
		}
	}
	if l, err := info.TDXLevel(sgxComps, 5, svn(6, 1, 3)); err != nil || l.Status != StatusOutOfDate {
		t.Errorf("an older PCESVN: TDXLevel = %+v, %v; want the OutOfDate level", l, err)
	}
	if _, err := info.PlatformLevel(sgxComps, pcesvn); ReasonOf(err) != ReasonMismatch {
		t.Errorf("PlatformLevel on a TDX TCB Info = %v, want a mismatch", err)
	}
}

// FuzzVerifyTDX: whatever the bytes, a result or an *Error, never a panic;
// and the quote verifies only as it is.
func FuzzVerifyTDX(f *testing.F) {
	quote := readVector(f, "phala_tdx_quote_v4.bin")
	f.Add(quote)
	f.Add(quote[:TDXSignedSize+10])
	col := tdxCollateral(f)
	v := NewVerifier(nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := v.Verify(raw, Options{At: inWindow, Collateral: col})
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("Verify error %v is not an *sgx.Error", err)
			}
			return
		}
		if res == nil || !bytes.Equal(raw[:TDXSignedSize], quote[:TDXSignedSize]) {
			t.Fatalf("a changed TD report verified")
		}
	})
}
