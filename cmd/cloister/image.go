package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

var imageHeader = []string{"ID", "APP", "TAG", "STATUS", "MRENCLAVE", "REF"}

func imageRows(is ...api.Image) [][]string {
	rows := make([][]string, len(is))
	for i, im := range is {
		state := im.Status
		if im.Reason != "" {
			state += " (" + im.Reason + ")"
		}
		rows[i] = []string{im.ID, im.AppID, im.Tag, state, im.MRENCLAVE, im.Ref}
	}
	return rows
}

func imageDetail(im api.Image) ([]string, [][]string) {
	return []string{"FIELD", "VALUE"}, [][]string{
		{"id", im.ID}, {"app", im.AppID}, {"tag", im.Tag}, {"status", im.Status},
		{"input", im.InputImage}, {"output", im.Output}, {"ref", im.Ref},
		{"mrenclave", im.MRENCLAVE}, {"mrsigner", im.MRSIGNER},
		{"isvprodid", strconv.Itoa(int(im.ISVProdID))}, {"isvsvn", strconv.Itoa(int(im.ISVSVN))},
		{"gramine runtime", runtimeLabel(im)},
		{"in its registry", referenceLabel(im.ReferenceStatus)},
		{"reason", im.Reason}, {"error", im.Error},
	}
}

// referenceLabel says what a converted image's registry answered.
func referenceLabel(status string) string {
	if status == "missing" {
		return "MISSING: the registry no longer has it; convert again with another tag"
	}
	return status
}

// runtimeLabel names the image's Gramine runtime, saying so when it is
// Cloister's stand-in.
func runtimeLabel(im api.Image) string {
	if im.GramineRuntimeStandIn {
		return im.GramineRuntime + " (STAND-IN: attests in simulation, cannot start an SGX enclave)"
	}
	return im.GramineRuntime
}

