package sgx

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloister-cc/cloister/libs/tee"
)

// Options are the inputs of a verification besides the quote.
type Options struct {
	// At is the time at which certificates, CRLs and collateral must be
	// valid. Required: the verifier never reads the clock itself.
	At time.Time
	// Collateral for the quote's platform. Required.
	Collateral *Collateral
	// RootKey is the trust anchor; nil means IntelRootKey(). Simulation
	// quotes are verified with the deployment's simulation root instead.
	RootKey *ecdsa.PublicKey
	// SkipCRL skips the revocation checks (and tolerates missing CRLs).
	SkipCRL bool
}

// Result is what a verified quote proves.
type Result struct {
	// TEE is "sgx" or "tdx".
	TEE string
	// Status is the converged TCB status of platform and quoting enclave.
	Status         TCBStatus
	PlatformStatus TCBStatus
	QEStatus       TCBStatus
	Advisories     []string
	TCBDate        time.Time
	FMSPC          [6]byte
	// The enclave's identity and data, from the signed report body (an
	// SGX quote's).
	MRENCLAVE [32]byte
	MRSIGNER  [32]byte
	ISVProdID uint16
	ISVSVN    uint16
	// Debug is the enclave's, or the TD's, debug attribute.
	Debug      bool
	ReportData [64]byte
	// TD is a TDX quote's TD report (MRTD, RTMRs, the TDX module's
	// identity), and ModuleStatus its TDX module's TCB status (UpToDate
	// for a module of version 0, whose SVN the platform level covers).
	TD           *TDReport
	ModuleStatus TCBStatus
}

// Verify checks an SGX ECDSA quote v3 or a TDX ECDSA quote v4 completely
// and offline: the PCK chain up to the root key and its CRLs, the
// collateral's signatures, chains and dates (a TCB Info and QE Identity
// for the quote's TEE), the QE report's signature and its binding of the
// attestation key, the quote's signature, the QE identity, the platform's
// TCB level and, for TDX, the TDX module's identity and level. It returns
// the result with the converged TCB status; whether that status (or a
// debug enclave or TD) is acceptable is a Policy's decision.
//
// Verify caches nothing; a Verifier does the same checks and remembers
// those that depend only on the collateral and the PCK chain.
func Verify(raw []byte, opts Options) (*Result, error) {
	return NewVerifier(opts.RootKey).Verify(raw, opts)
}

// Verifier verifies quotes against one root key. The checks that depend
// only on the collateral (its chains, signatures and CRLs) and on a
// platform's PCK chain are remembered by the SHA-256 of their bytes, with
// the time window in which their date checks hold: changed collateral or
// CRLs have other bytes and are checked afresh, and a time outside the
// window repeats every check. Safe for concurrent use.
type Verifier struct {
	root        *ecdsa.PublicKey
	tcbSignerCN string
	qeVendorID  [16]byte

	mu          sync.Mutex
	collaterals map[[32]byte]*checkedCollateral
	chains      map[[32]byte]*checkedChain
}

// maxCached bounds each cache; past it the cache starts afresh.
const maxCached = 4096

// Intel's names for what a genuine quote and its collateral carry.
const (
	IntelTCBSignerCN = "Intel SGX TCB Signing"
)

// IntelQEVendorID is the QE vendor ID of Intel's quoting enclave.
var IntelQEVendorID = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithTCBSigner sets the subject CN that the certificate signing TCB Info
// and QE Identity must have (Intel's by default).
func WithTCBSigner(cn string) VerifierOption { return func(v *Verifier) { v.tcbSignerCN = cn } }

// WithQEVendorID sets the QE vendor ID quotes must carry (Intel's by default).
func WithQEVendorID(id [16]byte) VerifierOption { return func(v *Verifier) { v.qeVendorID = id } }

// NewVerifier returns a verifier anchored at root; nil means IntelRootKey().
// It expects Intel's TCB signer and QE vendor unless options say otherwise.
func NewVerifier(root *ecdsa.PublicKey, opts ...VerifierOption) *Verifier {
	if root == nil {
		root = pinnedRoot() // a verifier never changes its root key
	}
	v := &Verifier{root: root, tcbSignerCN: IntelTCBSignerCN, qeVendorID: IntelQEVendorID,
		collaterals: map[[32]byte]*checkedCollateral{}, chains: map[[32]byte]*checkedChain{}}
	for _, o := range opts {
		o(v)
	}
	return v
}

