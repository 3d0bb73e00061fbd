package sim

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/sgx"
)

// now is the simulated present of every test.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Offsets in a quote (cert data type 5, 32 bytes of QE auth data).
const (
	offHeaderQESVN  = 8
	offBodyMREnc    = sgx.HeaderSize + 64
	offBodyData     = sgx.HeaderSize + 320
	offQuoteSig     = sgx.SignedSize + 4
	offAttKey       = offQuoteSig + 64
	offQEReport     = offAttKey + 64
	offQEReportSig  = offQEReport + sgx.ReportBodySize
	offQEAuthData   = offQEReportSig + 64 + 2
	offCertDataType = offQEAuthData + qeAuthDataSize
)

func newRoot(t testing.TB) *Root {
	t.Helper()
	r, err := NewRoot(rand.Reader, now)
	if err != nil {
		t.Fatalf("NewRoot() = %v", err)
	}
	return r
}

func newQE(t testing.TB, r *Root, p Platform) *QE {
	t.Helper()
	q, err := r.NewQE(rand.Reader, p, now)
	if err != nil {
		t.Fatalf("NewQE(%+v) = %v", p, err)
	}
	return q
}

func mustQuote(t testing.TB, q *QE, body sgx.ReportBody) []byte {
	t.Helper()
	raw, err := q.Quote(body)
	if err != nil {
		t.Fatalf("Quote() = %v", err)
	}
	return raw
}

func mustCollateral(t testing.TB, r *Root, p Platform, opts ...CollateralOption) *sgx.Collateral {
	t.Helper()
	col, err := r.Collateral(p, now, opts...)
	if err != nil {
		t.Fatalf("Collateral() = %v", err)
	}
	return col
}

func verify(r *Root, raw []byte, col *sgx.Collateral, at time.Time) (*sgx.Result, error) {
	return sgx.NewVerifier(r.PublicKey(), VerifierOptions()...).Verify(raw, sgx.Options{At: at, Collateral: col})
}

func filled(b byte) (out [32]byte) {
	for i := range out {
		out[i] = b + byte(i)
	}
	return out
}

func enclaveBody(debug bool) sgx.ReportBody {
	b := sgx.ReportBody{
		MRENCLAVE: filled(0xa0),
		MRSIGNER:  filled(0x50),
		ISVProdID: 7,
		ISVSVN:    3,
	}
	b.Attributes[0] = sgx.AttributeInit | sgx.AttributeMode64
	if debug {
		b.Attributes[0] |= sgx.AttributeDebug
	}
	copy(b.ReportData[:], "public key hash and nonce")
	b.ReportData[63] = 0xee
	return b
}

func TestQuoteVerifies(t *testing.T) {
	r := newRoot(t)
	other := DefaultPlatform()
	other.FMSPC = [6]byte{0x00, 0x90, 0x6e, 0xd5, 0x00, 0x00}
	other.PCEID = [2]byte{0x00, 0x01}
	for _, tc := range []struct {
		name     string
		platform Platform
		body     sgx.ReportBody
	}{
		{"production enclave", DefaultPlatform(), enclaveBody(false)},
		{"debug enclave", DefaultPlatform(), enclaveBody(true)},
		{"zero report body", DefaultPlatform(), sgx.ReportBody{}},
		{"other platform", other, enclaveBody(false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQE(t, r, tc.platform)
			raw := mustQuote(t, q, tc.body)
			res, err := verify(r, raw, mustCollateral(t, r, tc.platform), now)
			if err != nil {
				t.Fatalf("Verify(q) = %v, want success", err)
			}
			want := sgx.Result{
				TEE: "sgx", Status: sgx.StatusUpToDate, PlatformStatus: sgx.StatusUpToDate, QEStatus: sgx.StatusUpToDate,
				FMSPC: tc.platform.FMSPC, MRENCLAVE: tc.body.MRENCLAVE, MRSIGNER: tc.body.MRSIGNER,
				ISVProdID: tc.body.ISVProdID, ISVSVN: tc.body.ISVSVN, Debug: tc.body.Debug(), ReportData: tc.body.ReportData,
			}
			got := *res
			got.Advisories, got.TCBDate = nil, time.Time{}
			if !equalResults(got, want) {
				t.Errorf("Verify(q) = %+v, want %+v", got, want)
			}
			if len(res.Advisories) != 0 {
				t.Errorf("Verify(q) advisories = %v, want none", res.Advisories)
			}
		})
	}
}

