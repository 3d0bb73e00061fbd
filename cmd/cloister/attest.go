package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/tee"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// attestResult is what `cloister attest verify` prints: the keys every
// TEE's verification shares (ok, tee, status, advisories, measurement,
// report_data, debug, tcb, error), an SGX enclave's identity, and a TD's
// registers and TDX module.
type attestResult struct {
	OK         bool     `json:"ok"`
	TEE        string   `json:"tee"`
	Status     string   `json:"status,omitempty"`
	Advisories []string `json:"advisories"`
	TCBDate    string   `json:"tcb_date,omitempty"`
	// Measurement is the enclave's MRENCLAVE, or the TD's MRTD.
	Measurement string    `json:"measurement,omitempty"`
	MRENCLAVE   string    `json:"mrenclave,omitempty"`
	MRSIGNER    string    `json:"mrsigner,omitempty"`
	ISVProdID   uint16    `json:"isvprodid"`
	ISVSVN      uint16    `json:"isvsvn"`
	RTMRs       []string  `json:"rtmrs,omitempty"`
	TD          *tdResult `json:"td,omitempty"`
	TCB         *dcapTCB  `json:"tcb,omitempty"`
	Debug       bool      `json:"debug"`
	ReportData  string    `json:"report_data,omitempty"`
	FMSPC       string    `json:"fmspc,omitempty"`
	Error       string    `json:"error,omitempty"`
}

// dcapTCB is what an SGX or TDX quote's TCB evaluation found: each
// part's status, and a TD's TEE_TCB_SVN.
type dcapTCB struct {
	Platform  string `json:"platform"`
	QE        string `json:"qe"`
	Module    string `json:"tdx_module,omitempty"`
	TEETCBSVN string `json:"tee_tcb_svn,omitempty"`
}

// tdResult is a TD report's fields besides MRTD, RTMRs and REPORTDATA.
type tdResult struct {
	MRSEAM        string `json:"mrseam"`
	MRSIGNERSEAM  string `json:"mrsignerseam"`
	TDAttributes  string `json:"td_attributes"`
	XFAM          string `json:"xfam"`
	MRCONFIGID    string `json:"mrconfigid"`
	MROWNER       string `json:"mrowner"`
	MROWNERCONFIG string `json:"mrownerconfig"`
}

// dcapOutput is the result of a verified SGX or TDX quote.
func dcapOutput(res *sgx.Result) attestResult {
	out := attestResult{
		TEE: res.TEE, Status: string(res.Status), Advisories: append([]string{}, res.Advisories...),
		TCBDate: res.TCBDate.Format("2006-01-02"), Debug: res.Debug, ReportData: hex.EncodeToString(res.ReportData[:]),
		FMSPC: hex.EncodeToString(res.FMSPC[:]),
		TCB:   &dcapTCB{Platform: string(res.PlatformStatus), QE: string(res.QEStatus)},
	}
	if td := res.TD; td != nil {
		out.Measurement = hex.EncodeToString(td.MRTD[:])
		for _, r := range td.RTMRs {
			out.RTMRs = append(out.RTMRs, hex.EncodeToString(r[:]))
		}
		out.TCB.Module, out.TCB.TEETCBSVN = string(res.ModuleStatus), hex.EncodeToString(td.TEETCBSVN[:])
		out.TD = &tdResult{MRSEAM: hex.EncodeToString(td.MRSEAM[:]), MRSIGNERSEAM: hex.EncodeToString(td.MRSIGNERSEAM[:]),
			TDAttributes: hex.EncodeToString(td.TDAttributes[:]), XFAM: hex.EncodeToString(td.XFAM[:]),
			MRCONFIGID: hex.EncodeToString(td.MRCONFIGID[:]), MROWNER: hex.EncodeToString(td.MROWNER[:]),
			MROWNERCONFIG: hex.EncodeToString(td.MROWNERCONFIG[:])}
		return out
	}
	out.Measurement, out.MRENCLAVE = hex.EncodeToString(res.MRENCLAVE[:]), hex.EncodeToString(res.MRENCLAVE[:])
	out.MRSIGNER, out.ISVProdID, out.ISVSVN = hex.EncodeToString(res.MRSIGNER[:]), res.ISVProdID, res.ISVSVN
	return out
}

