package sgx

import (
	"bytes"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

// inWindow is inside the validity window of all the vector's collateral.
var inWindow = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

// vectorCollateral is the SGX vector's collateral.
func vectorCollateral(t testing.TB) *Collateral {
	t.Helper()
	return collateralVector(t, "phala_sgx_quote_v3_collateral.json")
}

// collateralVector reads a vector's collateral JSON.
func collateralVector(t testing.TB, name string) *Collateral {
	t.Helper()
	c, err := ParseCollateralJSON(readVector(t, name))
	if err != nil {
		t.Fatalf("ParseCollateralJSON(%s) = %v", name, err)
	}
	return c
}

func TestVerifyVector(t *testing.T) {
	res, err := Verify(readVector(t, "phala_sgx_quote_v3.bin"), Options{At: inWindow, Collateral: vectorCollateral(t)})
	if err != nil {
		t.Fatalf("Verify(vector) = %v", err)
	}
	if res.Status != StatusConfigurationAndSWHardeningNeeded || res.PlatformStatus != StatusConfigurationAndSWHardeningNeeded || res.QEStatus != StatusUpToDate {
		t.Errorf("statuses = %s (platform %s, QE %s); want ConfigurationAndSWHardeningNeeded (same, UpToDate)", res.Status, res.PlatformStatus, res.QEStatus)
	}
	if !slices.Equal(res.Advisories, []string{"INTEL-SA-00289", "INTEL-SA-00615"}) {
		t.Errorf("advisories = %v", res.Advisories)
	}
	if got := res.TCBDate.Format("2006-01-02"); got != "2024-03-13" {
		t.Errorf("tcb date = %s, want 2024-03-13", got)
	}
	if hex.EncodeToString(res.MRENCLAVE[:]) != "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" ||
		hex.EncodeToString(res.FMSPC[:]) != "00a067110000" || res.Debug {
		t.Errorf("result = %+v", res)
	}
	// The default policy refuses this platform's status, naming it.
	if err := DefaultPolicy().Check(res); ReasonOf(err) != ReasonTCB {
		t.Errorf("DefaultPolicy().Check = %v, want ReasonTCB", err)
	}
	p := DefaultPolicy()
	p.AcceptStatuses = append(p.AcceptStatuses, StatusConfigurationAndSWHardeningNeeded)
	if err := p.Check(res); err != nil {
		t.Errorf("a policy accepting the status refused: %v", err)
	}
}

// quoteOffsets locates parts of the vector quote.
func qeReportOffset() int { return SignedSize + 4 + 64 + 64 }

// withLeafChange returns the quote with a byte of the PCK leaf certificate's
// DER changed (inside its subject), keeping every length.
func withLeafChange(t *testing.T, quote []byte) []byte {
	q, err := ParseQuote(quote)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(quote, q.CertData)
	block, rest := pem.Decode(q.CertData)
	der := bytes.Clone(block.Bytes)
	i := bytes.Index(der, []byte("Intel SGX PCK Certificate"))
	if i < 0 {
		t.Fatal("leaf subject not found")
	}
	der[i] ^= 0x01 // 'I' → 'H'
	reencoded := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	orig := q.CertData[:len(q.CertData)-len(rest)]
	if len(reencoded) != len(orig) {
		// Same DER length and line width: PEM lengths match; make sure.
		t.Fatalf("re-encoded leaf is %d bytes, was %d", len(reencoded), len(orig))
	}
	out := bytes.Clone(quote)
	copy(out[start:], reencoded)
	return out
}

func TestVerifyNegatives(t *testing.T) {
	quote := readVector(t, "phala_sgx_quote_v3.bin")
	flip := func(off int) []byte { b := bytes.Clone(quote); b[off] ^= 0x01; return b }
	tests := []refusal{
		{"flipped report body byte", flip(HeaderSize + 100), nil, inWindow, ReasonQuoteSignature, "quote"},
		{"flipped MRENCLAVE", flip(HeaderSize + 64), nil, inWindow, ReasonQuoteSignature, "quote"},
		{"flipped header user data", flip(30), nil, inWindow, ReasonQuoteSignature, "quote"},
		{"flipped QE vendor ID", flip(20), nil, inWindow, ReasonQEIdentity, "quote"},
		{"flipped QE report byte", flip(qeReportOffset() + 100), nil, inWindow, ReasonQESignature, "QE report"},
		{"flipped quote signature", flip(SignedSize + 4 + 10), nil, inWindow, ReasonQuoteSignature, "quote"},
		{"changed PCK certificate", withLeafChange(t, quote), nil, inWindow, ReasonChain, ""},
		{"flipped TCB Info", quote, func(c *Collateral) { c.TCBInfoJSON = flipJSON(c.TCBInfoJSON) }, inWindow, ReasonCollateralSignature, "TCB Info"},
		{"flipped QE Identity", quote, func(c *Collateral) { c.QEIdentityJSON = flipJSON(c.QEIdentityJSON) }, inWindow, ReasonCollateralSignature, "QE Identity"},
		{"flipped TCB Info signature", quote, func(c *Collateral) { c.TCBInfoSignature = flipLast(c.TCBInfoSignature) }, inWindow, ReasonCollateralSignature, "TCB Info"},
		{"after the window", quote, nil, time.Date(2025, 7, 20, 0, 0, 0, 0, time.UTC), ReasonExpired, ""},
		{"long after the window", quote, nil, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), ReasonExpired, ""},
		{"before the window", quote, nil, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), ReasonExpired, ""},
		{"no CRLs", quote, func(c *Collateral) { c.PCKCRL = nil }, inWindow, ReasonMalformed, "collateral"},
	}
	runRefusals(t, tests, vectorCollateral)
}