func equalResults(a, b sgx.Result) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestQuoteIsLabelledSimulation(t *testing.T) {
	r := newRoot(t)
	q := newQE(t, r, DefaultPlatform())
	parsed, err := sgx.ParseQuote(mustQuote(t, q, enclaveBody(false)))
	if err != nil {
		t.Fatalf("ParseQuote(q) = %v", err)
	}
	for _, tc := range []struct {
		name      string
		got, want string
	}{
		{"QE vendor ID", string(parsed.Header.QEVendorID[:]), "CLOISTER-SGX-SIM"},
		{"header user data", string(bytes.TrimRight(parsed.Header.UserData[:], "\x00")), "CLOISTER SIMULATION"},
		{"QE MRSIGNER", string(bytes.TrimRight(parsed.QEReport.MRSIGNER[:], "\x00")), "Cloister SGX simulated QE signer"},
		{"QE MRENCLAVE", string(bytes.TrimRight(parsed.QEReport.MRENCLAVE[:], "\x00")), "Cloister SGX simulated QE"},
		{"root CN", r.Certificate().Subject.CommonName, "Cloister SGX Simulation Root CA"},
		{"root OU", strings.Join(r.Certificate().Subject.OrganizationalUnit, ","), "SGX simulation - proves nothing about hardware"},
		{"PCK CA CN", r.pckCA.Subject.CommonName, "Cloister SGX Simulation PCK Processor CA"},
		{"TCB signer CN", r.tcbSigner.Subject.CommonName, "Cloister SGX Simulation TCB Signing"},
		{"PCK CN", q.PCKCertificate().Subject.CommonName, "Cloister SGX Simulation PCK Certificate"},
		{"PCK issuer", q.PCKCertificate().Issuer.CommonName, "Cloister SGX Simulation PCK Processor CA"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if !bytes.HasSuffix(parsed.CertData, []byte("-----END CERTIFICATE-----\n\x00")) {
		t.Errorf("certification data ends %q, want a PEM block then NUL", parsed.CertData[len(parsed.CertData)-8:])
	}
}

func TestQuoteRefusedByOtherRoots(t *testing.T) {
	r := newRoot(t)
	other := newRoot(t)
	p := DefaultPlatform()
	raw := mustQuote(t, newQE(t, r, p), enclaveBody(false))
	col := mustCollateral(t, r, p)
	for _, tc := range []struct {
		name string
		v    *sgx.Verifier
		col  *sgx.Collateral
		want sgx.Reason
	}{
		{"own simulation root", sgx.NewVerifier(r.PublicKey(), VerifierOptions()...), col, ""},
		{"Intel root", sgx.NewVerifier(sgx.IntelRootKey()), col, sgx.ReasonChain},
		{"nil root means Intel", sgx.NewVerifier(nil), col, sgx.ReasonChain},
		{"another simulation root", sgx.NewVerifier(other.PublicKey(), VerifierOptions()...), col, sgx.ReasonChain},
		{"collateral of another simulation root", sgx.NewVerifier(r.PublicKey(), VerifierOptions()...), mustCollateral(t, other, p), sgx.ReasonChain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(raw, sgx.Options{At: now, Collateral: tc.col})
			if got := sgx.ReasonOf(err); got != tc.want || (tc.want == "") != (err == nil) {
				t.Errorf("Verify(q) = %v, want reason %q", err, tc.want)
			}
		})
	}
}

func TestTamperedQuote(t *testing.T) {
	r := newRoot(t)
	p := DefaultPlatform()
	raw := mustQuote(t, newQE(t, r, p), enclaveBody(false))
	col := mustCollateral(t, r, p)
	if got := int(raw[offCertDataType]) | int(raw[offCertDataType+1])<<8; got != sgx.CertDataPCKChain {
		t.Fatalf("certification data type at %d = %d; the offsets are wrong", offCertDataType, got)
	}
	for _, tc := range []struct {
		name string
		off  int // -1: untouched
		want sgx.Reason
	}{
		{"untouched", -1, ""},
		{"header", offHeaderQESVN, sgx.ReasonQuoteSignature},
		{"body MRENCLAVE", offBodyMREnc, sgx.ReasonQuoteSignature},
		{"body REPORTDATA", offBodyData + 63, sgx.ReasonQuoteSignature},
		{"quote signature", offQuoteSig + 10, sgx.ReasonQuoteSignature},
		{"attestation key", offAttKey + 5, sgx.ReasonQEReportData},
		{"QE report", offQEReport + 64, sgx.ReasonQESignature},
		{"QE report REPORTDATA", offQEReport + 320, sgx.ReasonQESignature},
		{"QE report signature", offQEReportSig + 40, sgx.ReasonQESignature},
		{"QE auth data", offQEAuthData, sgx.ReasonQEReportData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(raw)
			if tc.off >= 0 {
				b[tc.off] ^= 0x01
			}
			_, err := verify(r, b, col, now)
			if got := sgx.ReasonOf(err); got != tc.want || (tc.want == "") != (err == nil) {
				t.Errorf("Verify(q) = %v, want reason %q", err, tc.want)
			}
		})
	}
}