// errRefused makes the command exit 1 after printing its result.
var errRefused = errors.New("quote refused")

func (c *cli) attestCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "attest", Short: "Verify attestation evidence, offline or under an account's policy"}

	var (
		collateralJSON, tcbInfo, signingChain, qeIdentity, rootCRL, pckCRL, at, accept string
		skipCRL, allowDebug                                                            bool
	)
	verify := &cobra.Command{
		Use:   "verify QUOTE",
		Short: "Verify an SGX or TDX DCAP quote against Intel collateral, offline",
		Long: `Verify an SGX ECDSA quote (version 3) or a TDX ECDSA quote (version 4), with its
PCK certificate chain, completely and offline: the PCK chain up to the Intel
SGX Root CA key, the CRLs, the TCB Info and QE Identity signatures and dates
(SGX collateral for an SGX quote, TDX collateral for a TDX quote), the QE
report, the quote signature, the QE identity, the platform's TCB level and,
for TDX, the TDX module's identity and TCB level.

Collateral comes either as one JSON file (--collateral-json: tcb_info,
tcb_info_signature, tcb_info_issuer_chain, qe_identity, ...) or as the files
Intel's PCS serves (--tcb-info and --qe-identity bodies, the TCB signing chain
from their issuer-chain header, and the CRLs in DER or PEM).

The quote is accepted when its converged TCB status is one of --accept and it
is not a debug enclave or TD (unless --allow-debug). The exit status is 0 when
accepted, 1 otherwise; the result is printed either way.`,
		Example: `  cloister attest verify quote.bin --collateral-json collateral.json --at 2025-07-01T00:00:00Z -o json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			when := time.Now()
			if at != "" {
				var err error
				if when, err = parseTime(at); err != nil {
					return err
				}
			}
			policy := sgx.DefaultPolicy()
			policy.AllowDebug = allowDebug
			if accept != "" {
				var err error
				if policy.AcceptStatuses, err = sgx.ParseStatuses(accept); err != nil {
					return fmt.Errorf("--accept: %w", err)
				}
			}
			quote, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			col, err := loadCollateral(collateralJSON, tcbInfo, signingChain, qeIdentity, rootCRL, pckCRL)
			if err != nil {
				return err
			}
			out := attestResult{TEE: teeOf(quote), Advisories: []string{}}
			res, err := sgx.Verify(quote, sgx.Options{At: when, Collateral: col, SkipCRL: skipCRL})
			if err == nil {
				out = dcapOutput(res)
				err = policy.Check(res)
			}
			out.OK = err == nil
			if err != nil {
				out.Error = err.Error()
			}
			rows := [][]string{{"ok", strconv.FormatBool(out.OK)}, {"tee", out.TEE}, {"status", out.Status},
				{"advisories", strings.Join(out.Advisories, ",")}, {"tcb date", out.TCBDate}, {"measurement", out.Measurement}}
			if out.TEE == tee.TDX {
				for i, r := range out.RTMRs {
					rows = append(rows, []string{fmt.Sprintf("rtmr%d", i), r})
				}
				if out.TCB != nil {
					rows = append(rows, []string{"tdx module", out.TCB.Module}, []string{"tee tcb svn", out.TCB.TEETCBSVN})
				}
			} else {
				rows = append(rows, []string{"mrsigner", out.MRSIGNER}, []string{"isvprodid", strconv.Itoa(int(out.ISVProdID))},
					[]string{"isvsvn", strconv.Itoa(int(out.ISVSVN))})
			}
			rows = append(rows, []string{"debug", strconv.FormatBool(out.Debug)}, []string{"fmspc", out.FMSPC},
				[]string{"report data", out.ReportData}, []string{"error", out.Error})
			return c.printVerdict(out, rows, out.OK)
		},
	}
	f := verify.Flags()
	f.StringVar(&collateralJSON, "collateral-json", "", "collateral in one JSON file (tcb_info, qe_identity, CRLs and chains)")
	f.StringVar(&tcbInfo, "tcb-info", "", `TCB Info as Intel PCS serves it ({"tcbInfo":…,"signature":…})`)
	f.StringVar(&signingChain, "tcb-signing-chain", "", "PEM chain of the TCB signing certificate (PCS's TCB-Info-Issuer-Chain)")
	f.StringVar(&qeIdentity, "qe-identity", "", `QE Identity as Intel PCS serves it ({"enclaveIdentity":…,"signature":…})`)
	f.StringVar(&rootCRL, "root-crl", "", "Intel SGX Root CA CRL, DER or PEM")
	f.StringVar(&pckCRL, "pck-crl", "", "PCK CA CRL, DER or PEM")
	f.StringVar(&at, "at", "", "verify as of this time, RFC 3339 or Unix seconds (default: now)")
	f.BoolVar(&skipCRL, "skip-crl", false, "skip the revocation checks (CRLs may then be omitted)")
	f.BoolVar(&allowDebug, "allow-debug", false, "accept debug enclaves")
	f.StringVar(&accept, "accept", "", "accepted TCB statuses, comma-separated (default UpToDate,SWHardeningNeeded)")
	// Offline: no server, so no CLI config either.
	verify.PersistentPreRunE = func(*cobra.Command, []string) error { return c.checkOutput() }
	cmd.AddCommand(verify, c.attestVerifySNPCmd(), c.attestPolicyCmd(), c.attestCollateralCmd(), c.attestVCEKCmd(), c.attestEvaluateCmd())
	return cmd
}

// printVerdict prints an offline verification's result, as a table of
// rows or as out in JSON, and makes the command exit 1 when it is no.
func (c *cli) printVerdict(out any, rows [][]string, ok bool) error {
	if err := c.print(out, []string{"FIELD", "VALUE"}, rows); err != nil {
		return err
	}
	if !ok {
		return errRefused
	}
	return nil
}

// teeOf names the TEE a quote's header declares, for a result that has
// no verified one: "tdx" for a version 4 TDX quote, else "sgx".
func teeOf(quote []byte) string {
	if q, err := sgx.ParseQuote(quote); err == nil {
		return q.TEE()
	}
	if len(quote) >= 8 && binary.LittleEndian.Uint32(quote[4:8]) == sgx.TEETypeTDX {
		return tee.TDX
	}
	return tee.SGX
}

func policyRows(p api.AttestationPolicy) [][]string {
	rows := [][]string{{"accept", strings.Join(p.AcceptStatuses, ",")}, {"allow debug", strconv.FormatBool(p.AllowDebug)},
		{"allow simulation", strconv.FormatBool(p.AllowSimulation)}, {"min isvsvn", strconv.Itoa(int(p.MinISVSVN))},
		{"require node attestation", strconv.FormatBool(p.RequireNodeAttestation)}}
	if t := p.TDX; t != nil {
		rows = append(rows, []string{"tdx accept", strings.Join(t.AcceptStatuses, ",")}, []string{"tdx allow debug", strconv.FormatBool(t.AllowDebug)},
			[]string{"tdx mrtds", strings.Join(t.MRTDs, ",")}, []string{"tdx rtmrs", strings.Join(t.RTMRs, ",")})
	}
	if n := p.SNP; n != nil {
		rows = append(rows, []string{"sev-snp allow debug", strconv.FormatBool(n.AllowDebug)},
			[]string{"sev-snp measurements", strings.Join(n.Measurements, ",")}, []string{"sev-snp host data", n.HostData},
			[]string{"sev-snp min tcb", n.MinTCB})
	}
	return rows
}

func (c *cli) attestPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Show or set the selected account's attestation policy"}
	c.addAccountFlag(cmd)
	get := &cobra.Command{
		Use: "get", Short: "Show the policy", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var p api.AttestationPolicy
			if err := c.client().do(cmd.Context(), "GET", "/v1/accounts/"+url.PathEscape(acct)+"/attestation/policy", nil, &p); err != nil {
				return err
			}
			return c.print(p, []string{"FIELD", "VALUE"}, policyRows(p))
		},
	}
	var p api.AttestationPolicy
	var tdx api.TDXPolicy
	var snp api.SNPPolicy
	var accept, tdxAccept string
	set := &cobra.Command{
		Use:   "set --accept STATUS,... [--allow-debug] [--allow-simulation] [--min-isvsvn N] [--require-node-attestation] [--tdx-... ] [--snp-...]",
		Short: "Replace the policy (admins)",
		Long: `Replace the account's attestation policy, all of it: a rule not given takes its
default. The first flags are the rules for SGX enclaves (and SGX nodes); the
--tdx-* flags for nodes in Intel TDX trust domains, the --snp-* flags for nodes in
AMD SEV-SNP VMs. Debug enclaves, TDs and VMs are refused unless allowed.`,
		Example: `  cloister attest policy set --accept UpToDate,SWHardeningNeeded --min-isvsvn 2
  cloister attest policy set --accept UpToDate --tdx-mrtd 91eb2b44…18b7 --snp-min-tcb 0x7308000000000003`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			p.AcceptStatuses = strings.Split(accept, ",")
			if tdxAccept != "" {
				tdx.AcceptStatuses = strings.Split(tdxAccept, ",")
			}
			if len(tdx.RTMRs) > 4 {
				return fmt.Errorf("--tdx-rtmr: %d given; give RTMR0 to RTMR3 in order (\"\" for any value), or none", len(tdx.RTMRs))
			}
			for len(tdx.RTMRs) > 0 && len(tdx.RTMRs) < 4 {
				tdx.RTMRs = append(tdx.RTMRs, "")
			}
			p.TDX, p.SNP = &tdx, &snp
			var out api.AttestationPolicy
			if err := c.client().do(cmd.Context(), "PUT", "/v1/accounts/"+url.PathEscape(acct)+"/attestation/policy", p, &out); err != nil {
				return err
			}
			return c.print(out, []string{"FIELD", "VALUE"}, policyRows(out))
		},
	}
	set.Flags().StringVar(&accept, "accept", "UpToDate,SWHardeningNeeded", "accepted TCB statuses, comma-separated")
	set.Flags().BoolVar(&p.AllowDebug, "allow-debug", false, "accept debug enclaves")
	set.Flags().BoolVar(&p.AllowSimulation, "allow-simulation", false, "accept evidence from the simulated quoting enclave")
	set.Flags().Uint32Var(&p.MinISVSVN, "min-isvsvn", 0, "lowest enclave ISVSVN accepted")
	set.Flags().BoolVar(&p.RequireNodeAttestation, "require-node-attestation", false, "refuse nodes that enrol without TEE evidence, whatever their join token says")
	set.Flags().StringVar(&tdxAccept, "tdx-accept", "", "TDX: accepted TCB statuses, comma-separated (default UpToDate,SWHardeningNeeded)")
	set.Flags().BoolVar(&tdx.AllowDebug, "tdx-allow-debug", false, "TDX: accept TDs launched in debug mode")
	set.Flags().StringArrayVar(&tdx.MRTDs, "tdx-mrtd", nil, "TDX: an accepted MRTD, hex; repeat (default: any)")
	set.Flags().StringArrayVar(&tdx.RTMRs, "tdx-rtmr", nil, "TDX: RTMR0, then RTMR1… as they must be, hex (\"\" for any value); repeat, in order")
	set.Flags().BoolVar(&snp.AllowDebug, "snp-allow-debug", false, "SEV-SNP: accept VMs the host may debug")
	set.Flags().StringArrayVar(&snp.Measurements, "snp-measurement", nil, "SEV-SNP: an accepted launch measurement, hex; repeat (default: any)")
	set.Flags().StringVar(&snp.HostData, "snp-host-data", "", "SEV-SNP: the HOST_DATA VMs must have been launched with, hex (default: any)")
	set.Flags().StringVar(&snp.MinTCB, "snp-min-tcb", "", "SEV-SNP: the least REPORTED_TCB accepted, hex (e.g. 0x7308000000000003)")
	cmd.AddCommand(get, set)
	return cmd
}

func (c *cli) attestCollateralCmd() *cobra.Command {
	var collateralJSON, tcbInfo, chain, qeIdentity, rootCRL, pckCRL string
	upload := &cobra.Command{
		Use:   "upload (--collateral-json F | --tcb-info F --qe-identity F --tcb-signing-chain F --root-crl F --pck-crl F)",
		Short: "Store Intel collateral for a platform on the server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var body api.Collateral
			if collateralJSON != "" {
				b, err := os.ReadFile(collateralJSON)
				if err != nil {
					return err
				}
				body.CollateralJSON = b
			} else {
				col, err := loadCollateral("", tcbInfo, chain, qeIdentity, rootCRL, pckCRL)
				if err != nil {
					return err
				}
				tcbBody, _ := os.ReadFile(tcbInfo)
				qeBody, _ := os.ReadFile(qeIdentity)
				body = api.Collateral{TCBInfo: tcbBody, QEIdentity: qeBody, SigningChain: string(col.TCBInfoIssuerChain),
					RootCRL: col.RootCACRL, PCKCRL: col.PCKCRL}
			}
			var out api.CollateralStored
			if err := c.client().do(cmd.Context(), "POST", "/v1/attestation/collateral", body, &out); err != nil {
				return err
			}
			return c.print(out, []string{"FMSPC", "NEXT UPDATE"}, [][]string{{out.FMSPC, ts(out.NextUpdate)}})
		},
	}
	f := upload.Flags()
	f.StringVar(&collateralJSON, "collateral-json", "", "collateral in one JSON file")
	f.StringVar(&tcbInfo, "tcb-info", "", "TCB Info as Intel PCS serves it")
	f.StringVar(&chain, "tcb-signing-chain", "", "PEM chain of the TCB signing certificate")
	f.StringVar(&qeIdentity, "qe-identity", "", "QE Identity as Intel PCS serves it")
	f.StringVar(&rootCRL, "root-crl", "", "Intel SGX Root CA CRL, DER or PEM")
	f.StringVar(&pckCRL, "pck-crl", "", "PCK CA CRL, DER or PEM")
	cmd := &cobra.Command{Use: "collateral", Short: "Manage the Intel collateral the server verifies with"}
	cmd.AddCommand(upload)
	return cmd
}

func (c *cli) attestVCEKCmd() *cobra.Command {
	upload := &cobra.Command{
		Use:   "upload VCEK",
		Short: "Store an AMD VCEK (DER or PEM) for the SEV-SNP reports of its chip and TCB that come without one",
		Long: `Store an AMD VCEK on the server: the SEV-SNP reports of its chip at its TCB that come
without a VCEK are then verified with it (else with one fetched from --amd-kds-url, if the
server has one). It is refused unless it chains to AMD's root for its product.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			der, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var out api.VCEKStored
			if err := c.client().do(cmd.Context(), "POST", "/v1/attestation/vcek", api.VCEK{VCEK: der}, &out); err != nil {
				return err
			}
			return c.print(out, []string{"PRODUCT", "HWID", "TCB", "NOT AFTER"},
				[][]string{{out.Product, out.HWID, out.TCB, out.NotAfter.Format(time.RFC3339)}})
		},
	}
	cmd := &cobra.Command{Use: "vcek", Short: "Manage the AMD VCEKs the server verifies SEV-SNP reports with"}
	cmd.AddCommand(upload)
	return cmd
}