// window is when a set of date checks holds: from (inclusive) until
// (exclusive).
type window struct{ from, until time.Time }

func (w window) holds(at time.Time) bool { return !at.Before(w.from) && at.Before(w.until) }

// narrow shrinks w to lie within [from, until).
func (w *window) narrow(from, until time.Time) {
	if w.from.IsZero() || from.After(w.from) {
		w.from = from
	}
	if w.until.IsZero() || until.Before(w.until) {
		w.until = until
	}
}

// certWindow is when a certificate is valid: NotAfter is inclusive.
func certWindow(w *window, c *x509.Certificate) {
	w.narrow(c.NotBefore, c.NotAfter.Add(time.Nanosecond))
}

type checkedCollateral struct {
	window  window
	tcbInfo *TCBInfo
	qeID    *QEIdentity
	// revoked holds the revoked serials of both CRLs, keyed by issuer
	// and serial; nil when CRLs were skipped.
	revoked      map[string]bool
	pckCRLIssuer []byte // raw subject of the PCK CRL's issuer
	rootCRL      *x509.RevocationList
	pckCRL       *x509.RevocationList

	// The PCK CRL's signature is checked with the quote's PCK CA, which
	// the collateral does not carry; remember which CAs checked it.
	mu           sync.Mutex
	pckCRLSigned map[[32]byte]bool
}

func (c *checkedCollateral) pckCRLCheckedWith(ca *x509.Certificate) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pckCRLSigned[sha256.Sum256(ca.Raw)]
}

func (c *checkedCollateral) markPCKCRLChecked(ca *x509.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pckCRLSigned == nil {
		c.pckCRLSigned = map[[32]byte]bool{}
	}
	c.pckCRLSigned[sha256.Sum256(ca.Raw)] = true
}

type checkedChain struct {
	window     window
	pck, pckCA *x509.Certificate
	root       *x509.Certificate
	pckKey     *ecdsa.PublicKey
	ext        PCKExtension
}

func revokedKey(issuer []byte, serial *big.Int) string { return string(issuer) + "/" + serial.String() }

// Verify is the package's Verify with the verifier's root and caches;
// opts.RootKey is ignored.
func (v *Verifier) Verify(raw []byte, opts Options) (*Result, error) {
	if opts.At.IsZero() {
		return nil, failf(ReasonMalformed, "options", "no verification time given")
	}
	if opts.Collateral == nil {
		return nil, failf(ReasonMalformed, "options", "no collateral given")
	}
	e, err := v.Evidence(raw, opts.At)
	if err != nil {
		return nil, err
	}
	return v.VerifyEvidence(e, opts)
}

// Evidence is a quote whose PCK certificate chain was verified: its
// platform is known, and VerifyEvidence finishes its verification with
// that platform's collateral.
type Evidence struct {
	quote *Quote
	chain *checkedChain
}

// Platform returns the SGX extension of the verified PCK certificate and
// the kind of its PCK CA ("processor" or "platform", see PCKCAKind): what
// picks the collateral.
func (e *Evidence) Platform() (PCKExtension, string) {
	return e.chain.ext, PCKCAKind(e.chain.pckCA.Subject.CommonName)
}

// TEE names the quote's TEE: "sgx" or "tdx".
func (e *Evidence) TEE() string { return e.quote.TEE() }

// Evidence parses raw and verifies its PCK certificate chain at at.
func (v *Verifier) Evidence(raw []byte, at time.Time) (*Evidence, error) {
	q, err := ParseQuote(raw)
	if err != nil {
		return nil, err
	}
	chain, err := v.checkChain(q.CertData, at)
	if err != nil {
		return nil, err
	}
	return &Evidence{quote: q, chain: chain}, nil
}