func TestRevokePCK(t *testing.T) {
	p := DefaultPlatform()
	for _, tc := range []struct {
		name         string
		revoke       func(a, b *QE) []*big.Int
		wantA, wantB sgx.Reason
		wantListed   int
	}{
		{"nothing revoked", func(a, b *QE) []*big.Int { return nil }, "", "", 0},
		{"QE a revoked", func(a, b *QE) []*big.Int { return []*big.Int{a.PCKCertificate().SerialNumber} }, sgx.ReasonRevoked, "", 1},
		{"QE a revoked twice", func(a, b *QE) []*big.Int {
			return []*big.Int{a.PCKCertificate().SerialNumber, new(big.Int).Set(a.PCKCertificate().SerialNumber)}
		}, sgx.ReasonRevoked, "", 1},
		{"both revoked", func(a, b *QE) []*big.Int {
			return []*big.Int{a.PCKCertificate().SerialNumber, b.PCKCertificate().SerialNumber}
		}, sgx.ReasonRevoked, sgx.ReasonRevoked, 2},
		{"unrelated serial and nil", func(a, b *QE) []*big.Int { return []*big.Int{big.NewInt(1), nil} }, "", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoot(t)
			a, b := newQE(t, r, p), newQE(t, r, p)
			before := mustCollateral(t, r, p)
			for _, s := range tc.revoke(a, b) {
				r.RevokePCK(s)
			}
			col := mustCollateral(t, r, p)
			crl, err := sgx.ParseCRL(col.PCKCRL)
			if err != nil {
				t.Fatalf("ParseCRL(PCK CRL) = %v", err)
			}
			if got := len(crl.RevokedCertificateEntries); got != tc.wantListed {
				t.Errorf("PCK CRL lists %d serials, want %d", got, tc.wantListed)
			}
			v := sgx.NewVerifier(r.PublicKey(), VerifierOptions()...)
			for _, q := range []struct {
				name string
				qe   *QE
				want sgx.Reason
			}{{"a", a, tc.wantA}, {"b", b, tc.wantB}} {
				raw := mustQuote(t, q.qe, enclaveBody(false))
				_, err := v.Verify(raw, sgx.Options{At: now, Collateral: col})
				if got := sgx.ReasonOf(err); got != q.want || (q.want == "") != (err == nil) {
					t.Errorf("Verify(quote of %s) = %v, want reason %q", q.name, err, q.want)
				}
				// Collateral issued before the revocation does not know it.
				if _, err := v.Verify(raw, sgx.Options{At: now, Collateral: before}); err != nil {
					t.Errorf("Verify(quote of %s) with earlier collateral = %v, want success", q.name, err)
				}
			}
		})
	}
}

