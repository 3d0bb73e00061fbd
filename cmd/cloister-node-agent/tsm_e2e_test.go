package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"

	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/snp"
	"github.com/cloister-cc/cloister/services/attestation"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// fakeTSM is a configfs-tsm report tree (go-configfs-tsm's fake) whose
// provider answers every request with the same recorded evidence, and
// keeps the REPORTDATA (inblob) it was asked for.
type fakeTSM struct {
	mu      sync.Mutex
	inblobs [][]byte
}

func (f *fakeTSM) client(provider string, outblob, auxblob []byte) configfsi.Client {
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": &faketsm.ReportSubsystem{
		Random: rand.Reader,
		MakeEntry: func() *faketsm.ReportEntry {
			return &faketsm.ReportEntry{InAttrs: map[string]*faketsm.ReportAttributeState{"inblob": {}, "privlevel": {}}}
		},
		CheckInAttr: func(_ *faketsm.ReportEntry, attr string, contents []byte) error {
			if attr == "inblob" {
				f.mu.Lock()
				f.inblobs = append(f.inblobs, bytes.Clone(contents))
				f.mu.Unlock()
			}
			return nil
		},
		ReadAttr: func(_ *faketsm.ReportEntry, attr string) ([]byte, error) {
			switch attr {
			case "provider":
				return []byte(provider + "\n"), nil
			case "outblob":
				return outblob, nil
			case "auxblob":
				return auxblob, nil
			}
			return nil, os.ErrNotExist
		},
	}}}
}

// TestConfidentialVMNode: a node in an SEV-SNP VM enrols with a join token
// that requires attestation, presenting the evidence configfs-tsm gives
// (here a fake tree that returns a real Milan report and its VCEK, in a
// certificate table), and re-attests with it; the node registry records
// its TEE and measurement. The report's REPORTDATA was fixed when it was
// recorded, so this test, and only it, runs the attestation service with
// AcceptUnboundEvidence; the SNP vector's VCEK is valid until 2030, so
// the clock is the real one.
func TestConfidentialVMNode(t *testing.T) {
	const vectors = "../../libs/snp/testdata/"
	hexReport, err := os.ReadFile(vectors + "report_milan.hex")
	if err != nil {
		t.Fatal(err)
	}
	report, err := snp.DecodeReport(hexReport)
	if err != nil {
		t.Fatal(err)
	}
	vcek, err := os.ReadFile(vectors + "vcek_milan.der")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := os.ReadFile(vectors + "cert_chain_milan")
	if err != nil {
		t.Fatal(err)
	}
	ask, rest := pem.Decode(chain)
	ark, _ := pem.Decode(rest)
	aux := snp.CertTable(vcek, ask.Bytes, ark.Bytes, false)

	g := newTestGatewayWith(t, func(c *attestation.Config) { c.AcceptUnboundEvidence = true })
	token := g.JoinToken(g.admin, g.account, api.CreateJoinToken{Name: "cvm", MaxUses: 1, RequireAttestation: true}).Secret
	fake := &fakeTSM{}
	dir := t.TempDir()
	cfg := testConfig(t, g, dir)
	cfg.JoinToken, cfg.TEE, cfg.TSM = token, "sev-snp", fake.client("sev_guest", report, aux)
	r := start(t, cfg)
	r.enrolled(t)

	g.mu.Lock()
	sent := g.enrolled[len(g.enrolled)-1]
	g.mu.Unlock()
	if sent.TEE != "sev-snp" || !bytes.Equal(sent.Evidence, report) || !bytes.Equal(sent.EvidenceAux, aux) || len(sent.Nonce) != 32 {
		t.Fatalf("the enrolment sent tee %q, %d bytes of evidence, %d of aux, a %d-byte nonce; want sev-snp, the report, its table, a nonce",
			sent.TEE, len(sent.Evidence), len(sent.EvidenceAux), len(sent.Nonce))
	}
	// What the agent asked configfs-tsm to bind: its key and the nonce.
	fake.mu.Lock()
	first := fake.inblobs[0]
	fake.mu.Unlock()
	if len(first) != 64 || !bytes.Equal(first[32:], sent.Nonce) {
		t.Fatalf("the inblob written = %x, want SHA-256 of the CSR's key then the nonce %x", first, sent.Nonce)
	}
	const measurement = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
	n := g.GetNode(g.admin, g.account, readRecord(t, dir).ID)
	if !n.Attested || n.Simulated || n.TEE != "sev-snp" || n.Measurement != measurement {
		t.Fatalf("the node = %+v; want attested, not simulated, sev-snp with the report's measurement", n)
	}
	// It re-attests with fresh evidence at once.
	eventually(t, "the node re-attested with configfs-tsm's evidence", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, a := range g.attests {
			if a.TEE == "sev-snp" && bytes.Equal(a.Evidence, report) {
				return true
			}
		}
		return false
	})
	eventually(t, "the re-attestation was accepted", func() bool {
		n := g.GetNode(g.admin, g.account, n.ID)
		return n.LastAttested != nil && n.LastAttested.After(n.EnrolledAt) && n.Status == "active"
	})
	if !strings.Contains(r.logs.String(), `"tee":"sev-snp"`) {
		t.Errorf("the agent's log does not say it re-attested as sev-snp: %s", r.logs.String())
	}

	// Without AcceptUnboundEvidence, the deployments' setting, the same
	// recorded report is refused: it does not bind this node's key and
	// nonce.
	strict := newTestGateway(t)
	token = strict.JoinToken(strict.admin, strict.account, api.CreateJoinToken{Name: "cvm", MaxUses: 1, RequireAttestation: true}).Secret
	cfg = testConfig(t, strict, t.TempDir())
	cfg.JoinToken, cfg.TEE, cfg.TSM = token, "sev-snp", fake.client("sev_guest", report, aux)
	refused := start(t, cfg)
	select {
	case err := <-refused.done:
		refused.done <- err // for the cleanup
		if exitCode(err) != exitNoPerm || !strings.Contains(err.Error(), "report_data_binding") {
			t.Fatalf("run() = %v, want the enrolment refused (exit %d) for report_data_binding", err, exitNoPerm)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent with evidence that binds another key was not refused")
	}
}