// VerifyEvidence finishes the verification of e, made by this verifier's
// Evidence: it is Verify without parsing the quote or checking its chain
// again (again only if opts.At is outside the chain's validity).
func (v *Verifier) VerifyEvidence(e *Evidence, opts Options) (*Result, error) {
	if opts.At.IsZero() {
		return nil, failf(ReasonMalformed, "options", "no verification time given")
	}
	if opts.Collateral == nil {
		return nil, failf(ReasonMalformed, "options", "no collateral given")
	}
	q, chain := e.quote, e.chain
	if !chain.window.holds(opts.At) {
		var err error
		if chain, err = v.checkChain(q.CertData, opts.At); err != nil {
			return nil, err
		}
	}
	if q.Header.QEVendorID != v.qeVendorID {
		return nil, failf(ReasonQEIdentity, "quote", "QE vendor ID %x is not the expected %x", q.Header.QEVendorID, v.qeVendorID)
	}
	col, err := v.checkCollateral(opts.Collateral, opts.At, opts.SkipCRL)
	if err != nil {
		return nil, err
	}
	if want := q.collateralID(); cmp.Or(col.tcbInfo.ID, "SGX") != want {
		return nil, failf(ReasonMismatch, "TCB Info", "is for %s, but the quote is a %s quote", cmp.Or(col.tcbInfo.ID, "SGX"), want)
	}

	if !opts.SkipCRL {
		if !bytes.Equal(chain.pckCA.RawSubject, col.pckCRLIssuer) {
			return nil, failf(ReasonMismatch, "PCK CRL", "issued by %q, but the quote's PCK CA is %q",
				col.pckCRL.Issuer.CommonName, chain.pckCA.Subject.CommonName)
		}
		if !col.pckCRLCheckedWith(chain.pckCA) {
			if err := CheckCRL("PCK CRL", col.pckCRL, chain.pckCA, opts.At); err != nil {
				return nil, err
			}
			col.markPCKCRLChecked(chain.pckCA)
		}
		if col.revoked[revokedKey(chain.pckCA.RawIssuer, chain.pckCA.SerialNumber)] {
			return nil, failf(ReasonRevoked, "PCK CA certificate", "serial %x is on the Root CA CRL", chain.pckCA.SerialNumber)
		}
		if col.revoked[revokedKey(chain.pck.RawIssuer, chain.pck.SerialNumber)] {
			return nil, failf(ReasonRevoked, "PCK certificate", "serial %x is on the PCK CRL", chain.pck.SerialNumber)
		}
	}
	if col.tcbInfo.FMSPC != chain.ext.FMSPC || col.tcbInfo.PCEID != chain.ext.PCEID {
		return nil, failf(ReasonMismatch, "TCB Info", "for FMSPC %x PCE-ID %x, but the PCK certificate names FMSPC %x PCE-ID %x",
			col.tcbInfo.FMSPC, col.tcbInfo.PCEID, chain.ext.FMSPC, chain.ext.PCEID)
	}

	// The QE report is signed by the PCK key and binds the attestation key.
	if !verifyRS(chain.pckKey, q.QEReportRaw(), q.QEReportSignature) {
		return nil, failf(ReasonQESignature, "QE report", "signature does not verify with the PCK certificate's key")
	}
	h := sha256.New()
	h.Write(q.AttestationKey[:])
	h.Write(q.QEAuthData)
	if !bytes.Equal(q.QEReport.ReportData[:32], h.Sum(nil)) || !bytes.Equal(q.QEReport.ReportData[32:], make([]byte, 32)) {
		return nil, failf(ReasonQEReportData, "QE report", "report data is not SHA-256(attestation key ‖ QE auth data) followed by zeros")
	}

	// The quote is signed by the attestation key.
	attKey, err := parseRawP256(q.AttestationKey)
	if err != nil {
		return nil, err
	}
	if !verifyRS(attKey, q.Signed(), q.Signature) {
		return nil, failf(ReasonQuoteSignature, "quote", "signature does not verify with the attestation key")
	}

	// Identity and TCB levels.
	qeLevel, err := col.qeID.QELevel(q.QEReport.MiscSelect, q.QEReport.Attributes, q.QEReport.MRSIGNER, q.QEReport.ISVProdID, q.QEReport.ISVSVN)
	if err != nil {
		return nil, err
	}
	if q.TDReport != nil {
		return tdxResult(q, chain, col.tcbInfo, qeLevel)
	}
	level, err := col.tcbInfo.PlatformLevel(chain.ext.TCBComponents, chain.ext.PCESVN)
	if err != nil {
		return nil, err
	}
	return &Result{
		TEE:            tee.SGX,
		Status:         Converge(level.Status, qeLevel.Status),
		PlatformStatus: level.Status,
		QEStatus:       qeLevel.Status,
		Advisories:     mergeAdvisories(level.AdvisoryIDs, qeLevel.AdvisoryIDs),
		TCBDate:        level.TCBDate,
		FMSPC:          chain.ext.FMSPC,
		MRENCLAVE:      q.Body.MRENCLAVE,
		MRSIGNER:       q.Body.MRSIGNER,
		ISVProdID:      q.Body.ISVProdID,
		ISVSVN:         q.Body.ISVSVN,
		Debug:          q.Body.Debug(),
		ReportData:     q.Body.ReportData,
	}, nil
}

