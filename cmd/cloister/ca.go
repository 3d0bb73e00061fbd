package main

import (
	"fmt"
	"net/url"

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
	cmd := &cobra.Command{Use: "ca", Short: "The account's certificate authority"}
	c.addAccountFlag(cmd)
	cmd.AddCommand(show)
	return cmd
}