// TestSimulatedTDXNode: with --simulation and --tee tdx on a machine
// without a TDX guest, the agent presents a simulated TD's quote (TDX quote
// v4 from the server's simulated QE) through the whole enrolment path: a
// join token requiring attestation, the attestation service's simulated
// TDX collateral and TDX rules; it re-attests with the same; the node is
// recorded as a simulated tdx node with the simulated MRTD.
func TestSimulatedTDXNode(t *testing.T) {
	// Outside CI, on a TDX or SEV-SNP guest, --tee tdx uses the
	// machine's configfs-tsm instead: nothing to test there. CI is no
	// such guest; if it were, this test fails rather than skips.
	if _, err := openTSM(); err == nil && os.Getenv("CI") == "" {
		t.Skip("this machine is a confidential VM: --tee tdx uses its configfs-tsm, not the simulation")
	}
	g := newTestGateway(t)
	token := g.JoinToken(g.admin, g.account, api.CreateJoinToken{Name: "td", MaxUses: 1, RequireAttestation: true}).Secret
	dir := t.TempDir()
	cfg := testConfig(t, g, dir)
	cfg.JoinToken, cfg.TEE, cfg.Simulation = token, "tdx", true
	r := start(t, cfg)
	r.enrolled(t)

	g.mu.Lock()
	sent := g.enrolled[len(g.enrolled)-1]
	g.mu.Unlock()
	q, err := sgx.ParseQuote(sent.Evidence)
	if err != nil || q.TDReport == nil || q.TDReport.MRTD != simulatedMRTD {
		t.Fatalf("the enrolment's evidence = %v, %v; want a TDX quote of the simulated TD", q, err)
	}
	n := g.GetNode(g.admin, g.account, readRecord(t, dir).ID)
	if !n.Attested || !n.Simulated || n.TEE != "tdx" || n.Measurement != hex.EncodeToString(simulatedMRTD[:]) {
		t.Fatalf("the node = %+v; want attested, simulated, tdx with the simulated MRTD", n)
	}
	eventually(t, "the simulated TD re-attested", func() bool {
		n := g.GetNode(g.admin, g.account, n.ID)
		return n.LastAttested != nil && n.LastAttested.After(n.EnrolledAt) && n.Status == "active" && n.TEE == "tdx"
	})

	// The account's TDX rules apply: an MRTD list without the simulated
	// TD's refuses its next enrolment.
	g.Call(g.admin, "PUT", "/v1/accounts/"+g.account+"/attestation/policy", api.AttestationPolicy{AcceptStatuses: []string{"UpToDate"},
		AllowSimulation: true, TDX: &api.TDXPolicy{MRTDs: []string{strings.Repeat("00", 48)}}}, nil)
	token = g.JoinToken(g.admin, g.account, api.CreateJoinToken{Name: "td2", MaxUses: 1, RequireAttestation: true}).Secret
	cfg = testConfig(t, g, t.TempDir())
	cfg.JoinToken, cfg.TEE, cfg.Simulation, cfg.Name = token, "tdx", true, "node-b"
	refused := start(t, cfg)
	select {
	case err := <-refused.done:
		refused.done <- err
		if exitCode(err) != exitNoPerm || !strings.Contains(err.Error(), "MRTD") {
			t.Fatalf("run() = %v, want the enrolment refused (exit %d) for its MRTD", err, exitNoPerm)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a TD the policy does not list was not refused")
	}
}

// TestConfidentialVMNodeTDX: the same with a real TDX quote (the shared
// TDX vector) from the fake configfs-tsm tree, its provider tdx_guest:
// the attestation service's clock is set in the vector's collateral
// window (2025-07), the TDX collateral uploaded, and the binding not
// checked (the recorded quote's REPORTDATA is fixed), in this test only.
func TestConfidentialVMNodeTDX(t *testing.T) {
	const vectors = "../../libs/sgx/testdata/"
	quote, err := os.ReadFile(vectors + "phala_tdx_quote_v4.bin")
	if err != nil {
		t.Fatal(err)
	}
	collateral, err := os.ReadFile(vectors + "phala_tdx_quote_v4_collateral.json")
	if err != nil {
		t.Fatal(err)
	}
	inWindow := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	g := newTestGatewayWith(t, func(c *attestation.Config) {
		c.AcceptUnboundEvidence, c.Clock = true, func() time.Time { return inWindow }
	})
	g.Call(g.admin, "POST", "/v1/attestation/collateral", api.Collateral{CollateralJSON: collateral}, nil)
	token := g.JoinToken(g.admin, g.account, api.CreateJoinToken{Name: "td", MaxUses: 1, RequireAttestation: true}).Secret
	dir := t.TempDir()
	cfg := testConfig(t, g, dir)
	cfg.JoinToken, cfg.TEE, cfg.TSM = token, "auto", (&fakeTSM{}).client("tdx_guest", quote, []byte("not sent for TDX"))
	r := start(t, cfg)
	r.enrolled(t)

	g.mu.Lock()
	sent := g.enrolled[len(g.enrolled)-1]
	g.mu.Unlock()
	if sent.TEE != "tdx" || !bytes.Equal(sent.Evidence, quote) || len(sent.EvidenceAux) != 0 {
		t.Fatalf("the enrolment sent tee %q, %d bytes of evidence, %d of aux; want tdx, the quote, none", sent.TEE, len(sent.Evidence), len(sent.EvidenceAux))
	}
	const mrtd = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
	if n := g.GetNode(g.admin, g.account, readRecord(t, dir).ID); !n.Attested || n.Simulated || n.TEE != "tdx" || n.Measurement != mrtd {
		t.Fatalf("the node = %+v; want attested, not simulated, tdx with the vector's MRTD", n)
	}
}
