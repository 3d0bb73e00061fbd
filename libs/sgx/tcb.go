package sgx

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TCBStatus is the status Intel gives a TCB level, named as Intel names it.
type TCBStatus string

// The TCB statuses of TCB Info (all of them) and QE Identity (UpToDate,
// OutOfDate and Revoked in practice).
const (
	StatusUpToDate                          TCBStatus = "UpToDate"
	StatusSWHardeningNeeded                 TCBStatus = "SWHardeningNeeded"
	StatusConfigurationNeeded               TCBStatus = "ConfigurationNeeded"
	StatusConfigurationAndSWHardeningNeeded TCBStatus = "ConfigurationAndSWHardeningNeeded"
	StatusOutOfDate                         TCBStatus = "OutOfDate"
	StatusOutOfDateConfigurationNeeded      TCBStatus = "OutOfDateConfigurationNeeded"
	StatusRevoked                           TCBStatus = "Revoked"
)

// platformStatus reports whether s may appear in a TCB Info level.
func platformStatus(s TCBStatus) bool {
	switch s {
	case StatusUpToDate, StatusSWHardeningNeeded, StatusConfigurationNeeded,
		StatusConfigurationAndSWHardeningNeeded, StatusOutOfDate,
		StatusOutOfDateConfigurationNeeded, StatusRevoked:
		return true
	}
	return false
}

// enclaveStatus reports whether s may appear in a QE Identity level. Intel
// publishes UpToDate, OutOfDate and Revoked; the QVL also accepts the two
// configuration statuses, and so do we, so that collateral it takes is not
// refused here.
func enclaveStatus(s TCBStatus) bool {
	switch s {
	case StatusUpToDate, StatusOutOfDate, StatusRevoked,
		StatusConfigurationNeeded, StatusOutOfDateConfigurationNeeded:
		return true
	}
	return false
}

// TCBLevel is one level of a TCB Info: the minimum SVNs a platform needs to
// be at this level, and Intel's verdict on it.
type TCBLevel struct {
	SGXComponents [16]uint8
	PCESVN        uint16
	// TDXComponents are a TDX TCB Info level's minimum TEE_TCB_SVN.
	TDXComponents [16]uint8
	TCBDate       time.Time
	Status        TCBStatus
	AdvisoryIDs   []string
}

// TCBInfo is Intel's signed list of TCB levels for one platform (FMSPC).
type TCBInfo struct {
	ID                      string // "SGX" or "TDX" (v3); "" (v2)
	Version                 int
	IssueDate, NextUpdate   time.Time
	FMSPC                   [6]byte
	PCEID                   [2]byte
	TCBType                 int
	TCBEvaluationDataNumber int
	Levels                  []TCBLevel // in Intel's order, newest first
	// A TDX TCB Info's module identities: the one of TDXModule for
	// module version 0, and one per other version.
	TDXModule           *TDXModule
	TDXModuleIdentities []TDXModule
}

// TDXModule is what a TDX module must be: signed by MRSIGNER, with the
// attributes (masked) given, and (for an identity of a module version,
// named TDX_<version, two hex digits>) at one of Levels.
type TDXModule struct {
	ID                         string
	MRSIGNER                   [48]byte
	Attributes, AttributesMask [8]byte
	Levels                     []QETCBLevel
}

// tcbInfoWire is TCB Info as JSON. Pointers tell a missing field from a
// zero one. A level's "tcb" differs between versions: both shapes are
// named here, and the version says which must be there.
type tcbInfoWire struct {
	signedWire
	FMSPC               *string                 `json:"fmspc"`
	PCEID               *string                 `json:"pceId"`
	TCBType             *int                    `json:"tcbType"`
	TCBLevels           []tcbLevelWire          `json:"tcbLevels"`
	TDXModule           *tdxModuleWire          `json:"tdxModule"`
	TDXModuleIdentities []tdxModuleIdentityWire `json:"tdxModuleIdentities"`
}

