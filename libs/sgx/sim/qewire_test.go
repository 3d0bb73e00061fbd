package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/cloister-cc/cloister/libs/sgx"
)

// TestQERoundTrip: a parsed QE makes quotes that verify exactly like the
// original's, for the same platform, and revocation of its PCK applies.
func TestQERoundTrip(t *testing.T) {
	r := newRoot(t)
	p := DefaultPlatform()
	p.FMSPC = [6]byte{'S', 'I', 'M', 0, 0, 9}
	p.PCEID = [2]byte{0, 1}
	p.CPUSVN[3] = 7
	orig := newQE(t, r, p)
	b, err := orig.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary() = %v", err)
	}
	got, err := ParseQE(b)
	if err != nil {
		t.Fatalf("ParseQE(MarshalBinary()) = %v", err)
	}
	if got.Platform() != p || !got.PCKCertificate().Equal(orig.PCKCertificate()) {
		t.Fatalf("ParseQE(MarshalBinary()) has platform %+v, want %+v, or another PCK certificate", got.Platform(), p)
	}
	again, err := got.MarshalBinary()
	if err != nil || !bytes.Equal(again, b) {
		t.Errorf("MarshalBinary(ParseQE(b)) = %v, differs from b", err)
	}
	col := mustCollateral(t, r, p)
	for _, body := range []sgx.ReportBody{enclaveBody(false), enclaveBody(true), {}} {
		want, werr := verify(r, mustQuote(t, orig, body), col, now)
		res, err := verify(r, mustQuote(t, got, body), col, now)
		if werr != nil || err != nil {
			t.Fatalf("Verify(quote of the original) = %v, Verify(quote of the parsed) = %v, want success", werr, err)
		}
		if !equalResults(*res, *want) {
			t.Errorf("Verify(quote of the parsed) = %+v, want %+v", *res, *want)
		}
	}
	// Quotes of both carry the same attestation key and certification data.
	qo, qg := mustQuote(t, orig, sgx.ReportBody{}), mustQuote(t, got, sgx.ReportBody{})
	if !bytes.Equal(qo[offAttKey:offAttKey+64], qg[offAttKey:offAttKey+64]) || !bytes.Equal(qo[offQEAuthData:], qg[offQEAuthData:]) {
		t.Error("the parsed QE's quotes differ from the original's outside the signatures")
	}
	r.RevokePCK(got.PCKCertificate().SerialNumber)
	if _, err := verify(r, mustQuote(t, got, enclaveBody(false)), mustCollateral(t, r, p), now); sgx.ReasonOf(err) != sgx.ReasonRevoked {
		t.Errorf("Verify(quote of the parsed QE, PCK revoked) = %v, want reason %q", err, sgx.ReasonRevoked)
	}
	// Another root refuses the parsed QE's quotes, as the original's.
	if _, err := verify(newRoot(t), mustQuote(t, got, enclaveBody(false)), col, now); err == nil {
		t.Error("Verify(quote of the parsed QE) under another root succeeded")
	}
}

func TestParseQERefuses(t *testing.T) {
	r := newRoot(t)
	q := newQE(t, r, DefaultPlatform())
	other := newQE(t, newRoot(t), DefaultPlatform())
	b, err := q.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ob, _ := other.MarshalBinary()
	var ow map[string]any
	_ = json.Unmarshal(ob, &ow)
	edit := func(f func(m map[string]any)) []byte {
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	rootBytes, _ := r.MarshalBinary()
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"not JSON", []byte("qe")},
		{"a root", rootBytes},
		{"no format", edit(func(m map[string]any) { delete(m, "format") })},
		{"PCK key of another QE", edit(func(m map[string]any) { m["pckKey"] = ow["pckKey"] })},
		{"no attestation key", edit(func(m map[string]any) { m["attestationKey"] = "" })},
		{"chain missing the root", edit(func(m map[string]any) {
			c := m["pckChain"].(string)
			m["pckChain"] = c[:bytes.LastIndex([]byte(c), []byte("-----BEGIN"))]
		})},
		{"chain of another root", edit(func(m map[string]any) {
			c, oc := m["pckChain"].(string), ow["pckChain"].(string)
			i, oi := bytes.LastIndex([]byte(c), []byte("-----BEGIN")), bytes.LastIndex([]byte(oc), []byte("-----BEGIN"))
			m["pckChain"] = c[:i] + oc[oi:]
		})},
		{"short FMSPC", edit(func(m map[string]any) { m["platform"].(map[string]any)["fmspc"] = "5349" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseQE(tc.in); !errors.Is(err, ErrBadQE) {
				t.Errorf("ParseQE() = %v, want ErrBadQE", err)
			}
		})
	}
}

func TestTargetInfo(t *testing.T) {
	ti := newQE(t, newRoot(t), DefaultPlatform()).TargetInfo()
	if len(ti) != TargetInfoSize {
		t.Fatalf("len(TargetInfo()) = %d, want %d", len(ti), TargetInfoSize)
	}
	want := make([]byte, TargetInfoSize)
	copy(want[0:32], "Cloister SGX simulated QE")
	want[32] = sgx.AttributeInit | sgx.AttributeMode64 | sgx.AttributeProvisionKey
	want[40] = 0x03 // XFRM x87|SSE
	if !bytes.Equal(ti, want) {
		t.Errorf("TargetInfo() = %x, want %x", ti, want)
	}
}

// FuzzParseQE: ParseQE reads bytes from the network (the node agent gets
// its QE from the gateway); it refuses what it cannot use with ErrBadQE
// and never panics, and what it accepts marshals back to the same bytes.
func FuzzParseQE(f *testing.F) {
	good, err := newQE(f, newRoot(f), DefaultPlatform()).MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQE(b)
		if err != nil {
			if !errors.Is(err, ErrBadQE) {
				t.Fatalf("ParseQE error %v is not ErrBadQE", err)
			}
			return
		}
		if _, err := q.MarshalBinary(); err != nil {
			t.Fatalf("an accepted QE does not marshal: %v", err)
		}
	})
}
