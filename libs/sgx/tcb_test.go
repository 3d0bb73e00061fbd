package sgx_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/sgx"
)

// The PCK certificate of the SGX vector names this platform (README).
var (
	vectorPCKComponents = [16]uint8{11, 11, 2, 2, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	vectorPCESVN        = uint16(13)
)

func day(t testing.TB, s string) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// replaceOnce replaces the first old in raw, failing if there is none, so
// that a rejection test cannot pass by not changing anything.
func replaceOnce(t testing.TB, raw []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(raw, []byte(old)) {
		t.Fatalf("%q is not in the document", old)
	}
	return bytes.Replace(raw, []byte(old), []byte(new), 1)
}

// editJSON decodes raw, lets edit change it, and encodes it again.
func editJSON(t testing.TB, raw []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// handLevel is a TCB level for a hand-written TCB Info v2.
type handLevel struct {
	comps      [16]uint8
	pcesvn     int
	date       string
	status     sgx.TCBStatus
	advisories []string
}

// handLevels are the vector's first two levels and its last.
var handLevels = []handLevel{
	{[16]uint8{11, 11, 2, 2, 255, 1, 12}, 13, "2024-03-13", sgx.StatusSWHardeningNeeded, []string{"INTEL-SA-00615"}},
	{[16]uint8{11, 11, 2, 2, 255, 1}, 13, "2024-03-13", sgx.StatusConfigurationAndSWHardeningNeeded, []string{"INTEL-SA-00289", "INTEL-SA-00615"}},
	{[16]uint8{5, 5, 2, 2, 255, 1}, 5, "2018-01-04", sgx.StatusOutOfDate, nil},
}

// tcbInfoV2 writes a TCB Info in the version 2 format (no id; SVNs as
// sgxtcbcompNNsvn) for the vector's platform.
func tcbInfoV2(levels []handLevel) []byte {
	var b strings.Builder
	b.WriteString(`{"version":2,"issueDate":"2025-06-19T10:56:11Z","nextUpdate":"2025-07-19T10:56:11Z",` +
		`"fmspc":"00A067110000","pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":17,"tcbLevels":[`)
	for i, l := range levels {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"tcb":{`)
		for j, c := range l.comps {
			fmt.Fprintf(&b, `"sgxtcbcomp%02dsvn":%d,`, j+1, c)
		}
		fmt.Fprintf(&b, `"pcesvn":%d},"tcbDate":"%sT00:00:00Z","tcbStatus":%q`, l.pcesvn, l.date, l.status)
		if l.advisories != nil {
			adv, _ := json.Marshal(l.advisories)
			fmt.Fprintf(&b, `,"advisoryIDs":%s`, adv)
		}
		b.WriteString("}")
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func levelString(l sgx.TCBLevel) string {
	return fmt.Sprintf("%v pcesvn %d %s %s %v", l.SGXComponents, l.PCESVN, l.TCBDate.Format(time.DateOnly), l.Status, l.AdvisoryIDs)
}

func TestParseTCBInfo(t *testing.T) {
	tests := []struct {
		name       string
		raw        []byte
		id         string
		version    int
		fmspc      string
		issue      string
		next       string
		levels     int
		firstLevel sgx.TCBLevel
	}{
		{"SGX vector", collateralOf(t, sgxCollateralFile).TCBInfoJSON, "SGX", 3, "00a067110000",
			"2025-06-19T10:56:11Z", "2025-07-19T10:56:11Z", 11,
			sgx.TCBLevel{SGXComponents: handLevels[0].comps, PCESVN: 13, TCBDate: day(t, "2024-03-13"),
				Status: sgx.StatusSWHardeningNeeded, AdvisoryIDs: []string{"INTEL-SA-00615"}}},
		{"TDX vector", collateralOf(t, tdxCollateralFile).TCBInfoJSON, "TDX", 3, "b0c06f000000",
			"2025-06-19T10:16:03Z", "2025-07-19T10:16:03Z", 2,
			sgx.TCBLevel{SGXComponents: [16]uint8{2, 2, 2, 2, 3, 1, 0, 5}, PCESVN: 11, TCBDate: day(t, "2024-03-13"),
				Status: sgx.StatusUpToDate}},
		{"hand-written v2", tcbInfoV2(handLevels), "", 2, "00a067110000",
			"2025-06-19T10:56:11Z", "2025-07-19T10:56:11Z", 3,
			sgx.TCBLevel{SGXComponents: handLevels[0].comps, PCESVN: 13, TCBDate: day(t, "2024-03-13"),
				Status: sgx.StatusSWHardeningNeeded, AdvisoryIDs: []string{"INTEL-SA-00615"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := sgx.ParseTCBInfo(tt.raw)
			if err != nil {
				t.Fatalf("ParseTCBInfo(%s) = %v, want nil", tt.name, err)
			}
			if info.ID != tt.id || info.Version != tt.version || hex.EncodeToString(info.FMSPC[:]) != tt.fmspc ||
				info.PCEID != [2]byte{} || info.TCBType != 0 || info.TCBEvaluationDataNumber != 17 {
				t.Errorf("ParseTCBInfo(%s) = id %q v%d FMSPC %x PCE-ID %x type %d eval %d, want %q v%d FMSPC %s PCE-ID 0000 type 0 eval 17",
					tt.name, info.ID, info.Version, info.FMSPC, info.PCEID, info.TCBType, info.TCBEvaluationDataNumber,
					tt.id, tt.version, tt.fmspc)
			}
			if got := info.IssueDate.Format(time.RFC3339); got != tt.issue {
				t.Errorf("ParseTCBInfo(%s).IssueDate = %s, want %s", tt.name, got, tt.issue)
			}
			if got := info.NextUpdate.Format(time.RFC3339); got != tt.next {
				t.Errorf("ParseTCBInfo(%s).NextUpdate = %s, want %s", tt.name, got, tt.next)
			}
			if len(info.Levels) != tt.levels {
				t.Fatalf("ParseTCBInfo(%s) has %d levels, want %d", tt.name, len(info.Levels), tt.levels)
			}
			if got, want := levelString(info.Levels[0]), levelString(tt.firstLevel); got != want {
				t.Errorf("ParseTCBInfo(%s).Levels[0] = %s, want %s", tt.name, got, want)
			}
		})
	}
}

// TestParseTCBInfoV2MatchesV3 checks that the v2 format of the vector's
// levels reads as the v3 vector does.
func TestParseTCBInfoV2MatchesV3(t *testing.T) {
	v3, err := sgx.ParseTCBInfo(collateralOf(t, sgxCollateralFile).TCBInfoJSON)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := sgx.ParseTCBInfo(tcbInfoV2(handLevels))
	if err != nil {
		t.Fatalf("ParseTCBInfo(v2) = %v, want nil", err)
	}
	for i, j := range []int{0, 1, 10} {
		want := v3.Levels[j]
		want.AdvisoryIDs = handLevels[i].advisories // the hand-written last level lists none
		if got, want := levelString(v2.Levels[i]), levelString(want); got != want {
			t.Errorf("ParseTCBInfo(v2).Levels[%d] = %s, want %s", i, got, want)
		}
	}
	if v2.FMSPC != v3.FMSPC || !v2.IssueDate.Equal(v3.IssueDate) || !v2.NextUpdate.Equal(v3.NextUpdate) {
		t.Errorf("ParseTCBInfo(v2) = FMSPC %x %s..%s, want FMSPC %x %s..%s",
			v2.FMSPC, v2.IssueDate, v2.NextUpdate, v3.FMSPC, v3.IssueDate, v3.NextUpdate)
	}
}

func TestParseTCBInfoRejects(t *testing.T) {
	v3 := collateralOf(t, sgxCollateralFile).TCBInfoJSON
	v2 := tcbInfoV2(handLevels)
	tests := []struct {
		name string
		raw  []byte
		want sgx.Reason
	}{
		{"empty", nil, sgx.ReasonMalformed},
		{"not JSON", v3[:100], sgx.ReasonMalformed},
		{"trailing data", append(bytes.Clone(v3), '}'), sgx.ReasonMalformed},
		{"array", []byte(`[{"version":3}]`), sgx.ReasonMalformed},
		{"version 4", replaceOnce(t, v3, `"version":3`, `"version":4`), sgx.ReasonUnsupported},
		{"version 1", replaceOnce(t, v2, `"version":2`, `"version":1`), sgx.ReasonUnsupported},
		{"no version", replaceOnce(t, v3, `"version":3`, `"versio":3`), sgx.ReasonMalformed},
		{"version a string", replaceOnce(t, v3, `"version":3`, `"version":"3"`), sgx.ReasonMalformed},
		{"v3 without id", replaceOnce(t, v3, `"id":"SGX",`, ``), sgx.ReasonMalformed},
		{"v3 id SEV", replaceOnce(t, v3, `"id":"SGX"`, `"id":"SEV"`), sgx.ReasonUnsupported},
		{"no issueDate", replaceOnce(t, v3, `"issueDate"`, `"issued"`), sgx.ReasonMalformed},
		{"issueDate without time", replaceOnce(t, v3, `"2025-06-19T10:56:11Z"`, `"2025-06-19"`), sgx.ReasonMalformed},
		{"no nextUpdate", replaceOnce(t, v3, `"nextUpdate"`, `"next"`), sgx.ReasonMalformed},
		{"FMSPC 5 bytes", replaceOnce(t, v3, `"00A067110000"`, `"00A0671100"`), sgx.ReasonMalformed},
		{"FMSPC not hex", replaceOnce(t, v3, `"00A067110000"`, `"00A06711000G"`), sgx.ReasonMalformed},
		{"no pceId", replaceOnce(t, v3, `"pceId":"0000",`, ``), sgx.ReasonMalformed},
		{"no tcbType", replaceOnce(t, v3, `"tcbType":0,`, ``), sgx.ReasonMalformed},
		{"negative tcbEvaluationDataNumber", replaceOnce(t, v3, `"tcbEvaluationDataNumber":17`, `"tcbEvaluationDataNumber":-1`), sgx.ReasonMalformed},
		{"no levels", editJSON(t, v3, func(m map[string]any) { delete(m, "tcbLevels") }), sgx.ReasonMalformed},
		{"empty levels", editJSON(t, v3, func(m map[string]any) { m["tcbLevels"] = []any{} }), sgx.ReasonMalformed},
		{"level without tcb", replaceOnce(t, v3, `{"tcb":{`, `{"tbc":{`), sgx.ReasonMalformed},
		{"level tcb null", editJSON(t, v3, func(m map[string]any) { m["tcbLevels"].([]any)[3].(map[string]any)["tcb"] = nil }), sgx.ReasonMalformed},
		{"unknown status", replaceOnce(t, v3, `"tcbStatus":"SWHardeningNeeded"`, `"tcbStatus":"Fine"`), sgx.ReasonMalformed},
		{"no status", replaceOnce(t, v3, `"tcbStatus":"SWHardeningNeeded"`, `"status":"SWHardeningNeeded"`), sgx.ReasonMalformed},
		{"no tcbDate", replaceOnce(t, v3, `"tcbDate"`, `"date"`), sgx.ReasonMalformed},
		{"15 components", replaceOnce(t, v3, `{"svn":11},{"svn":11},`, `{"svn":11},`), sgx.ReasonMalformed},
		{"17 components", replaceOnce(t, v3, `{"svn":11},{"svn":11},`, `{"svn":11},{"svn":11},{"svn":11},`), sgx.ReasonMalformed},
		{"component 256", replaceOnce(t, v3, `{"svn":11}`, `{"svn":256}`), sgx.ReasonMalformed},
		{"component -1", replaceOnce(t, v3, `{"svn":11}`, `{"svn":-1}`), sgx.ReasonMalformed},
		{"component 1.5", replaceOnce(t, v3, `{"svn":11}`, `{"svn":1.5}`), sgx.ReasonMalformed},
		{"component without svn", replaceOnce(t, v3, `{"svn":11}`, `{"category":"BIOS"}`), sgx.ReasonMalformed},
		{"components an object", replaceOnce(t, v3, `"sgxtcbcomponents":[`, `"sgxtcbcomponents":{"a":[`), sgx.ReasonMalformed},
		{"no pcesvn", replaceOnce(t, v3, `,"pcesvn":13}`, `}`), sgx.ReasonMalformed},
		{"pcesvn null", replaceOnce(t, v3, `"pcesvn":13`, `"pcesvn":null`), sgx.ReasonMalformed},
		{"pcesvn 65536", replaceOnce(t, v3, `"pcesvn":13`, `"pcesvn":65536`), sgx.ReasonMalformed},
		{"v3 levels in a v2 document", replaceOnce(t, v3, `"version":3`, `"version":2`), sgx.ReasonMalformed},
		{"v2 without sgxtcbcomp16svn", replaceOnce(t, v2, `"sgxtcbcomp16svn":0,`, ``), sgx.ReasonMalformed},
		{"v2 component 300", replaceOnce(t, v2, `"sgxtcbcomp01svn":11`, `"sgxtcbcomp01svn":300`), sgx.ReasonMalformed},
		{"v2 component a string", replaceOnce(t, v2, `"sgxtcbcomp01svn":11`, `"sgxtcbcomp01svn":"11"`), sgx.ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := sgx.ParseTCBInfo(tt.raw)
			wantReason(t, "ParseTCBInfo("+tt.name+")", err, tt.want, "TCB Info")
			if info != nil {
				t.Errorf("ParseTCBInfo(%s) returned a TCB Info with an error", tt.name)
			}
		})
	}
}

func TestTCBInfoPlatformLevel(t *testing.T) {
	parse := func(raw []byte) *sgx.TCBInfo {
		info, err := sgx.ParseTCBInfo(raw)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	v3 := parse(collateralOf(t, sgxCollateralFile).TCBInfoJSON)
	v2 := parse(tcbInfoV2(handLevels))
	tdx := parse(collateralOf(t, tdxCollateralFile).TCBInfoJSON)
	with := func(i int, v uint8) [16]uint8 {
		c := vectorPCKComponents
		c[i] = v
		return c
	}
	all := [16]uint8{255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}

	tests := []struct {
		name       string
		info       *sgx.TCBInfo
		comps      [16]uint8
		pcesvn     uint16
		status     sgx.TCBStatus
		date       string
		advisories []string
		want       sgx.Reason
	}{
		{"vector platform", v3, vectorPCKComponents, vectorPCESVN, sgx.StatusConfigurationAndSWHardeningNeeded,
			"2024-03-13", []string{"INTEL-SA-00289", "INTEL-SA-00615"}, ""},
		{"higher PCESVN", v3, vectorPCKComponents, 15, sgx.StatusConfigurationAndSWHardeningNeeded,
			"2024-03-13", []string{"INTEL-SA-00289", "INTEL-SA-00615"}, ""},
		{"component 7 at 12", v3, with(6, 12), vectorPCESVN, sgx.StatusSWHardeningNeeded,
			"2024-03-13", []string{"INTEL-SA-00615"}, ""},
		{"everything at maximum", v3, all, 0xffff, sgx.StatusSWHardeningNeeded,
			"2024-03-13", []string{"INTEL-SA-00615"}, ""},
		{"components 1 and 2 at 10", v3, [16]uint8{10, 10, 2, 2, 255, 1}, vectorPCESVN, sgx.StatusOutOfDateConfigurationNeeded,
			"2023-02-15", []string{"INTEL-SA-00289", "INTEL-SA-00828", "INTEL-SA-00615"}, ""},
		{"PCESVN 12", v3, vectorPCKComponents, 12, sgx.StatusOutOfDateConfigurationNeeded,
			"2021-11-10", []string{"INTEL-SA-00289", "INTEL-SA-00614", "INTEL-SA-00617", "INTEL-SA-00657", "INTEL-SA-00767", "INTEL-SA-00828", "INTEL-SA-00615"}, ""},
		{"component 1 below every level", v3, with(0, 4), vectorPCESVN, "", "", nil, sgx.ReasonTCB},
		{"component 5 below every level", v3, with(4, 254), vectorPCESVN, "", "", nil, sgx.ReasonTCB},
		{"PCESVN below every level", v3, vectorPCKComponents, 4, "", "", nil, sgx.ReasonTCB},
		{"zero platform", v3, [16]uint8{}, 0, "", "", nil, sgx.ReasonTCB},
		{"v2 vector platform", v2, vectorPCKComponents, vectorPCESVN, sgx.StatusConfigurationAndSWHardeningNeeded,
			"2024-03-13", []string{"INTEL-SA-00289", "INTEL-SA-00615"}, ""},
		{"v2 old platform", v2, [16]uint8{5, 5, 2, 2, 255, 1}, 5, sgx.StatusOutOfDate, "2018-01-04", nil, ""},
		{"v2 below every level", v2, with(1, 4), vectorPCESVN, "", "", nil, sgx.ReasonTCB},
		{"TDX TCB Info", tdx, all, 0xffff, "", "", nil, sgx.ReasonMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := fmt.Sprintf("PlatformLevel(%v, %d)", tt.comps, tt.pcesvn)
			l, err := tt.info.PlatformLevel(tt.comps, tt.pcesvn)
			if tt.want != "" {
				wantReason(t, call, err, tt.want, "TCB Info")
				return
			}
			if err != nil {
				t.Fatalf("%s = %v, want %s", call, err, tt.status)
			}
			if l.Status != tt.status || l.TCBDate.Format(time.DateOnly) != tt.date || !slices.Equal(l.AdvisoryIDs, tt.advisories) {
				t.Errorf("%s = %s, want %s %s %v", call, levelString(*l), tt.status, tt.date, tt.advisories)
			}
		})
	}

	// The level returned is a copy: changing it leaves the TCB Info alone.
	l, err := v3.PlatformLevel(vectorPCKComponents, vectorPCESVN)
	if err != nil {
		t.Fatal(err)
	}
	l.AdvisoryIDs[0] = "changed"
	l.Status = sgx.StatusUpToDate
	if v3.Levels[1].AdvisoryIDs[0] != "INTEL-SA-00289" || v3.Levels[1].Status != sgx.StatusConfigurationAndSWHardeningNeeded {
		t.Errorf("changing PlatformLevel's result changed the TCB Info: %s", levelString(v3.Levels[1]))
	}
}

func TestTCBInfoPlatformLevelTCBType(t *testing.T) {
	raw := replaceOnce(t, collateralOf(t, sgxCollateralFile).TCBInfoJSON, `"tcbType":0`, `"tcbType":1`)
	info, err := sgx.ParseTCBInfo(raw)
	if err != nil {
		t.Fatalf("ParseTCBInfo(tcbType 1) = %v, want nil", err)
	}
	_, err = info.PlatformLevel(vectorPCKComponents, vectorPCESVN)
	wantReason(t, "PlatformLevel(tcbType 1)", err, sgx.ReasonUnsupported, "TCB Info")
}

func TestParseQEIdentity(t *testing.T) {
	tests := []struct {
		name      string
		raw       []byte
		id        string
		mrsigner  string
		prodID    uint16
		issue     string
		levels    int
		first     sgx.QETCBLevel
		misc      uint32
		miscMask  uint32
		attrs     string
		attrsMask string
	}{
		{"SGX vector", collateralOf(t, sgxCollateralFile).QEIdentityJSON, "QE",
			"8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff", 1, "2025-06-19T10:01:18Z", 6,
			sgx.QETCBLevel{ISVSVN: 8, TCBDate: day(t, "2024-03-13"), Status: sgx.StatusUpToDate},
			0, 0xffffffff, "11000000000000000000000000000000", "fbffffffffffffff0000000000000000"},
		{"TDX vector", collateralOf(t, tdxCollateralFile).QEIdentityJSON, "TD_QE",
			"dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5", 2, "2025-06-19T10:32:27Z", 1,
			sgx.QETCBLevel{ISVSVN: 4, TCBDate: day(t, "2024-03-13"), Status: sgx.StatusUpToDate},
			0, 0xffffffff, "11000000000000000000000000000000", "fbffffffffffffff0000000000000000"},
		// MISCSELECT's hex is the report's little-endian bytes, as in the QVL.
		{"MISCSELECT byte order", replaceOnce(t, replaceOnce(t, collateralOf(t, sgxCollateralFile).QEIdentityJSON,
			`"miscselect":"00000000"`, `"miscselect":"01000000"`), `"miscselectMask":"FFFFFFFF"`, `"miscselectMask":"FF000080"`), "QE",
			"8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff", 1, "2025-06-19T10:01:18Z", 6,
			sgx.QETCBLevel{ISVSVN: 8, TCBDate: day(t, "2024-03-13"), Status: sgx.StatusUpToDate},
			1, 0x800000ff, "11000000000000000000000000000000", "fbffffffffffffff0000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := sgx.ParseQEIdentity(tt.raw)
			if err != nil {
				t.Fatalf("ParseQEIdentity(%s) = %v, want nil", tt.name, err)
			}
			if q.ID != tt.id || q.Version != 2 || hex.EncodeToString(q.MRSIGNER[:]) != tt.mrsigner ||
				q.ISVProdID != tt.prodID || q.TCBEvaluationDataNumber != 17 {
				t.Errorf("ParseQEIdentity(%s) = id %q v%d MRSIGNER %x ISVPRODID %d eval %d, want %q v2 %s %d 17",
					tt.name, q.ID, q.Version, q.MRSIGNER, q.ISVProdID, q.TCBEvaluationDataNumber, tt.id, tt.mrsigner, tt.prodID)
			}
			if q.MiscSelect != tt.misc || q.MiscSelectMask != tt.miscMask ||
				hex.EncodeToString(q.Attributes[:]) != tt.attrs || hex.EncodeToString(q.AttributesMask[:]) != tt.attrsMask {
				t.Errorf("ParseQEIdentity(%s) = MISCSELECT %08x/%08x ATTRIBUTES %x/%x, want %08x/%08x %s/%s", tt.name,
					q.MiscSelect, q.MiscSelectMask, q.Attributes, q.AttributesMask, tt.misc, tt.miscMask, tt.attrs, tt.attrsMask)
			}
			if got := q.IssueDate.Format(time.RFC3339); got != tt.issue || !q.NextUpdate.Equal(q.IssueDate.AddDate(0, 0, 30)) {
				t.Errorf("ParseQEIdentity(%s) dates = %s..%s, want %s and 30 days", tt.name, got, q.NextUpdate, tt.issue)
			}
			if len(q.Levels) != tt.levels {
				t.Fatalf("ParseQEIdentity(%s) has %d levels, want %d", tt.name, len(q.Levels), tt.levels)
			}
			if l := q.Levels[0]; l.ISVSVN != tt.first.ISVSVN || !l.TCBDate.Equal(tt.first.TCBDate) || l.Status != tt.first.Status || len(l.AdvisoryIDs) != 0 {
				t.Errorf("ParseQEIdentity(%s).Levels[0] = %+v, want %+v", tt.name, l, tt.first)
			}
		})
	}
}

func TestParseQEIdentityRejects(t *testing.T) {
	raw := collateralOf(t, sgxCollateralFile).QEIdentityJSON
	tests := []struct {
		name string
		raw  []byte
		want sgx.Reason
	}{
		{"empty", nil, sgx.ReasonMalformed},
		{"not JSON", raw[:50], sgx.ReasonMalformed},
		{"no version", replaceOnce(t, raw, `"version":2,`, ``), sgx.ReasonMalformed},
		{"version 1", replaceOnce(t, raw, `"version":2`, `"version":1`), sgx.ReasonUnsupported},
		{"version 3", replaceOnce(t, raw, `"version":2`, `"version":3`), sgx.ReasonUnsupported},
		{"no id", replaceOnce(t, raw, `"id":"QE",`, ``), sgx.ReasonMalformed},
		{"id PCE", replaceOnce(t, raw, `"id":"QE"`, `"id":"PCE"`), sgx.ReasonUnsupported},
		{"bad issueDate", replaceOnce(t, raw, `"2025-06-19T10:01:18Z"`, `"yesterday"`), sgx.ReasonMalformed},
		{"no nextUpdate", replaceOnce(t, raw, `"nextUpdate"`, `"nextupdated"`), sgx.ReasonMalformed},
		{"no miscselect", replaceOnce(t, raw, `"miscselect":"00000000",`, ``), sgx.ReasonMalformed},
		{"miscselect 3 bytes", replaceOnce(t, raw, `"miscselect":"00000000"`, `"miscselect":"000000"`), sgx.ReasonMalformed},
		{"miscselectMask not hex", replaceOnce(t, raw, `"FFFFFFFF"`, `"FFFFFFFX"`), sgx.ReasonMalformed},
		{"attributes 15 bytes", replaceOnce(t, raw, `"11000000000000000000000000000000"`, `"110000000000000000000000000000"`), sgx.ReasonMalformed},
		{"no attributesMask", replaceOnce(t, raw, `"attributesMask"`, `"attrMask"`), sgx.ReasonMalformed},
		{"MRSIGNER 31 bytes", replaceOnce(t, raw, `"8C4F5775`, `"8C4F57`), sgx.ReasonMalformed},
		{"no isvprodid", replaceOnce(t, raw, `"isvprodid":1,`, ``), sgx.ReasonMalformed},
		{"isvprodid 65536", replaceOnce(t, raw, `"isvprodid":1`, `"isvprodid":65536`), sgx.ReasonMalformed},
		{"no tcbEvaluationDataNumber", replaceOnce(t, raw, `"tcbEvaluationDataNumber":17,`, ``), sgx.ReasonMalformed},
		{"no levels", editJSON(t, raw, func(m map[string]any) { delete(m, "tcbLevels") }), sgx.ReasonMalformed},
		{"empty levels", editJSON(t, raw, func(m map[string]any) { m["tcbLevels"] = []any{} }), sgx.ReasonMalformed},
		{"level without tcb", replaceOnce(t, raw, `"tcb":{"isvsvn":8}`, `"tcbx":{"isvsvn":8}`), sgx.ReasonMalformed},
		{"level without isvsvn", replaceOnce(t, raw, `{"isvsvn":8}`, `{}`), sgx.ReasonMalformed},
		{"isvsvn -1", replaceOnce(t, raw, `"isvsvn":8`, `"isvsvn":-1`), sgx.ReasonMalformed},
		{"no tcbDate", replaceOnce(t, raw, `"tcbDate"`, `"tcbdated"`), sgx.ReasonMalformed},
		{"no tcbStatus", replaceOnce(t, raw, `"tcbStatus":"UpToDate"`, `"state":"UpToDate"`), sgx.ReasonMalformed},
		{"status not for a QE", replaceOnce(t, raw, `"tcbStatus":"UpToDate"`, `"tcbStatus":"SWHardeningNeeded"`), sgx.ReasonMalformed},
		{"advisories not strings", replaceOnce(t, raw, `"advisoryIDs":["INTEL-SA-00615"]`, `"advisoryIDs":[615]`), sgx.ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := sgx.ParseQEIdentity(tt.raw)
			wantReason(t, "ParseQEIdentity("+tt.name+")", err, tt.want, "QE Identity")
			if q != nil {
				t.Errorf("ParseQEIdentity(%s) returned an identity with an error", tt.name)
			}
		})
	}
}

// qeReport holds what QELevel takes from a QE report body.
type qeReport struct {
	misc      uint32
	attrs     [16]byte
	mrsigner  [32]byte
	prod, svn uint16
}

// vectorQEReport reads the QE report of the SGX vector quote: it follows
// the 48-byte header, the 384-byte report body, the 4-byte signature data
// length, the quote signature and the attestation key.
func vectorQEReport(t testing.TB) qeReport {
	t.Helper()
	quote := collateralFile(t, "phala_sgx_quote_v3.bin")
	const off = 48 + 384 + 4 + 64 + 64
	if len(quote) < off+384 {
		t.Fatalf("quote of %d bytes has no QE report", len(quote))
	}
	body := quote[off : off+384]
	var r qeReport
	r.misc = binary.LittleEndian.Uint32(body[16:20])
	copy(r.attrs[:], body[48:64])
	copy(r.mrsigner[:], body[128:160])
	r.prod = binary.LittleEndian.Uint16(body[256:258])
	r.svn = binary.LittleEndian.Uint16(body[258:260])
	return r
}

func TestQEIdentityQELevel(t *testing.T) {
	sgxC := collateralOf(t, sgxCollateralFile)
	parse := func(raw []byte) *sgx.QEIdentity {
		q, err := sgx.ParseQEIdentity(raw)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	qe := parse(sgxC.QEIdentityJSON)
	tdQE := parse(collateralOf(t, tdxCollateralFile).QEIdentityJSON)
	revoked := parse(replaceOnce(t, sgxC.QEIdentityJSON, `"tcbStatus":"UpToDate"`, `"tcbStatus":"Revoked"`))
	base := vectorQEReport(t)
	if base.svn != 10 || base.prod != 1 {
		t.Fatalf("vector QE report ISVSVN %d ISVPRODID %d, want 10 and 1", base.svn, base.prod)
	}
	change := func(f func(r *qeReport)) qeReport {
		r := base
		f(&r)
		return r
	}

	tests := []struct {
		name       string
		id         *sgx.QEIdentity
		report     qeReport
		svn        uint16
		status     sgx.TCBStatus
		date       string
		advisories []string
		want       sgx.Reason
	}{
		{"vector QE", qe, base, 8, sgx.StatusUpToDate, "2024-03-13", nil, ""},
		{"ISVSVN 8", qe, change(func(r *qeReport) { r.svn = 8 }), 8, sgx.StatusUpToDate, "2024-03-13", nil, ""},
		{"ISVSVN 7", qe, change(func(r *qeReport) { r.svn = 7 }), 6, sgx.StatusOutOfDate, "2021-11-10", []string{"INTEL-SA-00615"}, ""},
		{"ISVSVN 1", qe, change(func(r *qeReport) { r.svn = 1 }), 1, sgx.StatusOutOfDate, "2018-08-15",
			[]string{"INTEL-SA-00202", "INTEL-SA-00219", "INTEL-SA-00293", "INTEL-SA-00334", "INTEL-SA-00477", "INTEL-SA-00615"}, ""},
		{"ISVSVN 0", qe, change(func(r *qeReport) { r.svn = 0 }), 0, "", "", nil, sgx.ReasonTCB},
		{"revoked level", revoked, base, 8, sgx.StatusRevoked, "2024-03-13", nil, ""},
		{"MODE64BIT cleared (masked)", qe, change(func(r *qeReport) { r.attrs[0] &^= 0x04 }), 8, sgx.StatusUpToDate, "2024-03-13", nil, ""},
		{"XFRM changed (masked)", qe, change(func(r *qeReport) { r.attrs[8] = 0x03 }), 8, sgx.StatusUpToDate, "2024-03-13", nil, ""},
		{"DEBUG set", qe, change(func(r *qeReport) { r.attrs[0] |= 0x02 }), 0, "", "", nil, sgx.ReasonQEIdentity},
		{"INIT cleared", qe, change(func(r *qeReport) { r.attrs[0] &^= 0x01 }), 0, "", "", nil, sgx.ReasonQEIdentity},
		{"attribute byte 7 set", qe, change(func(r *qeReport) { r.attrs[7] = 0x80 }), 0, "", "", nil, sgx.ReasonQEIdentity},
		{"MISCSELECT bit 0", qe, change(func(r *qeReport) { r.misc = 1 }), 0, "", "", nil, sgx.ReasonQEIdentity},
		{"MISCSELECT bit 31", qe, change(func(r *qeReport) { r.misc = 1 << 31 }), 0, "", "", nil, sgx.ReasonQEIdentity},
		{"MRSIGNER changed", qe, change(func(r *qeReport) { r.mrsigner[31] ^= 1 }), 0, "", "", nil, sgx.ReasonQEIdentity},
		{"ISVPRODID 2", qe, change(func(r *qeReport) { r.prod = 2 }), 0, "", "", nil, sgx.ReasonQEIdentity},
		{"TD QE identity", tdQE, base, 0, "", "", nil, sgx.ReasonQEIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.report
			call := fmt.Sprintf("QELevel(%08x, %x, %x, %d, %d)", r.misc, r.attrs, r.mrsigner[:4], r.prod, r.svn)
			l, err := tt.id.QELevel(r.misc, r.attrs, r.mrsigner, r.prod, r.svn)
			if tt.want != "" {
				wantReason(t, call, err, tt.want, "QE Identity")
				return
			}
			if err != nil {
				t.Fatalf("%s = %v, want %s", call, err, tt.status)
			}
			if l.ISVSVN != tt.svn || l.Status != tt.status || l.TCBDate.Format(time.DateOnly) != tt.date || !slices.Equal(l.AdvisoryIDs, tt.advisories) {
				t.Errorf("%s = %d %s %s %v, want %d %s %s %v", call, l.ISVSVN, l.Status, l.TCBDate.Format(time.DateOnly), l.AdvisoryIDs,
					tt.svn, tt.status, tt.date, tt.advisories)
			}
		})
	}
}

func TestConverge(t *testing.T) {
	const (
		up      = sgx.StatusUpToDate
		swh     = sgx.StatusSWHardeningNeeded
		conf    = sgx.StatusConfigurationNeeded
		confSWH = sgx.StatusConfigurationAndSWHardeningNeeded
		ood     = sgx.StatusOutOfDate
		oodConf = sgx.StatusOutOfDateConfigurationNeeded
		rev     = sgx.StatusRevoked
	)
	tests := []struct {
		platform, qe, want sgx.TCBStatus
	}{
		// QE up to date: the platform's status.
		{up, up, up},
		{swh, up, swh},
		{conf, up, conf},
		{confSWH, up, confSWH},
		{ood, up, ood},
		{oodConf, up, oodConf},
		{rev, up, rev},
		// QE out of date: out of date, keeping "configuration needed".
		{up, ood, ood},
		{swh, ood, ood},
		{conf, ood, oodConf},
		{confSWH, ood, oodConf},
		{ood, ood, ood},
		{oodConf, ood, oodConf},
		{rev, ood, rev},
		// QE revoked: revoked.
		{up, rev, rev},
		{swh, rev, rev},
		{conf, rev, rev},
		{confSWH, rev, rev},
		{ood, rev, rev},
		{oodConf, rev, rev},
		{rev, rev, rev},
		// Other QE statuses count as out of date, as in the QVL.
		{up, conf, ood},
		{confSWH, oodConf, oodConf},
		{swh, "", ood},
		{conf, "Unknown", oodConf},
		// A platform status that is not Intel's is revoked.
		{"", up, rev},
		{"upToDate", up, rev},
		{"Unknown", ood, rev},
	}
	for _, tt := range tests {
		if got := sgx.Converge(tt.platform, tt.qe); got != tt.want {
			t.Errorf("Converge(%q, %q) = %q, want %q", tt.platform, tt.qe, got, tt.want)
		}
	}
}

// TestTCBEvaluationOfSGXVector runs this file's part of verifying the SGX
// vector end to end, with the expected results of its README.
func TestTCBEvaluationOfSGXVector(t *testing.T) {
	at := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	c := collateralOf(t, sgxCollateralFile)
	if err := sgx.VerifySignedJSON("TCB Info", c.TCBInfoJSON, c.TCBInfoSignature, leafKeyOf(t, c.TCBInfoIssuerChain)); err != nil {
		t.Fatalf("VerifySignedJSON(TCB Info) = %v, want nil", err)
	}
	if err := sgx.VerifySignedJSON("QE Identity", c.QEIdentityJSON, c.QEIdentitySignature, leafKeyOf(t, c.QEIdentityIssuerChain)); err != nil {
		t.Fatalf("VerifySignedJSON(QE Identity) = %v, want nil", err)
	}
	info, err := sgx.ParseTCBInfo(c.TCBInfoJSON)
	if err != nil {
		t.Fatalf("ParseTCBInfo(vector) = %v, want nil", err)
	}
	qe, err := sgx.ParseQEIdentity(c.QEIdentityJSON)
	if err != nil {
		t.Fatalf("ParseQEIdentity(vector) = %v, want nil", err)
	}
	if err := sgx.CheckDates("TCB Info", info.IssueDate, info.NextUpdate, at); err != nil {
		t.Errorf("CheckDates(TCB Info) = %v, want nil", err)
	}
	if err := sgx.CheckDates("QE Identity", qe.IssueDate, qe.NextUpdate, at); err != nil {
		t.Errorf("CheckDates(QE Identity) = %v, want nil", err)
	}
	if info.ID != "SGX" || info.Version != 3 || info.FMSPC != [6]byte{0x00, 0xA0, 0x67, 0x11, 0x00, 0x00} {
		t.Errorf("ParseTCBInfo(vector) = %s v%d FMSPC %X, want SGX v3 FMSPC 00A067110000", info.ID, info.Version, info.FMSPC)
	}
	platform, err := info.PlatformLevel(vectorPCKComponents, vectorPCESVN)
	if err != nil {
		t.Fatalf("PlatformLevel(vector) = %v, want nil", err)
	}
	if platform.Status != sgx.StatusConfigurationAndSWHardeningNeeded ||
		!slices.Equal(platform.AdvisoryIDs, []string{"INTEL-SA-00289", "INTEL-SA-00615"}) ||
		platform.TCBDate.Format(time.DateOnly) != "2024-03-13" {
		t.Errorf("PlatformLevel(vector) = %s, want ConfigurationAndSWHardeningNeeded 2024-03-13 [INTEL-SA-00289 INTEL-SA-00615]", levelString(*platform))
	}
	r := vectorQEReport(t)
	qeLevel, err := qe.QELevel(r.misc, r.attrs, r.mrsigner, r.prod, r.svn)
	if err != nil {
		t.Fatalf("QELevel(vector) = %v, want nil", err)
	}
	if qeLevel.Status != sgx.StatusUpToDate {
		t.Errorf("QELevel(vector) = %s, want UpToDate", qeLevel.Status)
	}
	if got := sgx.Converge(platform.Status, qeLevel.Status); got != sgx.StatusConfigurationAndSWHardeningNeeded {
		t.Errorf("Converge(%s, %s) = %s, want ConfigurationAndSWHardeningNeeded", platform.Status, qeLevel.Status, got)
	}
}

var knownStatuses = []sgx.TCBStatus{
	sgx.StatusUpToDate, sgx.StatusSWHardeningNeeded, sgx.StatusConfigurationNeeded,
	sgx.StatusConfigurationAndSWHardeningNeeded, sgx.StatusOutOfDate,
	sgx.StatusOutOfDateConfigurationNeeded, sgx.StatusRevoked,
}

func FuzzParseTCBInfo(f *testing.F) {
	f.Add(collateralOf(f, sgxCollateralFile).TCBInfoJSON)
	f.Add(collateralOf(f, tdxCollateralFile).TCBInfoJSON)
	f.Add(tcbInfoV2(handLevels))
	f.Fuzz(func(t *testing.T, raw []byte) {
		info, err := sgx.ParseTCBInfo(raw)
		if err != nil {
			if r := sgx.ReasonOf(err); r != sgx.ReasonMalformed && r != sgx.ReasonUnsupported {
				t.Fatalf("ParseTCBInfo = %v, want ReasonMalformed or ReasonUnsupported", err)
			}
			return
		}
		if (info.Version != 2 && info.Version != 3) || len(info.Levels) == 0 {
			t.Fatalf("ParseTCBInfo accepted version %d with %d levels", info.Version, len(info.Levels))
		}
		for _, l := range info.Levels {
			if !slices.Contains(knownStatuses, l.Status) {
				t.Fatalf("ParseTCBInfo accepted status %q", l.Status)
			}
		}
		var top [16]uint8
		for i := range top {
			top[i] = 0xff
		}
		for _, p := range []struct {
			comps  [16]uint8
			pcesvn uint16
		}{{[16]uint8{}, 0}, {top, 0xffff}, {info.Levels[0].SGXComponents, info.Levels[0].PCESVN}} {
			l, err := info.PlatformLevel(p.comps, p.pcesvn)
			switch {
			case err == nil && l == nil:
				t.Fatal("PlatformLevel returned neither a level nor an error")
			case err != nil && sgx.ReasonOf(err) != sgx.ReasonTCB && sgx.ReasonOf(err) != sgx.ReasonMismatch && sgx.ReasonOf(err) != sgx.ReasonUnsupported:
				t.Fatalf("PlatformLevel = %v", err)
			}
		}
	})
}

func FuzzParseQEIdentity(f *testing.F) {
	f.Add(collateralOf(f, sgxCollateralFile).QEIdentityJSON)
	f.Add(collateralOf(f, tdxCollateralFile).QEIdentityJSON)
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := sgx.ParseQEIdentity(raw)
		if err != nil {
			if r := sgx.ReasonOf(err); r != sgx.ReasonMalformed && r != sgx.ReasonUnsupported {
				t.Fatalf("ParseQEIdentity = %v, want ReasonMalformed or ReasonUnsupported", err)
			}
			return
		}
		if q.Version != 2 || len(q.Levels) == 0 {
			t.Fatalf("ParseQEIdentity accepted version %d with %d levels", q.Version, len(q.Levels))
		}
		// A report carrying exactly the identity's values matches it, when
		// those values are within their masks.
		var attrs [16]byte
		inMask := q.MiscSelect&^q.MiscSelectMask == 0
		for i := range attrs {
			attrs[i] = q.Attributes[i]
			inMask = inMask && q.Attributes[i]&^q.AttributesMask[i] == 0
		}
		l, err := q.QELevel(q.MiscSelect, attrs, q.MRSIGNER, q.ISVProdID, 0xffff)
		if inMask && (err != nil || l == nil) {
			t.Fatalf("QELevel(the identity's own values) = %v", err)
		}
		if !inMask && sgx.ReasonOf(err) != sgx.ReasonQEIdentity {
			t.Fatalf("QELevel(values outside the masks) = %v, want ReasonQEIdentity", err)
		}
	})
}