// tdxResult evaluates a TDX quote's TCB: the platform's level, then its
// TDX module's, then the quoting enclave's, converged in that order as
// Intel's QVL does.
func tdxResult(q *Quote, chain *checkedChain, tcb *TCBInfo, qeLevel *QETCBLevel) (*Result, error) {
	td := *q.TDReport
	module, err := tcb.TDXModuleLevel(td.MRSIGNERSEAM, td.SEAMAttributes, td.TEETCBSVN)
	if err != nil {
		return nil, err
	}
	level, err := tcb.TDXLevel(chain.ext.TCBComponents, chain.ext.PCESVN, td.TEETCBSVN)
	if err != nil {
		return nil, err
	}
	moduleStatus, moduleAdvisories := StatusUpToDate, []string(nil)
	if module != nil {
		moduleStatus, moduleAdvisories = module.Status, module.AdvisoryIDs
	}
	platform := Converge(level.Status, moduleStatus)
	return &Result{
		TEE:            tee.TDX,
		Status:         Converge(platform, qeLevel.Status),
		PlatformStatus: platform,
		QEStatus:       qeLevel.Status,
		ModuleStatus:   moduleStatus,
		Advisories:     mergeAdvisories(slices.Concat(level.AdvisoryIDs, moduleAdvisories), qeLevel.AdvisoryIDs),
		TCBDate:        level.TCBDate,
		FMSPC:          chain.ext.FMSPC,
		Debug:          td.Debug(),
		ReportData:     td.ReportData,
		TD:             &td,
	}, nil
}

// collateralID is the id of the TCB Info a quote needs: "SGX" or "TDX".
func (q *Quote) collateralID() string {
	if q.TDReport != nil {
		return "TDX"
	}
	return "SGX"
}

// checkChain verifies a quote's PCK chain, or recalls that it did.
func (v *Verifier) checkChain(certData []byte, at time.Time) (*checkedChain, error) {
	key := sha256.Sum256(certData)
	v.mu.Lock()
	c, ok := v.chains[key]
	v.mu.Unlock()
	if ok && c.window.holds(at) {
		return c, nil
	}
	certs, err := ParseCertificates(certData)
	if err != nil {
		return nil, err
	}
	chain, err := VerifyChain("PCK certificate chain", certs, v.root, at)
	if err != nil {
		return nil, err
	}
	if len(chain) != 3 {
		return nil, failf(ReasonChain, "PCK certificate chain", "%d certificates, want leaf, PCK CA and root", len(chain))
	}
	c = &checkedChain{pck: chain[0], pckCA: chain[1], root: chain[2]}
	for _, cert := range chain {
		certWindow(&c.window, cert)
	}
	var isKey bool
	c.pckKey, isKey = c.pck.PublicKey.(*ecdsa.PublicKey)
	if !isKey || c.pckKey.Curve != elliptic.P256() {
		return nil, failf(ReasonUnsupported, "PCK certificate", "public key is not ECDSA P-256")
	}
	if c.ext, err = ParsePCKExtension(c.pck); err != nil {
		return nil, err
	}
	v.remember(func() {
		if len(v.chains) >= maxCached {
			clear(v.chains)
		}
		v.chains[key] = c
	})
	return c, nil
}

