package console

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// auditPageSize is how many entries a page of the audit log shows.
const auditPageSize = 50

// auditView is a page of the audit log, newest first; Next is the cursor
// of the following (older) page, if any.
type auditView struct {
	Entries []api.AuditEntry
	Cursor  string // this page's cursor, "" for the first page
	Next    string
}

func (c *Console) auditRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /a/{account}/audit", c.auditPage)
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "audit", "Audit log")
	if v == nil {
		return
	}
	cursor := r.URL.Query().Get("cursor")
	q := url.Values{"limit": {strconv.Itoa(auditPageSize)}, "order": {"newest"}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var l api.List[api.AuditEntry]
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "audit")+"?"+q.Encode(), nil, &l); err != nil {
		if statusOf(err) == http.StatusUnauthorized {
			c.fail(w, r, err)
			return
		}
		// Shown on the page, so the account's navigation stays: a member
		// is refused (403), a stale cursor is a 400.
		v.Error, v.Data = err.Error(), auditView{Cursor: cursor}
		c.render(w, r, statusOf(err), "audit", v)
		return
	}
	v.Data = auditView{Entries: l.Items, Cursor: cursor, Next: l.NextCursor}
	c.render(w, r, http.StatusOK, "audit", v)
}
