package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

var taskHeader = []string{"ID", "KIND", "STATUS", "SUBJECT", "APPROVALS", "APP"}

func taskRows(ts ...api.Task) [][]string {
	rows := make([][]string, len(ts))
	for i, t := range ts {
		subject := taskSubject(t)
		rows[i] = []string{t.ID, t.Kind, t.Status, subject, fmt.Sprintf("%d/%d", t.ApprovalsCounted, t.ApprovalsRequired), t.AppID}
	}
	return rows
}

// taskSubject says what a task approves, in a few words.
func taskSubject(t api.Task) string {
	switch {
	case t.Image != nil:
		return "tag " + t.Image.Tag + " mrenclave " + t.Image.MRENCLAVE
	case t.NewApprovalsRequired != nil:
		return fmt.Sprintf("approvals required %d", *t.NewApprovalsRequired)
	case t.Admin != nil:
		return "admin " + t.Admin.Email
	case t.Secret != nil:
		return fmt.Sprintf("secret %s version %d (%d bytes)", t.Secret.Name, t.Secret.Version, t.Secret.Size)
	}
	return t.Domain
}

// noteChange tells, on stderr, that a change of who approves waits for
// approvals, and how to give them.
func noteChange(t *api.Task) {
	if t == nil || t.Applied {
		return
	}
	fmt.Fprintf(os.Stderr, "The change waits for approval (%d/%d): task %s. Other admins approve it with: cloister task approve %s\n",
		t.ApprovalsCounted, t.ApprovalsRequired, t.ID, t.ID)
}

func taskDetail(t api.Task) ([]string, [][]string) {
	approvals := make([]string, len(t.Approvals))
	for i, a := range t.Approvals {
		approvals[i] = a.UserID + " at " + a.At.Format("2006-01-02 15:04:05Z")
	}
	rows := [][]string{{"id", t.ID}, {"kind", t.Kind}, {"status", t.Status}, {"approvals", fmt.Sprintf("%d/%d", t.ApprovalsCounted, t.ApprovalsRequired)},
		{"app", t.AppID}, {"requester", t.RequesterID}}
	if t.Domain != "" {
		rows = append(rows, []string{"domain", t.Domain})
	}
	if n := t.NewApprovalsRequired; n != nil {
		rows = append(rows, []string{"new approvals required", strconv.Itoa(int(*n))}, []string{"applied", strconv.FormatBool(t.Applied)})
	}
	if a := t.Admin; a != nil {
		rows = append(rows, []string{"new admin", a.Email + " (" + a.UserID + ")"}, []string{"applied", strconv.FormatBool(t.Applied)})
	}
	if im := t.Image; im != nil {
		rows = append(rows, []string{"image", im.ImageID}, []string{"tag", im.Tag}, []string{"mrenclave", im.MRENCLAVE},
			[]string{"mrsigner", im.MRSIGNER}, []string{"isvprodid", strconv.Itoa(int(im.ISVProdID))}, []string{"isvsvn", strconv.Itoa(int(im.ISVSVN))})
	}
	rows = append(rows, []string{"approvals", strings.Join(approvals, ", ")})
	return []string{"FIELD", "VALUE"}, rows
}

func (c *cli) taskCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "task", Short: "Approve what may run (applications' domains, converted images) and changes of who approves"}
	c.addAccountFlag(cmd)
	base := func(acct string) string { return "/v1/accounts/" + url.PathEscape(acct) + "/tasks" }

	var status string
	list := &cobra.Command{
		Use: "list [--status pending|approved|denied|withdrawn]", Short: "List tasks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			path := base(acct)
			if status != "" {
				path += "?status=" + url.QueryEscape(status)
			}
			var l api.List[api.Task]
			if err := c.client().do(cmd.Context(), "GET", path, nil, &l); err != nil {
				return err
			}
			return c.print(l, taskHeader, taskRows(l.Items...))
		},
	}
	list.Flags().StringVar(&status, "status", "", "only tasks in this status")

	show := &cobra.Command{
		Use: "show TASK_ID", Short: "Show a task: what it approves and who approved it", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := c.accountID()
			if err != nil {
				return err
			}
			var t api.Task
			if err := c.client().do(cmd.Context(), "GET", base(acct)+"/"+url.PathEscape(args[0]), nil, &t); err != nil {
				return err
			}
			header, rows := taskDetail(t)
			return c.print(t, header, rows)
		},
	}
	action := func(verb, short string) *cobra.Command {
		return &cobra.Command{
			Use: verb + " TASK_ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				acct, err := c.accountID()
				if err != nil {
					return err
				}
				var t api.Task
				if err := c.client().do(cmd.Context(), "POST", base(acct)+"/"+url.PathEscape(args[0])+"/"+verb, nil, &t); err != nil {
					return err
				}
				header, rows := taskDetail(t)
				return c.print(t, header, rows)
			},
		}
	}
	cmd.AddCommand(list, show,
		action("approve", "Approve a pending task (admins); it takes effect once enough admins approved"),
		action("deny", "Deny a pending task (admins)"),
		action("withdraw", "Withdraw an approved task (admins): its certificates are revoked"))
	return cmd
}
