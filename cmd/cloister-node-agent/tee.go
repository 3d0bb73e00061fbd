package main

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"

	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/libs/tee"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// The values of --tee.
const (
	teeAuto = "auto"
	teeNone = "none"
)

// evidenceSource makes the node's own evidence: REPORTDATA in, evidence
// out, with what it needs beside it.
type evidenceSource interface {
	// Evidence returns evidence whose REPORTDATA is reportData: its TEE
	// ("" for a quote, whose header says), the evidence, and what it needs
	// beside it (an SEV-SNP report's certificate table).
	Evidence(reportData [64]byte) (teeName string, evidence, aux []byte, err error)
}

// reportData is a node's REPORTDATA: SHA-256 of the DER
// SubjectPublicKeyInfo of its key (the CSR's at enrolment, the
// certificate's after), then the server's nonce, which binds the evidence
// to the key and makes it fresh.
func reportData(spki, nonce []byte) (rd [64]byte) {
	binding := sha256.Sum256(spki)
	copy(rd[:32], binding[:])
	copy(rd[32:], nonce)
	return rd
}

// withEvidence fills a request body's evidence from src for spki and nonce.
func withEvidence(src evidenceSource, spki, nonce []byte) (api.NodeAttest, error) {
	teeName, evidence, aux, err := src.Evidence(reportData(spki, nonce))
	if err != nil {
		return api.NodeAttest{}, err
	}
	return api.NodeAttest{Evidence: evidence, Nonce: nonce, TEE: teeName, EvidenceAux: aux}, nil
}

// simSource quotes with the server's simulated QE (--simulation): SGX
// evidence, or with td a TDX quote of a simulated TD, that proves nothing
// about hardware.
type simSource struct {
	qe *sim.QE
	td bool
}

// simulatedMRTD labels a simulated TD's measurement, so that a hex dump
// says what it is.
var simulatedMRTD = func() (m [48]byte) { copy(m[:], "Cloister node agent, simulated TD"); return m }()

func (s simSource) Evidence(rd [64]byte) (string, []byte, []byte, error) {
	if s.td {
		q, err := s.qe.QuoteTD(sgx.TDReport{MRTD: simulatedMRTD, ReportData: rd})
		return "", q, nil, err
	}
	q, err := s.qe.Quote(nodeReportBody(rd))
	return "", q, nil, err
}

// tsmSource asks Linux's configfs-tsm report interface
// (/sys/kernel/config/tsm/report) for the node's evidence: in a TDX trust
// domain a TDX quote, in an SEV-SNP VM an extended attestation report
// with its certificate table (the VCEK). The provider the kernel names
// decides which.
type tsmSource struct {
	client configfsi.Client
	// want is "tdx" or "sev-snp" when --tee named one: a report from
	// another provider is an error; "" takes what there is.
	want string
}

// tsmProviders are the configfs-tsm providers the agent knows.
var tsmProviders = map[string]string{"tdx_guest": tee.TDX, "sev_guest": tee.SEVSNP}

func (s tsmSource) Evidence(rd [64]byte) (string, []byte, []byte, error) {
	resp, err := report.Get(s.client, &report.Request{InBlob: rd[:], GetAuxBlob: true})
	if err != nil {
		return "", nil, nil, fmt.Errorf("getting a report from configfs-tsm: %w", err)
	}
	provider := strings.TrimSpace(resp.Provider)
	teeName, ok := tsmProviders[provider]
	switch {
	case !ok:
		return "", nil, nil, fmt.Errorf("configfs-tsm's provider is %q; the agent knows tdx_guest and sev_guest", provider)
	case s.want != "" && s.want != teeName:
		return "", nil, nil, fmt.Errorf("--tee %s, but configfs-tsm's provider is %s (%s)", s.want, provider, teeName)
	}
	aux := resp.AuxBlob
	if teeName == tee.TDX {
		aux = nil // a TDX quote carries its PCK chain
	}
	return teeName, resp.OutBlob, aux, nil
}

// openTSM returns the machine's configfs-tsm client, or an error saying
// why there is none.
func openTSM() (configfsi.Client, error) {
	c, err := linuxtsm.MakeClient()
	if err != nil {
		return nil, fmt.Errorf("no configfs-tsm report interface (%s/report): %w; is this a TDX or SEV-SNP guest "+
			"with configfs mounted?", configfsi.TsmPrefix, err)
	}
	return c, nil
}