// checkCollateral verifies the collateral's chains, signatures, dates and
// CRLs, or recalls that it did.
func (v *Verifier) checkCollateral(col *Collateral, at time.Time, skipCRL bool) (*checkedCollateral, error) {
	key := collateralKey(col, skipCRL)
	v.mu.Lock()
	c, ok := v.collaterals[key]
	v.mu.Unlock()
	if ok && c.window.holds(at) {
		return c, nil
	}
	c = &checkedCollateral{}
	tcbChain, err := v.signerOf("TCB signing chain", col.TCBInfoIssuerChain, at, &c.window)
	if err != nil {
		return nil, err
	}
	// Intel signs both with one certificate, sent twice: checked once.
	qeChain := tcbChain
	if !bytes.Equal(col.QEIdentityIssuerChain, col.TCBInfoIssuerChain) {
		if qeChain, err = v.signerOf("QE Identity signing chain", col.QEIdentityIssuerChain, at, &c.window); err != nil {
			return nil, err
		}
	}
	tcbSigner, qeSigner := tcbChain[0], qeChain[0]
	if err := VerifySignedJSON("TCB Info", col.TCBInfoJSON, col.TCBInfoSignature, tcbSigner.PublicKey.(*ecdsa.PublicKey)); err != nil {
		return nil, err
	}
	if c.tcbInfo, err = ParseTCBInfo(col.TCBInfoJSON); err != nil {
		return nil, err
	}
	if err := CheckDates("TCB Info", c.tcbInfo.IssueDate, c.tcbInfo.NextUpdate, at); err != nil {
		return nil, err
	}
	c.window.narrow(c.tcbInfo.IssueDate, c.tcbInfo.NextUpdate)
	if err := VerifySignedJSON("QE Identity", col.QEIdentityJSON, col.QEIdentitySignature, qeSigner.PublicKey.(*ecdsa.PublicKey)); err != nil {
		return nil, err
	}
	if c.qeID, err = ParseQEIdentity(col.QEIdentityJSON); err != nil {
		return nil, err
	}
	if c.qeID.ID != "QE" && c.qeID.ID != "TD_QE" {
		return nil, failf(ReasonMismatch, "QE Identity", "describes %s, not a quoting enclave (QE or TD_QE)", c.qeID.ID)
	}
	if (c.qeID.ID == "TD_QE") != (c.tcbInfo.ID == "TDX") {
		return nil, failf(ReasonMismatch, "QE Identity", "describes %s, but the TCB Info is for %s", c.qeID.ID, cmp.Or(c.tcbInfo.ID, "SGX"))
	}
	if err := CheckDates("QE Identity", c.qeID.IssueDate, c.qeID.NextUpdate, at); err != nil {
		return nil, err
	}
	c.window.narrow(c.qeID.IssueDate, c.qeID.NextUpdate)

	if !skipCRL {
		if err := v.checkCRLs(c, col, at, tcbChain[len(tcbChain)-1], tcbSigner, qeSigner); err != nil {
			return nil, err
		}
	}
	v.remember(func() {
		if len(v.collaterals) >= maxCached {
			clear(v.collaterals)
		}
		v.collaterals[key] = c
	})
	return c, nil
}

// checkCRLs verifies both CRLs and indexes their revoked serials. The Root
// CA CRL is checked here against root, the root certificate of the
// verified TCB signing chain; the PCK CRL's signature is checked per
// quote, against the quote's own PCK CA.
func (v *Verifier) checkCRLs(c *checkedCollateral, col *Collateral, at time.Time, root *x509.Certificate, signers ...*x509.Certificate) error {
	if len(col.RootCACRL) == 0 || len(col.PCKCRL) == 0 {
		return failf(ReasonMalformed, "collateral", "CRLs are missing (verify with SkipCRL to go without)")
	}
	var err error
	if c.rootCRL, err = ParseCRL(col.RootCACRL); err != nil {
		return err
	}
	if err := CheckCRL("Root CA CRL", c.rootCRL, root, at); err != nil {
		return err
	}
	c.window.narrow(c.rootCRL.ThisUpdate, c.rootCRL.NextUpdate)
	if c.pckCRL, err = ParseCRL(col.PCKCRL); err != nil {
		return err
	}
	c.window.narrow(c.pckCRL.ThisUpdate, c.pckCRL.NextUpdate)
	c.pckCRLIssuer = c.pckCRL.RawIssuer
	c.revoked = map[string]bool{}
	for _, crl := range []*x509.RevocationList{c.rootCRL, c.pckCRL} {
		for _, e := range crl.RevokedCertificateEntries {
			c.revoked[revokedKey(crl.RawIssuer, e.SerialNumber)] = true
		}
	}
	for _, s := range signers {
		if c.revoked[revokedKey(s.RawIssuer, s.SerialNumber)] {
			return failf(ReasonRevoked, "collateral signing certificate", "serial %x is on the Root CA CRL", s.SerialNumber)
		}
	}
	return nil
}

