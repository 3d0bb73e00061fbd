package gateway

import (
	"net/http"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	attestationv1 "github.com/cloister-cc/cloister/libs/gen/cloister/attestation/v1"
	cav1 "github.com/cloister-cc/cloister/libs/gen/cloister/ca/v1"
	noderegistryv1 "github.com/cloister-cc/cloister/libs/gen/cloister/noderegistry/v1"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// Figures of an account's summary.
const (
	// summaryHours is the span of the summary's chart.
	summaryHours = 24
	// expiringWithin is how close to its end a certificate in use is
	// shown as expiring.
	expiringWithin = 7 * 24 * time.Hour
	// maxSummaryFailures bounds the attestation failures a summary lists.
	maxSummaryFailures = 10
)

// accountSummary serves GET /v1/accounts/{account_id}/summary: what an
// account's overview shows, from the services that own each part, asked
// at once.
func (g *Gateway) accountSummary(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	ctx, accountID := r.Context(), r.PathValue("account_id")
	var (
		tasks    *accountv1.ListTasksResponse
		nodes    *noderegistryv1.ListNodesResponse
		certs    *cav1.ListCertificatesResponse
		activity *attestationv1.GetActivityResponse
	)
	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() (err error) {
		tasks, err = g.accounts.ListTasks(ectx, &accountv1.ListTasksRequest{Actor: p.proto(), AccountId: accountID, Status: "pending"})
		return err
	})
	eg.Go(func() (err error) {
		nodes, err = g.nodes.ListNodes(ectx, &noderegistryv1.ListNodesRequest{Actor: p.proto(), AccountId: accountID})
		return err
	})
	eg.Go(func() (err error) {
		certs, err = g.ca.ListCertificates(ectx, &cav1.ListCertificatesRequest{AccountId: accountID, IncludeRevoked: true, OmitDer: true})
		return err
	})
	eg.Go(func() (err error) {
		activity, err = g.attestation.GetActivity(ectx, &attestationv1.GetActivityRequest{AccountId: accountID})
		return err
	})
	if err := eg.Wait(); err != nil {
		return reply{}, err
	}
	return reply{http.StatusOK, summarize(accountID, g.clock().UTC(), tasks, nodes, certs, activity)}, nil
}

// summarize makes the summary at now of what the services answered.
func summarize(accountID string, now time.Time, tasks *accountv1.ListTasksResponse, nodes *noderegistryv1.ListNodesResponse,
	certs *cav1.ListCertificatesResponse, activity *attestationv1.GetActivityResponse) api.Summary {
	s := api.Summary{AccountID: accountID, GeneratedAt: now, PendingTasks: []api.Task{}, Nodes: map[string]int{},
		Running: []api.RunningInstance{}, ExpiringCertificates: []api.Certificate{}, AttestationFailures: []api.Verdict{},
		Hours: make([]api.SummaryHour, summaryHours)}
	for _, t := range tasks.GetTasks() {
		s.PendingTasks = append(s.PendingTasks, toTask(t))
	}

	// Nodes by status, the instances they run, and the certificates in
	// use: the nodes' own and their instances'.
	for _, st := range []string{"active", "unreachable", "untrusted", "deregistered"} {
		s.Nodes[st] = 0
	}
	inUse := map[string]bool{}
	for _, pn := range nodes.GetNodes() {
		n := toNode(pn)
		s.Nodes[n.Status]++
		if n.Status == "deregistered" {
			continue
		}
		inUse[n.CertificateSerial] = true
		for _, in := range n.Instances {
			s.Running = append(s.Running, api.RunningInstance{Instance: in, NodeID: n.ID, NodeName: n.Name})
			inUse[in.CertificateSerial] = true
		}
	}
	slices.SortFunc(s.Running, func(a, b api.RunningInstance) int { return b.StartedAt.Compare(a.StartedAt) })

	first := now.Truncate(time.Hour).Add(-(summaryHours - 1) * time.Hour)
	for i := range s.Hours {
		s.Hours[i].Start = first.Add(time.Duration(i) * time.Hour)
	}
	hourOf := func(t time.Time) int {
		if t.Before(first) {
			return -1
		}
		return min(int(t.Sub(first)/time.Hour), summaryHours-1)
	}
	for _, pc := range certs.GetCertificates() {
		c := toCertificate(pc)
		if i := hourOf(c.NotBefore.Add(pki.LeafBackdate)); i >= 0 {
			s.Hours[i].CertificatesIssued++
		}
		if inUse[c.Serial] && !c.Revoked && c.NotAfter.After(now) && c.NotAfter.Sub(now) <= expiringWithin {
			c.PEM = "" // the list names them; the certificate is a click away
			s.ExpiringCertificates = append(s.ExpiringCertificates, c)
		}
	}
	slices.SortFunc(s.ExpiringCertificates, func(a, b api.Certificate) int { return a.NotAfter.Compare(b.NotAfter) })

	for _, h := range activity.GetHours() {
		if i := hourOf(ts(h.GetStart())); i >= 0 {
			s.Hours[i].AttestationsSucceeded += h.GetSucceeded()
			s.Hours[i].AttestationsFailed += h.GetFailed()
		}
		for _, v := range h.GetFailures() {
			s.AttestationFailures = append(s.AttestationFailures, toVerdict(v))
		}
	}
	slices.SortFunc(s.AttestationFailures, func(a, b api.Verdict) int { return b.VerifiedAt.Compare(a.VerifiedAt) })
	s.AttestationFailures = s.AttestationFailures[:min(len(s.AttestationFailures), maxSummaryFailures)]
	return s
}
