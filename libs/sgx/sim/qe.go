package sim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/cloister-cc/cloister/libs/sgx"
)

// Platform describes a simulated machine: what its PCK certificate's SGX
// extension says and what TCB Info is issued for.
type Platform struct {
	FMSPC         [6]byte
	PCEID         [2]byte
	TCBComponents [16]uint8 // SGX TCB comp01..comp16 SVNs
	PCESVN        uint16
	CPUSVN        [16]byte
}

// DefaultPlatform is the platform simulated unless another is asked for:
// FMSPC "SIM\x00\x00\x01" (53494d000001), PCE-ID 0000, every SGX TCB
// component SVN 2 and PCESVN 2 (so that lower platforms can be simulated),
// and a CPUSVN holding the component SVNs, as on Intel's processors.
func DefaultPlatform() Platform {
	p := Platform{
		FMSPC:  [6]byte{'S', 'I', 'M', 0x00, 0x00, 0x01},
		PCESVN: 2,
	}
	for i := range p.TCBComponents {
		p.TCBComponents[i] = 2
		p.CPUSVN[i] = 2
	}
	return p
}

// The simulated quoting enclave's identity, which QE Identity describes.
// Texts instead of measurements, so that a hex dump says what they are.
var (
	qeVendorID  = [16]byte([]byte("CLOISTER-SGX-SIM"))
	qeUserData  = label20("CLOISTER SIMULATION")
	qeMRSIGNER  = label32("Cloister SGX simulated QE signer")
	qeMRENCLAVE = label32("Cloister SGX simulated QE")
)

const (
	qeISVProdID = 1
	qeISVSVN    = 1
	// qeAttributes are INIT | MODE64BIT | PROVISIONKEY, with XFRM x87|SSE
	// (byte 8): a production (non-debug) enclave, as Intel's QE.
	qeAttributes0 = sgx.AttributeInit | sgx.AttributeMode64 | sgx.AttributeProvisionKey
	qeXFRM        = 0x03
	// qeAuthDataSize is the size of the QE authentication data, as
	// Intel's QE sends by default.
	qeAuthDataSize = 32
)

func label32(s string) (out [32]byte) { copy(out[:], s); return out }
func label20(s string) (out [20]byte) { copy(out[:], s); return out }

func qeAttributes() (a [16]byte) {
	a[0] = qeAttributes0
	a[8] = qeXFRM
	return a
}

// pckValidity is how long a simulated PCK certificate is valid (Intel's
// are valid for seven years), at most as long as the PCK CA.
const pckValidity = 7 * 365 * 24 * time.Hour

// QE is a simulated quoting enclave for one platform. It holds a PCK key
// with its certificate, issued by the root's PCK CA and carrying the
// platform's SGX extension, and an attestation key certified by the PCK
// key through the QE report of every quote. It is immutable and safe for
// concurrent use.
type QE struct {
	platform  Platform
	pckKey    *ecdsa.PrivateKey
	pckCert   *x509.Certificate
	attKey    *ecdsa.PrivateKey
	attKeyRaw [64]byte // x‖y
	authData  []byte
	certData  []byte // PEM leaf, PCK CA, root, then a NUL byte
}

// oidAccount marks a simulated PCK certificate with the account it was
// issued for (a UUID-derived OID, 2.25, that needs no registration).
var oidAccount = asn1.ObjectIdentifier{2, 25, 308106427, 113954, 18317, 41477, 2024}

// NewQEForAccount is NewQE bound to an account: its PCK certificate names
// the account, and AccountOf reads it back, so that the account's
// attestation can refuse evidence from another account's QE.
func (r *Root) NewQEForAccount(rand io.Reader, p Platform, now time.Time, account string) (*QE, error) {
	if account == "" {
		return nil, fmt.Errorf("sim: a QE bound to an account needs the account")
	}
	return r.newQE(rand, p, now, account)
}

// AccountOf is the account a simulated PCK certificate was issued for;
// "" for a QE bound to none.
func AccountOf(pck *x509.Certificate) string {
	for _, e := range pck.Extensions {
		if e.Id.Equal(oidAccount) {
			var account string
			if rest, err := asn1.Unmarshal(e.Value, &account); err == nil && len(rest) == 0 {
				return account
			}
		}
	}
	return ""
}