func (v *Verifier) remember(f func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f()
}

// collateralKey is the SHA-256 of every collateral field the verification
// reads, length-prefixed: the CRLs are left out when they are skipped.
func collateralKey(col *Collateral, skipCRL bool) [32]byte {
	h := sha256.New()
	fields := [][]byte{col.TCBInfoJSON, col.TCBInfoSignature, col.TCBInfoIssuerChain, col.QEIdentityJSON,
		col.QEIdentitySignature, col.QEIdentityIssuerChain, col.RootCACRL, col.PCKCRL}
	if skipCRL {
		fields = fields[:6]
	}
	for _, b := range fields {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	if skipCRL {
		h.Write([]byte{1})
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// signerOf verifies a collateral issuer chain and returns it, [signer,
// root]: the signer must be the TCB signing certificate itself, directly
// under the root: any other certificate under the root (a platform's PCK
// certificate, say) must not be able to vouch for a TCB evaluation.
func (v *Verifier) signerOf(item string, pemChain []byte, at time.Time, w *window) ([]*x509.Certificate, error) {
	certs, err := ParseCertificates(pemChain)
	if err != nil {
		return nil, err
	}
	chain, err := VerifyChain(item, certs, v.root, at)
	if err != nil {
		return nil, err
	}
	signer := chain[0]
	switch {
	case len(chain) != 2:
		return nil, failf(ReasonChain, item, "%d certificates, want the TCB signing certificate and the root", len(chain))
	case signer.Subject.CommonName != v.tcbSignerCN:
		return nil, failf(ReasonChain, item, "signed by %q, not %q", signer.Subject.CommonName, v.tcbSignerCN)
	case signer.IsCA || signer.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return nil, failf(ReasonChain, item, "the signing certificate is a CA or may not sign")
	}
	for _, c := range chain {
		certWindow(w, c)
	}
	if _, ok := chain[0].PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, failf(ReasonUnsupported, item, "signing key is not ECDSA")
	}
	return chain, nil
}

// verifyRS checks a raw r‖s P-256 signature over SHA-256 of msg.
func verifyRS(key *ecdsa.PublicKey, msg []byte, sig [64]byte) bool {
	digest := sha256.Sum256(msg)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(key, digest[:], r, s)
}

// parseRawP256 turns a raw x‖y point into a public key, refusing points
// that are not on the curve.
func parseRawP256(xy [64]byte) (*ecdsa.PublicKey, error) {
	uncompressed := append([]byte{4}, xy[:]...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), uncompressed)
	if err != nil {
		return nil, fail(ReasonMalformed, "attestation key", errors.New("not a point on P-256"))
	}
	return pub, nil
}

func mergeAdvisories(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// CheckCollateral verifies collateral on its own, as Verify would (chains,
// signatures, dates and, unless skipCRL, the Root CA CRL), and returns its
// TCB Info, so a store can refuse bad collateral at upload and file it by
// FMSPC. The PCK CRL's signature needs the quote's PCK CA and is checked
// at verification.
func (v *Verifier) CheckCollateral(col *Collateral, at time.Time, skipCRL bool) (*TCBInfo, error) {
	if col == nil {
		return nil, failf(ReasonMalformed, "collateral", "none given")
	}
	c, err := v.checkCollateral(col, at, skipCRL)
	if err != nil {
		return nil, err
	}
	return c.tcbInfo, nil
}

// PCKCAKind names the kind of PCK CA from its common name: "platform" for
// Intel SGX PCK Platform CA, "processor" otherwise.
func PCKCAKind(commonName string) string {
	if strings.Contains(commonName, "Platform") {
		return "platform"
	}
	return "processor"
}
