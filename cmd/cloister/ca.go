package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

func (c *cli) caCmd() *cobra.Command {
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the selected account's CA chain (issuing CA, then root) as PEM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var ca api.CA
			if err := c.client().do(cmd.Context(), "GET", "/v1/accounts/"+url.PathEscape(acct)+"/ca", nil, &ca); err != nil {
				return err
			}
			if c.output == "json" {
				return c.print(ca, nil, nil)
			}
			_, err = fmt.Fprint(c.out, ca.ChainPEM)
			return err
		},
	}
	var revokePrevious, yes bool
	rotate := &cobra.Command{
		Use:   "rotate [--revoke-previous --yes]",
		Short: "Replace the issuing CA with a new key under the same root (admins)",
		Long: `Replace the selected account's issuing CA with a new key under the same root.

Certificates already issued keep chaining to the root. The retired issuing CA
signs nothing new, but keeps signing the CRL and OCSP answers of what it issued
(its CRL: /v1/crl/<account>.crl?issuer=<key id>). The rotation is audited.

With --revoke-previous (for a key that may be compromised), the previous issuing
CA is retired at once, as 'cloister ca retire' does: every certificate it issued
is revoked, its last CRL is kept, and its key is destroyed. Such a rotation is
never refused for the number of retired issuers. It needs --yes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if revokePrevious && !yes {
				return errors.New("--revoke-previous revokes every certificate the current issuing CA issued; pass --yes to confirm")
			}
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var ca api.CAChange
			if err := c.client().do(cmd.Context(), "POST", "/v1/accounts/"+url.PathEscape(acct)+"/ca/rotate", api.RotateIssuer{RevokePrevious: revokePrevious}, &ca); err != nil {
				return err
			}
			return c.printCAChange(ca)
		},
	}
	rotate.Flags().BoolVar(&revokePrevious, "revoke-previous", false, "retire the previous issuing CA at once, revoking every certificate it issued")
	rotate.Flags().BoolVar(&yes, "yes", false, "confirm --revoke-previous")
	retire := &cobra.Command{
		Use:   "retire KEY_ID --yes",
		Short: "Retire a retired issuing CA early, revoking what it issued (admins)",
		Long: `Retire a retired issuing CA (its key id: 'cloister ca rotate' and 'cloister ca
show -o json' list them) before it expires: every certificate it issued is
revoked, its last CRL is signed and still served, and its key is destroyed,
freeing its place among the retired issuers (at most 8 are kept). The current
issuing CA cannot be retired: rotate first. Audited.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return errors.New("retiring an issuing CA revokes every certificate it issued; pass --yes to confirm")
			}
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var ca api.CAChange
			path := "/v1/accounts/" + url.PathEscape(acct) + "/ca/issuers/" + url.PathEscape(args[0]) + "/retire"
			if err := c.client().do(cmd.Context(), "POST", path, nil, &ca); err != nil {
				return err
			}
			return c.printCAChange(ca)
		},
	}
	retire.Flags().BoolVar(&yes, "yes", false, "confirm")
	cmd := &cobra.Command{Use: "ca", Short: "The account's certificate authority"}
	c.addAccountFlag(cmd)
	cmd.AddCommand(show, rotate, retire)
	return cmd
}

// printCAChange prints the issuers after a rotation or retirement.
func (c *cli) printCAChange(ca api.CAChange) error {
	rows := [][]string{{ca.IssuerKeyID, "current", ""}}
	for _, r := range ca.RetiredIssuers {
		rows = append(rows, []string{r.KeyID, "retired", r.NotAfter.Format("2006-01-02")})
	}
	if c.output != "json" && ca.Revoked > 0 {
		fmt.Fprintf(c.out, "%d certificates revoked with the retired issuing CA\n", ca.Revoked)
	}
	return c.print(ca, []string{"ISSUER KEY ID", "STATE", "EXPIRES"}, rows)
}

func certRows(cs ...api.Certificate) [][]string {
	rows := make([][]string, len(cs))
	for i, c := range cs {
		state := "valid"
		if c.Revoked {
			state = "revoked"
		}
		rows[i] = []string{c.Serial, c.Kind, c.SubjectID, strings.Join(c.DNSNames, ","), ts(c.NotAfter), state}
	}
	return rows
}

var certHeader = []string{"SERIAL", "KIND", "SUBJECT", "DNS NAMES", "EXPIRES", "STATE"}

func (c *cli) certCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "Certificates issued by the selected account's CA"}
	c.addAccountFlag(cmd)
	var kind, subject string
	var revoked bool
	list := &cobra.Command{
		Use: "list", Short: "List issued certificates", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			q := url.Values{}
			if kind != "" {
				q.Set("kind", kind)
			}
			if subject != "" {
				q.Set("subject_id", subject)
			}
			if revoked {
				q.Set("include_revoked", "true")
			}
			var l api.List[api.Certificate]
			path := "/v1/accounts/" + url.PathEscape(acct) + "/certificates"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			if err := c.client().do(cmd.Context(), "GET", path, nil, &l); err != nil {
				return err
			}
			return c.print(l, certHeader, certRows(l.Items...))
		},
	}
	list.Flags().StringVar(&kind, "kind", "", "node or app")
	list.Flags().StringVar(&subject, "subject", "", "only the certificates of this node or application id")
	list.Flags().BoolVar(&revoked, "revoked", false, "include revoked certificates")
	show := &cobra.Command{
		Use: "show SERIAL", Short: "Show a certificate (PEM with -o table)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var cert api.Certificate
			if err := c.client().do(cmd.Context(), "GET", "/v1/accounts/"+url.PathEscape(acct)+"/certificates/"+url.PathEscape(args[0]), nil, &cert); err != nil {
				return err
			}
			if c.output == "json" {
				return c.print(cert, nil, nil)
			}
			if err := c.print(cert, certHeader, certRows(cert)); err != nil {
				return err
			}
			_, err = fmt.Fprint(c.out, cert.PEM)
			return err
		},
	}
	var reason string
	revoke := &cobra.Command{
		Use: "revoke SERIAL [--reason TEXT]", Short: "Revoke a certificate (admins); CRL and OCSP report it at once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var cert api.Certificate
			if err := c.client().do(cmd.Context(), "POST", "/v1/accounts/"+url.PathEscape(acct)+"/certificates/"+url.PathEscape(args[0])+"/revoke",
				api.Revocation{Reason: reason}, &cert); err != nil {
				return err
			}
			return c.print(cert, certHeader, certRows(cert))
		},
	}
	revoke.Flags().StringVar(&reason, "reason", "", "why (kept with the revocation)")
	cmd.AddCommand(list, show, revoke)
	return cmd
}
