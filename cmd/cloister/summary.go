package main

import (
	"cmp"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// summaryCmd is `cloister account summary`: the account's overview, as
// the console's first page shows it.
func (c *cli) summaryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "summary [ID]",
		Short: "An account at a glance (default: the selected one): pending tasks, nodes, running instances, expiring certificates, attestation failures, the last day",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := c.argOrAccount(args)
			if err != nil {
				return err
			}
			var s api.Summary
			if err := c.client().do(cmd.Context(), "GET", "/v1/accounts/"+url.PathEscape(id)+"/summary", nil, &s); err != nil {
				return err
			}
			if c.output == "json" {
				return c.print(s, nil, nil)
			}
			return c.printSummary(s, c.appNames(cmd.Context(), id))
		},
	}
}

// printSummary prints each part of s as a table under its heading;
// names are the account's applications by id.
func (c *cli) printSummary(s api.Summary, names map[string]string) error {
	section := func(title string, header []string, rows [][]string) error {
		fmt.Fprintf(c.out, "\n%s\n", title)
		return c.print(nil, header, rows)
	}
	n := s.Nodes
	fmt.Fprintf(c.out, "NODES: %d active, %d unreachable, %d untrusted, %d deregistered\n",
		n["active"], n["unreachable"], n["untrusted"], n["deregistered"])

	var rows [][]string
	for _, t := range s.PendingTasks {
		rows = append(rows, []string{t.ID, t.Kind, taskSubject(t), fmt.Sprintf("%d/%d", t.ApprovalsCounted, t.ApprovalsRequired), cmp.Or(names[t.AppID], t.AppID)})
	}
	if err := section("PENDING TASKS", []string{"ID", "KIND", "SUBJECT", "APPROVALS", "APP"}, rows); err != nil {
		return err
	}
	rows = nil
	for _, in := range s.Running {
		rows = append(rows, []string{in.ID, cmp.Or(names[in.AppID], in.AppID), in.NodeName, ts(in.StartedAt), in.CertificateSerial})
	}
	if err := section("RUNNING INSTANCES", []string{"ID", "APP", "NODE", "STARTED", "CERTIFICATE"}, rows); err != nil {
		return err
	}
	rows = nil
	for _, ct := range s.ExpiringCertificates {
		rows = append(rows, []string{ct.Serial, ct.Kind, ct.SubjectID, ts(ct.NotAfter)})
	}
	if err := section("CERTIFICATES IN USE ENDING WITHIN 7 DAYS", []string{"SERIAL", "KIND", "SUBJECT", "NOT AFTER"}, rows); err != nil {
		return err
	}
	rows = nil
	for _, v := range s.AttestationFailures {
		rows = append(rows, []string{ts(v.VerifiedAt), v.Reason, v.Error, v.ID})
	}
	if err := section("ATTESTATION FAILURES, LAST DAY", []string{"AT", "REASON", "ERROR", "VERDICT"}, rows); err != nil {
		return err
	}

	// The day as one bar per hour, oldest first.
	series := []struct {
		name  string
		count func(api.SummaryHour) uint64
	}{
		{"attestations passed", func(h api.SummaryHour) uint64 { return h.AttestationsSucceeded }},
		{"attestations failed", func(h api.SummaryHour) uint64 { return h.AttestationsFailed }},
		{"certificates issued", func(h api.SummaryHour) uint64 { return h.CertificatesIssued }},
	}
	rows = nil
	for _, se := range series {
		counts := make([]uint64, len(s.Hours))
		var total uint64
		for i, h := range s.Hours {
			counts[i] = se.count(h)
			total += counts[i]
		}
		rows = append(rows, []string{se.name, fmt.Sprint(total), sparkline(counts)})
	}
	title := "LAST 24 HOURS"
	if len(s.Hours) > 0 {
		title += fmt.Sprintf(" (hourly from %s)", ts(s.Hours[0].Start))
	}
	return section(title, []string{"", "TOTAL", "BY HOUR"}, rows)
}

// sparkline draws counts as bars of eight heights, the highest count the
// tallest; zero is a baseline dot, so that an idle hour is not mistaken
// for a small one.
func sparkline(counts []uint64) string {
	const bars = "▁▂▃▄▅▆▇█"
	var peak uint64
	for _, n := range counts {
		peak = max(peak, n)
	}
	var b strings.Builder
	for _, n := range counts {
		if n == 0 {
			b.WriteString("·")
			continue
		}
		i := int((n*8 - 1) / peak) // 1..peak onto 0..7
		b.WriteRune([]rune(bars)[i])
	}
	return b.String()
}
