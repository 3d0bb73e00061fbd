package sgx

import (
	"encoding/binary"
	"fmt"

	"github.com/cloister-cc/cloister/libs/tee"
)

// Sizes of the fixed parts of an SGX or TDX ECDSA quote.
const (
	HeaderSize     = 48
	ReportBodySize = 384
	// TDReportSize is the size of a TD report (v1.0) in a TDX quote v4.
	TDReportSize = 584
	// SignedSize is how much of a v3 quote its signature covers: the
	// header and the report body.
	SignedSize = HeaderSize + ReportBodySize
	// TDXSignedSize is how much of a TDX quote v4 its signature covers:
	// the header and the TD report.
	TDXSignedSize = HeaderSize + TDReportSize
	// MaxQuoteSize bounds the input: real quotes are a few KiB.
	MaxQuoteSize = 64 << 10
)

// Quote header values this verifier handles.
const (
	QuoteVersion3          = 3
	QuoteVersion4          = 4
	AttestationKeyECDSA256 = 2
	TEETypeSGX             = 0x00000000
	TEETypeTDX             = 0x00000081
	CertDataPCKChain       = 5
	// CertDataQEReport wraps, in a v4 quote, what a v3 quote carries
	// after its attestation key: the QE report, its signature, the QE
	// auth data and the PCK chain.
	CertDataQEReport = 6
)

// Header is a quote's header.
type Header struct {
	Version            uint16
	AttestationKeyType uint16
	TEEType            uint32 // reserved (zero) in v3, which is SGX only
	QESVN              uint16
	PCESVN             uint16
	QEVendorID         [16]byte
	UserData           [20]byte
}

// ReportBody is an SGX enclave report body, as in the quote and in the
// quoting enclave's report.
type ReportBody struct {
	CPUSVN       [16]byte
	MiscSelect   uint32
	ISVExtProdID [16]byte
	Attributes   [16]byte
	MRENCLAVE    [32]byte
	MRSIGNER     [32]byte
	ConfigID     [64]byte
	ISVProdID    uint16
	ISVSVN       uint16
	ConfigSVN    uint16
	ISVFamilyID  [16]byte
	ReportData   [64]byte
}

// Attribute flags (the low byte of ATTRIBUTES).
const (
	AttributeInit         = 0x01
	AttributeDebug        = 0x02
	AttributeMode64       = 0x04
	AttributeProvisionKey = 0x10
)

// Debug reports whether the enclave was launched in debug mode, in which
// its memory can be read from outside and its secrets are not secret.
func (r *ReportBody) Debug() bool { return r.Attributes[0]&AttributeDebug != 0 }

// TDReport is a TD report (v1.0): the trust domain's identity and data,
// and the TDX module's, as a TDX quote v4 carries it.
type TDReport struct {
	// TEETCBSVN: byte 0 is the TDX module's SVN, byte 1 its major
	// version, the rest the platform's other TDX TCB components.
	TEETCBSVN      [16]byte
	MRSEAM         [48]byte // the TDX module's measurement
	MRSIGNERSEAM   [48]byte // its signer's (zero for Intel's)
	SEAMAttributes [8]byte
	TDAttributes   [8]byte
	XFAM           [8]byte
	MRTD           [48]byte // the TD's initial contents
	MRCONFIGID     [48]byte
	MROWNER        [48]byte
	MROWNERCONFIG  [48]byte
	RTMRs          [4][48]byte // run-time measurement registers
	ReportData     [64]byte
}

// TD attributes (TDATTRIBUTES, a little-endian 64-bit word).
const (
	TDAttributeDebug         = 1 << 0
	TDAttributeSEPTVEDisable = 1 << 28
)

// Debug reports whether the TD was launched in debug mode: the host may
// read and change its state.
func (r *TDReport) Debug() bool { return r.TDAttributes[0]&TDAttributeDebug != 0 }

// ParseTDReport decodes a 584-byte TD report (v1.0).
func ParseTDReport(b []byte) (TDReport, error) {
	var r TDReport
	if len(b) != TDReportSize {
		return r, failf(ReasonMalformed, "TD report", "%d bytes, want %d", len(b), TDReportSize)
	}
	fields := []struct {
		dst []byte
		off int
	}{{r.TEETCBSVN[:], 0}, {r.MRSEAM[:], 16}, {r.MRSIGNERSEAM[:], 64}, {r.SEAMAttributes[:], 112},
		{r.TDAttributes[:], 120}, {r.XFAM[:], 128}, {r.MRTD[:], 136}, {r.MRCONFIGID[:], 184},
		{r.MROWNER[:], 232}, {r.MROWNERCONFIG[:], 280}, {r.RTMRs[0][:], 328}, {r.RTMRs[1][:], 376},
		{r.RTMRs[2][:], 424}, {r.RTMRs[3][:], 472}, {r.ReportData[:], 520}}
	for _, f := range fields {
		copy(f.dst, b[f.off:])
	}
	return r, nil
}

