package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/libs/snp"
	"github.com/cloister-cc/cloister/libs/tee"
)

// snpResult is what `cloister attest verify-snp` prints: the keys every
// TEE's verification shares (ok, tee, status, advisories, measurement,
// report_data, debug, tcb, error), and SEV-SNP's own.
type snpResult struct {
	OK          bool     `json:"ok"`
	TEE         string   `json:"tee"`
	Status      string   `json:"status,omitempty"`
	Advisories  []string `json:"advisories"`
	Measurement string   `json:"measurement,omitempty"`
	ReportData  string   `json:"report_data,omitempty"`
	HostData    string   `json:"host_data,omitempty"`
	Debug       bool     `json:"debug"`
	TCB         *snpTCB  `json:"tcb,omitempty"`
	Product     string   `json:"product,omitempty"`
	Signer      string   `json:"signer,omitempty"`
	Version     uint32   `json:"version,omitempty"`
	VMPL        uint32   `json:"vmpl"`
	Policy      string   `json:"policy,omitempty"`
	GuestSVN    uint32   `json:"guest_svn"`
	ChipID      string   `json:"chip_id,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// snpTCB is a report's TCB: the reported one (its VCEK's), by level, and
// the firmware's current one.
type snpTCB struct {
	Reported string           `json:"reported"`
	Current  string           `json:"current"`
	Levels   map[string]uint8 `json:"levels,omitempty"`
}

// snpVerified is the status of a report that verifies: AMD publishes no
// TCB status as Intel does.
const snpVerified = "Verified"

func (c *cli) attestVerifySNPCmd() *cobra.Command {
	var vcek, chain, at, minTCB string
	var measurements []string
	var allowDebug bool
	cmd := &cobra.Command{
		Use:   "verify-snp REPORT --vcek F [--cert-chain F] [--at T]",
		Short: "Verify an AMD SEV-SNP attestation report, offline",
		Long: `Verify an AMD SEV-SNP attestation report (version 2 or later, 1184 bytes in
binary or hex) completely and offline: its signature by the VCEK (or VLEK), that
certificate up to AMD's root for the processor's product line (built in: Milan,
Genoa, Turin), the chip and product the certificate was issued for, and
REPORTED_TCB against the TCB it was issued for.

The VCEK is not fetched: AMD's key distribution service serves it at
https://kdsintf.amd.com/vcek/v1/{Milan,Genoa,Turin}/<CHIP_ID>?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..
(DER), and a host gives it with the report (the extended report). A
--cert-chain (ASK then ARK, PEM, as the service's cert_chain) must be AMD's.

AMD publishes no TCB status: a report that verifies has status Verified, and
is accepted when it is not a debug VM (unless --allow-debug), its
REPORTED_TCB is at least --min-tcb level by level, and its measurement is one
of --measurement (when given). The exit status is 0 when accepted, 1
otherwise; the result is printed either way.`,
		Example: `  cloister attest verify-snp report.hex --vcek vcek.der --cert-chain cert_chain --at 2025-07-01T00:00:00Z -o json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			when := time.Now()
			if at != "" {
				var err error
				if when, err = parseTime(at); err != nil {
					return err
				}
			}
			var policy snp.Policy
			policy.AllowDebug = allowDebug
			if minTCB != "" {
				var err error
				if policy.MinTCB, err = snp.ParseTCB(minTCB); err != nil {
					return fmt.Errorf("--min-tcb: %w", err)
				}
			}
			for _, m := range measurements {
				v, err := snp.ParseMeasurement(m)
				if err != nil {
					return fmt.Errorf("--measurement: %w", err)
				}
				policy.Measurements = append(policy.Measurements, v)
			}
			report, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if vcek == "" {
				return errors.New("--vcek is required: the certificate of the key that signed the report (see --help for where AMD serves it)")
			}
			opts := snp.Options{At: when}
			if opts.VCEK, err = os.ReadFile(vcek); err != nil {
				return err
			}
			if chain != "" {
				if opts.Chain, err = os.ReadFile(chain); err != nil {
					return err
				}
			}
			out := snpResult{TEE: tee.SEVSNP, Advisories: []string{}}
			res, err := snp.Verify(report, opts)
			if err == nil {
				out = snpOutput(res)
				err = policy.Check(res)
			}
			out.OK = err == nil
			if err != nil {
				out.Error = err.Error()
			}
			rows := [][]string{{"ok", strconv.FormatBool(out.OK)}, {"tee", out.TEE}, {"status", out.Status},
				{"measurement", out.Measurement}, {"report data", out.ReportData}, {"host data", out.HostData},
				{"debug", strconv.FormatBool(out.Debug)}, {"product", out.Product}, {"signer", out.Signer},
				{"vmpl", strconv.Itoa(int(out.VMPL))}, {"policy", out.Policy}, {"error", out.Error}}
			if out.TCB != nil {
				rows = append(rows, []string{"reported tcb", out.TCB.Reported}, []string{"current tcb", out.TCB.Current})
			}
			return c.printVerdict(out, rows, out.OK)
		},
	}
	f := cmd.Flags()
	f.StringVar(&vcek, "vcek", "", "the VCEK (or VLEK) certificate, DER or PEM (required)")
	f.StringVar(&chain, "cert-chain", "", "the ASK and ARK, PEM, as AMD serves them: checked to be AMD's")
	f.StringVar(&at, "at", "", "verify as of this time, RFC 3339 or Unix seconds (default: now)")
	f.BoolVar(&allowDebug, "allow-debug", false, "accept a VM the host may debug")
	f.StringVar(&minTCB, "min-tcb", "", "the least REPORTED_TCB accepted, hex (e.g. 0x7308000000000003)")
	f.StringArrayVar(&measurements, "measurement", nil, "an accepted launch measurement, 96 hex digits; repeat")
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error { return c.checkOutput() }
	return cmd
}

func snpOutput(r *snp.Result) snpResult {
	return snpResult{
		TEE: tee.SEVSNP, Status: snpVerified, Advisories: []string{},
		Measurement: hex.EncodeToString(r.Measurement[:]), ReportData: hex.EncodeToString(r.ReportData[:]),
		HostData: hex.EncodeToString(r.HostData[:]), Debug: r.Debug,
		TCB:     &snpTCB{Reported: r.ReportedTCB.String(), Current: r.CurrentTCB.String(), Levels: r.ReportedTCB.Levels(r.ProductLine)},
		Product: r.ProductLine, Signer: r.Signer, Version: r.Version, VMPL: r.VMPL,
		Policy: fmt.Sprintf("0x%x", r.Policy), GuestSVN: r.GuestSVN, ChipID: strings.ToLower(hex.EncodeToString(r.ChipID[:])),
	}
}