func TestTCBStatus(t *testing.T) {
	r := newRoot(t)
	top := DefaultPlatform()
	lowComponent := top
	lowComponent.TCBComponents[3] = 1
	lowPCESVN := top
	lowPCESVN.PCESVN = 1
	var floor [16]uint8
	for i := range floor {
		floor[i] = 1
	}
	twoLevels := WithTCBLevels(
		sgx.TCBLevel{SGXComponents: top.TCBComponents, PCESVN: top.PCESVN, Status: sgx.StatusUpToDate},
		sgx.TCBLevel{SGXComponents: floor, PCESVN: 1, Status: sgx.StatusOutOfDate, AdvisoryIDs: []string{"SIM-SA-00001"},
			TCBDate: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
	)
	for _, tc := range []struct {
		name           string
		platform       Platform
		opts           []CollateralOption
		want           sgx.TCBStatus
		wantAdvisories []string
		wantReason     sgx.Reason
	}{
		{"platform at the only level", top, nil, sgx.StatusUpToDate, nil, ""},
		{"component below the only level", lowComponent, nil, "", nil, sgx.ReasonTCB},
		{"PCESVN below the only level", lowPCESVN, nil, "", nil, sgx.ReasonTCB},
		{"platform at the newest of two levels", top, []CollateralOption{twoLevels}, sgx.StatusUpToDate, nil, ""},
		{"component at the OutOfDate level", lowComponent, []CollateralOption{twoLevels}, sgx.StatusOutOfDate, []string{"SIM-SA-00001"}, ""},
		{"PCESVN at the OutOfDate level", lowPCESVN, []CollateralOption{twoLevels}, sgx.StatusOutOfDate, []string{"SIM-SA-00001"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := mustQuote(t, newQE(t, r, tc.platform), enclaveBody(false))
			// TCB Info is always for the top platform, which shares FMSPC and PCE-ID.
			res, err := verify(r, raw, mustCollateral(t, r, top, tc.opts...), now)
			if tc.wantReason != "" {
				if got := sgx.ReasonOf(err); got != tc.wantReason {
					t.Errorf("Verify(q) = %v, want reason %q", err, tc.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify(q) = %v, want status %s", err, tc.want)
			}
			if res.Status != tc.want || res.PlatformStatus != tc.want || res.QEStatus != sgx.StatusUpToDate {
				t.Errorf("Verify(q) status = %s (platform %s, QE %s), want %s (%s, UpToDate)", res.Status, res.PlatformStatus, res.QEStatus, tc.want, tc.want)
			}
			if !slices.Equal(res.Advisories, tc.wantAdvisories) && len(res.Advisories)+len(tc.wantAdvisories) > 0 {
				t.Errorf("Verify(q) advisories = %v, want %v", res.Advisories, tc.wantAdvisories)
			}
		})
	}
}

func TestCollateralRefusesUnknownStatus(t *testing.T) {
	r := newRoot(t)
	p := DefaultPlatform()
	for _, tc := range []struct {
		name    string
		levels  []sgx.TCBLevel
		wantErr bool
	}{
		{"known status", []sgx.TCBLevel{{SGXComponents: p.TCBComponents, Status: sgx.StatusSWHardeningNeeded}}, false},
		{"unknown status", []sgx.TCBLevel{{SGXComponents: p.TCBComponents, Status: "Fine"}}, true},
		{"no level", []sgx.TCBLevel{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Collateral(p, now, WithTCBLevels(tc.levels...))
			if (err != nil) != tc.wantErr {
				t.Errorf("Collateral(%v) = %v, want error %t", tc.levels, err, tc.wantErr)
			}
		})
	}
}

func TestCollateralWindow(t *testing.T) {
	r := newRoot(t)
	p := DefaultPlatform()
	raw := mustQuote(t, newQE(t, r, p), enclaveBody(false))
	col := mustCollateral(t, r, p)
	for _, tc := range []struct {
		name string
		at   time.Time
		want sgx.Reason
	}{
		{"at issue", now.Add(-time.Hour), ""},
		{"before issue", now.Add(-time.Hour - time.Second), sgx.ReasonExpired},
		{"29 days on", now.Add(29 * 24 * time.Hour), ""},
		{"31 days on", now.Add(31 * 24 * time.Hour), sgx.ReasonExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(r, raw, col, tc.at)
			if got := sgx.ReasonOf(err); got != tc.want || (tc.want == "") != (err == nil) {
				t.Errorf("Verify(q) at %s = %v, want reason %q", tc.at, err, tc.want)
			}
		})
	}
}

func TestNewQEOutsideRootValidity(t *testing.T) {
	r := newRoot(t)
	for _, tc := range []struct {
		name    string
		at      time.Time
		wantErr bool
	}{
		{"now", now, false},
		{"nine years on", now.AddDate(9, 0, 0), false},
		{"before the root", now.Add(-2 * time.Hour), true},
		{"after the root", now.AddDate(11, 0, 0), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := r.NewQE(rand.Reader, DefaultPlatform(), tc.at)
			if (err != nil) != tc.wantErr {
				t.Fatalf("NewQE(at %s) = %v, want error %t", tc.at, err, tc.wantErr)
			}
			if err == nil && q.PCKCertificate().NotAfter.After(r.Certificate().NotAfter) {
				t.Errorf("PCK certificate valid until %s, after its root (%s)", q.PCKCertificate().NotAfter, r.Certificate().NotAfter)
			}
		})
	}
}

func TestRootRoundTrip(t *testing.T) {
	orig := newRoot(t)
	p := DefaultPlatform()
	revoked := newQE(t, orig, p)
	orig.RevokePCK(revoked.PCKCertificate().SerialNumber)
	b, err := orig.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary() = %v", err)
	}
	got, err := UnmarshalRoot(b)
	if err != nil {
		t.Fatalf("UnmarshalRoot(MarshalBinary()) = %v", err)
	}
	if !got.Certificate().Equal(orig.Certificate()) || !got.PublicKey().Equal(orig.PublicKey()) {
		t.Fatalf("UnmarshalRoot(MarshalBinary()) has another root certificate or key")
	}
	again, err := got.MarshalBinary()
	if err != nil || !bytes.Equal(again, b) {
		t.Errorf("MarshalBinary(UnmarshalRoot(b)) = %v, differs from b", err)
	}
	for _, tc := range []struct {
		name string
		qe   *QE
		col  *sgx.Collateral
		want sgx.Reason
	}{
		{"QE and collateral of the unmarshalled root", newQE(t, got, p), mustCollateral(t, got, p), ""},
		{"QE of the original, collateral of the unmarshalled", newQE(t, orig, p), mustCollateral(t, got, p), ""},
		{"QE of the unmarshalled, collateral of the original", newQE(t, got, p), mustCollateral(t, orig, p), ""},
		{"revocation survives", revoked, mustCollateral(t, got, p), sgx.ReasonRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(orig, mustQuote(t, tc.qe, enclaveBody(false)), tc.col, now)
			if got := sgx.ReasonOf(err); got != tc.want || (tc.want == "") != (err == nil) {
				t.Errorf("Verify(q) with the original root's key = %v, want reason %q", err, tc.want)
			}
		})
	}
}