// tdxModuleWire is a TDX TCB Info's "tdxModule": what the TDX module's
// signer and attributes must be.
type tdxModuleWire struct {
	MRSIGNER       *string `json:"mrsigner"`
	Attributes     *string `json:"attributes"`
	AttributesMask *string `json:"attributesMask"`
}

// tdxModuleIdentityWire is one of "tdxModuleIdentities": a module
// version's signer, attributes and TCB levels.
type tdxModuleIdentityWire struct {
	ID *string `json:"id"`
	tdxModuleWire
	TCBLevels []qeLevelWire `json:"tcbLevels"`
}

// signedWire is what TCB Info and QE Identity both say of themselves.
type signedWire struct {
	ID                      *string `json:"id"`
	Version                 *int    `json:"version"`
	IssueDate               *string `json:"issueDate"`
	NextUpdate              *string `json:"nextUpdate"`
	TCBEvaluationDataNumber *int    `json:"tcbEvaluationDataNumber"`
}

type tcbLevelWire struct {
	TCB *tcbWire `json:"tcb"`
	levelWire
}

// levelWire is what a level of either document has besides its "tcb".
type levelWire struct {
	TCBDate     *string  `json:"tcbDate"`
	TCBStatus   *string  `json:"tcbStatus"`
	AdvisoryIDs []string `json:"advisoryIDs"`
}

// tcbWire is a level's "tcb": v3's component list, or v2's sixteen
// named components; the PCESVN in both.
type tcbWire struct {
	SGXComponents []svnWire `json:"sgxtcbcomponents"`
	C01           *int      `json:"sgxtcbcomp01svn"`
	C02           *int      `json:"sgxtcbcomp02svn"`
	C03           *int      `json:"sgxtcbcomp03svn"`
	C04           *int      `json:"sgxtcbcomp04svn"`
	C05           *int      `json:"sgxtcbcomp05svn"`
	C06           *int      `json:"sgxtcbcomp06svn"`
	C07           *int      `json:"sgxtcbcomp07svn"`
	C08           *int      `json:"sgxtcbcomp08svn"`
	C09           *int      `json:"sgxtcbcomp09svn"`
	C10           *int      `json:"sgxtcbcomp10svn"`
	C11           *int      `json:"sgxtcbcomp11svn"`
	C12           *int      `json:"sgxtcbcomp12svn"`
	C13           *int      `json:"sgxtcbcomp13svn"`
	C14           *int      `json:"sgxtcbcomp14svn"`
	C15           *int      `json:"sgxtcbcomp15svn"`
	C16           *int      `json:"sgxtcbcomp16svn"`
	PCESVN        *int      `json:"pcesvn"`
	TDXComponents []svnWire `json:"tdxtcbcomponents"`
}

type svnWire struct {
	SVN *int `json:"svn"`
}