func TestVerifyWithoutCRLs(t *testing.T) {
	col := vectorCollateral(t)
	col.RootCACRL, col.PCKCRL = nil, nil
	if _, err := Verify(readVector(t, "phala_sgx_quote_v3.bin"), Options{At: inWindow, Collateral: col, SkipCRL: true}); err != nil {
		t.Fatalf("Verify(SkipCRL) = %v", err)
	}
}

// flipJSON changes one letter inside a signed JSON document (in its
// "issueDate" key), keeping it JSON.
func flipJSON(b []byte) []byte {
	out := bytes.Clone(b)
	i := bytes.Index(out, []byte(`"issueDate"`))
	out[i+1] = 'I'
	return out
}

func flipLast(b []byte) []byte {
	out := bytes.Clone(b)
	out[len(out)-1] ^= 0x01
	return out
}

// TestVerifierCacheStaysCorrect: what a Verifier remembers never lets a
// changed collateral, a revoked certificate or a time outside the window
// through.
func TestVerifierCacheStaysCorrect(t *testing.T) {
	raw := readVector(t, "phala_sgx_quote_v3.bin")
	v := NewVerifier(nil)
	good := vectorCollateral(t)
	if _, err := v.Verify(raw, Options{At: inWindow, Collateral: good}); err != nil {
		t.Fatal(err)
	}
	tampered := vectorCollateral(t)
	tampered.TCBInfoJSON = flipJSON(tampered.TCBInfoJSON)
	if _, err := v.Verify(raw, Options{At: inWindow, Collateral: tampered}); ReasonOf(err) != ReasonCollateralSignature {
		t.Fatalf("Verify(tampered collateral after a good one) = %v, want ReasonCollateralSignature", err)
	}
	late := time.Date(2025, 7, 20, 0, 0, 0, 0, time.UTC)
	if _, err := v.Verify(raw, Options{At: late, Collateral: good}); ReasonOf(err) != ReasonExpired {
		t.Fatalf("Verify(cached collateral, after its window) = %v, want ReasonExpired", err)
	}
	// A CRL that changes (here: one the PCK CA did not sign) is new bytes,
	// checked afresh.
	otherCRL := vectorCollateral(t)
	otherCRL.PCKCRL = otherCRL.RootCACRL
	if _, err := v.Verify(raw, Options{At: inWindow, Collateral: otherCRL}); err == nil {
		t.Fatal("Verify with the Root CA CRL in place of the PCK CRL succeeded")
	}
	// And the good collateral still verifies from the cache.
	if _, err := v.Verify(raw, Options{At: inWindow, Collateral: good}); err != nil {
		t.Fatalf("Verify(good collateral again) = %v", err)
	}
	// A tampered quote is never excused by a cached chain.
	bad := bytes.Clone(raw)
	bad[HeaderSize+64] ^= 1
	if _, err := v.Verify(bad, Options{At: inWindow, Collateral: good}); ReasonOf(err) != ReasonQuoteSignature {
		t.Fatalf("Verify(tampered quote, cached chain) = %v, want ReasonQuoteSignature", err)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(readVector(f, "phala_sgx_quote_v3.bin"))
	col := vectorCollateral(f)
	v := NewVerifier(nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := v.Verify(raw, Options{At: inWindow, Collateral: col})
		if err == nil && res == nil {
			t.Fatal("Verify returned neither result nor error")
		}
		if err != nil && ReasonOf(err) == "" {
			t.Fatalf("Verify error %v is not an *sgx.Error", err)
		}
	})
}