func (c *cli) imageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Convert applications' images into enclave images, and measure them"}
	c.addAccountFlag(cmd)
	base := func(acct string) string { return "/v1/accounts/" + url.PathEscape(acct) + "/images" }

	var app, tag string
	var wait bool
	var timeout time.Duration
	convert := &cobra.Command{
		Use:   "convert --app APP --tag TAG [--wait [--timeout D]]",
		Short: "Convert the application's input image and push it as <output image>:TAG",
		Long: `Convert the application's input image into an enclave image: pull it, list and
hash every file, write the enclave manifest, compute MRENCLAVE, sign the SIGSTRUCT
with the account's signing key, and push <output image>:TAG reusing the input's
layers. With --wait, follow the conversion with a progress bar until it ends (or
--timeout passes: the conversion goes on); the command fails when the conversion
does. Right after an account is created, --wait also waits for its signing key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if wait {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			im, err := c.convert(ctx, base(acct), api.ConvertImage{App: app, Tag: tag}, wait, os.Stderr)
			if err != nil {
				return waited(err, timeout, "")
			}
			if wait {
				if im, err = c.waitImage(ctx, acct, im, os.Stderr); err != nil {
					return waited(err, timeout, im.ID)
				}
			}
			header, rows := imageDetail(im)
			if err := c.print(im, header, rows); err != nil {
				return err
			}
			if im.Status == "failed" {
				return fmt.Errorf("conversion failed: %s: %s", im.Reason, im.Error)
			}
			return nil
		},
	}
	convert.Flags().StringVar(&app, "app", "", "the application (id or name)")
	convert.Flags().StringVar(&tag, "tag", "", "the tag to push")
	convert.Flags().BoolVar(&wait, "wait", false, "follow the conversion until it ends")
	convert.Flags().DurationVar(&timeout, "timeout", 15*time.Minute, "with --wait, stop following after this long (the conversion goes on)")
	_ = convert.MarkFlagRequired("app")
	_ = convert.MarkFlagRequired("tag")

	var listApp string
	list := &cobra.Command{
		Use: "list [--app APP]", Short: "List images", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			path := base(acct)
			if listApp != "" {
				path += "?app=" + url.QueryEscape(listApp)
			}
			var l api.List[api.Image]
			if err := c.client().do(cmd.Context(), "GET", path, nil, &l); err != nil {
				return err
			}
			return c.print(l, imageHeader, imageRows(l.Items...))
		},
	}
	list.Flags().StringVar(&listApp, "app", "", "only this application's images")

	show := &cobra.Command{
		Use: "show IMAGE_ID", Short: "Show an image: status, progress, MRENCLAVE, MRSIGNER", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var im api.Image
			if err := c.client().do(cmd.Context(), "GET", base(acct)+"/"+url.PathEscape(args[0]), nil, &im); err != nil {
				return err
			}
			header, rows := imageDetail(im)
			return c.print(im, header, rows)
		},
	}

	del := &cobra.Command{
		Use: "delete IMAGE_ID", Short: "Forget an image: its approval goes and its certificates are revoked", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			if err := c.client().do(cmd.Context(), "DELETE", base(acct)+"/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "Deleted %s (the pushed image stays in its registry)\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(convert, list, show, del, c.imageMeasureCmd(), c.imageUnpackCmd())
	return cmd
}

// convert asks for a conversion. With wait, it asks again while the
// account's signing key is being made (right after the account was
// created), saying so on w, until ctx ends.
func (c *cli) convert(ctx context.Context, path string, req api.ConvertImage, wait bool, w io.Writer) (api.Image, error) {
	said := false
	for {
		var im api.Image
		err := c.client().do(ctx, "POST", path, req, &im)
		var pe *api.Error
		if !wait || !errors.As(err, &pe) || pe.Reason != "signing_key_not_ready" {
			return im, err
		}
		if !said {
			fmt.Fprintln(w, "waiting for the account's enclave signing key, which is made when the account is created...")
			said = true
		}
		select {
		case <-ctx.Done():
			return im, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// waited explains an error of following a conversion when it is the
// --timeout's.
func waited(err error, timeout time.Duration, imageID string) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if imageID == "" {
		return fmt.Errorf("the account's enclave signing key was not ready within --timeout %s; try again later", timeout)
	}
	return fmt.Errorf("the conversion of image %s did not end within --timeout %s; it goes on: follow it with cloister image show %s", imageID, timeout, imageID)
}

// imageLongPoll is how long one request of waitImage lets the server
// wait for the image to change: under the API client's 30 s timeout.
const imageLongPoll = 20 * time.Second

// waitImage follows an image until its conversion ends, drawing progress
// on w. Each request asks the server to answer when the image changes
// (?wait&after: a long poll), so each step shows as it happens.
func (c *cli) waitImage(ctx context.Context, acct string, im api.Image, w io.Writer) (api.Image, error) {
	path := "/v1/accounts/" + url.PathEscape(acct) + "/images/" + url.PathEscape(im.ID)
	for im.Status != "converted" && im.Status != "failed" {
		fmt.Fprintf(w, "\r%s", progressLine(im))
		q := url.Values{"wait": {imageLongPoll.String()}, "after": {im.UpdatedAt.UTC().Format(time.RFC3339Nano)}}
		if err := c.client().do(ctx, "GET", path+"?"+q.Encode(), nil, &im); err != nil {
			fmt.Fprintln(w)
			return im, err
		}
	}
	fmt.Fprintf(w, "\r%s\n", progressLine(im))
	return im, nil
}

// progressLine draws one line: phase, layers, bytes and a bar.
func progressLine(im api.Image) string {
	p := im.Progress
	switch {
	case im.Status == "failed":
		return fmt.Sprintf("%-10s %s: %s", im.Status, im.Reason, im.Error)
	case im.Status == "pending" && im.Reason != "":
		return fmt.Sprintf("%-10s to be tried again after %s: %s", im.Status, im.Reason, im.Error)
	case im.Status == "pending" || p.Phase == "":
		return fmt.Sprintf("%-10s waiting for a worker%30s", im.Status, "")
	}
	const width = 30
	done := 0.0
	switch {
	case p.TotalBytes > 0:
		done = float64(p.Bytes) / float64(p.TotalBytes)
	case p.TotalLayers > 0:
		done = float64(p.Layers) / float64(p.TotalLayers)
	}
	if im.Status == "converted" {
		done = 1
	}
	n := min(width, int(done*width))
	bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
	return fmt.Sprintf("%-10s %-7s [%s] %d/%d layers %7.1f MiB", im.Status, p.Phase, bar, p.Layers, p.TotalLayers, float64(p.Bytes)/(1<<20))
}

func (c *cli) registryCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Logins the converter uses to pull and push images"}
	c.addAccountFlag(cmd)
	base := func(acct string) string { return "/v1/accounts/" + url.PathEscape(acct) + "/registries" }
	var username string
	var stdin bool
	login := &cobra.Command{
		Use:   "login REGISTRY --username USER --password-stdin",
		Short: "Store a registry login (sealed at rest; never shown again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			if !stdin {
				return fmt.Errorf("give the password on standard input with --password-stdin, so it stays out of your shell history")
			}
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("reading the password from standard input: %w", err)
			}
			var rc api.RegistryCredential
			if err := c.client().do(cmd.Context(), "PUT", base(acct)+"/"+url.PathEscape(args[0]),
				api.PutRegistryCredential{Username: username, Password: strings.TrimRight(line, "\r\n")}, &rc); err != nil {
				return err
			}
			return c.print(rc, []string{"REGISTRY", "USERNAME"}, [][]string{{rc.Registry, rc.Username}})
		},
	}
	login.Flags().StringVar(&username, "username", "", "the registry user")
	login.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	_ = login.MarkFlagRequired("username")

	list := &cobra.Command{
		Use: "list", Short: "List the stored registry logins (no passwords)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var l api.List[api.RegistryCredential]
			if err := c.client().do(cmd.Context(), "GET", base(acct), nil, &l); err != nil {
				return err
			}
			rows := make([][]string, len(l.Items))
			for i, r := range l.Items {
				rows[i] = []string{r.Registry, r.Username, r.UpdatedAt.Format(time.RFC3339)}
			}
			return c.print(l, []string{"REGISTRY", "USERNAME", "UPDATED"}, rows)
		},
	}
	logout := &cobra.Command{
		Use: "logout REGISTRY", Short: "Forget a registry login", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			return c.client().do(cmd.Context(), "DELETE", base(acct)+"/"+url.PathEscape(args[0]), nil, nil)
		},
	}
	cmd.AddCommand(login, list, logout)
	return cmd
}
