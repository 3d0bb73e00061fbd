package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
	"github.com/cloister-cc/cloister/services/gateway/api"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

var version = "dev"

const defaultAddr = "http://127.0.0.1:8080"

// cli carries the global flags and the loaded configuration.
type cli struct {
	addr    string
	output  string
	account string
	cfg     cliConfig
	out     io.Writer
	in      io.Reader
}

func newRootCmd() *cobra.Command {
	c := &cli{out: os.Stdout, in: os.Stdin}
	root := &cobra.Command{
		Use:   "cloister",
		Short: "Cloister: an open-source confidential computing manager",
		Long: `Cloister turns container images into enclave images with a known measurement,
approves them, enrols compute nodes and gives attested enclaves their TLS
certificates.

Run the servers with 'cloister server'; every other command is a client of
the REST API at --addr ($CLOISTER_ADDR, default ` + defaultAddr + `).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if c.cfg, err = loadConfig(); err != nil {
				return err
			}
			return c.checkOutput()
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&c.addr, "addr", "", "API address [$CLOISTER_ADDR] (default: the one you logged in to, else "+defaultAddr+")")
	pf.StringVarP(&c.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(newServerCmd(), c.signupCmd(), c.loginCmd(), c.logoutCmd(), c.whoamiCmd(),
		c.accountCmd(), c.memberCmd(), c.apikeyCmd(), c.auditCmd(), c.attestCmd(), c.caCmd(), c.certCmd(), c.appCmd(), c.secretCmd(), c.imageCmd(), c.registryCmd(), c.taskCmd(), c.nodeCmd(), c.signingKeyCmd(), c.sgxCmd(), c.enclaveCmd(), healthcheckCmd(), busCmd())
	return root
}

func (c *cli) checkOutput() error {
	if c.output != "table" && c.output != "json" {
		return fmt.Errorf("-o must be table or json, not %q", c.output)
	}
	return nil
}

// client returns an API client with the address and token in force: flags,
// then environment, then the config file.
func (c *cli) client() *apiClient {
	addr := firstNonEmpty(c.addr, os.Getenv("CLOISTER_ADDR"), c.cfg.Addr, defaultAddr)
	token := firstNonEmpty(os.Getenv("CLOISTER_TOKEN"), c.cfg.Token)
	return &apiClient{api.Client{BaseURL: addr, Token: token, HTTP: &http.Client{}}}
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// findAccount finds one of the user's accounts by id or, failing that, by
// name (a name two accounts share is refused: give the id).
func (c *cli) findAccount(ctx context.Context, ref string) (api.Account, error) {
	var a api.Account
	err := c.client().do(ctx, "GET", "/v1/accounts/"+url.PathEscape(ref), nil, &a)
	var pe *api.Error
	if err == nil || !errors.As(err, &pe) || pe.Status != http.StatusNotFound {
		return a, err
	}
	var found []api.Account
	for cursor := ""; ; {
		var l api.List[api.Account]
		if err := c.client().do(ctx, "GET", "/v1/accounts"+pageQuery(200, cursor), nil, &l); err != nil {
			return a, err
		}
		for _, it := range l.Items {
			if it.Name == ref {
				found = append(found, it)
			}
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	switch len(found) {
	case 0:
		return a, fmt.Errorf("no account of yours has the id or name %q: cloister account list shows them", ref)
	case 1:
		return found[0], nil
	}
	return a, fmt.Errorf("%d of your accounts are named %q: select one by its id (cloister account list)", len(found), ref)
}

// accountID returns the account a command acts on.
func (c *cli) accountID() (string, error) {
	id := firstNonEmpty(c.account, os.Getenv("CLOISTER_ACCOUNT"), c.cfg.Account)
	if id == "" {
		return "", errors.New("no account selected: pass --account ID or run `cloister account select ID|NAME`")
	}
	return id, nil
}

func (c *cli) addAccountFlag(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&c.account, "account", "", "account to act on [$CLOISTER_ACCOUNT] (default: the selected one)")
}

// print writes v as JSON, or as a table of the given columns.
func (c *cli) print(v any, header []string, rows [][]string) error {
	if c.output == "json" {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(none)") // an empty list says so
	}
	return tw.Flush()
}

// readPassword reads a password from stdin when asked to, else prompts on
// the terminal without echo.
func (c *cli) readPassword(fromStdin bool, prompt string) (string, error) {
	if fromStdin || !term.IsTerminal(int(os.Stdin.Fd())) {
		line, err := bufio.NewReader(c.in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading password from stdin: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return "", errors.New("no password on stdin")
		}
		return line, nil
	}
	fmt.Fprint(os.Stderr, prompt)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("reading password: %w", err)
	}
	return string(b), nil
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// withQuery adds key=value to path's query.
func withQuery(path, key, value string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
}

func pageQuery(limit int, cursor string) string {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func (c *cli) signupCmd() *cobra.Command {
	var email string
	var stdin bool
	cmd := &cobra.Command{
		Use:     "signup --email EMAIL",
		Short:   "Create a user",
		Example: "  echo 'a long passphrase' | cloister signup --email ada@example.com --password-stdin",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := c.readPassword(stdin, "Password (12 characters or more): ")
			if err != nil {
				return err
			}
			var u api.User
			if err := c.client().do(cmd.Context(), "POST", "/v1/users", api.Credentials{Email: email, Password: pw}, &u); err != nil {
				return err
			}
			created := ""
			if u.CreatedAt != nil {
				created = ts(*u.CreatedAt)
			}
			return c.print(u, []string{"ID", "EMAIL", "CREATED"}, [][]string{{u.ID, u.Email, created}})
		},
	}
	cmd.Flags().StringVar(&email, "email", "", "email address (required)")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	_ = cmd.MarkFlagRequired("email")
	return cmd
}

func (c *cli) loginCmd() *cobra.Command {
	var email string
	var stdin bool
	cmd := &cobra.Command{
		Use:   "login --email EMAIL",
		Short: "Log in and keep the session token in the config file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := c.readPassword(stdin, "Password: ")
			if err != nil {
				return err
			}
			cl := c.client()
			cl.Token = ""
			var s api.Session
			if err := cl.do(cmd.Context(), "POST", "/v1/sessions", api.Credentials{Email: email, Password: pw}, &s); err != nil {
				return err
			}
			if c.cfg.Token != "" && c.cfg.Addr != cl.BaseURL {
				c.cfg.Account = "" // another server: the selected account means nothing there
			}
			c.cfg.Addr, c.cfg.Token = cl.BaseURL, s.Token
			if err := saveConfig(c.cfg); err != nil {
				return err
			}
			p, _ := configPath()
			fmt.Fprintf(os.Stderr, "Logged in as %s until %s; token kept in %s\n", s.User.Email, ts(s.ExpiresAt), p)
			return nil
		},
	}
	cmd.Flags().StringVar(&email, "email", "", "email address (required)")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	_ = cmd.MarkFlagRequired("email")
	return cmd
}

func (c *cli) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the session and forget its token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.cfg.Token == "" {
				return errors.New("not logged in")
			}
			cl := c.client()
			cl.Token = c.cfg.Token
			err := cl.do(cmd.Context(), "DELETE", "/v1/sessions/current", nil, nil)
			var pe *api.Error
			if err != nil && !(errors.As(err, &pe) && pe.Status == http.StatusUnauthorized) {
				return err
			}
			c.cfg.Token = ""
			if err := saveConfig(c.cfg); err != nil {
				return err
			}
			fmt.Fprintln(os.Stderr, "Logged out")
			return nil
		},
	}
}

func (c *cli) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the authenticated user",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var u api.Me
			if err := c.client().do(cmd.Context(), "GET", "/v1/users/me", nil, &u); err != nil {
				return err
			}
			return c.print(u, []string{"ID", "EMAIL", "CREDENTIAL", "EXPIRES"}, [][]string{{u.ID, u.Email, u.Credential, ts(u.ExpiresAt)}})
		},
	}
}

func accountRows(as ...api.Account) [][]string {
	rows := make([][]string, len(as))
	for i, a := range as {
		rows[i] = []string{a.ID, a.Name, a.Role, ts(a.CreatedAt), a.Description}
	}
	return rows
}

var accountHeader = []string{"ID", "NAME", "ROLE", "CREATED", "DESCRIPTION"}

func (c *cli) accountCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Manage accounts (tenants)"}

	var desc, key string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an account; you become its admin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a api.Account
			if key == "" {
				key = newIdempotencyKey()
			}
			if err := c.client().doOnce(cmd.Context(), "POST", "/v1/accounts", key, api.CreateAccount{Name: args[0], Description: desc}, &a); err != nil {
				return err
			}
			return c.print(a, accountHeader, accountRows(a))
		},
	}
	create.Flags().StringVar(&desc, "description", "", "what the account is for")
	idempotencyKeyFlag(create, &key)

	var limit int
	var cursor string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the accounts you are a member of",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l api.List[api.Account]
			if err := c.client().do(cmd.Context(), "GET", "/v1/accounts"+pageQuery(limit, cursor), nil, &l); err != nil {
				return err
			}
			rows := accountRows(l.Items...)
			for i := range rows {
				if l.Items[i].ID == c.cfg.Account {
					rows[i][0] += " *"
				}
			}
			return c.printList(l, l.NextCursor, accountHeader, rows)
		},
	}
	pageFlags(list, &limit, &cursor)

	get := &cobra.Command{
		Use:   "get [ID]",
		Short: "Show an account (default: the selected one)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := c.argOrAccount(args)
			if err != nil {
				return err
			}
			var a api.Account
			if err := c.client().do(cmd.Context(), "GET", "/v1/accounts/"+url.PathEscape(id), nil, &a); err != nil {
				return err
			}
			return c.print(a, accountHeader, accountRows(a))
		},
	}

	var name, newDesc string
	var approvals uint32
	var secretsApproval bool
	update := &cobra.Command{
		Use:   "update [ID] [--name NAME] [--description TEXT] [--approvals-required N] [--secrets-need-approval=true|false]",
		Short: "Change an account's name, description, how many admins approve a task, or whether secrets need approval",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := c.argOrAccount(args)
			if err != nil {
				return err
			}
			var body api.UpdateAccount
			if cmd.Flags().Changed("name") {
				body.Name = &name
			}
			if cmd.Flags().Changed("description") {
				body.Description = &newDesc
			}
			if cmd.Flags().Changed("approvals-required") {
				body.ApprovalsRequired = &approvals
			}
			if cmd.Flags().Changed("secrets-need-approval") {
				body.SecretsNeedApproval = &secretsApproval
			}
			var a api.Account
			if err := c.client().do(cmd.Context(), "PATCH", "/v1/accounts/"+url.PathEscape(id), body, &a); err != nil {
				return err
			}
			noteChange(a.Task)
			return c.print(a, accountHeader, accountRows(a))
		},
	}
	update.Flags().BoolVar(&secretsApproval, "secrets-need-approval", false,
		"whether a new value of an application's secret waits for a secret task's approval before enclaves get it (off only under approvals-required 0)")
	update.Flags().StringVar(&name, "name", "", "new name")
	update.Flags().StringVar(&newDesc, "description", "", "new description")
	update.Flags().Uint32Var(&approvals, "approvals-required", 0,
		"distinct admins other than the requester who must approve a task (0: any one admin, the requester included); the change is itself a task under the number in force, and needs that many admins plus one")

	sel := &cobra.Command{
		Use:   "select ID|NAME",
		Short: "Make the account (by id or name) the one that later commands act on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.findAccount(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			c.cfg.Account = a.ID
			if err := saveConfig(c.cfg); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "Selected account %s (%s)\n", a.Name, a.ID)
			return nil
		},
	}

	var yes bool
	del := &cobra.Command{
		Use:   "delete ID --yes",
		Short: "Delete an account and everything under it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return errors.New("deleting an account removes everything under it; pass --yes to confirm")
			}
			if err := c.client().do(cmd.Context(), "DELETE", "/v1/accounts/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			if c.cfg.Account == args[0] {
				c.cfg.Account = ""
				if err := saveConfig(c.cfg); err != nil {
					return err
				}
			}
			fmt.Fprintf(os.Stderr, "Deleted account %s\n", args[0])
			return nil
		},
	}
	del.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")

	cmd.AddCommand(create, list, get, update, sel, del, c.summaryCmd())
	return cmd
}

func (c *cli) argOrAccount(args []string) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	return c.accountID()
}

func pageFlags(cmd *cobra.Command, limit *int, cursor *string) {
	cmd.Flags().IntVar(limit, "limit", 0, "page size, 1 to 200 (default 50)")
	cmd.Flags().StringVar(cursor, "cursor", "", "the cursor printed after the previous page")
}

func (c *cli) printList(v any, next string, header []string, rows [][]string) error {
	if err := c.print(v, header, rows); err != nil {
		return err
	}
	if next != "" && c.output == "table" {
		fmt.Fprintf(os.Stderr, "More: --cursor %s\n", next)
	}
	return nil
}

func memberRows(ms ...api.Member) [][]string {
	rows := make([][]string, len(ms))
	for i, m := range ms {
		rows[i] = []string{m.UserID, m.Email, m.Role, ts(m.AddedAt)}
	}
	return rows
}

var memberHeader = []string{"USER ID", "EMAIL", "ROLE", "ADDED"}

func (c *cli) memberCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "member", Short: "Manage the members of the selected account"}
	c.addAccountFlag(cmd)

	var role string
	add := &cobra.Command{
		Use:   "add EMAIL --role admin|member|auditor",
		Short: "Add a signed-up user to the account (an admin joins as a member until the task that makes them one is approved)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var m api.Member
			if err := c.client().do(cmd.Context(), "POST", "/v1/accounts/"+url.PathEscape(acct)+"/members", api.AddMember{Email: args[0], Role: role}, &m); err != nil {
				return err
			}
			noteChange(m.Task)
			return c.print(m, memberHeader, memberRows(m))
		},
	}
	add.Flags().StringVar(&role, "role", "member", "admin, member or auditor")

	var limit int
	var cursor string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the account's members",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var l api.List[api.Member]
			if err := c.client().do(cmd.Context(), "GET", "/v1/accounts/"+url.PathEscape(acct)+"/members"+pageQuery(limit, cursor), nil, &l); err != nil {
				return err
			}
			return c.printList(l, l.NextCursor, memberHeader, memberRows(l.Items...))
		},
	}
	pageFlags(list, &limit, &cursor)

	remove := &cobra.Command{
		Use:   "remove USER_ID",
		Short: "Remove a member",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			if err := c.client().do(cmd.Context(), "DELETE", "/v1/accounts/"+url.PathEscape(acct)+"/members/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "Removed %s\n", args[0])
			return nil
		},
	}

	setRole := &cobra.Command{
		Use:   "role USER_ID ROLE",
		Short: "Change a member's role (admin, member or auditor); a promotion to admin is a task the other admins approve",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var m api.Member
			if err := c.client().do(cmd.Context(), "PATCH", "/v1/accounts/"+url.PathEscape(acct)+"/members/"+url.PathEscape(args[0]), api.SetRole{Role: args[1]}, &m); err != nil {
				return err
			}
			noteChange(m.Task)
			return c.print(m, memberHeader, memberRows(m))
		},
	}
	cmd.AddCommand(add, list, remove, setRole)
	return cmd
}

func keyRows(ks ...api.APIKey) [][]string {
	rows := make([][]string, len(ks))
	for i, k := range ks {
		rows[i] = []string{k.ID, k.Name, k.UserID, ts(k.CreatedAt), ts(k.ExpiresAt)}
	}
	return rows
}

var keyHeader = []string{"ID", "NAME", "USER ID", "CREATED", "EXPIRES"}

func (c *cli) apikeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Manage API keys for automation in the selected account"}
	c.addAccountFlag(cmd)

	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an API key acting as you in the account; its token is shown once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var k api.APIKey
			body := api.CreateAPIKey{Name: args[0], TTLSeconds: int64(ttl / time.Second)}
			if err := c.client().do(cmd.Context(), "POST", "/v1/accounts/"+url.PathEscape(acct)+"/api-keys", body, &k); err != nil {
				return err
			}
			if c.output == "json" {
				return c.print(k, nil, nil)
			}
			fmt.Fprintf(c.out, "%s\n", k.Token)
			fmt.Fprintf(os.Stderr, "API key %s (%s) expires %s. The token above is shown only now; use it as CLOISTER_TOKEN.\n", k.ID, k.Name, ts(k.ExpiresAt))
			return nil
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", 0, "lifetime, e.g. 720h (default 90 days, at most 365 days)")

	var limit int
	var cursor string
	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys (admins see all, others their own)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var l api.List[api.APIKey]
			if err := c.client().do(cmd.Context(), "GET", "/v1/accounts/"+url.PathEscape(acct)+"/api-keys"+pageQuery(limit, cursor), nil, &l); err != nil {
				return err
			}
			return c.printList(l, l.NextCursor, keyHeader, keyRows(l.Items...))
		},
	}
	pageFlags(list, &limit, &cursor)

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key; it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			if err := c.client().do(cmd.Context(), "DELETE", "/v1/accounts/"+url.PathEscape(acct)+"/api-keys/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "Revoked %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func (c *cli) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit log of the selected account"}
	c.addAccountFlag(cmd)
	var limit int
	var cursor string
	var newest bool
	list := &cobra.Command{
		Use:   "list [--newest]",
		Short: "List audit entries, oldest first or --newest first (admins and auditors)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var l api.List[api.AuditEntry]
			path := "/v1/accounts/" + url.PathEscape(acct) + "/audit" + pageQuery(limit, cursor)
			if newest {
				path = withQuery(path, "order", "newest")
			}
			if err := c.client().do(cmd.Context(), "GET", path, nil, &l); err != nil {
				return err
			}
			rows := make([][]string, len(l.Items))
			for i, e := range l.Items {
				rows[i] = []string{ts(e.OccurredAt), e.Actor.Email, e.Action, e.Target, e.Outcome, e.Error}
			}
			return c.printList(l, l.NextCursor, []string{"TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "ERROR"}, rows)
		},
	}
	pageFlags(list, &limit, &cursor)
	list.Flags().BoolVar(&newest, "newest", false, "the newest entries first (a cursor goes on in the order it was made in)")
	cmd.AddCommand(list)
	return cmd
}

// healthcheckCmd lets a container image with no shell or curl check itself.
func healthcheckCmd() *cobra.Command {
	var target string
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if the server's readiness endpoint answers 200 (for container health checks)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := &http.Client{Timeout: 5 * time.Second}
			resp, err := client.Get(target)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s answered %s", target, resp.Status)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "url", serverconfig.ReadyzURL(os.Getenv("CLOISTER_HTTP")), "readiness URL (default from $CLOISTER_HTTP)")
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error { return nil } // needs no CLI config
	return cmd
}