func (c *cli) attestEvaluateCmd() *cobra.Command {
	var binding, nonce, teeName, vcek string
	cmd := &cobra.Command{
		Use:   "evaluate EVIDENCE [--tee sev-snp --vcek F]",
		Short: "Have the server verify evidence (an SGX or TDX quote, an SEV-SNP report) under the selected account's policy, and record the verdict",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			quote, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			body := api.VerifyEvidence{Quote: quote, TEE: teeName}
			if vcek != "" {
				if body.EvidenceAux, err = os.ReadFile(vcek); err != nil {
					return err
				}
			}
			if body.Binding, err = hex.DecodeString(binding); err != nil {
				return fmt.Errorf("--binding: %w", err)
			}
			if body.Nonce, err = hex.DecodeString(nonce); err != nil {
				return fmt.Errorf("--nonce: %w", err)
			}
			var v api.Verdict
			if err := c.client().do(cmd.Context(), "POST", "/v1/accounts/"+url.PathEscape(acct)+"/attestation/verify", body, &v); err != nil {
				return err
			}
			rows := [][]string{{"ok", strconv.FormatBool(v.OK)}, {"verdict", v.ID}, {"reason", v.Reason}, {"tee", v.TEE}, {"status", v.TCBStatus},
				{"mrenclave", v.MRENCLAVE}, {"mrsigner", v.MRSIGNER}, {"measurement", v.Measurement}, {"simulated", strconv.FormatBool(v.Simulated)}, {"error", v.Error}}
			if err := c.print(v, []string{"FIELD", "VALUE"}, rows); err != nil {
				return err
			}
			if !v.OK {
				return errRefused
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&binding, "binding", "", "hex of the 32 bytes REPORTDATA must start with")
	cmd.Flags().StringVar(&nonce, "nonce", "", "hex of the 32 bytes REPORTDATA must end with")
	cmd.Flags().StringVar(&teeName, "tee", "", "sev-snp for an SEV-SNP report (binary or hex); default: a quote, SGX or TDX")
	cmd.Flags().StringVar(&vcek, "vcek", "", "with --tee sev-snp: the VCEK (DER or PEM), or the host's certificate table")
	c.addAccountFlag(cmd)
	return cmd
}

func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--at %q is neither RFC 3339 nor Unix seconds", s)
	}
	return t, nil
}

