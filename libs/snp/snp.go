// Package snp verifies AMD SEV-SNP attestation reports (version 2 and
// later) offline: the report's signature by its VCEK (or VLEK), that
// key's certificate chained to AMD's root for the processor's product
// line (built in; a chain given with the report must be that one), the
// reported TCB against the one the certificate was issued for, and the
// chip the report comes from. It reads the report, checks its signature
// and takes AMD's roots with Google's go-sev-guest. The clock is injected
// and nothing is fetched: the VCEK comes with the report.
package snp

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/cloister-cc/cloister/libs/tee"
)

// ReportSize is the size of an attestation report, in bytes.
const ReportSize = abi.ReportSize

// Options are the inputs of a verification besides the report.
type Options struct {
	// At is the time at which the certificates must be valid. Required:
	// the verifier never reads the clock itself.
	At time.Time
	// VCEK is the certificate of the key that signed the report, DER or
	// PEM: the chip's VCEK, or the cloud provider's VLEK for a report
	// signed by one. Required.
	VCEK []byte
	// Chain, if not empty, is the chain that came with the VCEK, in PEM
	// as AMD's key distribution service serves it (ASK or ASVK, then
	// ARK): it must be AMD's own for the product. The VCEK is verified
	// against the built-in roots either way.
	Chain []byte
}

// Result is what a verified report proves.
type Result struct {
	Version     uint32
	ProductLine string // "Milan", "Genoa", "Turin"
	Signer      string // "VCEK" or "VLEK"
	Measurement [48]byte
	HostData    [32]byte
	ReportData  [64]byte
	ChipID      [64]byte
	GuestSVN    uint32
	Policy      uint64
	// Debug is the guest policy's DEBUG bit: the host may read and
	// change the VM's memory.
	Debug bool
	VMPL  uint32
	// The TCB versions the report states: the one its VCEK was issued
	// for (ReportedTCB), and the firmware's current, committed and
	// launch ones.
	ReportedTCB, CurrentTCB, CommittedTCB, LaunchTCB TCB
}

// TCB is an SEV-SNP TCB_VERSION: one security patch level per byte, the
// layout of the bytes depending on the product line.
type TCB uint64

// String is the TCB as hex, as AMD's tools print it.
func (t TCB) String() string { return fmt.Sprintf("0x%016x", uint64(t)) }

// AtLeast reports whether every security patch level of t is at least
// min's. Comparing byte by byte holds for every product's layout.
func (t TCB) AtLeast(min TCB) bool {
	for i := range 8 {
		if byte(t>>(8*i)) < byte(min>>(8*i)) {
			return false
		}
	}
	return true
}

// Levels names t's security patch levels as a productLine processor lays
// them out ("bootloader", "tee", "snp", "microcode", and Turin's "fmc");
// nil for a product this package does not know.
func (t TCB) Levels(productLine string) map[string]uint8 {
	layout, ok := tcbByte[productLine]
	if !ok {
		return nil
	}
	levels := map[string]uint8{}
	for spl, name := range splNames {
		if i, ok := layout[spl]; ok {
			levels[name] = uint8(t >> (8 * i))
		}
	}
	return levels
}

// DecodeReport accepts a report in binary, or in hex (spaces and line
// breaks allowed, as tools print it), and returns its bytes.
func DecodeReport(b []byte) ([]byte, error) {
	if len(b) == ReportSize {
		return b, nil
	}
	s := strings.Join(strings.Fields(string(b)), "")
	if len(s) == 2*ReportSize {
		raw, err := hex.DecodeString(s)
		if err == nil {
			return raw, nil
		}
		return nil, fail(tee.ReasonMalformed, "report", fmt.Errorf("hex: %w", err))
	}
	return nil, failf(tee.ReasonMalformed, "report", "%d bytes; an attestation report is %d bytes, or %d hex digits",
		len(b), ReportSize, 2*ReportSize)
}

// ParseReport reads a report's fields (binary or hex; see DecodeReport),
// checking its size, version and policy's reserved bits. It verifies
// nothing.
func ParseReport(b []byte) (*spb.Report, []byte, error) {
	raw, err := DecodeReport(b)
	if err != nil {
		return nil, nil, err
	}
	if err := abi.ValidateReportFormat(raw); err != nil {
		return nil, nil, fail(tee.ReasonUnsupported, "report", err)
	}
	r, err := abi.ReportToProto(raw)
	if err != nil {
		return nil, nil, fail(tee.ReasonMalformed, "report", err)
	}
	return r, raw, nil
}

// ProductLine is the processor a report names (reports of version 3 and
// later, in their CPUID fields), or "" for a report that does not.
func ProductLine(r *spb.Report) string {
	if fms := r.GetCpuid1EaxFms(); fms != 0 {
		return kds.ProductLineFromFms(fms)
	}
	return ""
}

// ParseCertificate reads a certificate in DER or PEM.
func ParseCertificate(item string, b []byte) (*x509.Certificate, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, fail(tee.ReasonMalformed, item, err)
	}
	return c, nil
}