// NewQE creates a simulated quoting enclave for p, with a fresh PCK key
// and a PCK certificate issued by the root's PCK CA, valid from an hour
// before now for seven years (no longer than the PCK CA), and a fresh
// attestation key. rand supplies the PPID and serial number.
func (r *Root) NewQE(rand io.Reader, p Platform, now time.Time) (*QE, error) {
	return r.newQE(rand, p, now, "")
}

func (r *Root) newQE(rand io.Reader, p Platform, now time.Time, account string) (*QE, error) {
	if now.Before(r.pckCA.NotBefore) || now.After(r.pckCA.NotAfter) {
		return nil, fmt.Errorf("sim: the simulation PCK CA is not valid at %s", now.UTC().Format(time.RFC3339))
	}
	q := &QE{platform: p, authData: make([]byte, qeAuthDataSize)}
	for i := range q.authData {
		q.authData[i] = byte(i)
	}
	var err error
	if q.pckKey, err = ecdsa.GenerateKey(elliptic.P256(), rand); err != nil {
		return nil, fmt.Errorf("generating simulated PCK key: %w", err)
	}
	if q.attKey, err = ecdsa.GenerateKey(elliptic.P256(), rand); err != nil {
		return nil, fmt.Errorf("generating simulated attestation key: %w", err)
	}
	point, err := q.attKey.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encoding simulated attestation key: %w", err)
	}
	copy(q.attKeyRaw[:], point[1:]) // drop the uncompressed-point prefix 0x04

	ppid := make([]byte, 16)
	if _, err := io.ReadFull(rand, ppid); err != nil {
		return nil, fmt.Errorf("generating simulated PPID: %w", err)
	}
	ext, err := encodePCKExtension(ppid, p)
	if err != nil {
		return nil, fmt.Errorf("encoding simulated SGX extension: %w", err)
	}
	notAfter := now.Add(pckValidity)
	if notAfter.After(r.pckCA.NotAfter) {
		notAfter = r.pckCA.NotAfter
	}
	tmpl := &x509.Certificate{
		Subject:               simName(PCKCommonName),
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: oidSGXExtension, Value: ext}},
	}
	if account != "" {
		v, err := asn1.Marshal(account)
		if err != nil {
			return nil, err
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidAccount, Value: v})
	}
	if q.pckCert, err = issue(rand, tmpl, r.pckCA, &q.pckKey.PublicKey, r.pckCAKey); err != nil {
		return nil, fmt.Errorf("issuing simulated PCK certificate: %w", err)
	}
	var chain bytes.Buffer
	for _, c := range []*x509.Certificate{q.pckCert, r.pckCA, r.cert} {
		if err := pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			return nil, err
		}
	}
	chain.WriteByte(0) // Intel's QE ends the chain with a NUL byte
	q.certData = chain.Bytes()
	return q, nil
}

// PCKCertificate returns the QE's PCK certificate (for its serial number,
// to revoke it, or its SGX extension).
func (q *QE) PCKCertificate() *x509.Certificate { return q.pckCert }

// Platform returns the platform the QE simulates.
func (q *QE) Platform() Platform { return q.platform }

// Quote turns an enclave's report body into an SGX ECDSA quote v3 with
// certification data type 5, as Intel's QE does: the header, the body and
// the attestation key's signature over them; the attestation key; the QE's
// report binding SHA-256(attestation key ‖ QE auth data) and the PCK key's
// signature over it; the QE auth data; and the PEM chain PCK certificate →
// PCK CA → root, NUL-terminated. The body is quoted as given: the
// simulation cannot check that an enclave produced it. Signatures use
// crypto/rand.
func (q *QE) Quote(body sgx.ReportBody) ([]byte, error) {
	return q.quote(sgx.QuoteVersion3, sgx.TEETypeSGX, EncodeReportBody(body))
}

