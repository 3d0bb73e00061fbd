package console

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// nodeRoutes registers the nodes pages: the account's nodes and join
// tokens, one node with its enclaves, and the one-time page of a new
// token's secret.
func (c *Console) nodeRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /a/{account}/nodes", c.nodesPage)
	m.HandleFunc("GET /a/{account}/nodes/{node}", c.nodePage)
	m.HandleFunc("POST /a/{account}/nodes/{node}/deregister", c.deregisterNode)
	// The token's page is the answer to its creation; a reload of the
	// address, or a bookmark, goes back to the list.
	m.HandleFunc("GET /a/{account}/join-tokens", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, consolePath(r.PathValue("account"), "nodes"), http.StatusSeeOther)
	})
	m.HandleFunc("POST /a/{account}/join-tokens", c.createJoinToken)
	m.HandleFunc("POST /a/{account}/join-tokens/{token}/revoke", c.revokeJoinToken)
}

// nodesData is what the nodes page shows.
type nodesData struct {
	Nodes  []nodeRow
	Tokens []tokenRow
	Form   tokenForm
	// Server is the public API's URL, for the agent's command line.
	Server string
}

type nodeRow struct {
	api.Node
	Running, Stopped int
}

type tokenRow struct {
	api.JoinToken
	// State is live, expired, used-up or revoked.
	State  string
	Labels string
}

// tokenForm is the join token form as the user filled it in.
type tokenForm struct {
	Name, TTL, MaxUses, Labels string
	RequireAttestation         bool
}

// tokenCreated is the one-time page of a new token.
type tokenCreated struct {
	Token   api.JoinToken
	Labels  string
	Server  string
	Command string
}

// nodeData is what a node's page shows.
type nodeData struct {
	Node      api.Node
	Labels    string
	Instances []instanceRow
}

type instanceRow struct {
	api.Instance
	// AppName is the application's name, or "" when the account has no
	// application of that id (any more).
	AppName string
}

func (c *Console) nodesPage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "nodes", "Nodes")
	if v == nil {
		return
	}
	c.showNodes(w, r, v, http.StatusOK, tokenForm{TTL: "24h"})
}

// showNodes renders the nodes page with form in the token form, with
// status (the status of v.Error when it is set).
func (c *Console) showNodes(w http.ResponseWriter, r *http.Request, v *view, status int, form tokenForm) {
	var nodes api.List[api.Node]
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "nodes"), nil, &nodes); err != nil {
		c.fail(w, r, err)
		return
	}
	var tokens api.List[api.JoinToken]
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "join-tokens"), nil, &tokens); err != nil {
		c.fail(w, r, err)
		return
	}
	d := nodesData{Form: form, Server: publicURL(r)}
	for _, n := range nodes.Items {
		row := nodeRow{Node: n}
		for _, in := range n.Instances {
			if in.Status == "stopped" {
				row.Stopped++
			} else {
				row.Running++
			}
		}
		d.Nodes = append(d.Nodes, row)
	}
	now := time.Now()
	for _, t := range tokens.Items {
		d.Tokens = append(d.Tokens, tokenRow{JoinToken: t, State: tokenState(t, now), Labels: labelText(t.Labels)})
	}
	slices.SortStableFunc(d.Tokens, func(a, b tokenRow) int { return b.CreatedAt.Compare(a.CreatedAt) })
	v.Data = d
	c.render(w, r, status, "nodes", v)
}

// tokenState says whether a token can still enrol a node at now, and if
// not, why.
func tokenState(t api.JoinToken, now time.Time) string {
	switch {
	case t.Revoked:
		return "revoked"
	case !now.Before(t.ExpiresAt):
		return "expired"
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return "used-up"
	}
	return "live"
}

// labelText shows labels as k=v, sorted by key.
func labelText(labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ", ")
}

func (c *Console) createJoinToken(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "nodes", "Nodes")
	if v == nil {
		return
	}
	f := r.PostFormValue
	form := tokenForm{Name: strings.TrimSpace(f("name")), TTL: strings.TrimSpace(f("ttl")), MaxUses: strings.TrimSpace(f("max_uses")),
		Labels: f("labels"), RequireAttestation: f("require_attestation") == "on"}
	in, err := parseTokenForm(form)
	var tok api.JoinToken
	if err == nil {
		err = c.create(r, v, accountPath(v.Account.ID, "join-tokens"), in, &tok)
	}
	if err != nil {
		if statusOf(err) == http.StatusUnauthorized {
			c.fail(w, r, err)
			return
		}
		v.Error = err.Error()
		c.showNodes(w, r, v, formStatus(err), form)
		return
	}
	// The secret is shown on this answer only: the API never gives it
	// again, and render forbids caching the page.
	v.Title = "Join token " + tok.Name
	server := publicURL(r)
	v.Data = tokenCreated{Token: tok, Labels: labelText(tok.Labels), Server: server,
		Command: "cloister-node-agent --join-token " + tok.Secret + " --server " + server}
	c.render(w, r, http.StatusOK, "token", v)
}