// Verify checks an SEV-SNP attestation report (binary or hex) completely
// and offline. It returns what the report says; whether that is
// acceptable (a debug VM, a measurement, a minimum TCB) is a Policy's
// decision. Verify caches nothing; a Verifier does the same checks and
// remembers the VCEKs it checked.
func Verify(report []byte, opts Options) (*Result, error) {
	return NewVerifier().Verify(report, opts)
}

// Verifier verifies reports, remembering each VCEK (or VLEK) it chained to
// AMD's root, with the chain given beside it, by the SHA-256 of their
// bytes, for the time in which every certificate of the chain is valid: a
// node sends the same VCEK with each of its reports, and only the
// report's own signature is then left to check. Safe for concurrent use.
type Verifier struct {
	mu   sync.Mutex
	keys map[[32]byte]*checkedKey
}

// checkedKey is a VCEK or VLEK chained to AMD's root, and when that holds.
type checkedKey struct {
	cert        *x509.Certificate
	endorsement *endorsement
	from, until time.Time
}

// maxCached bounds a Verifier's cache; past it the cache starts afresh.
const maxCached = 4096

// NewVerifier returns a Verifier with nothing cached.
func NewVerifier() *Verifier { return &Verifier{keys: map[[32]byte]*checkedKey{}} }

// Verify is the package's Verify, with the verifier's cache.
func (v *Verifier) Verify(report []byte, opts Options) (*Result, error) {
	if opts.At.IsZero() {
		return nil, errors.New("snp: Options.At is required")
	}
	r, raw, err := ParseReport(report)
	if err != nil {
		return nil, err
	}
	info, err := abi.ParseSignerInfo(r.GetSignerInfo())
	if err != nil {
		return nil, fail(tee.ReasonMalformed, "report", err)
	}
	key := info.SigningKey
	if key != abi.VcekReportSigner && key != abi.VlekReportSigner {
		return nil, failf(tee.ReasonUnsupported, "report", "signed by %v; only a VCEK or VLEK is verified", key)
	}
	item := key.String() + " certificate"
	if len(opts.VCEK) == 0 {
		return nil, failf(tee.ReasonChain, item, "none given: the report is signed by a %v, whose certificate must come with it", key)
	}
	k, err := v.checkKey(key, opts.VCEK, opts.Chain, opts.At)
	if err != nil {
		return nil, err
	}
	e := k.endorsement
	line := e.ProductLine
	if reported := ProductLine(r); reported != "" {
		if reported != line {
			return nil, failf(tee.ReasonMismatch, item, "issued for a %s processor; the report comes from a %s", line, reported)
		}
	}
	if key == abi.VcekReportSigner && !sameChip(r.GetChipId(), e.HWID) {
		return nil, failf(tee.ReasonMismatch, item, "issued for another chip (a %s processor, HWID %x…; the report's CHIP_ID %x…)",
			line, e.HWID[:min(8, len(e.HWID))], r.GetChipId()[:8])
	}
	if err := verify.SnpReportSignature(raw, k.cert); err != nil {
		return nil, fail(tee.ReasonReportSignature, "report", err)
	}
	res := result(r, line, key)
	switch {
	case res.ReportedTCB != e.TCB:
		return nil, failf(tee.ReasonTCB, "report", "REPORTED_TCB %v, but the %v was issued for TCB %v", res.ReportedTCB, key, e.TCB)
	case !res.CurrentTCB.AtLeast(res.ReportedTCB):
		return nil, failf(tee.ReasonTCB, "report", "REPORTED_TCB %v is above CURRENT_TCB %v", res.ReportedTCB, res.CurrentTCB)
	case !res.CurrentTCB.AtLeast(res.CommittedTCB):
		return nil, failf(tee.ReasonTCB, "report", "COMMITTED_TCB %v is above CURRENT_TCB %v", res.CommittedTCB, res.CurrentTCB)
	}
	return res, nil
}