// Quote is a parsed ECDSA quote: SGX (v3, the enclave's report in Body)
// or TDX (v4, the TD's report in TDReport), with PCK chain certification
// data.
type Quote struct {
	Header Header
	Body   ReportBody
	// TDReport is a TDX quote's TD report; nil for SGX.
	TDReport *TDReport
	// Signature is the ECDSA P-256 signature (r‖s) over the first SignedSize bytes.
	Signature [64]byte
	// AttestationKey is the raw P-256 public key (x‖y) that signed the quote.
	AttestationKey [64]byte
	QEReport       ReportBody
	// QEReportSignature is the PCK key's signature (r‖s) over QEReportRaw.
	QEReportSignature [64]byte
	QEAuthData        []byte
	CertDataType      uint16
	CertData          []byte

	signed      []byte // header and body as received
	qeReportRaw []byte
}

// Signed returns the bytes the quote signature covers.
func (q *Quote) Signed() []byte { return q.signed }

// QEReportRaw returns the quoting enclave's report as received.
func (q *Quote) QEReportRaw() []byte { return q.qeReportRaw }

// reader takes fields off the front of a byte slice, remembering the first
// shortfall so parsing code reads straight through.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = failf(ReasonMalformed, "quote", "%s: need %d bytes at offset %d, have %d", what, n, r.off, len(r.b)-r.off)
		return nil
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}