// parseTokenForm reads the join token form. The TTL is a Go duration
// ("24h", "90m") or a number of days ("7d"); labels are k=v lines.
func parseTokenForm(form tokenForm) (api.CreateJoinToken, error) {
	in := api.CreateJoinToken{Name: form.Name, RequireAttestation: form.RequireAttestation}
	var errs []string
	if form.TTL != "" {
		ttl, err := parseTTL(form.TTL)
		switch {
		case err != nil:
			errs = append(errs, err.Error())
		case ttl < time.Second:
			errs = append(errs, fmt.Sprintf("the time to live must be at least 1s, not %s", form.TTL))
		default:
			// The API says how long a token may live; past what a
			// uint32 holds, it hears the longest.
			in.TTLSeconds = uint32(min(ttl/time.Second, math.MaxUint32))
		}
	}
	if form.MaxUses != "" {
		n, err := strconv.ParseUint(form.MaxUses, 10, 32)
		if err != nil {
			errs = append(errs, fmt.Sprintf("maximum uses must be a whole number (empty or 0: unlimited), not %q", form.MaxUses))
		}
		in.MaxUses = uint32(n)
	}
	for _, l := range lines(form.Labels) {
		k, val, ok := strings.Cut(l, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			errs = append(errs, fmt.Sprintf("label line %q is not key=value", l))
			continue
		}
		if in.Labels == nil {
			in.Labels = map[string]string{}
		}
		in.Labels[k] = strings.TrimSpace(val)
	}
	if len(errs) > 0 {
		return in, formError{strings.Join(errs, "; ")}
	}
	return in, nil
}

func parseTTL(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err == nil {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("the time to live must read like 24h, 90m or 7d, not %q", s)
	}
	return d, nil
}

func (c *Console) revokeJoinToken(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "nodes", "Nodes")
	if v == nil {
		return
	}
	var tok api.JoinToken
	if err := c.call(r, http.MethodDelete, accountPath(v.Account.ID, "join-tokens", r.PathValue("token")), nil, &tok); err != nil {
		c.fail(w, r, err)
		return
	}
	flash(w, r, "Join token "+tok.Name+" revoked: it enrols no more nodes. The nodes it enrolled stay.")
	http.Redirect(w, r, consolePath(v.Account.ID, "nodes"), http.StatusSeeOther)
}

func (c *Console) nodePage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "nodes", "Node")
	if v == nil {
		return
	}
	var n api.Node
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "nodes", r.PathValue("node")), nil, &n); err != nil {
		c.fail(w, r, err)
		return
	}
	names := c.appNames(r, v.Account.ID)
	d := nodeData{Node: n, Labels: labelText(n.Labels)}
	for _, in := range n.Instances {
		d.Instances = append(d.Instances, instanceRow{Instance: in, AppName: names[in.AppID]})
	}
	v.Title = "Node " + n.Name
	v.Data = d
	c.render(w, r, http.StatusOK, "node", v)
}

// appNames maps the account's application ids to their names. The names
// only decorate a page: without them it shows ids, so a failure is not
// the page's.
func (c *Console) appNames(r *http.Request, account string) map[string]string {
	var apps api.List[api.App]
	if err := c.call(r, http.MethodGet, accountPath(account, "apps"), nil, &apps); err != nil {
		return nil
	}
	names := make(map[string]string, len(apps.Items))
	for _, a := range apps.Items {
		names[a.ID] = a.Name
	}
	return names
}

func (c *Console) deregisterNode(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "nodes", "Node")
	if v == nil {
		return
	}
	var n api.Node
	if err := c.call(r, http.MethodPost, accountPath(v.Account.ID, "nodes", r.PathValue("node"), "deregister"), nil, &n); err != nil {
		c.fail(w, r, err)
		return
	}
	flash(w, r, "Node "+n.Name+" deregistered: its certificate and those of its enclaves are revoked.")
	http.Redirect(w, r, consolePath(v.Account.ID, "nodes", n.ID), http.StatusSeeOther)
}
