package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// versionLabel is a version's number, and whether it waits for approval.
func versionLabel(v api.SecretVersion) string {
	if v.Pending {
		return strconv.Itoa(int(v.Version)) + " (pending approval)"
	}
	return strconv.Itoa(int(v.Version))
}

// maxSecretInput bounds what `secret set` reads: the server takes 64 KiB.
const maxSecretInput = 64 << 10

func (c *cli) secretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Applications' secrets, given only to their attested enclaves",
		Long: `An application's secrets are named values (a password, an API key, a file) that
Cloister keeps sealed and gives only to an enclave of the application whose
quote passed for an approved image, sealed to a key that enclave made and bound
in its quote: the host and the node agent see ciphertext. The enclave finds each
in the application's secrets directory (--secrets-dir of cloister app), and
those named by --secret-env as environment variables. Admins set and delete
them; nobody reads them back. A change reaches enclaves started after it; a
running one keeps what it was given (docs/secrets.md).`,
	}
	c.addAccountFlag(cmd)
	path := func(acct, app string, rest ...string) string {
		p := "/v1/accounts/" + url.PathEscape(acct) + "/apps/" + url.PathEscape(app) + "/secrets"
		for _, r := range rest {
			p += "/" + url.PathEscape(r)
		}
		return p
	}

	var fromFile string
	var fromStdin bool
	set := &cobra.Command{
		Use:   "set APP NAME (--from-file FILE | --value-stdin)",
		Short: "Set a secret as its newest version (admins only; sealed at rest, never shown again)",
		Example: `  printf %s "$DB_PASSWORD" | cloister secret set hello db-password --value-stdin
  cloister secret set hello tls-client.pem --from-file ./client.pem`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var r io.Reader
			switch {
			case fromFile != "" && fromStdin:
				return errors.New("give the value with --from-file or --value-stdin, not both")
			case fromFile != "":
				f, err := os.Open(fromFile)
				if err != nil {
					return fmt.Errorf("reading the value: %w", err)
				}
				defer f.Close()
				r = f
			case fromStdin:
				r = cmd.InOrStdin()
			default:
				return errors.New("give the value with --from-file FILE or --value-stdin: never on the command line, where other users and your shell history see it")
			}
			value, err := io.ReadAll(io.LimitReader(r, maxSecretInput+1))
			if err != nil {
				return fmt.Errorf("reading the value: %w", err)
			}
			defer clear(value)
			if len(value) > maxSecretInput {
				return fmt.Errorf("the value is larger than %d KiB, the most a secret may hold", maxSecretInput>>10)
			}
			var s api.Secret
			if err := c.client().do(cmd.Context(), "PUT", path(acct, args[0], args[1]), api.PutSecret{Value: value}, &s); err != nil {
				return err
			}
			v := s.Versions[len(s.Versions)-1]
			if v.Pending {
				fmt.Fprintf(os.Stderr, "Version %d waits for approval (the account's secrets need approval): see cloister task list --status pending\n", v.Version)
			}
			return c.print(s, []string{"NAME", "VERSION", "SIZE"}, [][]string{{s.Name, versionLabel(v), strconv.Itoa(int(v.Size))}})
		},
	}
	set.Flags().StringVar(&fromFile, "from-file", "", "read the value from `FILE` (as bytes, unchanged)")
	set.Flags().BoolVar(&fromStdin, "value-stdin", false, "read the value from standard input (as bytes, unchanged: mind a trailing newline)")

	list := &cobra.Command{
		Use: "list APP", Short: "List an application's secrets and their versions (never their values)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var l api.List[api.Secret]
			if err := c.client().do(cmd.Context(), "GET", path(acct, args[0]), nil, &l); err != nil {
				return err
			}
			rows := make([][]string, len(l.Items))
			for i, s := range l.Items {
				v := s.Versions[len(s.Versions)-1]
				rows[i] = []string{s.Name, versionLabel(v), strconv.Itoa(len(s.Versions)), strconv.Itoa(int(v.Size)), s.UpdatedAt.Format(time.RFC3339)}
			}
			return c.print(l, []string{"NAME", "VERSION", "VERSIONS KEPT", "SIZE", "UPDATED"}, rows)
		},
	}
	del := &cobra.Command{
		Use: "delete APP NAME", Short: "Delete a secret and its versions (admins only); enclaves started later do not get it", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			if err := c.client().do(cmd.Context(), "DELETE", path(acct, args[0], args[1]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "Deleted secret %s of %s\n", args[1], args[0])
			return nil
		},
	}
	var out string
	export := &cobra.Command{
		Use:   "export-volume-key APP KEY_NAME --key-file FILE",
		Short: "Write an encrypted volume's key to a file, for a backup (admins only; audited)",
		Long: `Write the 16-byte key of an application's encrypted volume to FILE (base64, mode 0600),
for a backup of the volume that must outlive Cloister's copy of the key. Whoever
has the key and the volume's files reads the data: keep it as you keep the data.
The export is recorded in the account's audit log.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			if out == "" {
				return errors.New("give the file to write the key to with --key-file FILE: a key is not printed to a terminal")
			}
			var k api.VolumeKey
			p := "/v1/accounts/" + url.PathEscape(acct) + "/apps/" + url.PathEscape(args[0]) + "/volume-keys/" + url.PathEscape(args[1]) + "/export"
			if err := c.client().do(cmd.Context(), "POST", p, nil, &k); err != nil {
				return err
			}
			defer clear(k.Key)
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("writing the key: %w (it is not overwritten)", err)
			}
			if _, err := f.Write([]byte(base64.StdEncoding.EncodeToString(k.Key) + "\n")); err != nil {
				f.Close()
				return fmt.Errorf("writing the key: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("writing the key: %w", err)
			}
			fmt.Fprintf(os.Stderr, "Wrote volume key %s of %s to %s (base64); keep it as you keep the volume's data\n", args[1], args[0], out)
			return nil
		},
	}
	export.Flags().StringVar(&out, "key-file", "", "the `FILE` to write the key to, base64 (created, mode 0600; never overwritten)")
	cmd.AddCommand(set, list, del, export)
	return cmd
}
