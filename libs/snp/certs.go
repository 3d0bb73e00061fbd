package snp

import (
	"bytes"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/tee"
)

// The GUIDs of the certificate table an extended report comes with (the
// auxblob of Linux's configfs-tsm, the certificates of SNP_GET_EXT_REPORT).
var (
	guidVCEK = uuid.MustParse(abi.VcekGUID)
	guidVLEK = uuid.MustParse(abi.VlekGUID)
	guidASK  = uuid.MustParse(abi.AskGUID)
	guidARK  = uuid.MustParse(abi.ArkGUID)
)

// maxCertTable bounds a certificate table: a few certificates of a few KiB.
const maxCertTable = 64 << 10

// Certificates reads what a host gives with a report: a VCEK (or VLEK)
// certificate, DER or PEM, or an extended report's certificate table,
// from which it takes the VCEK (or VLEK) and, when both are there, the
// ASK and ARK as a PEM chain for Options.Chain.
func Certificates(aux []byte) (vcek, chain []byte, err error) {
	if len(aux) == 0 {
		return nil, nil, nil
	}
	if blk, _ := pem.Decode(aux); blk != nil {
		return aux, nil, nil
	}
	if aux[0] == 0x30 { // an ASN.1 SEQUENCE: a DER certificate
		return aux, nil, nil
	}
	entries, err := certTable(aux)
	if err != nil {
		return nil, nil, fail(tee.ReasonMalformed, "certificate table", err)
	}
	vcek = entries[guidVCEK]
	if vcek == nil {
		vcek = entries[guidVLEK]
	}
	if vcek == nil {
		return nil, nil, failf(tee.ReasonMalformed, "certificate table", "no VCEK or VLEK in it")
	}
	if ask, ark := entries[guidASK], entries[guidARK]; ask != nil && ark != nil {
		chain = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ask}),
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ark})...)
	}
	return vcek, chain, nil
}

// certTable reads a certificate table: entries of a GUID (16 bytes), an
// offset and a length (little-endian 32-bit), up to an entry of zeros,
// each naming bytes of the table that follow the entries.
func certTable(b []byte) (map[uuid.UUID][]byte, error) {
	if len(b) > maxCertTable {
		return nil, fmt.Errorf("%d bytes, more than %d", len(b), maxCertTable)
	}
	const entrySize = 24
	entries := map[uuid.UUID][]byte{}
	for i := 0; ; i++ {
		at := i * entrySize
		if at+entrySize > len(b) {
			return nil, fmt.Errorf("entry %d: the table ends before its terminating entry", i)
		}
		e := b[at : at+entrySize]
		if bytes.Equal(e, make([]byte, entrySize)) {
			if len(entries) == 0 {
				return nil, fmt.Errorf("no entries")
			}
			return entries, nil
		}
		var g uuid.UUID
		copy(g[:], e[:16])
		off, n := uint64(binary.LittleEndian.Uint32(e[16:20])), uint64(binary.LittleEndian.Uint32(e[20:24]))
		if off+n > uint64(len(b)) || off < uint64(at+entrySize) {
			return nil, fmt.Errorf("entry %d (%s): bytes %d to %d are not in the table's data (%d bytes)", i, g, off, off+n, len(b))
		}
		if _, dup := entries[g]; dup {
			return nil, fmt.Errorf("entry %d: %s given twice", i, g)
		}
		entries[g] = b[off : off+n]
	}
}

// CertTable lays out a certificate table as a host gives it with an
// extended report: the VCEK (or, with vlek, the VLEK), then the ASK and
// ARK when given (DER each), each named by its GUID with its offset and
// length, an entry of zeros, then the certificates. Certificates reads it.
func CertTable(vcek, ask, ark []byte, vlek bool) []byte {
	type entry struct {
		guid uuid.UUID
		der  []byte
	}
	entries := []entry{{guidVCEK, vcek}}
	if vlek {
		entries[0].guid = guidVLEK
	}
	if ask != nil {
		entries = append(entries, entry{guidASK, ask})
	}
	if ark != nil {
		entries = append(entries, entry{guidARK, ark})
	}
	const entrySize = 24
	out := make([]byte, entrySize*(len(entries)+1))
	for i, e := range entries {
		copy(out[entrySize*i:], e.guid[:])
		binary.LittleEndian.PutUint32(out[entrySize*i+16:], uint32(len(out)))
		binary.LittleEndian.PutUint32(out[entrySize*i+20:], uint32(len(e.der)))
		out = append(out, e.der...)
	}
	return out
}

// VCEKInfo is what a VCEK was issued for.
type VCEKInfo struct {
	ProductLine string
	HWID        []byte
	TCB         TCB
	NotAfter    time.Time
}

// Key names the VCEK: its chip and TCB, as ReportVCEKKey names the VCEK a
// report needs.
func (i VCEKInfo) Key() string { return vcekKey(i.HWID, i.TCB) }

// vcekKey is "<chip id, hex, trailing zeros left out>.<TCB, hex>": a
// Turin chip's id is 8 bytes, which a report pads to 64 with zeros.
func vcekKey(id []byte, tcb TCB) string {
	return fmt.Sprintf("%x.%016x", bytes.TrimRight(id, "\x00"), uint64(tcb))
}

// ReportVCEKKey names the VCEK a report (binary or hex) needs: its chip's
// and its REPORTED_TCB's, as VCEKInfo.Key names a VCEK.
func ReportVCEKKey(report []byte) (string, error) {
	r, _, err := ParseReport(report)
	if err != nil {
		return "", err
	}
	return vcekKey(r.GetChipId(), TCB(r.GetReportedTcb())), nil
}

// CheckVCEK reads a VCEK (DER or PEM), chains it to AMD's root for its
// product at at, and says what it was issued for, with its DER.
func (v *Verifier) CheckVCEK(cert []byte, at time.Time) (VCEKInfo, []byte, error) {
	k, err := v.checkKey(abi.VcekReportSigner, cert, nil, at)
	if err != nil {
		return VCEKInfo{}, nil, err
	}
	return VCEKInfo{ProductLine: k.endorsement.ProductLine, HWID: k.endorsement.HWID, TCB: k.endorsement.TCB, NotAfter: k.cert.NotAfter}, k.cert.Raw, nil
}