// QuoteTD turns a TD report into a TDX ECDSA quote v4, as Intel's TD
// quoting enclave does: the header (TEE type TDX), the TD report and the
// attestation key's signature over them; the attestation key; and, as
// certification data type 6, what a v3 quote carries after its
// attestation key (the QE report, its signature, the QE auth data and the
// PCK chain). Its collateral is Collateral's with ForTDX. The simulation
// cannot check that a TD produced the report: SIMULATION, proving nothing.
func (q *QE) QuoteTD(td sgx.TDReport) ([]byte, error) {
	return q.quote(sgx.QuoteVersion4, sgx.TEETypeTDX, EncodeTDReport(td))
}

// quote signs header and body and appends the signature data.
func (q *QE) quote(version uint16, teeType uint32, body []byte) ([]byte, error) {
	header := make([]byte, sgx.HeaderSize)
	binary.LittleEndian.PutUint16(header[0:2], version)
	binary.LittleEndian.PutUint16(header[2:4], sgx.AttestationKeyECDSA256)
	binary.LittleEndian.PutUint32(header[4:8], teeType)
	if version == sgx.QuoteVersion3 { // a v4 quote leaves them zero
		binary.LittleEndian.PutUint16(header[8:10], qeISVSVN)
		binary.LittleEndian.PutUint16(header[10:12], q.platform.PCESVN)
	}
	copy(header[12:28], qeVendorID[:])
	copy(header[28:48], qeUserData[:])

	signed := append(header, body...)
	quoteSig, err := signRS(q.attKey, signed)
	if err != nil {
		return nil, fmt.Errorf("signing simulated quote: %w", err)
	}

	qeReport := sgx.ReportBody{
		CPUSVN:     q.platform.CPUSVN,
		Attributes: qeAttributes(),
		MRENCLAVE:  qeMRENCLAVE,
		MRSIGNER:   qeMRSIGNER,
		ISVProdID:  qeISVProdID,
		ISVSVN:     qeISVSVN,
	}
	h := sha256.New()
	h.Write(q.attKeyRaw[:])
	h.Write(q.authData)
	h.Sum(qeReport.ReportData[:0]) // the other 32 bytes stay zero
	qeReportRaw := EncodeReportBody(qeReport)
	qeSig, err := signRS(q.pckKey, qeReportRaw)
	if err != nil {
		return nil, fmt.Errorf("signing simulated QE report: %w", err)
	}

	qeData := make([]byte, 0, sgx.ReportBodySize+64+2+len(q.authData)+2+4+len(q.certData))
	qeData = append(qeData, qeReportRaw...)
	qeData = append(qeData, qeSig[:]...)
	qeData = binary.LittleEndian.AppendUint16(qeData, uint16(len(q.authData)))
	qeData = append(qeData, q.authData...)
	qeData = binary.LittleEndian.AppendUint16(qeData, sgx.CertDataPCKChain)
	qeData = binary.LittleEndian.AppendUint32(qeData, uint32(len(q.certData)))
	qeData = append(qeData, q.certData...)

	sigData := make([]byte, 0, 64+64+6+len(qeData))
	sigData = append(sigData, quoteSig[:]...)
	sigData = append(sigData, q.attKeyRaw[:]...)
	if version == sgx.QuoteVersion4 {
		sigData = binary.LittleEndian.AppendUint16(sigData, sgx.CertDataQEReport)
		sigData = binary.LittleEndian.AppendUint32(sigData, uint32(len(qeData)))
	}
	sigData = append(sigData, qeData...)

	out := binary.LittleEndian.AppendUint32(signed, uint32(len(sigData)))
	out = append(out, sigData...)
	if len(out) > sgx.MaxQuoteSize {
		return nil, fmt.Errorf("sim: quote of %d bytes exceeds %d", len(out), sgx.MaxQuoteSize)
	}
	return out, nil
}

// signRS signs SHA-256 of msg and returns the signature as r‖s, 32 bytes
// each, big-endian, as quotes and collateral carry it.
func signRS(key *ecdsa.PrivateKey, msg []byte) ([64]byte, error) {
	var sig [64]byte
	digest := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return sig, err
	}
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig, nil
}

