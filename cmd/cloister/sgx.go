package main

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/libs/sgx"
)

// sgxFlagDebug is the DEBUG bit of ATTRIBUTES.FLAGS.
const sgxFlagDebug = 0x2

// sigstructOut is what `cloister sgx sigstruct inspect` prints.
type sigstructOut struct {
	MRENCLAVE      string `json:"mrenclave"`
	MRSIGNER       string `json:"mrsigner"`
	ISVProdID      uint16 `json:"isvprodid"`
	ISVSVN         uint16 `json:"isvsvn"`
	Attributes     string `json:"attributes"`
	AttributeMask  string `json:"attribute_mask"`
	Debug          bool   `json:"debug"`
	XFRM           string `json:"xfrm"`
	MiscSelect     string `json:"misc_select"`
	Vendor         string `json:"vendor"`
	Date           string `json:"date"`
	SignatureValid bool   `json:"signature_valid"`
	Error          string `json:"error,omitempty"`
}

func (c *cli) sgxCmd() *cobra.Command {
	inspect := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a SIGSTRUCT's measurement and signer, and check its signature",
		Long: `Show what a SIGSTRUCT (the 1808-byte enclave signature structure, such as
Gramine's .sig) declares: MRENCLAVE, MRSIGNER (SHA-256 of the signer's
modulus), ISVPRODID, ISVSVN, attributes and their mask, DEBUG, XFRM,
MISCSELECT, vendor and date, and whether its RSA-3072 signature (with Q1, Q2)
verifies. The exit status is 1 when it does not.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			s, err := sgx.ParseSigStruct(b)
			if err != nil {
				return err
			}
			mrsigner := s.MRSIGNER()
			out := sigstructOut{MRENCLAVE: hex.EncodeToString(s.EnclaveHash[:]), MRSIGNER: hex.EncodeToString(mrsigner[:]),
				ISVProdID: s.ISVProdID, ISVSVN: s.ISVSVN, Attributes: hex.EncodeToString(s.Attributes[:]),
				AttributeMask: hex.EncodeToString(s.AttributeMask[:]), Debug: s.Attributes[0]&sgxFlagDebug != 0,
				XFRM:       fmt.Sprintf("%#x", binary.LittleEndian.Uint64(s.Attributes[8:])),
				MiscSelect: fmt.Sprintf("%#x", s.MiscSelect),
				Vendor:     "0x" + strconv.FormatUint(uint64(s.Vendor), 16), Date: s.DateString()}
			verr := s.Verify()
			out.SignatureValid = verr == nil
			if verr != nil {
				out.Error = verr.Error()
			}
			rows := [][]string{{"mrenclave", out.MRENCLAVE}, {"mrsigner", out.MRSIGNER}, {"isvprodid", strconv.Itoa(int(out.ISVProdID))},
				{"isvsvn", strconv.Itoa(int(out.ISVSVN))}, {"attributes", out.Attributes},
				{"attribute mask", out.AttributeMask}, {"debug", strconv.FormatBool(out.Debug)}, {"xfrm", out.XFRM}, {"misc select", out.MiscSelect}, {"vendor", out.Vendor}, {"date", out.Date},
				{"signature valid", strconv.FormatBool(out.SignatureValid)}, {"error", out.Error}}
			if err := c.print(out, []string{"FIELD", "VALUE"}, rows); err != nil {
				return err
			}
			if verr != nil {
				return errRefused
			}
			return nil
		},
	}
	sigstruct := &cobra.Command{Use: "sigstruct", Short: "Work with SIGSTRUCTs"}
	sigstruct.AddCommand(inspect)
	cmd := &cobra.Command{Use: "sgx", Short: "Offline SGX tools"}
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error { return c.checkOutput() } // offline: no CLI config
	cmd.AddCommand(sigstruct)
	return cmd
}
