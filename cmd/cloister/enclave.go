package main

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/libs/gramine"
	"github.com/cloister-cc/cloister/libs/sgx"
)

// enclaveMeasurement is what `cloister enclave measure` prints.
type enclaveMeasurement struct {
	MRENCLAVE   string        `json:"mrenclave"`
	EnclaveSize string        `json:"enclave_size"`
	MaxThreads  int           `json:"max_threads"`
	EDMM        bool          `json:"edmm"`
	Debug       bool          `json:"debug"`
	Areas       []enclaveArea `json:"areas"`
}

// enclaveArea is one line of the memory layout, as gramine-sgx-sign
// --verbose prints it.
type enclaveArea struct {
	Start    string `json:"start"`
	End      string `json:"end"`
	Type     string `json:"type"`
	Prot     string `json:"prot"`
	Desc     string `json:"desc"`
	Measured bool   `json:"measured"`
}

// enclaveSigned is what `cloister enclave sign` prints.
type enclaveSigned struct {
	Output    string `json:"output"`
	MRENCLAVE string `json:"mrenclave"`
	MRSIGNER  string `json:"mrsigner"`
	ISVProdID uint16 `json:"isvprodid"`
	ISVSVN    uint16 `json:"isvsvn"`
	Debug     bool   `json:"debug"`
	Date      string `json:"date"`
}