// EncodeReportBody is the inverse of sgx.ParseReportBody: the 384-byte SGX
// REPORTBODY, little-endian, reserved bytes zero.
func EncodeReportBody(b sgx.ReportBody) []byte {
	out := make([]byte, sgx.ReportBodySize)
	copy(out[0:16], b.CPUSVN[:])
	binary.LittleEndian.PutUint32(out[16:20], b.MiscSelect)
	copy(out[32:48], b.ISVExtProdID[:])
	copy(out[48:64], b.Attributes[:])
	copy(out[64:96], b.MRENCLAVE[:])
	copy(out[128:160], b.MRSIGNER[:])
	copy(out[192:256], b.ConfigID[:])
	binary.LittleEndian.PutUint16(out[256:258], b.ISVProdID)
	binary.LittleEndian.PutUint16(out[258:260], b.ISVSVN)
	binary.LittleEndian.PutUint16(out[260:262], b.ConfigSVN)
	copy(out[304:320], b.ISVFamilyID[:])
	copy(out[320:384], b.ReportData[:])
	return out
}

// EncodeTDReport is the inverse of sgx.ParseTDReport: the 584-byte TD
// report (v1.0).
func EncodeTDReport(r sgx.TDReport) []byte {
	out := make([]byte, 0, sgx.TDReportSize)
	for _, f := range [][]byte{r.TEETCBSVN[:], r.MRSEAM[:], r.MRSIGNERSEAM[:], r.SEAMAttributes[:], r.TDAttributes[:], r.XFAM[:],
		r.MRTD[:], r.MRCONFIGID[:], r.MROWNER[:], r.MROWNERCONFIG[:], r.RTMRs[0][:], r.RTMRs[1][:], r.RTMRs[2][:], r.RTMRs[3][:],
		r.ReportData[:]} {
		out = append(out, f...)
	}
	return out
}

// The SGX extension of PCK certificates and its entries, as Intel numbers
// them under 1.2.840.113741.1.13.1.
var oidSGXExtension = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}

const (
	arcPPID    = 1
	arcTCB     = 2
	arcPCEID   = 3
	arcFMSPC   = 4
	arcSGXType = 5

	tcbArcPCESVN = 17
	tcbArcCPUSVN = 18
)

func sgxOID(arcs ...int) asn1.ObjectIdentifier {
	return append(append(asn1.ObjectIdentifier{}, oidSGXExtension...), arcs...)
}

// encodePCKExtension encodes the SGX extension as Intel's PCK Processor CA
// does: a SEQUENCE of SEQUENCE { OID, value } for the PPID (OCTET STRING),
// the TCB (a SEQUENCE of the same pairs: 16 component SVNs and the PCESVN
// as INTEGERs, the CPUSVN as an OCTET STRING), the PCE-ID and FMSPC (OCTET
// STRINGs) and the SGX type (ENUMERATED, 0 = standard).
func encodePCKExtension(ppid []byte, p Platform) ([]byte, error) {
	pair := func(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			value(b)
		})
	}
	octets := func(v []byte) func(*cryptobyte.Builder) {
		return func(b *cryptobyte.Builder) { b.AddASN1OctetString(v) }
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		pair(b, sgxOID(arcPPID), octets(ppid))
		pair(b, sgxOID(arcTCB), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for i, svn := range p.TCBComponents {
					pair(b, sgxOID(arcTCB, i+1), func(b *cryptobyte.Builder) { b.AddASN1Uint64(uint64(svn)) })
				}
				pair(b, sgxOID(arcTCB, tcbArcPCESVN), func(b *cryptobyte.Builder) { b.AddASN1Uint64(uint64(p.PCESVN)) })
				pair(b, sgxOID(arcTCB, tcbArcCPUSVN), octets(p.CPUSVN[:]))
			})
		})
		pair(b, sgxOID(arcPCEID), octets(p.PCEID[:]))
		pair(b, sgxOID(arcFMSPC), octets(p.FMSPC[:]))
		pair(b, sgxOID(arcSGXType), func(b *cryptobyte.Builder) { b.AddASN1Enum(sgx.SGXTypeStandard) })
	})
	return b.Bytes()
}