// loadCollateral reads the collateral from one JSON file or from PCS files.
func loadCollateral(jsonFile, tcbInfo, chain, qeIdentity, rootCRL, pckCRL string) (*sgx.Collateral, error) {
	if jsonFile != "" {
		if tcbInfo != "" || qeIdentity != "" || chain != "" {
			return nil, errors.New("give --collateral-json or the PCS files (--tcb-info, --qe-identity, --tcb-signing-chain), not both")
		}
		b, err := os.ReadFile(jsonFile)
		if err != nil {
			return nil, err
		}
		col, err := sgx.ParseCollateralJSON(b)
		if err != nil {
			return nil, err
		}
		return overrideCRLs(col, rootCRL, pckCRL)
	}
	if tcbInfo == "" || qeIdentity == "" || chain == "" {
		return nil, errors.New("collateral needed: --collateral-json FILE, or --tcb-info, --qe-identity and --tcb-signing-chain")
	}
	col := &sgx.Collateral{}
	var err error
	read := func(name string) []byte {
		if err != nil {
			return nil
		}
		var b []byte
		if b, err = os.ReadFile(name); err != nil {
			err = fmt.Errorf("reading %s: %w", name, err)
		}
		return b
	}
	tcbBody, qeBody, chainPEM := read(tcbInfo), read(qeIdentity), read(chain)
	if err != nil {
		return nil, err
	}
	if col.TCBInfoJSON, col.TCBInfoSignature, err = sgx.SplitPCSBody(tcbBody); err != nil {
		return nil, fmt.Errorf("--tcb-info: %w", err)
	}
	if col.QEIdentityJSON, col.QEIdentitySignature, err = sgx.SplitPCSBody(qeBody); err != nil {
		return nil, fmt.Errorf("--qe-identity: %w", err)
	}
	col.TCBInfoIssuerChain, col.QEIdentityIssuerChain = chainPEM, chainPEM
	return overrideCRLs(col, rootCRL, pckCRL)
}

func overrideCRLs(col *sgx.Collateral, rootCRL, pckCRL string) (*sgx.Collateral, error) {
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{rootCRL, &col.RootCACRL}, {pckCRL, &col.PCKCRL}} {
		if f.name == "" {
			continue
		}
		b, err := os.ReadFile(f.name)
		if err != nil {
			return nil, err
		}
		crl, err := sgx.ParseCRL(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		*f.dst = crl.Raw
	}
	return col, nil
}
