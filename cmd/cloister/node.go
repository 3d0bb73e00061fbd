package main

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

var nodeHeader = []string{"ID", "NAME", "STATUS", "ATTESTED", "INSTANCES", "LAST HEARTBEAT"}

func nodeRows(ns ...api.Node) [][]string {
	rows := make([][]string, len(ns))
	for i, n := range ns {
		hb := "never"
		if n.LastHeartbeat != nil {
			hb = n.LastHeartbeat.Format(time.RFC3339)
		}
		attested := strconv.FormatBool(n.Attested)
		switch {
		case n.Simulated:
			attested += " (simulated)"
		case n.Attested && n.TEE != "":
			attested += " (" + n.TEE + ")"
		}
		rows[i] = []string{n.ID, n.Name, n.Status, attested, strconv.Itoa(len(n.Instances)), hb}
	}
	return rows
}

var tokenHeader = []string{"ID", "NAME", "EXPIRES", "USES", "STATE", "ATTESTATION"}

func tokenRows(ts ...api.JoinToken) [][]string {
	rows := make([][]string, len(ts))
	for i, t := range ts {
		uses := strconv.Itoa(int(t.Uses))
		if t.MaxUses > 0 {
			uses += "/" + strconv.Itoa(int(t.MaxUses))
		}
		state := "valid"
		switch {
		case t.Revoked:
			state = "revoked"
		case time.Now().After(t.ExpiresAt):
			state = "expired"
		case t.MaxUses > 0 && t.Uses >= t.MaxUses:
			state = "used up"
		}
		att := "optional"
		if t.RequireAttestation {
			att = "required"
		}
		rows[i] = []string{t.ID, t.Name, t.ExpiresAt.Format(time.RFC3339), uses, state, att}
	}
	return rows
}

func (c *cli) nodeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Compute nodes and the join tokens they enrol with"}
	c.addAccountFlag(cmd)
	base := func(acct string) string { return "/v1/accounts/" + url.PathEscape(acct) }

	list := &cobra.Command{
		Use: "list", Short: "List nodes", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var l api.List[api.Node]
			if err := c.client().do(cmd.Context(), "GET", base(acct)+"/nodes", nil, &l); err != nil {
				return err
			}
			return c.print(l, nodeHeader, nodeRows(l.Items...))
		},
	}
	show := &cobra.Command{
		Use: "show NODE_ID", Short: "Show a node (with its TEE and measurement, in a confidential VM), then its running instances", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var n api.Node
			if err := c.client().do(cmd.Context(), "GET", base(acct)+"/nodes/"+url.PathEscape(args[0]), nil, &n); err != nil {
				return err
			}
			if c.output == "json" {
				return c.print(n, nil, nil)
			}
			if err := c.print(n, nodeHeader, nodeRows(n)); err != nil {
				return err
			}
			if n.Measurement != "" {
				// A confidential VM: what its evidence proved.
				fmt.Fprintf(c.out, "\nTEE %s, measurement %s\n", n.TEE, n.Measurement)
			}
			// Its instances, as a table of their own, applications by name.
			fmt.Fprintln(c.out)
			names := c.appNames(cmd.Context(), acct)
			rows := make([][]string, len(n.Instances))
			for i, in := range n.Instances {
				rows[i] = []string{in.ID, cmp.Or(names[in.AppID], in.AppID), in.ImageID, in.Status, ts(in.StartedAt), in.CertificateSerial}
			}
			return c.print(n.Instances, instanceHeader, rows)
		},
	}
	dereg := &cobra.Command{
		Use:   "deregister NODE_ID",
		Short: "Deregister a node: its certificate and those of its enclaves are revoked",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var n api.Node
			if err := c.client().do(cmd.Context(), "POST", base(acct)+"/nodes/"+url.PathEscape(args[0])+"/deregister", nil, &n); err != nil {
				return err
			}
			return c.print(n, nodeHeader, nodeRows(n))
		},
	}

	token := &cobra.Command{Use: "token", Short: "Join tokens: what a node agent enrols with"}
	var name, key string
	var ttl time.Duration
	var maxUses uint32
	var requireAttestation bool
	var labels []string
	create := &cobra.Command{
		Use:   "create NAME [--ttl 24h] [--max-uses N] [--require-attestation] [--label k=v]",
		Short: "Create a join token; its secret is printed once",
		Long: `Create a join token. Its secret (cjt_...) is printed once, on standard output;
give it to the node agent (cloister-node-agent --join-token). Only its SHA-256 is kept.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			name = args[0]
			body := api.CreateJoinToken{Name: name, MaxUses: maxUses, RequireAttestation: requireAttestation, Labels: map[string]string{}}
			if ttl > 0 {
				body.TTLSeconds = uint32(ttl / time.Second)
			}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return fmt.Errorf("--label %q: want key=value", l)
				}
				body.Labels[k] = v
			}
			var t api.JoinToken
			if key == "" {
				key = newIdempotencyKey()
			}
			if err := c.client().doOnce(cmd.Context(), "POST", base(acct)+"/join-tokens", key, body, &t); err != nil {
				return err
			}
			if c.output == "json" {
				return c.print(t, nil, nil)
			}
			fmt.Fprintf(os.Stderr, "Join token %s (%s); its secret is shown this once:\n", t.ID, t.Name)
			_, err = fmt.Fprintln(c.out, t.Secret)
			return err
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", 0, "how long the token is good for (default 24h, at most 720h)")
	create.Flags().Uint32Var(&maxUses, "max-uses", 0, "how many nodes may enrol with it (0: any number until it expires)")
	create.Flags().BoolVar(&requireAttestation, "require-attestation", false, "nodes must present TEE evidence to enrol")
	create.Flags().StringArrayVar(&labels, "label", nil, "key=value given to the nodes; repeat")
	idempotencyKeyFlag(create, &key)
	tlist := &cobra.Command{
		Use: "list", Short: "List join tokens (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var l api.List[api.JoinToken]
			if err := c.client().do(cmd.Context(), "GET", base(acct)+"/join-tokens", nil, &l); err != nil {
				return err
			}
			return c.print(l, tokenHeader, tokenRows(l.Items...))
		},
	}
	revoke := &cobra.Command{
		Use: "revoke TOKEN_ID", Short: "Revoke a join token at once (enrolled nodes stay)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var t api.JoinToken
			if err := c.client().do(cmd.Context(), "DELETE", base(acct)+"/join-tokens/"+url.PathEscape(args[0]), nil, &t); err != nil {
				return err
			}
			return c.print(t, tokenHeader, tokenRows(t))
		},
	}
	token.AddCommand(create, tlist, revoke)
	cmd.AddCommand(list, show, dereg, token)
	return cmd
}

var instanceHeader = []string{"INSTANCE", "APP", "IMAGE", "STATUS", "STARTED", "CERTIFICATE SERIAL"}

// appNames names the account's applications by id, for tables; an empty
// map when they cannot be listed (ids are shown then).
func (c *cli) appNames(ctx context.Context, acct string) map[string]string {
	names := map[string]string{}
	var l api.List[api.App]
	if c.client().do(ctx, "GET", "/v1/accounts/"+url.PathEscape(acct)+"/apps?limit=200", nil, &l) == nil {
		for _, a := range l.Items {
			names[a.ID] = a.Name
		}
	}
	return names
}