func TestUnmarshalRootRefuses(t *testing.T) {
	r, other := newRoot(t), newRoot(t)
	good, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	otherBytes, err := other.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var w, ow rootWire
	if err := json.Unmarshal(good, &w); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(otherBytes, &ow); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(w *rootWire)
		raw    []byte
	}{
		{"not JSON", nil, []byte("-----BEGIN CERTIFICATE-----")},
		{"other format", func(w *rootWire) { w.Format = "cloister-sgx-simulation-root/v0" }, nil},
		{"root key of another root", func(w *rootWire) { w.RootKey = ow.RootKey }, nil},
		{"PCK CA of another root", func(w *rootWire) { w.PCKCACertificate, w.PCKCAKey = ow.PCKCACertificate, ow.PCKCAKey }, nil},
		{"TCB signer of another root", func(w *rootWire) {
			w.TCBSigningCertificate, w.TCBSigningKey = ow.TCBSigningCertificate, ow.TCBSigningKey
		}, nil},
		{"PCK CA as TCB signer", func(w *rootWire) { w.TCBSigningCertificate, w.TCBSigningKey = w.PCKCACertificate, w.PCKCAKey }, nil},
		{"missing TCB signer", func(w *rootWire) { w.TCBSigningCertificate = "" }, nil},
		{"two certificates", func(w *rootWire) { w.RootCertificate += w.PCKCACertificate }, nil},
		{"bad revoked serial", func(w *rootWire) { w.RevokedPCKSerials = []string{"xyz"} }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.raw
			if tc.change != nil {
				c := w
				tc.change(&c)
				if raw, err = json.Marshal(c); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := UnmarshalRoot(raw); !errors.Is(err, ErrBadRoot) {
				t.Errorf("UnmarshalRoot(%s) = %v, want ErrBadRoot", tc.name, err)
			}
		})
	}
	if _, err := UnmarshalRoot(good); err != nil {
		t.Errorf("UnmarshalRoot(good) = %v", err)
	}
}

