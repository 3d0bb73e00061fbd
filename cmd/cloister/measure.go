package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/libs/enclave"
	"github.com/cloister-cc/cloister/libs/imagefs"
)

// measurement is what `cloister image measure` reports.
type measurement struct {
	Ref       string `json:"ref"`
	Digest    string `json:"digest"`
	MRENCLAVE string `json:"mrenclave"`
	MRSIGNER  string `json:"mrsigner"`
	ISVProdID uint16 `json:"isvprodid"`
	ISVSVN    uint16 `json:"isvsvn"`
	// Debug is the Gramine manifest's sgx.debug: a debug enclave's
	// memory is readable from the host, and it has its own MRENCLAVE.
	Debug    bool              `json:"debug"`
	Labels   map[string]string `json:"labels"`
	Match    bool              `json:"match"`
	Problems []string          `json:"problems"`
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
every file of its layers into the trusted-file list, check that the Gramine
manifest lists every one of them with its SHA-256 (naming the first file that
differs) and is the one Cloister writes for the launcher's manifest, compute
MRENCLAVE from the Gramine manifest and the runtime's libpal.so exactly as
gramine-sgx-sign does (docs/enclave-layout.md), verify the SIGSTRUCT, and
compare everything with the image's labels.
The registry login comes from your Docker configuration (~/.docker/config.json).
Exits 1 when anything disagrees, listing what.`,
		Example: "  cloister image measure registry.example.com/samples/hello-sgx:1 -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, desc, img, err := pullImage(cmd.Context(), args[0], insecure)
			if err != nil {
				return err
			}
			m, err := enclave.MeasureImage(cmd.Context(), img)
			if err != nil {
				return fmt.Errorf("measuring %s: %w", ref, err)
			}
			out := measurement{Ref: ref.String(), Digest: desc.Digest.String(), MRENCLAVE: hex.EncodeToString(m.MRENCLAVE[:]),
				MRSIGNER: hex.EncodeToString(m.MRSIGNER[:]), ISVProdID: m.ISVProdID, ISVSVN: m.ISVSVN, Debug: m.Debug,
				Labels: m.Labels, Match: m.Match, Problems: m.Problems, Launcher: m.Launcher, Manifest: m.Manifest}
			if out.Labels == nil {
				out.Labels = map[string]string{}
			}
			if out.Problems == nil {
				out.Problems = []string{}
			}
			rows := [][]string{{"mrenclave", out.MRENCLAVE}, {"mrsigner", out.MRSIGNER},
				{"isvprodid", strconv.Itoa(int(out.ISVProdID))}, {"isvsvn", strconv.Itoa(int(out.ISVSVN))}, {"debug enclave", strconv.FormatBool(out.Debug)},
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
	cmd.Flags().BoolVar(&insecure, "insecure", false, insecureUsage)
	return cmd
}

const insecureUsage = "allow plain HTTP to the registry (127.0.0.1, localhost and private addresses always may)"

// pullImage resolves an image reference with the login from the Docker
// configuration (a manifest list gives its linux/amd64 image).
func pullImage(ctx context.Context, s string, insecure bool) (name.Reference, *remote.Descriptor, v1.Image, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := enclave.ParseImageReference(s, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	return ref, desc, img, nil
}

func (c *cli) imageUnpackCmd() *cobra.Command {
	var (
		insecure bool
		maxSize  string
	)
	cmd := &cobra.Command{
		Use:   "unpack REF DIR",
		Short: "Write an image's filesystem into a new directory, to run a converted image's launcher without a container",
		Long: `Pull an image and write its final filesystem (all layers applied) into DIR,
which must not exist or be empty. Ownership, set-id bits and device files are
not restored, and nothing is written outside DIR.

A converted image's launcher can then run from it without a container runtime,
as the end-to-end test and make demo do (in simulation: the application runs on
the host, not in an enclave; for trying Cloister, never for production):

  DIR/opt/cloister/launcher --root DIR --`,
		Example: "  cloister image unpack 127.0.0.1:5000/samples/hello-sgx:1 /tmp/hello",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			limit, err := parseSize(maxSize)
			if err != nil || limit == 0 || limit > math.MaxInt64 {
				return fmt.Errorf("--max-size %q: want a size such as 512M or 4G", maxSize)
			}
			dir := args[1]
			if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
				return fmt.Errorf("%s is not empty; unpack into a new directory", dir)
			}
			ref, _, img, err := pullImage(cmd.Context(), args[0], insecure)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if err := imagefs.Unpack(cmd.Context(), img, dir, int64(limit)); err != nil {
				return fmt.Errorf("%s: %w", ref, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Unpacked %s into %s\n", ref, dir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&insecure, "insecure", false, insecureUsage)
	cmd.Flags().StringVar(&maxSize, "max-size", "4G", "the most file contents to write")
	return cmd
}
