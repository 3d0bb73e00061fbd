package sgx

import (
	"encoding/binary"
	"fmt"
)

// Sizes of the fixed parts of an SGX ECDSA quote.
const (
	HeaderSize     = 48
	ReportBodySize = 384
	// SignedSize is how much of a v3 quote its signature covers: the
	// header and the report body.
	SignedSize = HeaderSize + ReportBodySize
	// MaxQuoteSize bounds the input: real quotes are a few KiB.
	MaxQuoteSize = 64 << 10
)

// Quote header values this verifier handles.
const (
	QuoteVersion3          = 3
	AttestationKeyECDSA256 = 2
	TEETypeSGX             = 0x00000000
	CertDataPCKChain       = 5
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

// Quote is a parsed SGX ECDSA quote v3 with PCK chain certification data.
type Quote struct {
	Header Header
	Body   ReportBody
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

// ParseQuote decodes an SGX ECDSA quote v3. It checks structure only; the
// signatures, chain and collateral are Verify's work. Other versions, key
// types and certification data types are refused with ReasonUnsupported,
// naming what was found.
func ParseQuote(b []byte) (*Quote, error) {
	if len(b) > MaxQuoteSize {
		return nil, failf(ReasonMalformed, "quote", "%d bytes, more than the %d a quote can be", len(b), MaxQuoteSize)
	}
	r := &reader{b: b}
	q := &Quote{}
	hdr := r.take(HeaderSize, "header")
	body := r.take(ReportBodySize, "report body")
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
	switch {
	case q.Header.Version != QuoteVersion3:
		return nil, failf(ReasonUnsupported, "quote", "version %d (this verifier handles SGX quote version 3)", q.Header.Version)
	case q.Header.AttestationKeyType != AttestationKeyECDSA256:
		return nil, failf(ReasonUnsupported, "quote", "attestation key type %d (only 2, ECDSA P-256, is supported)", q.Header.AttestationKeyType)
	case q.Header.TEEType != TEETypeSGX:
		return nil, failf(ReasonUnsupported, "quote", "TEE type %#x in a version 3 quote", q.Header.TEEType)
	}
	q.signed = b[:SignedSize]
	var err error
	if q.Body, err = ParseReportBody(body); err != nil {
		return nil, err
	}

	sigLen := r.u32("signature data length")
	if r.err == nil && int(sigLen) != len(b)-r.off {
		return nil, failf(ReasonMalformed, "quote", "signature data length %d, but %d bytes follow", sigLen, len(b)-r.off)
	}
	copy(q.Signature[:], r.take(64, "quote signature"))
	copy(q.AttestationKey[:], r.take(64, "attestation key"))
	q.qeReportRaw = r.take(ReportBodySize, "QE report")
	copy(q.QEReportSignature[:], r.take(64, "QE report signature"))
	q.QEAuthData = r.take(int(r.u16("QE auth data size")), "QE auth data")
	q.CertDataType = r.u16("certification data type")
	q.CertData = r.take(int(r.u32("certification data size")), "certification data")
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(b) {
		return nil, failf(ReasonMalformed, "quote", "%d bytes after the certification data", len(b)-r.off)
	}
	if q.QEReport, err = ParseReportBody(q.qeReportRaw); err != nil {
		return nil, err
	}
	if q.CertDataType != CertDataPCKChain {
		return nil, failf(ReasonUnsupported, "quote", "certification data type %d (only 5, a PCK certificate chain, is supported)", q.CertDataType)
	}
	return q, nil
}

// String summarises the quote for logs.
func (q *Quote) String() string {
	return fmt.Sprintf("SGX quote v%d mrenclave=%x mrsigner=%x isvprodid=%d isvsvn=%d", q.Header.Version,
		q.Body.MRENCLAVE, q.Body.MRSIGNER, q.Body.ISVProdID, q.Body.ISVSVN)
}