func TestPCKExtension(t *testing.T) {
	r := newRoot(t)
	custom := Platform{
		FMSPC:         [6]byte{0x00, 0xa0, 0x67, 0x11, 0x00, 0x00},
		PCEID:         [2]byte{0x12, 0x34},
		TCBComponents: [16]uint8{11, 11, 2, 2, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128},
		PCESVN:        0xffff,
		CPUSVN:        [16]byte{0x0b, 0x0b, 0x02, 0x02, 0xff, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80},
	}
	for _, tc := range []struct {
		name string
		p    Platform
	}{
		{"default platform", DefaultPlatform()},
		{"custom platform", custom},
		{"zero platform", Platform{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ext, err := sgx.ParsePCKExtension(newQE(t, r, tc.p).PCKCertificate())
			if err != nil {
				t.Fatalf("ParsePCKExtension(PCK certificate) = %v", err)
			}
			got := Platform{FMSPC: ext.FMSPC, PCEID: ext.PCEID, TCBComponents: ext.TCBComponents, PCESVN: ext.PCESVN, CPUSVN: ext.CPUSVN}
			if got != tc.p {
				t.Errorf("ParsePCKExtension(PCK certificate) = %+v, want %+v", got, tc.p)
			}
			if len(ext.PPID) != 16 || ext.SGXType != sgx.SGXTypeStandard || ext.PlatformInstanceID != nil || ext.Configuration != nil {
				t.Errorf("ParsePCKExtension(PCK certificate) = PPID %x, SGX type %d, instance %x, configuration %v; want 16 bytes, standard, none, none",
					ext.PPID, ext.SGXType, ext.PlatformInstanceID, ext.Configuration)
			}
		})
	}
}

// readVector reads a real quote from the verifier's test vectors.
func readVector(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatalf("reading vector: %v", err)
	}
	return b
}

// TestPCKExtensionMatchesIntel re-encodes the SGX extension of a real
// Intel PCK certificate from its parsed values and expects Intel's bytes.
func TestPCKExtensionMatchesIntel(t *testing.T) {
	q, err := sgx.ParseQuote(readVector(t, "phala_sgx_quote_v3.bin"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := sgx.ParseCertificates(q.CertData)
	if err != nil {
		t.Fatal(err)
	}
	leaf := certs[0]
	var intel []byte
	for _, e := range leaf.Extensions {
		if e.Id.Equal(oidSGXExtension) {
			intel = e.Value
		}
	}
	ext, err := sgx.ParsePCKExtension(leaf)
	if err != nil {
		t.Fatal(err)
	}
	p := Platform{FMSPC: ext.FMSPC, PCEID: ext.PCEID, TCBComponents: ext.TCBComponents, PCESVN: ext.PCESVN, CPUSVN: ext.CPUSVN}
	got, err := encodePCKExtension(ext.PPID, p)
	if err != nil {
		t.Fatalf("encodePCKExtension() = %v", err)
	}
	if !bytes.Equal(got, intel) {
		t.Errorf("encodePCKExtension(Intel's values) =\n%x\nwant Intel's\n%x", got, intel)
	}
}

func TestEncodeReportBody(t *testing.T) {
	raw := readVector(t, "phala_sgx_quote_v3.bin")
	q, err := sgx.ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	full := sgx.ReportBody{MiscSelect: 0x01020304, ISVProdID: 0xbeef, ISVSVN: 0xcafe, ConfigSVN: 0x0102}
	for i := range 64 {
		full.ConfigID[i], full.ReportData[i] = byte(i), byte(255-i)
	}
	for i := range 16 {
		full.CPUSVN[i], full.ISVExtProdID[i], full.Attributes[i], full.ISVFamilyID[i] = byte(i+1), byte(i+2), byte(i+3), byte(i+4)
	}
	full.MRENCLAVE, full.MRSIGNER = filled(0x10), filled(0x90)
	for _, tc := range []struct {
		name string
		body sgx.ReportBody
		want []byte // nil: only the round trip is checked
	}{
		{"Intel enclave report body", q.Body, raw[sgx.HeaderSize:sgx.SignedSize]},
		{"Intel QE report", q.QEReport, q.QEReportRaw()},
		{"every field set", full, nil},
		{"zero", sgx.ReportBody{}, make([]byte, sgx.ReportBodySize)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := EncodeReportBody(tc.body)
			if tc.want != nil && !bytes.Equal(enc, tc.want) {
				t.Errorf("EncodeReportBody() =\n%x\nwant\n%x", enc, tc.want)
			}
			back, err := sgx.ParseReportBody(enc)
			if err != nil || back != tc.body {
				t.Errorf("ParseReportBody(EncodeReportBody(b)) = %+v, %v; want %+v", back, err, tc.body)
			}
		})
	}
}

// TestConcurrentUse quotes, revokes and issues collateral at once; run
// with -race.
func TestConcurrentUse(t *testing.T) {
	r := newRoot(t)
	p := DefaultPlatform()
	q := newQE(t, r, p)
	v := sgx.NewVerifier(r.PublicKey(), VerifierOptions()...)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			r.RevokePCK(big.NewInt(int64(1000 + i)))
			col, err := r.Collateral(p, now)
			if err != nil {
				errs <- err
				return
			}
			raw, err := q.Quote(enclaveBody(i%2 == 0))
			if err != nil {
				errs <- err
				return
			}
			if _, err := v.Verify(raw, sgx.Options{At: now, Collateral: col}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent quote and collateral: %v", err)
	}
}

func FuzzUnmarshalRoot(f *testing.F) {
	r, err := NewRoot(rand.Reader, now)
	if err != nil {
		f.Fatal(err)
	}
	r.RevokePCK(big.NewInt(42))
	good, err := r.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":"cloister-sgx-simulation-root/v1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := UnmarshalRoot(b)
		if err != nil {
			return
		}
		again, err := got.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(UnmarshalRoot(b)) = %v", err)
		}
		if _, err := UnmarshalRoot(again); err != nil {
			t.Fatalf("UnmarshalRoot(MarshalBinary(UnmarshalRoot(b))) = %v", err)
		}
	})
}