// TestCollateralSignerMustBeTheTCBSigner: a chain that reaches the root
// through another certificate (here the quote's own PCK chain, whose leaf
// could be a compromised platform's key) cannot sign collateral.
func TestCollateralSignerMustBeTheTCBSigner(t *testing.T) {
	raw := readVector(t, "phala_sgx_quote_v3.bin")
	q, err := ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		set  func(c *Collateral)
		item string
	}{
		{"TCB Info signed under the PCK chain", func(c *Collateral) { c.TCBInfoIssuerChain = q.CertData }, "TCB signing chain"},
		{"QE Identity signed under the PCK chain", func(c *Collateral) { c.QEIdentityIssuerChain = q.CertData }, "QE Identity signing chain"},
		{"PCK CRL issuer chain as signer", func(c *Collateral) { c.TCBInfoIssuerChain = c.PCKCRLIssuerChain }, "TCB signing chain"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			col := vectorCollateral(t)
			tt.set(col)
			_, err := Verify(raw, Options{At: inWindow, Collateral: col})
			if !errors.Is(err, &Error{Reason: ReasonChain, Item: tt.item}) {
				t.Fatalf("Verify = %v, want ReasonChain for %s", err, tt.item)
			}
		})
	}
}

// Verifying in two steps, the platform first, gives what Verify gives;
// the chain is checked again for a time outside its validity.
func TestVerifyEvidence(t *testing.T) {
	raw := readVector(t, "phala_sgx_quote_v3.bin")
	opts := Options{At: inWindow, Collateral: vectorCollateral(t)}
	v := NewVerifier(nil)
	e, err := v.Evidence(raw, inWindow)
	if err != nil {
		t.Fatal(err)
	}
	ext, ca := e.Platform()
	if hex.EncodeToString(ext.FMSPC[:]) != "00a067110000" || ca != "processor" {
		t.Fatalf("Platform() = FMSPC %x, %q; want 00a067110000, processor", ext.FMSPC, ca)
	}
	got, err := v.VerifyEvidence(e, opts)
	if err != nil {
		t.Fatal(err)
	}
	want, err := v.Verify(raw, opts)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("VerifyEvidence = %+v; Verify = %+v, %v", got, want, err)
	}
	late := opts
	late.At = time.Date(2060, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := v.VerifyEvidence(e, late); ReasonOf(err) != ReasonExpired {
		t.Fatalf("VerifyEvidence at a time the chain is not valid = %v, want %s", err, ReasonExpired)
	}
}

// refusal is a quote, a change to its collateral and a time, and the
// reason (and item, if not "") its verification must fail with.
type refusal struct {
	name   string
	quote  []byte
	col    func(*Collateral)
	at     time.Time
	reason Reason
	item   string
}

// runRefusals verifies each case with collateral's collateral, changed
// as it says, and wants it refused with its reason, naming an item.
func runRefusals(t *testing.T, tests []refusal, collateral func(testing.TB) *Collateral) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := collateral(t)
			if tt.col != nil {
				tt.col(col)
			}
			res, err := Verify(tt.quote, Options{At: tt.at, Collateral: col})
			if err == nil {
				t.Fatalf("Verify = %+v, nil; want %s", res, tt.reason)
			}
			var e *Error
			if !errors.As(err, &e) || e.Reason != tt.reason || (tt.item != "" && e.Item != tt.item) || e.Item == "" {
				t.Fatalf("Verify = %v; want reason %s item %q", err, tt.reason, tt.item)
			}
		})
	}
}