// ParseTCBInfo parses the signed body of a TCB Info, version 2 (SGX) or 3
// (SGX or TDX). Of a TDX TCB Info only the SGX part is read: the TDX
// components and module identities are ignored. Every field the QVL
// requires must be present; a version other than 2 or 3, or a v3 id other
// than SGX or TDX, is ReasonUnsupported.
func ParseTCBInfo(raw []byte) (*TCBInfo, error) {
	const item = "TCB Info"
	// One decoding on the happy path; only when it fails is the version
	// read alone, so that a version this parser does not know is named as
	// such rather than as whatever of its shape did not fit.
	var w tcbInfoWire
	if err := decodeTCBInfoWire(raw, &w); err != nil {
		if v := wireVersion(raw); v != nil && *v != 2 && *v != 3 {
			return nil, failf(ReasonUnsupported, item, "version %d (want 2 or 3)", *v)
		}
		return nil, fail(ReasonMalformed, item, err)
	}
	if w.Version == nil {
		return nil, failf(ReasonMalformed, item, `no "version"`)
	}
	if v := *w.Version; v != 2 && v != 3 {
		return nil, failf(ReasonUnsupported, item, "version %d (want 2 or 3)", v)
	}
	t := &TCBInfo{Version: *w.Version}
	if t.Version == 3 {
		if w.ID == nil {
			return nil, failf(ReasonMalformed, item, `no "id"`)
		}
		if *w.ID != "SGX" && *w.ID != "TDX" {
			return nil, failf(ReasonUnsupported, item, "id %q (want SGX or TDX)", *w.ID)
		}
		t.ID = *w.ID
	}
	var err error
	if t.IssueDate, err = jsonDate(item, "issueDate", w.IssueDate); err != nil {
		return nil, err
	}
	if t.NextUpdate, err = jsonDate(item, "nextUpdate", w.NextUpdate); err != nil {
		return nil, err
	}
	if err := jsonHex(item, "fmspc", w.FMSPC, t.FMSPC[:]); err != nil {
		return nil, err
	}
	if err := jsonHex(item, "pceId", w.PCEID, t.PCEID[:]); err != nil {
		return nil, err
	}
	if t.TCBType, err = jsonUint(item, "tcbType", w.TCBType, 1<<31-1); err != nil {
		return nil, err
	}
	if t.TCBEvaluationDataNumber, err = jsonUint(item, "tcbEvaluationDataNumber", w.TCBEvaluationDataNumber, 1<<31-1); err != nil {
		return nil, err
	}
	if len(w.TCBLevels) == 0 {
		return nil, failf(ReasonMalformed, item, `no "tcbLevels"`)
	}
	t.Levels = make([]TCBLevel, len(w.TCBLevels))
	for i, wl := range w.TCBLevels {
		l := &t.Levels[i]
		// Named only when something is wrong: most documents are fine.
		where := func() string { return "tcbLevels[" + strconv.Itoa(i) + "]" }
		if wl.TCB == nil {
			return nil, failf(ReasonMalformed, item, `%s: no "tcb"`, where())
		}
		if t.Version == 3 {
			err = tcbComponentsV3(item, where, "sgxtcbcomponents", wl.TCB.SGXComponents, &l.SGXComponents)
			if err == nil && t.ID == "TDX" {
				err = tcbComponentsV3(item, where, "tdxtcbcomponents", wl.TCB.TDXComponents, &l.TDXComponents)
			}
		} else {
			err = tcbComponentsV2(item, where, wl.TCB, &l.SGXComponents)
		}
		if err != nil {
			return nil, err
		}
		pcesvn, err := svn(item, wl.TCB.PCESVN, 0xffff, func() string { return where() + ".tcb.pcesvn" })
		if err != nil {
			return nil, err
		}
		l.PCESVN = uint16(pcesvn)
		if l.TCBDate, err = jsonDate(item, "tcbDate", wl.TCBDate); err != nil {
			_, err = jsonDate(item, where()+".tcbDate", wl.TCBDate) // the same error, named in full
			return nil, err
		}
		if wl.TCBStatus == nil {
			return nil, failf(ReasonMalformed, item, `%s: no "tcbStatus"`, where())
		}
		l.Status = TCBStatus(*wl.TCBStatus)
		if !platformStatus(l.Status) {
			return nil, failf(ReasonMalformed, item, "%s: unknown tcbStatus %q", where(), *wl.TCBStatus)
		}
		l.AdvisoryIDs = wl.AdvisoryIDs
	}
	if t.ID == "TDX" {
		if err := parseTDXModules(t, &w); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// parseTDXModules reads a TDX TCB Info's "tdxModule" (required) and
// "tdxModuleIdentities".
func parseTDXModules(t *TCBInfo, w *tcbInfoWire) error {
	const item = "TCB Info"
	module := func(field string, m *tdxModuleWire, out *TDXModule) error {
		if m == nil {
			return failf(ReasonMalformed, item, "no %q", field)
		}
		if err := jsonHex(item, field+".mrsigner", m.MRSIGNER, out.MRSIGNER[:]); err != nil {
			return err
		}
		if err := jsonHex(item, field+".attributes", m.Attributes, out.Attributes[:]); err != nil {
			return err
		}
		return jsonHex(item, field+".attributesMask", m.AttributesMask, out.AttributesMask[:])
	}
	t.TDXModule = &TDXModule{}
	if err := module("tdxModule", w.TDXModule, t.TDXModule); err != nil {
		return err
	}
	t.TDXModuleIdentities = make([]TDXModule, len(w.TDXModuleIdentities))
	for i := range w.TDXModuleIdentities {
		wm, m := &w.TDXModuleIdentities[i], &t.TDXModuleIdentities[i]
		field := fmt.Sprintf("tdxModuleIdentities[%d]", i)
		if wm.ID == nil {
			return failf(ReasonMalformed, item, `%s: no "id"`, field)
		}
		m.ID = *wm.ID
		if err := module(field, &wm.tdxModuleWire, m); err != nil {
			return err
		}
		var err error
		if m.Levels, err = isvsvnLevels(item, field+".tcbLevels", wm.TCBLevels, moduleStatus); err != nil {
			return err
		}
	}
	return nil
}

// moduleStatus reports whether s may appear in a TDX module identity's
// level.
func moduleStatus(s TCBStatus) bool {
	return s == StatusUpToDate || s == StatusOutOfDate || s == StatusRevoked
}

// svn is jsonUint with the field's name made only for an error.
func svn(item string, v *int, limit int, field func() string) (int, error) {
	if v != nil && *v >= 0 && *v <= limit {
		return *v, nil
	}
	return jsonUint(item, field(), v, limit)
}

// tcbComponentsV3 reads "sgxtcbcomponents" or "tdxtcbcomponents":
// [{"svn": n}, …] (16 entries).
func tcbComponentsV3(item string, where func() string, field string, comps []svnWire, out *[16]uint8) error {
	if comps == nil {
		return failf(ReasonMalformed, item, `%s.tcb: no %q`, where(), field)
	}
	if len(comps) != len(out) {
		return failf(ReasonMalformed, item, "%s.tcb.%s: %d entries, want %d", where(), field, len(comps), len(out))
	}
	for i, c := range comps {
		v, err := svn(item, c.SVN, 0xff, func() string { return fmt.Sprintf("%s.tcb.%s[%d].svn", where(), field, i) })
		if err != nil {
			return err
		}
		out[i] = uint8(v)
	}
	return nil
}

// tcbComponentsV2 reads "sgxtcbcomp01svn" … "sgxtcbcomp16svn".
func tcbComponentsV2(item string, where func() string, tcb *tcbWire, out *[16]uint8) error {
	comps := [16]*int{tcb.C01, tcb.C02, tcb.C03, tcb.C04, tcb.C05, tcb.C06, tcb.C07, tcb.C08,
		tcb.C09, tcb.C10, tcb.C11, tcb.C12, tcb.C13, tcb.C14, tcb.C15, tcb.C16}
	for i, c := range comps {
		v, err := svn(item, c, 0xff, func() string { return fmt.Sprintf("%s.tcb.sgxtcbcomp%02dsvn", where(), i+1) })
		if err != nil {
			return err
		}
		out[i] = uint8(v)
	}
	return nil
}

// PlatformLevel returns the first level, in Intel's order (newest first),
// that the platform reaches: each of its 16 SGX TCB components and its
// PCESVN (from the PCK certificate) at least the level's. It is ReasonTCB
// if the platform is below every level. A TDX TCB Info is ReasonMismatch:
// its levels also need the TD report's TEE TCB SVNs, which this method does
// not take. A tcbType other than 0 (the only one Intel defines) is
// ReasonUnsupported.
func (t *TCBInfo) PlatformLevel(comps [16]uint8, pcesvn uint16) (*TCBLevel, error) {
	const item = "TCB Info"
	if t.ID == "TDX" {
		return nil, failf(ReasonMismatch, item, "TCB Info is for TDX; only SGX platforms are evaluated")
	}
	if t.TCBType != 0 {
		return nil, failf(ReasonUnsupported, item, "tcbType %d (want 0)", t.TCBType)
	}
	for i := range t.Levels {
		l := &t.Levels[i]
		if pcesvn < l.PCESVN || !componentsReach(comps, l.SGXComponents, 0) {
			continue
		}
		found := *l
		found.AdvisoryIDs = slices.Clone(l.AdvisoryIDs)
		return &found, nil
	}
	return nil, failf(ReasonTCB, item, "platform (SGX TCB components %v, PCESVN %d) is below every TCB level", comps, pcesvn)
}

// TDXLevel returns the first level, in Intel's order, that a TDX
// platform reaches: its SGX TCB components and PCESVN (from the PCK
// certificate) as PlatformLevel asks, and its TD report's TEE_TCB_SVN at
// least the level's TDX components. When TEE_TCB_SVN names a module
// version (byte 1 not zero), its first two bytes are the module's, which
// TDXModuleLevel judges, and are not compared here, as Intel's QVL does.
// It is ReasonTCB if the platform is below every level, ReasonMismatch
// for an SGX TCB Info.
func (t *TCBInfo) TDXLevel(comps [16]uint8, pcesvn uint16, teeTCBSVN [16]byte) (*TCBLevel, error) {
	const item = "TCB Info"
	if t.ID != "TDX" {
		return nil, failf(ReasonMismatch, item, "TCB Info is for SGX, not TDX")
	}
	if t.TCBType != 0 {
		return nil, failf(ReasonUnsupported, item, "tcbType %d (want 0)", t.TCBType)
	}
	from := 0
	if teeTCBSVN[1] > 0 {
		from = 2
	}
	for i := range t.Levels {
		l := &t.Levels[i]
		if pcesvn < l.PCESVN || !componentsReach(comps, l.SGXComponents, 0) || !componentsReach(teeTCBSVN, l.TDXComponents, from) {
			continue
		}
		found := *l
		found.AdvisoryIDs = slices.Clone(l.AdvisoryIDs)
		return &found, nil
	}
	return nil, failf(ReasonTCB, item, "platform (SGX TCB components %v, PCESVN %d, TEE_TCB_SVN %x) is below every TCB level",
		comps, pcesvn, teeTCBSVN)
}

// TDXModuleLevel checks a TD report's TDX module against the TCB Info: the
// module identity of its version (TEE_TCB_SVN byte 1; "tdxModule" for
// version 0, else the identity named TDX_<version in two hex digits>)
// must have its signer (MRSIGNERSEAM) and, masked, its attributes
// (SEAMATTRIBUTES), else it is ReasonMismatch. It returns the identity's
// first level (newest first) that the module's SVN (TEE_TCB_SVN byte 0)
// reaches, or nil for version 0, whose SVN TDXLevel compares; a module
// below every level is ReasonTCB.
func (t *TCBInfo) TDXModuleLevel(mrsignerSeam [48]byte, seamAttributes [8]byte, teeTCBSVN [16]byte) (*QETCBLevel, error) {
	const item = "TDX module"
	if t.ID != "TDX" || t.TDXModule == nil {
		return nil, failf(ReasonMismatch, "TCB Info", "TCB Info is for SGX, not TDX")
	}
	version, svn := teeTCBSVN[1], teeTCBSVN[0]
	m := t.TDXModule
	if version > 0 {
		name := fmt.Sprintf("TDX_%02X", version)
		m = nil
		for i := range t.TDXModuleIdentities {
			if strings.EqualFold(t.TDXModuleIdentities[i].ID, name) {
				m = &t.TDXModuleIdentities[i]
				break
			}
		}
		if m == nil {
			return nil, failf(ReasonMismatch, item, "version %d: the TCB Info has no identity %s", version, name)
		}
	}
	if mrsignerSeam != m.MRSIGNER {
		return nil, failf(ReasonMismatch, item, "MRSIGNERSEAM %x, want %x", mrsignerSeam, m.MRSIGNER)
	}
	for i := range seamAttributes {
		if seamAttributes[i]&m.AttributesMask[i] != m.Attributes[i]&m.AttributesMask[i] {
			return nil, failf(ReasonMismatch, item, "SEAMATTRIBUTES %x masked with %x, want %x", seamAttributes, m.AttributesMask, m.Attributes)
		}
	}
	if version == 0 {
		return nil, nil
	}
	for i := range m.Levels {
		l := &m.Levels[i]
		if uint16(svn) < l.ISVSVN {
			continue
		}
		found := *l
		found.AdvisoryIDs = slices.Clone(l.AdvisoryIDs)
		return &found, nil
	}
	return nil, failf(ReasonTCB, item, "%s SVN %d is below every TCB level", m.ID, svn)
}

// componentsReach reports whether every component of have from index
// from on is at least the corresponding one of want.
func componentsReach(have, want [16]uint8, from int) bool {
	for i := from; i < len(have); i++ {
		if have[i] < want[i] {
			return false
		}
	}
	return true
}

// QETCBLevel is one level of a QE Identity.
type QETCBLevel struct {
	ISVSVN      uint16
	TCBDate     time.Time
	Status      TCBStatus
	AdvisoryIDs []string
}

// QEIdentity is Intel's signed description of a quoting enclave (id "QE"
// for SGX, "TD_QE" for TDX, "QVE" for the verification enclave).
type QEIdentity struct {
	ID                         string
	Version                    int
	IssueDate, NextUpdate      time.Time
	MiscSelect, MiscSelectMask uint32 // as the report's MISCSELECT: the hex is little-endian bytes
	Attributes, AttributesMask [16]byte
	MRSIGNER                   [32]byte
	ISVProdID                  uint16
	TCBEvaluationDataNumber    int
	Levels                     []QETCBLevel // in Intel's order, newest first
}

type qeIdentityWire struct {
	signedWire
	MiscSelect     *string       `json:"miscselect"`
	MiscSelectMask *string       `json:"miscselectMask"`
	Attributes     *string       `json:"attributes"`
	AttributesMask *string       `json:"attributesMask"`
	MRSIGNER       *string       `json:"mrsigner"`
	ISVProdID      *int          `json:"isvprodid"`
	TCBLevels      []qeLevelWire `json:"tcbLevels"`
}

type qeLevelWire struct {
	TCB *isvsvnWire `json:"tcb"`
	levelWire
}

type isvsvnWire struct {
	ISVSVN *int `json:"isvsvn"`
}

// ParseQEIdentity parses the signed body of a QE Identity, version 2 (the
// only one Intel serves for DCAP; others are ReasonUnsupported). The id
// must be QE, QVE or TD_QE; which one a quote needs is the caller's check.
func ParseQEIdentity(raw []byte) (*QEIdentity, error) {
	const item = "QE Identity"
	var w qeIdentityWire
	if err := decodeQEIdentityWire(raw, &w); err != nil {
		return nil, fail(ReasonMalformed, item, err)
	}
	if w.Version == nil {
		return nil, failf(ReasonMalformed, item, `no "version"`)
	}
	if *w.Version != 2 {
		return nil, failf(ReasonUnsupported, item, "version %d (want 2)", *w.Version)
	}
	q := &QEIdentity{Version: 2}
	if w.ID == nil {
		return nil, failf(ReasonMalformed, item, `no "id"`)
	}
	switch *w.ID {
	case "QE", "QVE", "TD_QE":
		q.ID = *w.ID
	default:
		return nil, failf(ReasonUnsupported, item, "id %q (want QE, QVE or TD_QE)", *w.ID)
	}
	var err error
	if q.IssueDate, err = jsonDate(item, "issueDate", w.IssueDate); err != nil {
		return nil, err
	}
	if q.NextUpdate, err = jsonDate(item, "nextUpdate", w.NextUpdate); err != nil {
		return nil, err
	}
	if q.TCBEvaluationDataNumber, err = jsonUint(item, "tcbEvaluationDataNumber", w.TCBEvaluationDataNumber, 1<<31-1); err != nil {
		return nil, err
	}
	var misc, miscMask [4]byte
	if err := jsonHex(item, "miscselect", w.MiscSelect, misc[:]); err != nil {
		return nil, err
	}
	if err := jsonHex(item, "miscselectMask", w.MiscSelectMask, miscMask[:]); err != nil {
		return nil, err
	}
	// The QVL reads these hex strings as the bytes of the report's
	// little-endian MISCSELECT, like the attributes.
	q.MiscSelect = binary.LittleEndian.Uint32(misc[:])
	q.MiscSelectMask = binary.LittleEndian.Uint32(miscMask[:])
	if err := jsonHex(item, "attributes", w.Attributes, q.Attributes[:]); err != nil {
		return nil, err
	}
	if err := jsonHex(item, "attributesMask", w.AttributesMask, q.AttributesMask[:]); err != nil {
		return nil, err
	}
	if err := jsonHex(item, "mrsigner", w.MRSIGNER, q.MRSIGNER[:]); err != nil {
		return nil, err
	}
	prod, err := jsonUint(item, "isvprodid", w.ISVProdID, 0xffff)
	if err != nil {
		return nil, err
	}
	q.ISVProdID = uint16(prod)
	if q.Levels, err = isvsvnLevels(item, "tcbLevels", w.TCBLevels, enclaveStatus); err != nil {
		return nil, err
	}
	return q, nil
}

// isvsvnLevels reads the levels of a QE Identity or a TDX module
// identity, each status one that known accepts.
func isvsvnLevels(item, field string, wls []qeLevelWire, known func(TCBStatus) bool) ([]QETCBLevel, error) {
	if len(wls) == 0 {
		return nil, failf(ReasonMalformed, item, `no %q`, field)
	}
	levels := make([]QETCBLevel, len(wls))
	for i, wl := range wls {
		l := &levels[i]
		where := fmt.Sprintf("%s[%d]", field, i)
		if wl.TCB == nil {
			return nil, failf(ReasonMalformed, item, `%s: no "tcb"`, where)
		}
		svn, err := jsonUint(item, where+".tcb.isvsvn", wl.TCB.ISVSVN, 0xffff)
		if err != nil {
			return nil, err
		}
		l.ISVSVN = uint16(svn)
		if l.TCBDate, err = jsonDate(item, where+".tcbDate", wl.TCBDate); err != nil {
			return nil, err
		}
		if wl.TCBStatus == nil {
			return nil, failf(ReasonMalformed, item, `%s: no "tcbStatus"`, where)
		}
		l.Status = TCBStatus(*wl.TCBStatus)
		if !known(l.Status) {
			return nil, failf(ReasonMalformed, item, "%s: unknown tcbStatus %q", where, *wl.TCBStatus)
		}
		l.AdvisoryIDs = wl.AdvisoryIDs
	}
	return levels, nil
}

// QELevel checks a quoting enclave's report against the identity, as the
// QVL does: the report's MISCSELECT and ATTRIBUTES, masked with the
// identity's masks, must equal the identity's values, and MRSIGNER and
// ISVPRODID must be equal; otherwise it is ReasonQEIdentity. It then
// returns the first level (newest first) whose ISVSVN the report reaches.
// A report below every level is ReasonTCB: the QVL calls that Revoked,
// which no policy accepts either.
func (q *QEIdentity) QELevel(miscSelect uint32, attributes [16]byte, mrsigner [32]byte, isvProdID, isvSVN uint16) (*QETCBLevel, error) {
	const item = "QE Identity"
	if miscSelect&q.MiscSelectMask != q.MiscSelect {
		return nil, failf(ReasonQEIdentity, item, "QE report MISCSELECT %08x masked with %08x is %08x, want %08x",
			miscSelect, q.MiscSelectMask, miscSelect&q.MiscSelectMask, q.MiscSelect)
	}
	var masked [16]byte
	for i := range attributes {
		masked[i] = attributes[i] & q.AttributesMask[i]
	}
	if masked != q.Attributes {
		return nil, failf(ReasonQEIdentity, item, "QE report ATTRIBUTES %x masked with %x is %x, want %x",
			attributes, q.AttributesMask, masked, q.Attributes)
	}
	if mrsigner != q.MRSIGNER {
		return nil, failf(ReasonQEIdentity, item, "QE report MRSIGNER %x, want %x", mrsigner, q.MRSIGNER)
	}
	if isvProdID != q.ISVProdID {
		return nil, failf(ReasonQEIdentity, item, "QE report ISVPRODID %d, want %d", isvProdID, q.ISVProdID)
	}
	for i := range q.Levels {
		l := &q.Levels[i]
		if isvSVN < l.ISVSVN {
			continue
		}
		found := *l
		found.AdvisoryIDs = slices.Clone(l.AdvisoryIDs)
		return &found, nil
	}
	return nil, failf(ReasonTCB, item, "QE report ISVSVN %d is below every TCB level", isvSVN)
}

// Converge combines the platform's TCB status with the quoting enclave's
// into the quote's status, as the QVL does:
//
//	QE status            platform status                               result
//	UpToDate             any                                           the platform status
//	OutOfDate (*)        UpToDate, SWHardeningNeeded                   OutOfDate
//	OutOfDate (*)        ConfigurationNeeded,
//	                     ConfigurationAndSWHardeningNeeded             OutOfDateConfigurationNeeded
//	OutOfDate (*)        OutOfDate, OutOfDateConfigurationNeeded,
//	                     Revoked                                       the platform status
//	Revoked              any                                           Revoked
//
// (*) Like the QVL, every QE status other than UpToDate and Revoked counts
// as OutOfDate. A platform status that is not one of Intel's seven gives
// Revoked, so that no policy accepts it.
func Converge(platform, qe TCBStatus) TCBStatus {
	if !platformStatus(platform) || qe == StatusRevoked {
		return StatusRevoked
	}
	if qe == StatusUpToDate {
		return platform
	}
	switch platform {
	case StatusUpToDate, StatusSWHardeningNeeded:
		return StatusOutOfDate
	case StatusConfigurationNeeded, StatusConfigurationAndSWHardeningNeeded:
		return StatusOutOfDateConfigurationNeeded
	}
	return platform
}

// jsonDate reads a required RFC 3339 date.
func jsonDate(item, field string, s *string) (time.Time, error) {
	if s == nil {
		return time.Time{}, failf(ReasonMalformed, item, "no %q", field)
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return time.Time{}, failf(ReasonMalformed, item, "%s: %v", field, err)
	}
	return t.UTC(), nil
}

// jsonUint reads a required integer in [0, limit].
func jsonUint(item, field string, v *int, limit int) (int, error) {
	if v == nil {
		return 0, failf(ReasonMalformed, item, "no %q", field)
	}
	if *v < 0 || *v > limit {
		return 0, failf(ReasonMalformed, item, "%s: %d is out of range [0, %d]", field, *v, limit)
	}
	return *v, nil
}

// jsonHex decodes a required hex string of exactly len(out) bytes into out.
func jsonHex(item, field string, s *string, out []byte) error {
	if s == nil {
		return failf(ReasonMalformed, item, "no %q", field)
	}
	if len(*s) != 2*len(out) {
		return failf(ReasonMalformed, item, "%s: %d hex digits, want %d", field, len(*s), 2*len(out))
	}
	if _, err := hex.Decode(out, []byte(*s)); err != nil {
		return failf(ReasonMalformed, item, "%s: %v", field, err)
	}
	return nil
}
