package gateway

import (
	"context"
	"encoding/hex"
	"net/http"

	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

func (g *Gateway) listTasks(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.accounts.ListTasks(r.Context(), &accountv1.ListTasksRequest{Actor: p.proto(), AccountId: r.PathValue("account_id"),
		Status: r.URL.Query().Get("status")})
	return answer(err, http.StatusOK, func() any { return list(resp.GetTasks(), "", toTask) })
}

func (g *Gateway) getTask(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.accounts.GetTask(r.Context(), &accountv1.GetTaskRequest{Actor: p.proto(), AccountId: r.PathValue("account_id"),
		TaskId: r.PathValue("task_id")})
	return answer(err, http.StatusOK, func() any { return toTask(resp.GetTask()) })
}

// taskAction serves POST .../tasks/{task_id}/{approve,deny,withdraw}; the
// account service checks the role and the quorum rules.
func (g *Gateway) taskAction(action string) func(http.ResponseWriter, *http.Request, principal) (reply, error) {
	call := map[string]func(context.Context, *accountv1.TaskActionRequest) (*accountv1.TaskActionResponse, error){
		"approve": g.accounts.ApproveTask, "deny": g.accounts.DenyTask, "withdraw": g.accounts.WithdrawTask,
	}[action]
	return func(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
		resp, err := call(r.Context(), &accountv1.TaskActionRequest{Actor: p.proto(), AccountId: r.PathValue("account_id"), TaskId: r.PathValue("task_id")})
		if err != nil {
			return reply{}, err
		}
		return reply{http.StatusOK, toTask(resp.GetTask())}, nil
	}
}

func toTask(t *accountv1.Task) api.Task {
	out := api.Task{ID: t.GetId(), Kind: t.GetKind(), Status: t.GetStatus(), RequesterID: t.GetRequesterId(), AppID: t.GetAppId(),
		Domain: t.GetDomain(), Approvals: []api.TaskApproval{}, CreatedAt: ts(t.GetCreatedAt()), UpdatedAt: ts(t.GetUpdatedAt()),
		ApprovalsCounted: int(t.GetApprovalsCounted()), ApprovalsRequired: int(t.GetApprovalsRequired())}
	switch t.GetKind() {
	case "quorum":
		n := t.GetNewApprovalsRequired()
		out.NewApprovalsRequired, out.Applied = &n, t.GetApplied()
	case "admin":
		out.Admin, out.Applied = &api.TaskAdmin{UserID: t.GetAdminUserId(), Email: t.GetAdminEmail()}, t.GetApplied()
	}
	if c := t.GetSecret(); c != nil {
		out.Secret = &api.TaskSecret{Name: c.GetName(), Version: c.GetVersion(), Size: c.GetSize()}
	}
	if im := t.GetImage(); im != nil {
		out.Image = &api.TaskImage{ImageID: im.GetImageId(), Tag: im.GetTag(), MRENCLAVE: hex.EncodeToString(im.GetMrenclave()),
			MRSIGNER: hex.EncodeToString(im.GetMrsigner()), ISVProdID: im.GetIsvprodid(), ISVSVN: im.GetIsvsvn()}
	}
	for _, a := range t.GetApprovals() {
		out.Approvals = append(out.Approvals, api.TaskApproval{UserID: a.GetUserId(), At: ts(a.GetAt())})
	}
	return out
}