func (r *reader) u16(what string) uint16 {
	if b := r.take(2, what); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

// ParseReportBody decodes a 384-byte report body.
func ParseReportBody(b []byte) (ReportBody, error) {
	var r ReportBody
	if len(b) != ReportBodySize {
		return r, failf(ReasonMalformed, "report body", "%d bytes, want %d", len(b), ReportBodySize)
	}
	copy(r.CPUSVN[:], b[0:16])
	r.MiscSelect = binary.LittleEndian.Uint32(b[16:20])
	copy(r.ISVExtProdID[:], b[32:48])
	copy(r.Attributes[:], b[48:64])
	copy(r.MRENCLAVE[:], b[64:96])
	copy(r.MRSIGNER[:], b[128:160])
	copy(r.ConfigID[:], b[192:256])
	r.ISVProdID = binary.LittleEndian.Uint16(b[256:258])
	r.ISVSVN = binary.LittleEndian.Uint16(b[258:260])
	r.ConfigSVN = binary.LittleEndian.Uint16(b[260:262])
	copy(r.ISVFamilyID[:], b[304:320])
	copy(r.ReportData[:], b[320:384])
	return r, nil
}

// ParseQuote decodes an SGX ECDSA quote v3 or a TDX ECDSA quote v4. It
// checks structure only; the signatures, chain and collateral are
// Verify's work. Other versions, TEEs, key types and certification data
// types are refused with ReasonUnsupported, naming what was found.
func ParseQuote(b []byte) (*Quote, error) {
	if len(b) > MaxQuoteSize {
		return nil, failf(ReasonMalformed, "quote", "%d bytes, more than the %d a quote can be", len(b), MaxQuoteSize)
	}
	r := &reader{b: b}
	q := &Quote{}
	hdr := r.take(HeaderSize, "header")
	if r.err != nil {
		return nil, r.err
	}
	q.Header = Header{
		Version:            binary.LittleEndian.Uint16(hdr[0:2]),
		AttestationKeyType: binary.LittleEndian.Uint16(hdr[2:4]),
		TEEType:            binary.LittleEndian.Uint32(hdr[4:8]),
		QESVN:              binary.LittleEndian.Uint16(hdr[8:10]),
		PCESVN:             binary.LittleEndian.Uint16(hdr[10:12]),
	}
	copy(q.Header.QEVendorID[:], hdr[12:28])
	copy(q.Header.UserData[:], hdr[28:48])
	if q.Header.AttestationKeyType != AttestationKeyECDSA256 {
		return nil, failf(ReasonUnsupported, "quote", "attestation key type %d (only 2, ECDSA P-256, is supported)", q.Header.AttestationKeyType)
	}
	switch {
	case q.Header.Version == QuoteVersion3 && q.Header.TEEType == TEETypeSGX:
		return parseV3(q, r)
	case q.Header.Version == QuoteVersion4 && q.Header.TEEType == TEETypeTDX:
		return parseV4(q, r)
	case q.Header.Version == QuoteVersion3:
		return nil, failf(ReasonUnsupported, "quote", "TEE type %#x in a version 3 quote", q.Header.TEEType)
	case q.Header.Version == QuoteVersion4:
		return nil, failf(ReasonUnsupported, "quote", "TEE type %#x in a version 4 quote (this verifier handles TDX, 0x81, in version 4)", q.Header.TEEType)
	}
	return nil, failf(ReasonUnsupported, "quote", "version %d (this verifier handles SGX quotes of version 3 and TDX quotes of version 4)", q.Header.Version)
}

// parseV3 reads the rest of an SGX quote v3: the report body, then the
// signature data, which is the rest of the quote.
func parseV3(q *Quote, r *reader) (*Quote, error) {
	body := r.take(ReportBodySize, "report body")
	if r.err != nil {
		return nil, r.err
	}
	q.signed = r.b[:SignedSize]
	var err error
	if q.Body, err = ParseReportBody(body); err != nil {
		return nil, err
	}
	sigLen := r.u32("signature data length")
	if r.err == nil && int(sigLen) != len(r.b)-r.off {
		return nil, failf(ReasonMalformed, "quote", "signature data length %d, but %d bytes follow", sigLen, len(r.b)-r.off)
	}
	copy(q.Signature[:], r.take(64, "quote signature"))
	copy(q.AttestationKey[:], r.take(64, "attestation key"))
	if err := q.readQEReportData(r); err != nil {
		return nil, err
	}
	if r.off != len(r.b) {
		return nil, failf(ReasonMalformed, "quote", "%d bytes after the certification data", len(r.b)-r.off)
	}
	return q, nil
}

// parseV4 reads the rest of a TDX quote v4: the TD report, then the
// signature data, whose certification data (type 6) holds what a v3
// quote's signature data holds after the attestation key. Quoting
// libraries pad the quote after the signature data: zeros there are
// allowed (Intel's QVL ignores them), anything else is not.
func parseV4(q *Quote, r *reader) (*Quote, error) {
	report := r.take(TDReportSize, "TD report")
	if r.err != nil {
		return nil, r.err
	}
	q.signed = r.b[:TDXSignedSize]
	td, err := ParseTDReport(report)
	if err != nil {
		return nil, err
	}
	q.TDReport = &td
	sigLen := int(r.u32("signature data length"))
	if r.err == nil && sigLen > len(r.b)-r.off {
		return nil, failf(ReasonMalformed, "quote", "signature data length %d, but %d bytes follow", sigLen, len(r.b)-r.off)
	}
	end := r.off + sigLen
	copy(q.Signature[:], r.take(64, "quote signature"))
	copy(q.AttestationKey[:], r.take(64, "attestation key"))
	if typ := r.u16("certification data type"); r.err == nil && typ != CertDataQEReport {
		return nil, failf(ReasonUnsupported, "quote", "certification data type %d in a version 4 quote (want 6, QE report certification data)", typ)
	}
	inner := &reader{b: r.take(int(r.u32("certification data size")), "certification data")}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != end {
		return nil, failf(ReasonMalformed, "quote", "signature data length %d, but its parts take %d", sigLen, r.off-(end-sigLen))
	}
	if err := q.readQEReportData(inner); err != nil {
		return nil, err
	}
	if inner.off != len(inner.b) {
		return nil, failf(ReasonMalformed, "quote", "%d bytes after the PCK certification data", len(inner.b)-inner.off)
	}
	for _, c := range r.b[end:] {
		if c != 0 {
			return nil, failf(ReasonMalformed, "quote", "%d bytes after the signature data, not all zero", len(r.b)-end)
		}
	}
	return q, nil
}

// readQEReportData reads the QE report, its signature, the QE auth data
// and the PCK certification data (which must be type 5, a PCK chain).
func (q *Quote) readQEReportData(r *reader) error {
	q.qeReportRaw = r.take(ReportBodySize, "QE report")
	copy(q.QEReportSignature[:], r.take(64, "QE report signature"))
	q.QEAuthData = r.take(int(r.u16("QE auth data size")), "QE auth data")
	q.CertDataType = r.u16("certification data type")
	q.CertData = r.take(int(r.u32("certification data size")), "certification data")
	if r.err != nil {
		return r.err
	}
	var err error
	if q.QEReport, err = ParseReportBody(q.qeReportRaw); err != nil {
		return err
	}
	if q.CertDataType != CertDataPCKChain {
		return failf(ReasonUnsupported, "quote", "certification data type %d (only 5, a PCK certificate chain, is supported)", q.CertDataType)
	}
	return nil
}

// TEE names the quote's TEE: "sgx" or "tdx".
func (q *Quote) TEE() string {
	if q.TDReport != nil {
		return tee.TDX
	}
	return tee.SGX
}

// String summarises the quote for logs.
func (q *Quote) String() string {
	if td := q.TDReport; td != nil {
		return fmt.Sprintf("TDX quote v%d mrtd=%x", q.Header.Version, td.MRTD)
	}
	return fmt.Sprintf("SGX quote v%d mrenclave=%x mrsigner=%x isvprodid=%d isvsvn=%d", q.Header.Version,
		q.Body.MRENCLAVE, q.Body.MRSIGNER, q.Body.ISVProdID, q.Body.ISVSVN)
}
