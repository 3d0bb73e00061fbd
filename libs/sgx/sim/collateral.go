package sim

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/libs/sgx"
)

// collateralValidity is how long simulated collateral is valid after now;
// it is issued an hour before now. Intel's is valid for 30 days as well.
const collateralValidity = 30 * 24 * time.Hour

// tcbEvaluationDataNumber is the simulation's only TCB recovery event.
const tcbEvaluationDataNumber = 1

// CollateralOption changes what Collateral produces.
type CollateralOption func(*collateralOptions)

type collateralOptions struct {
	levels []sgx.TCBLevel
	tdx    bool
}

// ForTDX makes TDX collateral, for QuoteTD's quotes: a TCB Info with id
// TDX, whose levels also ask for TEE_TCB_SVN components of zero and whose
// TDX module (version 0) is signed by zeros with no attributes, as
// Intel's; and a QE Identity with id TD_QE, describing the simulated QE.
func ForTDX() CollateralOption { return func(o *collateralOptions) { o.tdx = true } }

// WithTCBLevels replaces the TCB Info's levels, which by default are one
// level, UpToDate, at exactly the platform's TCB. Give them newest first,
// as Intel does; a zero TCBDate means the collateral's issue date.
// Collateral refuses a status that is not one of Intel's.
func WithTCBLevels(levels ...sgx.TCBLevel) CollateralOption {
	return func(o *collateralOptions) { o.levels = slices.Clone(levels) }
}

// Collateral returns simulated collateral for platform p, valid from an
// hour before now for 30 days: a TCB Info v3 (id SGX, p's FMSPC and PCE-ID)
// and a QE Identity v2 matching the simulated QE, both signed (r‖s) by the
// root's TCB signing key, with the issuer chain (PEM, signer then root);
// a Root CA CRL issued by the root, empty; and a PCK CRL issued by the PCK
// CA, listing the serials given to RevokePCK, with its issuer chain (PEM,
// PCK CA then root). It verifies with sgx.NewVerifier(r.PublicKey(), VerifierOptions()...) at
// now. Signatures use crypto/rand.
func (r *Root) Collateral(p Platform, now time.Time, opts ...CollateralOption) (*sgx.Collateral, error) {
	o := collateralOptions{levels: []sgx.TCBLevel{{
		SGXComponents: p.TCBComponents,
		PCESVN:        p.PCESVN,
		Status:        sgx.StatusUpToDate,
	}}}
	for _, opt := range opts {
		opt(&o)
	}
	issueDate := now.Add(-backdate).UTC().Truncate(time.Second)
	nextUpdate := now.Add(collateralValidity).UTC().Truncate(time.Second)

	tcbInfo, err := tcbInfoJSON(p, issueDate, nextUpdate, o.levels, o.tdx)
	if err != nil {
		return nil, err
	}
	qeIdentity, err := qeIdentityJSON(issueDate, nextUpdate, o.tdx)
	if err != nil {
		return nil, err
	}
	tcbSig, err := signRS(r.tcbSignerKey, tcbInfo)
	if err != nil {
		return nil, fmt.Errorf("signing simulated TCB Info: %w", err)
	}
	qeSig, err := signRS(r.tcbSignerKey, qeIdentity)
	if err != nil {
		return nil, fmt.Errorf("signing simulated QE Identity: %w", err)
	}

	number := big.NewInt(max(now.Unix(), 1))
	rootCRL, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     number,
		ThisUpdate: issueDate,
		NextUpdate: nextUpdate,
	}, r.cert, r.key)
	if err != nil {
		return nil, fmt.Errorf("issuing simulated Root CA CRL: %w", err)
	}
	var revoked []x509.RevocationListEntry
	for _, s := range r.revokedSerials() {
		revoked = append(revoked, x509.RevocationListEntry{SerialNumber: s, RevocationTime: issueDate})
	}
	pckCRL, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                issueDate,
		NextUpdate:                nextUpdate,
		RevokedCertificateEntries: revoked,
	}, r.pckCA, r.pckCAKey)
	if err != nil {
		return nil, fmt.Errorf("issuing simulated PCK CRL: %w", err)
	}

	signingChain := pemChain(r.tcbSigner, r.cert)
	return &sgx.Collateral{
		TCBInfoJSON:           tcbInfo,
		TCBInfoSignature:      tcbSig[:],
		TCBInfoIssuerChain:    signingChain,
		QEIdentityJSON:        qeIdentity,
		QEIdentitySignature:   qeSig[:],
		QEIdentityIssuerChain: bytes.Clone(signingChain),
		RootCACRL:             rootCRL,
		PCKCRL:                pckCRL,
		PCKCRLIssuerChain:     pemChain(r.pckCA, r.cert),
	}, nil
}

func pemChain(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return b.Bytes()
}