// TestQEBoundToAccount: a QE made for an account names it in its PCK
// certificate, through the wire form, and its quotes verify as any other.
func TestQEBoundToAccount(t *testing.T) {
	r := newRoot(t)
	q, err := r.NewQEForAccount(rand.Reader, DefaultPlatform(), now, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := q.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseQE(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := AccountOf(back.PCKCertificate()); got != "acct-1" {
		t.Fatalf("AccountOf(the QE's PCK) = %q, want acct-1", got)
	}
	if _, err := verify(r, mustQuote(t, back, enclaveBody(false)), mustCollateral(t, r, DefaultPlatform()), now); err != nil {
		t.Fatalf("Verify(a quote of a bound QE) = %v", err)
	}
	if got := AccountOf(newQE(t, r, DefaultPlatform()).PCKCertificate()); got != "" {
		t.Errorf("AccountOf(an unbound QE) = %q, want none", got)
	}
	if _, err := r.NewQEForAccount(rand.Reader, DefaultPlatform(), now, ""); err == nil {
		t.Error("NewQEForAccount without an account succeeded")
	}
}

// A simulated TD's quote verifies with the simulation's TDX collateral as
// a TDX quote, its TD report as given; not with SGX collateral.
func TestQuoteTDVerifies(t *testing.T) {
	r := newRoot(t)
	q := newQE(t, r, DefaultPlatform())
	var td sgx.TDReport
	copy(td.MRTD[:], "Cloister simulated TD")
	td.RTMRs[2][0] = 0x42
	copy(td.ReportData[:], "public key hash and nonce")
	raw, err := q.QuoteTD(td)
	if err != nil {
		t.Fatal(err)
	}
	res, err := verify(r, raw, mustCollateral(t, r, DefaultPlatform(), ForTDX()), now)
	if err != nil {
		t.Fatalf("Verify(TD quote) = %v", err)
	}
	if res.TEE != "tdx" || res.Status != sgx.StatusUpToDate || res.ModuleStatus != sgx.StatusUpToDate || res.TD == nil ||
		*res.TD != td || res.ReportData != td.ReportData || res.Debug {
		t.Fatalf("Verify(TD quote) = %+v", res)
	}
	if got := EncodeTDReport(td); len(got) != sgx.TDReportSize {
		t.Fatalf("EncodeTDReport = %d bytes", len(got))
	}
	if back, err := sgx.ParseTDReport(EncodeTDReport(td)); err != nil || back != td {
		t.Fatalf("ParseTDReport(EncodeTDReport(td)) = %+v, %v", back, err)
	}
	if _, err := verify(r, raw, mustCollateral(t, r, DefaultPlatform()), now); sgx.ReasonOf(err) != sgx.ReasonMismatch {
		t.Fatalf("a TD quote with SGX collateral = %v, want a mismatch", err)
	}
	td.TDAttributes[0] = sgx.TDAttributeDebug
	if raw, err = q.QuoteTD(td); err != nil {
		t.Fatal(err)
	}
	if res, err := verify(r, raw, mustCollateral(t, r, DefaultPlatform(), ForTDX()), now); err != nil || !res.Debug {
		t.Fatalf("a debug TD = %+v, %v; want verified, debug", res, err)
	}
}