// checkKey reads a VCEK or VLEK and chains it to AMD's root for its
// product at at (checking a chain given beside it), or recalls that it did.
func (v *Verifier) checkKey(key abi.ReportSigner, cert, chain []byte, at time.Time) (*checkedKey, error) {
	h := sha256.New()
	for _, b := range [][]byte{{byte(key)}, cert, chain} {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var id [32]byte
	h.Sum(id[:0])
	v.mu.Lock()
	k, ok := v.keys[id]
	v.mu.Unlock()
	if ok && !at.Before(k.from) && !at.After(k.until) {
		return k, nil
	}

	item := key.String() + " certificate"
	ek, err := ParseCertificate(item, cert)
	if err != nil {
		return nil, err
	}
	e, err := readEndorsement(ek)
	if err != nil {
		return nil, fail(tee.ReasonMalformed, item, err)
	}
	switch {
	case key == abi.VcekReportSigner && len(e.HWID) == 0:
		return nil, failf(tee.ReasonMalformed, item, "a VCEK without the chip's HWID")
	case key == abi.VlekReportSigner && e.CSPID == "":
		return nil, failf(tee.ReasonMalformed, item, "a VLEK without the cloud provider's id")
	}
	roots, err := trust.GetDefaultRootCerts(e.ProductLine)
	if err != nil {
		return nil, fail(tee.ReasonUnsupported, item, err)
	}
	if err := checkGivenChain(chain, roots, key, ek); err != nil {
		return nil, err
	}
	if err := verifyCertificate(ek, roots, key, at); err != nil {
		return nil, err
	}
	k = &checkedKey{cert: ek, endorsement: e, from: ek.NotBefore, until: ek.NotAfter}
	ica := roots.ProductCerts.Ask
	if key == abi.VlekReportSigner {
		ica = roots.ProductCerts.Asvk
	}
	for _, c := range []*x509.Certificate{roots.ProductCerts.Ark, ica} {
		if c != nil {
			k.from, k.until = latest(k.from, c.NotBefore), earliest(k.until, c.NotAfter)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.keys) >= maxCached {
		clear(v.keys)
	}
	v.keys[id] = k
	return k, nil
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// sameChip reports whether a report's CHIP_ID is the chip a VCEK's HWID
// names: equal, or (Turin's 8-byte ids) equal where the HWID has bytes
// and zero beyond. A host may mask the CHIP_ID (all zeros): the VCEK's
// signature alone then ties the report to the chip.
func sameChip(chipID, hwid []byte) bool {
	if allZero(chipID) {
		return true
	}
	return len(hwid) <= len(chipID) && bytes.Equal(chipID[:len(hwid)], hwid) && allZero(chipID[len(hwid):])
}

// checkGivenChain refuses a chain that is not AMD's for the product: an
// ARK other than the built-in one, an ASK it did not sign, or an ASK that
// did not sign the VCEK.
func checkGivenChain(chain []byte, roots *trust.AMDRootCerts, key abi.ReportSigner, ek *x509.Certificate) error {
	if len(bytes.TrimSpace(chain)) == 0 {
		return nil
	}
	askDER, arkDER, err := kds.ParseProductCertChain(chain)
	if err != nil {
		return fail(tee.ReasonMalformed, "certificate chain", err)
	}
	ask, err := x509.ParseCertificate(askDER)
	if err != nil {
		return fail(tee.ReasonMalformed, "certificate chain", err)
	}
	ark, err := x509.ParseCertificate(arkDER)
	if err != nil {
		return fail(tee.ReasonMalformed, "certificate chain", err)
	}
	builtin := roots.ProductCerts.Ark
	if !bytes.Equal(ark.RawSubjectPublicKeyInfo, builtin.RawSubjectPublicKeyInfo) {
		return failf(tee.ReasonChain, "certificate chain", "its ARK (%q) is not AMD's %s root", ark.Subject.CommonName, roots.ProductLine)
	}
	if err := ask.CheckSignatureFrom(builtin); err != nil {
		return failf(tee.ReasonChain, "certificate chain", "its %q is not signed by AMD's %s root: %v", ask.Subject.CommonName, roots.ProductLine, err)
	}
	if err := ek.CheckSignatureFrom(ask); err != nil {
		return failf(tee.ReasonChain, key.String()+" certificate", "not issued by the chain's %q: %v", ask.Subject.CommonName, err)
	}
	return nil
}

// verifyCertificate chains the VCEK or VLEK to AMD's built-in roots at at.
func verifyCertificate(ek *x509.Certificate, roots *trust.AMDRootCerts, key abi.ReportSigner, at time.Time) error {
	item := key.String() + " certificate"
	vo := roots.X509Options(at, key)
	if vo == nil {
		return failf(tee.ReasonUnsupported, item, "no built-in AMD %s root for a %v", roots.ProductLine, key)
	}
	if _, err := ek.Verify(*vo); err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return fail(tee.ReasonExpired, item, err)
		}
		return failf(tee.ReasonChain, item, "does not chain to AMD's %s root: %v", roots.ProductLine, err)
	}
	return nil
}

func result(r *spb.Report, line string, key abi.ReportSigner) *Result {
	res := &Result{
		Version: r.GetVersion(), ProductLine: line, Signer: key.String(),
		GuestSVN: r.GetGuestSvn(), Policy: r.GetPolicy(), VMPL: r.GetVmpl(),
		ReportedTCB: TCB(r.GetReportedTcb()), CurrentTCB: TCB(r.GetCurrentTcb()),
		CommittedTCB: TCB(r.GetCommittedTcb()), LaunchTCB: TCB(r.GetLaunchTcb()),
	}
	policy, _ := abi.ParseSnpPolicy(r.GetPolicy()) // ParseReport checked it
	res.Debug = policy.Debug
	copy(res.Measurement[:], r.GetMeasurement())
	copy(res.HostData[:], r.GetHostData())
	copy(res.ReportData[:], r.GetReportData())
	copy(res.ChipID[:], r.GetChipId())
	return res
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func fail(r tee.Reason, item string, err error) *tee.Error {
	return &tee.Error{TEE: tee.SEVSNP, Reason: r, Item: item, Err: err}
}

func failf(r tee.Reason, item, format string, args ...any) *tee.Error {
	return fail(r, item, fmt.Errorf(format, args...))
}
