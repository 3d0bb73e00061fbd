package sgx

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"testing"
)

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseQuoteVector(t *testing.T) {
	q, err := ParseQuote(readVector(t, "phala_sgx_quote_v3.bin"))
	if err != nil {
		t.Fatalf("ParseQuote(vector) = %v", err)
	}
	want := map[string]string{
		"mrenclave": "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb",
		"mrsigner":  "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6",
		"vendor":    "939a7233f79c4ca9940a0db3957f0607",
	}
	got := map[string]string{
		"mrenclave": hex.EncodeToString(q.Body.MRENCLAVE[:]),
		"mrsigner":  hex.EncodeToString(q.Body.MRSIGNER[:]),
		"vendor":    hex.EncodeToString(q.Header.QEVendorID[:]),
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("%s = %s, want %s", k, got[k], want[k])
		}
	}
	reportData := append([]byte("Hello, world!"), make([]byte, 51)...)
	switch {
	case q.Header.QESVN != 10 || q.Header.PCESVN != 15:
		t.Errorf("qe_svn, pce_svn = %d, %d; want 10, 15", q.Header.QESVN, q.Header.PCESVN)
	case q.Body.ISVProdID != 0 || q.Body.ISVSVN != 0:
		t.Errorf("isvprodid, isvsvn = %d, %d; want 0, 0", q.Body.ISVProdID, q.Body.ISVSVN)
	case !bytes.Equal(q.Body.ReportData[:], reportData):
		t.Errorf("report data = %q", q.Body.ReportData)
	case q.Body.Attributes[0] != 0x05 || q.Body.Debug():
		t.Errorf("attributes flags = %#x, debug %v; want 0x05, false", q.Body.Attributes[0], q.Body.Debug())
	case q.Body.Attributes[8] != 0xe7:
		t.Errorf("xfrm = %#x, want 0xe7", q.Body.Attributes[8])
	case q.CertDataType != CertDataPCKChain || !bytes.HasPrefix(q.CertData, []byte("-----BEGIN CERTIFICATE-----")):
		t.Errorf("certification data type %d, starts %q", q.CertDataType, q.CertData[:min(30, len(q.CertData))])
	case len(q.Signed()) != SignedSize:
		t.Errorf("signed part is %d bytes", len(q.Signed()))
	}
}

func TestParseQuoteRejectsTruncation(t *testing.T) {
	b := readVector(t, "phala_sgx_quote_v3.bin")
	for n := range len(b) {
		_, err := ParseQuote(b[:n])
		if ReasonOf(err) != ReasonMalformed {
			t.Fatalf("ParseQuote(first %d of %d bytes) = %v, want ReasonMalformed", n, len(b), err)
		}
	}
	if _, err := ParseQuote(append(bytes.Clone(b), 0)); ReasonOf(err) != ReasonMalformed {
		t.Fatalf("ParseQuote(with a trailing byte) = %v, want ReasonMalformed", err)
	}
}

func TestParseQuoteUnsupported(t *testing.T) {
	b := readVector(t, "phala_sgx_quote_v3.bin")
	certTypeOff := SignedSize + 4 + 64 + 64 + ReportBodySize + 64
	certTypeOff += 2 + int(binary.LittleEndian.Uint16(b[certTypeOff:]))
	tests := []struct {
		name  string
		patch func([]byte)
		want  string
	}{
		{"version 4", func(q []byte) { binary.LittleEndian.PutUint16(q[0:], 4) }, "version 4"},
		{"key type 3", func(q []byte) { binary.LittleEndian.PutUint16(q[2:], 3) }, "attestation key type 3"},
		{"TDX tee type", func(q []byte) { binary.LittleEndian.PutUint32(q[4:], 0x81) }, "TEE type 0x81"},
		{"cert data type 3", func(q []byte) { binary.LittleEndian.PutUint16(q[certTypeOff:], 3) }, "certification data type 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := bytes.Clone(b)
			tt.patch(q)
			_, err := ParseQuote(q)
			if ReasonOf(err) != ReasonUnsupported || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
				t.Fatalf("ParseQuote = %v, want ReasonUnsupported naming %q", err, tt.want)
			}
			if !errors.Is(err, &Error{Reason: ReasonUnsupported}) {
				t.Fatalf("errors.Is(%v, unsupported) = false", err)
			}
		})
	}
}

func FuzzParseQuote(f *testing.F) {
	f.Add(readVector(f, "phala_sgx_quote_v3.bin"))
	f.Add(readVector(f, "phala_tdx_quote_v4.bin"))
	f.Add(make([]byte, SignedSize+4))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQuote(b)
		if err == nil && (q == nil || len(q.Signed()) != map[bool]int{false: SignedSize, true: TDXSignedSize}[q.TDReport != nil]) {
			t.Fatalf("ParseQuote accepted %d bytes without a signed part", len(b))
		}
		if err != nil && ReasonOf(err) == "" {
			t.Fatalf("ParseQuote error %v is not an *sgx.Error", err)
		}
	})
}
