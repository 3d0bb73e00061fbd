package console

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// taskRoutes registers the tasks page and the decisions on a task.
func (c *Console) taskRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /a/{account}/tasks", c.tasksPage)
	for _, action := range []string{"approve", "deny", "withdraw"} {
		m.HandleFunc("POST /a/{account}/tasks/{task}/"+action, c.decideTask(action))
	}
}

// taskFilters are the choices of the tasks page's status filter; "all"
// asks the API for every status.
var taskFilters = []string{"pending", "approved", "denied", "withdrawn", "all"}

// tasksData is what the tasks page shows.
type tasksData struct {
	Tasks    []api.Task
	Status   string // the filter
	Filters  []string
	Required uint32
	// CanDecide tells whether the user is an admin, who decides tasks.
	CanDecide bool
	AppNames  map[string]string
	// Emails names the account's members by user id.
	Emails map[string]string
	// Images tells which image tasks' images still exist, for links.
	Images map[string]bool
}

func (c *Console) tasksPage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "tasks", "Tasks")
	if v == nil {
		return
	}
	c.showTasks(w, r, v, http.StatusOK, r.URL.Query().Get("status"))
}

// showTasks renders the tasks page with the tasks of status (pending
// when empty).
func (c *Console) showTasks(w http.ResponseWriter, r *http.Request, v *view, code int, status string) {
	if !slices.Contains(taskFilters, status) {
		status = "pending"
	}
	d := tasksData{Status: status, Filters: taskFilters, Required: v.Account.ApprovalsRequired, CanDecide: v.Account.Role == "admin",
		AppNames: map[string]string{}, Emails: map[string]string{}, Images: map[string]bool{}}
	path := accountPath(v.Account.ID, "tasks")
	if status != "all" {
		path += "?status=" + url.QueryEscape(status)
	}
	var tasks api.List[api.Task]
	if err := c.call(r, http.MethodGet, path, nil, &tasks); err != nil {
		c.fail(w, r, err)
		return
	}
	d.Tasks = tasks.Items
	if status != "pending" {
		// Decided tasks: the latest decision first.
		slices.SortStableFunc(d.Tasks, func(a, b api.Task) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	}
	// Names for the ids the tasks hold. They only make the page easier to
	// read: without them it shows the ids.
	if len(d.Tasks) > 0 {
		var apps api.List[api.App]
		if c.call(r, http.MethodGet, accountPath(v.Account.ID, "apps"), nil, &apps) == nil {
			for _, a := range apps.Items {
				d.AppNames[a.ID] = a.Name
			}
		}
		var members api.List[api.Member]
		if c.call(r, http.MethodGet, accountPath(v.Account.ID, "members")+"?limit=200", nil, &members) == nil {
			for _, m := range members.Items {
				d.Emails[m.UserID] = m.Email
			}
		}
		var images api.List[api.Image]
		if c.call(r, http.MethodGet, accountPath(v.Account.ID, "images"), nil, &images) == nil {
			for _, i := range images.Items {
				d.Images[i.ID] = true
			}
		}
	}
	v.Data = d
	c.render(w, r, code, "tasks", v)
}

// decideTask approves, denies or withdraws a task. A refusal (not an
// admin, the task decided meanwhile) is shown on the tasks page.
func (c *Console) decideTask(action string) http.HandlerFunc {
	done := map[string]string{"approve": "approved", "deny": "denied", "withdraw": "withdrawn"}[action]
	return func(w http.ResponseWriter, r *http.Request) {
		v := c.inAccount(w, r, "tasks", "Tasks")
		if v == nil {
			return
		}
		back := r.PostFormValue("status")
		var t api.Task
		if err := c.call(r, http.MethodPost, accountPath(v.Account.ID, "tasks", r.PathValue("task"), action), nil, &t); err != nil {
			if statusOf(err) == http.StatusUnauthorized {
				c.fail(w, r, err)
				return
			}
			v.Error = "The task could not be " + done + ": " + err.Error()
			c.showTasks(w, r, v, statusOf(err), back)
			return
		}
		msg := "Task " + done + "."
		if action == "approve" && t.Status == "pending" {
			msg = "Your approval is recorded; the task waits for more admins to approve it."
		}
		if action == "withdraw" {
			msg += " What it allowed is allowed no more, and the certificates that depended on it are revoked."
		}
		flash(w, r, msg)
		target := consolePath(v.Account.ID, "tasks")
		if slices.Contains(taskFilters, back) {
			target += "?status=" + back
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
	}
}