// jsonDate formats a date as Intel's collateral does.
func jsonDate(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// jsonHex formats bytes as Intel's collateral does: upper-case hex.
func jsonHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

// The JSON shapes of TCB Info v3 and QE Identity v2, fields in Intel's order.
type (
	tcbInfoWire struct {
		ID                      string         `json:"id"`
		Version                 int            `json:"version"`
		IssueDate               string         `json:"issueDate"`
		NextUpdate              string         `json:"nextUpdate"`
		FMSPC                   string         `json:"fmspc"`
		PCEID                   string         `json:"pceId"`
		TCBType                 int            `json:"tcbType"`
		TCBEvaluationDataNumber int            `json:"tcbEvaluationDataNumber"`
		TDXModule               *tdxModuleWire `json:"tdxModule,omitempty"`
		TCBLevels               []tcbLevelWire `json:"tcbLevels"`
	}
	tdxModuleWire struct {
		MRSIGNER       string `json:"mrsigner"`
		Attributes     string `json:"attributes"`
		AttributesMask string `json:"attributesMask"`
	}
	tcbLevelWire struct {
		TCB struct {
			SGXTCBComponents []svnWire `json:"sgxtcbcomponents"`
			PCESVN           uint16    `json:"pcesvn"`
			TDXTCBComponents []svnWire `json:"tdxtcbcomponents,omitempty"`
		} `json:"tcb"`
		TCBDate     string   `json:"tcbDate"`
		TCBStatus   string   `json:"tcbStatus"`
		AdvisoryIDs []string `json:"advisoryIDs,omitempty"`
	}
	svnWire struct {
		SVN uint8 `json:"svn"`
	}
	qeIdentityWire struct {
		ID                      string           `json:"id"`
		Version                 int              `json:"version"`
		IssueDate               string           `json:"issueDate"`
		NextUpdate              string           `json:"nextUpdate"`
		TCBEvaluationDataNumber int              `json:"tcbEvaluationDataNumber"`
		MiscSelect              string           `json:"miscselect"`
		MiscSelectMask          string           `json:"miscselectMask"`
		Attributes              string           `json:"attributes"`
		AttributesMask          string           `json:"attributesMask"`
		MRSIGNER                string           `json:"mrsigner"`
		ISVProdID               int              `json:"isvprodid"`
		TCBLevels               []qeTCBLevelWire `json:"tcbLevels"`
	}
	qeTCBLevelWire struct {
		TCB struct {
			ISVSVN uint16 `json:"isvsvn"`
		} `json:"tcb"`
		TCBDate   string `json:"tcbDate"`
		TCBStatus string `json:"tcbStatus"`
	}
)

func tcbInfoJSON(p Platform, issueDate, nextUpdate time.Time, levels []sgx.TCBLevel, tdx bool) ([]byte, error) {
	if len(levels) == 0 {
		return nil, fmt.Errorf("sim: TCB Info needs at least one TCB level")
	}
	w := tcbInfoWire{
		ID:                      map[bool]string{false: "SGX", true: "TDX"}[tdx],
		Version:                 3,
		IssueDate:               jsonDate(issueDate),
		NextUpdate:              jsonDate(nextUpdate),
		FMSPC:                   jsonHex(p.FMSPC[:]),
		PCEID:                   jsonHex(p.PCEID[:]),
		TCBType:                 0,
		TCBEvaluationDataNumber: tcbEvaluationDataNumber,
	}
	for i, l := range levels {
		if !slices.Contains(sgx.AllStatuses, l.Status) {
			return nil, fmt.Errorf("sim: TCB level %d: unknown status %q", i, l.Status)
		}
		var lw tcbLevelWire
		for _, svn := range l.SGXComponents {
			lw.TCB.SGXTCBComponents = append(lw.TCB.SGXTCBComponents, svnWire{svn})
		}
		lw.TCB.PCESVN = l.PCESVN
		if tdx {
			for _, svn := range l.TDXComponents {
				lw.TCB.TDXTCBComponents = append(lw.TCB.TDXTCBComponents, svnWire{svn})
			}
		}
		date := l.TCBDate
		if date.IsZero() {
			date = issueDate
		}
		lw.TCBDate = jsonDate(date)
		lw.TCBStatus = string(l.Status)
		lw.AdvisoryIDs = l.AdvisoryIDs
		w.TCBLevels = append(w.TCBLevels, lw)
	}
	if tdx {
		w.TDXModule = &tdxModuleWire{MRSIGNER: jsonHex(make([]byte, 48)), Attributes: "0000000000000000", AttributesMask: "FFFFFFFFFFFFFFFF"}
	}
	return json.Marshal(w)
}

// qeIdentityJSON describes the simulated QE (as the TD_QE for TDX, a role
// it plays too): MISCSELECT must be zero, the
// attributes are compared except MODE64BIT and XFRM (Intel's masks), and
// MRSIGNER and ISVPRODID must be the simulated QE's. Its one level,
// UpToDate, is the simulated QE's ISVSVN.
func qeIdentityJSON(issueDate, nextUpdate time.Time, tdx bool) ([]byte, error) {
	var attrs, mask [16]byte
	attrs[0] = qeAttributes0 &^ sgx.AttributeMode64
	for i := range 8 {
		mask[i] = 0xff
	}
	mask[0] &^= sgx.AttributeMode64
	w := qeIdentityWire{
		ID:                      map[bool]string{false: "QE", true: "TD_QE"}[tdx],
		Version:                 2,
		IssueDate:               jsonDate(issueDate),
		NextUpdate:              jsonDate(nextUpdate),
		TCBEvaluationDataNumber: tcbEvaluationDataNumber,
		MiscSelect:              "00000000",
		MiscSelectMask:          "FFFFFFFF",
		Attributes:              jsonHex(attrs[:]),
		AttributesMask:          jsonHex(mask[:]),
		MRSIGNER:                jsonHex(qeMRSIGNER[:]),
		ISVProdID:               qeISVProdID,
		TCBLevels:               make([]qeTCBLevelWire, 1),
	}
	w.TCBLevels[0].TCB.ISVSVN = qeISVSVN
	w.TCBLevels[0].TCBDate = jsonDate(issueDate)
	w.TCBLevels[0].TCBStatus = string(sgx.StatusUpToDate)
	return json.Marshal(w)
}

// VerifierOptions are what a verifier needs to accept this simulation's
// quotes and collateral, besides the root key: its TCB signer's name and
// its QE vendor ID.
func VerifierOptions() []sgx.VerifierOption {
	return []sgx.VerifierOption{sgx.WithTCBSigner(TCBSignerCommonName), sgx.WithQEVendorID(qeVendorID)}
}