func (c *cli) enclaveCmd() *cobra.Command {
	var manifestPath, libpalPath string
	addInputs := func(cmd *cobra.Command) {
		cmd.Flags().StringVar(&manifestPath, "manifest", "", "the signed manifest, FILE.manifest.sgx: its bytes are measured as they are (required)")
		cmd.Flags().StringVar(&libpalPath, "libpal", "", "Gramine's Linux-SGX PAL, libpal.so, of the runtime the enclave runs on (required)")
		_ = cmd.MarkFlagRequired("manifest")
		_ = cmd.MarkFlagRequired("libpal")
	}
	measureInputs := func() (*gramine.Measurement, error) {
		man, err := os.ReadFile(manifestPath)
		if err != nil {
			return nil, err
		}
		pal, err := os.ReadFile(libpalPath)
		if err != nil {
			return nil, err
		}
		m, err := gramine.Measure(man, pal)
		if err != nil {
			return nil, fmt.Errorf("measuring %s with %s: %w", manifestPath, libpalPath, err)
		}
		return m, nil
	}

	measure := &cobra.Command{
		Use:   "measure --manifest FILE.manifest.sgx --libpal libpal.so",
		Short: "Compute a Gramine enclave's MRENCLAVE, as gramine-sgx-sign does",
		Long: `Compute the MRENCLAVE of the SGX enclave that Gramine builds from a signed
manifest and its libpal.so, bit for bit as Gramine's signer computes it, and
list the enclave's memory areas as gramine-sgx-sign --verbose does. The
manifest's bytes are measured exactly as they are (followed by one NUL), so
give the .manifest.sgx that the enclave will load. No server is needed.`,
		Example: "  cloister enclave measure --manifest app.manifest.sgx --libpal /usr/lib/x86_64-linux-gnu/gramine/sgx/libpal.so -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := measureInputs()
			if err != nil {
				return err
			}
			out := enclaveMeasurement{MRENCLAVE: hex.EncodeToString(m.MRENCLAVE[:]), EnclaveSize: gramine.FormatSize(m.Params.EnclaveSize),
				MaxThreads: m.Params.MaxThreads, EDMM: m.Params.EDMM, Debug: m.Params.Debug, Areas: []enclaveArea{}}
			rows := [][]string{}
			for _, a := range m.Areas {
				ea := enclaveArea{Start: fmt.Sprintf("%016x", a.Start), End: fmt.Sprintf("%016x", a.End), Type: a.Type(), Prot: a.Prot(), Desc: a.Desc, Measured: a.Measured}
				out.Areas = append(out.Areas, ea)
				rows = append(rows, []string{ea.Start + "-" + ea.End, ea.Type + ":" + ea.Prot, ea.Desc, strconv.FormatBool(ea.Measured)})
			}
			if c.output == "json" {
				return c.print(out, nil, nil)
			}
			fmt.Fprintf(c.out, "mrenclave:    %s\nenclave size: %s\nmax threads:  %d\nedmm:         %t\ndebug:        %t\n\n",
				out.MRENCLAVE, out.EnclaveSize, out.MaxThreads, out.EDMM, out.Debug)
			return c.print(out, []string{"RANGE", "PAGES", "AREA", "MEASURED"}, rows)
		},
	}
	addInputs(measure)

	var keyPath, date, output string
	sign := &cobra.Command{
		Use:   "sign --manifest FILE.manifest.sgx --libpal libpal.so --key KEY.pem --output FILE.sig",
		Short: "Write a Gramine enclave's SIGSTRUCT (.sig), as gramine-sgx-sign does",
		Long: `Measure the enclave (see "cloister enclave measure") and write its SIGSTRUCT,
the .sig file that Gramine's loader gives to EINIT, byte for byte as
gramine-sgx-sign writes it: ATTRIBUTES from sgx.debug, XFRM and its mask from
sgx.cpu_features, MISCSELECT from sgx.use_exinfo, ISVPRODID and ISVSVN, signed
with an RSA-3072 key with public exponent 3 (PKCS#1 or PKCS#8 PEM, not
encrypted). The manifest is signed as it is; it is not rewritten.`,
		Example: "  cloister enclave sign --manifest app.manifest.sgx --libpal libpal.so --key enclave-key.pem --date 2025-01-02 --output app.sig",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			day := time.Now().UTC()
			if date != "" {
				var err error
				if day, err = time.Parse(time.DateOnly, date); err != nil {
					return fmt.Errorf("--date %q: want YYYY-MM-DD", date)
				}
			}
			key, err := readSigningKey(keyPath)
			if err != nil {
				return err
			}
			m, err := measureInputs()
			if err != nil {
				return err
			}
			sig, err := m.Sign(key, day)
			if err != nil {
				return fmt.Errorf("signing: %w", err)
			}
			if err := os.WriteFile(output, sig, 0o644); err != nil {
				return err
			}
			mrsigner := sgx.MRSIGNEROf(&key.PublicKey)
			out := enclaveSigned{Output: output, MRENCLAVE: hex.EncodeToString(m.MRENCLAVE[:]), MRSIGNER: hex.EncodeToString(mrsigner[:]),
				ISVProdID: m.Params.ISVProdID, ISVSVN: m.Params.ISVSVN, Debug: m.Params.Debug, Date: day.Format(time.DateOnly)}
			return c.print(out, []string{"FIELD", "VALUE"}, [][]string{{"output", out.Output}, {"mrenclave", out.MRENCLAVE}, {"mrsigner", out.MRSIGNER},
				{"isvprodid", strconv.Itoa(int(out.ISVProdID))}, {"isvsvn", strconv.Itoa(int(out.ISVSVN))}, {"debug", strconv.FormatBool(out.Debug)}, {"date", out.Date}})
		},
	}
	addInputs(sign)
	sign.Flags().StringVar(&keyPath, "key", "", "the enclave signing key: RSA-3072, exponent 3, PEM (required)")
	sign.Flags().StringVar(&date, "date", "", "the SIGSTRUCT's date, YYYY-MM-DD (default: today, UTC)")
	sign.Flags().StringVar(&output, "output", "", "where to write the SIGSTRUCT, FILE.sig (required)")
	// --output names the .sig here, as in gramine-sgx-sign, so the output
	// format keeps only its short form.
	sign.Flags().StringVarP(&c.output, "format", "o", "table", "output format: table or json")
	_ = sign.MarkFlagRequired("key")
	_ = sign.MarkFlagRequired("output")

	cmd := &cobra.Command{Use: "enclave", Short: "Offline Gramine enclave tools: measure and sign, as gramine-sgx-sign does"}
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error { return c.checkOutput() } // offline: no CLI config
	cmd.AddCommand(measure, sign)
	return cmd
}

// readSigningKey reads an RSA private key from a PEM file (PKCS#1 or
// PKCS#8); the signer checks its size and exponent.
func readSigningKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	if strings.Contains(blk.Headers["Proc-Type"], "ENCRYPTED") { // RFC 1423 legacy encryption
		return nil, fmt.Errorf("%s: the key is encrypted; decrypt it first (openssl rsa -in %s -out plain.pem)", path, path)
	}
	var key any
	switch blk.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%s: a %q PEM block, want an RSA private key", path, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New(path + ": not an RSA key")
	}
	return rk, nil
}
