package main

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/libs/enclave"
)

// measurement is what `cloister image measure` reports.
type measurement struct {
	Ref       string            `json:"ref"`
	Digest    string            `json:"digest"`
	MRENCLAVE string            `json:"mrenclave"`
	MRSIGNER  string            `json:"mrsigner"`
	ISVProdID uint16            `json:"isvprodid"`
	ISVSVN    uint16            `json:"isvsvn"`
	Labels    map[string]string `json:"labels"`
	Match     bool              `json:"match"`
	Problems  []string          `json:"problems"`
	// What the measurement covers: read it before trusting the image.
	Launcher string            `json:"launcher"`
	Manifest *enclave.Manifest `json:"manifest"`
}

func (c *cli) imageMeasureCmd() *cobra.Command {
	var insecure bool
	cmd := &cobra.Command{
		Use:   "measure REF",
		Short: "Recompute a converted image's MRENCLAVE and MRSIGNER, trusting nothing the converter said",
		Long: `Pull a converted image and recompute its measurement from what it holds: hash
every file of its layers into the trusted-file list, check the manifest and the
launcher against it, lay out the enclave (docs/enclave-layout.md) to compute
MRENCLAVE, verify the SIGSTRUCT, and compare everything with the image's labels.
The registry login comes from your Docker configuration (~/.docker/config.json).
Exits 1 when anything disagrees, listing what.`,
		Example: "  cloister image measure registry.example.com/samples/hello-sgx:1 -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts []name.Option
			if insecure {
				opts = append(opts, name.Insecure)
			}
			ref, err := name.ParseReference(args[0], opts...)
			if err != nil {
				return fmt.Errorf("%q is not an image reference: %w", args[0], err)
			}
			desc, err := remote.Get(ref, remote.WithContext(cmd.Context()), remote.WithAuthFromKeychain(authn.DefaultKeychain))
			if err != nil {
				return fmt.Errorf("pulling %s: %w", ref, err)
			}
			img, err := desc.Image()
			if err != nil {
				return fmt.Errorf("reading %s: %w", ref, err)
			}
			m, err := enclave.MeasureImage(cmd.Context(), img)
			if err != nil {
				return fmt.Errorf("measuring %s: %w", ref, err)
			}
			out := measurement{Ref: ref.String(), Digest: desc.Digest.String(), MRENCLAVE: hex.EncodeToString(m.MRENCLAVE[:]),
				MRSIGNER: hex.EncodeToString(m.MRSIGNER[:]), ISVProdID: m.ISVProdID, ISVSVN: m.ISVSVN,
				Labels: m.Labels, Match: m.Match, Problems: m.Problems, Launcher: m.Launcher, Manifest: m.Manifest}
			if out.Labels == nil {
				out.Labels = map[string]string{}
			}
			if out.Problems == nil {
				out.Problems = []string{}
			}
			rows := [][]string{{"mrenclave", out.MRENCLAVE}, {"mrsigner", out.MRSIGNER},
				{"isvprodid", strconv.Itoa(int(out.ISVProdID))}, {"isvsvn", strconv.Itoa(int(out.ISVSVN))},
				{"matches labels", strconv.FormatBool(out.Match)}}
			rows = append(rows, []string{"launcher", out.Launcher})
			if man := out.Manifest; man != nil {
				env := make([]string, len(man.Env))
				for i, e := range man.Env {
					env[i] = e.Name + "=" + e.Value
				}
				rows = append(rows,
					[]string{"entrypoint", strings.Join(man.Entrypoint, " ")}, []string{"args", strings.Join(man.Args, " ")},
					[]string{"run-time args", strconv.FormatBool(man.AllowCmdlineArgs)}, []string{"env", strings.Join(env, " ")},
					[]string{"passthrough env", strings.Join(man.PassthroughEnv, " ")}, []string{"rw dirs", strings.Join(man.RWDirs, " ")},
					[]string{"memory", strconv.FormatUint(man.MemorySize, 10)}, []string{"threads", strconv.Itoa(int(man.Threads))},
					[]string{"debug", strconv.FormatBool(man.Debug)})
			}
			for _, k := range slices.Sorted(maps.Keys(out.Labels)) {
				rows = append(rows, []string{"label " + k, out.Labels[k]})
			}
			for _, p := range out.Problems {
				rows = append(rows, []string{"problem", p})
			}
			if err := c.print(out, []string{"FIELD", "VALUE"}, rows); err != nil {
				return err
			}
			if !out.Match {
				return fmt.Errorf("the image's measurement does not hold together: %s", strings.Join(out.Problems, "; "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to the registry (local registries such as 127.0.0.1:5000)")
	return cmd
}
