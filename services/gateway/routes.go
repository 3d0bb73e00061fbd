package gateway

import (
	"fmt"
	"github.com/cloister-cc/cloister/services/gateway/api"
	"net/http"
	"time"

	"github.com/cloister-cc/cloister/libs/errs"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Route is one operation of the API; the OpenAPI test holds the document
// to this table.
type Route struct {
	Method, Pattern string
	Handler         http.Handler
}

// Routes lists the API's operations.
func (g *Gateway) Routes() []Route { return g.routes() }

func (g *Gateway) routes() []Route {
	return []Route{
		{"GET", "/v1/openapi.json", http.HandlerFunc(g.serveOpenAPI)},
		{"POST", "/v1/users", g.limited(g.public(g.signUp))},
		{"POST", "/v1/sessions", g.limited(g.public(g.login))},
		{"DELETE", "/v1/sessions/current", g.authed(g.logout)},
		{"GET", "/v1/users/me", g.authed(g.me)},
		{"POST", "/v1/accounts", g.authed(g.createAccount)},
		{"GET", "/v1/accounts", g.authed(g.listAccounts)},
		{"GET", "/v1/accounts/{account_id}", g.authed(g.getAccount)},
		{"PATCH", "/v1/accounts/{account_id}", g.authed(g.updateAccount)},
		{"DELETE", "/v1/accounts/{account_id}", g.authed(g.deleteAccount)},
		{"GET", "/v1/accounts/{account_id}/members", g.authed(g.listMembers)},
		{"POST", "/v1/accounts/{account_id}/members", g.authed(g.addMember)},
		{"PATCH", "/v1/accounts/{account_id}/members/{user_id}", g.authed(g.setMemberRole)},
		{"DELETE", "/v1/accounts/{account_id}/members/{user_id}", g.authed(g.removeMember)},
		{"GET", "/v1/accounts/{account_id}/api-keys", g.authed(g.listAPIKeys)},
		{"POST", "/v1/accounts/{account_id}/api-keys", g.authed(g.createAPIKey)},
		{"DELETE", "/v1/accounts/{account_id}/api-keys/{key_id}", g.authed(g.revokeAPIKey)},
		{"GET", "/v1/accounts/{account_id}/audit", g.authed(g.listAudit)},
		{"GET", "/v1/accounts/{account_id}/attestation/policy", g.authed(g.getAttestationPolicy)},
		{"PUT", "/v1/accounts/{account_id}/attestation/policy", g.authed(g.setAttestationPolicy)},
		{"POST", "/v1/accounts/{account_id}/attestation/verify", g.authed(g.verifyEvidence)},
		{"POST", "/v1/attestation/collateral", g.authed(g.putCollateral)},
		{"GET", "/v1/accounts/{account_id}/ca", g.authed(g.getCA)},
		{"POST", "/v1/accounts/{account_id}/ca/rotate", g.authed(g.rotateIssuer)},
		{"GET", "/v1/crl/{account_crl}", http.HandlerFunc(g.serveCRL)},
		{"POST", "/v1/ocsp/{account}", http.HandlerFunc(g.serveOCSP)},
		{"GET", "/v1/accounts/{account_id}/certificates", g.authed(g.listCertificates)},
		{"GET", "/v1/accounts/{account_id}/certificates/{serial}", g.authed(g.getCertificate)},
		{"POST", "/v1/accounts/{account_id}/certificates/{serial}/revoke", g.authed(g.revokeCertificate)},
		{"GET", "/v1/accounts/{account_id}/apps", g.authed(g.listApps)},
		{"POST", "/v1/accounts/{account_id}/apps", g.authed(g.createApp)},
		{"GET", "/v1/accounts/{account_id}/apps/{app}", g.authed(g.getApp)},
		{"PATCH", "/v1/accounts/{account_id}/apps/{app}", g.authed(g.updateApp)},
		{"DELETE", "/v1/accounts/{account_id}/apps/{app}", g.authed(g.deleteApp)},
		{"GET", "/v1/accounts/{account_id}/signing-key", g.authed(g.getSigningKey)},
		{"POST", "/v1/accounts/{account_id}/images", g.authed(g.convertImage)},
		{"GET", "/v1/accounts/{account_id}/images", g.authed(g.listImages)},
		{"GET", "/v1/accounts/{account_id}/images/{image_id}", g.authed(g.getImage)},
		{"DELETE", "/v1/accounts/{account_id}/images/{image_id}", g.authed(g.deleteImage)},
		{"GET", "/v1/accounts/{account_id}/registries", g.authed(g.listRegistries)},
		{"PUT", "/v1/accounts/{account_id}/registries/{registry}", g.authed(g.putRegistry)},
		{"DELETE", "/v1/accounts/{account_id}/registries/{registry}", g.authed(g.deleteRegistry)},
		{"GET", "/v1/accounts/{account_id}/tasks", g.authed(g.listTasks)},
		{"GET", "/v1/accounts/{account_id}/tasks/{task_id}", g.authed(g.getTask)},
		{"POST", "/v1/accounts/{account_id}/tasks/{task_id}/approve", g.authed(g.taskAction("approve"))},
		{"POST", "/v1/accounts/{account_id}/tasks/{task_id}/deny", g.authed(g.taskAction("deny"))},
		{"POST", "/v1/accounts/{account_id}/tasks/{task_id}/withdraw", g.authed(g.taskAction("withdraw"))},
		{"POST", "/v1/accounts/{account_id}/join-tokens", g.authed(g.createJoinToken)},
		{"GET", "/v1/accounts/{account_id}/join-tokens", g.authed(g.listJoinTokens)},
		{"DELETE", "/v1/accounts/{account_id}/join-tokens/{token_id}", g.authed(g.revokeJoinToken)},
		{"GET", "/v1/accounts/{account_id}/nodes", g.authed(g.listNodes)},
		{"GET", "/v1/accounts/{account_id}/nodes/{node_id}", g.authed(g.getNode)},
		{"POST", "/v1/accounts/{account_id}/nodes/{node_id}/deregister", g.authed(g.deregisterNode)},
		{"POST", "/v1/agent/enroll", g.limited(g.public(g.enroll))},
		{"POST", "/v1/agent/simulation-qe", g.limited(g.public(g.agentSimulatedQE))},
	}
}

// reply is a handler's result: a status and a body to send as JSON.
type reply struct {
	status int
	body   any
}

func (g *Gateway) public(h func(w http.ResponseWriter, r *http.Request) (reply, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := h(w, r)
		g.finish(w, r, res, err)
	})
}

func (g *Gateway) authed(h func(w http.ResponseWriter, r *http.Request, p principal) (reply, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := g.authenticate(r.Context(), r)
		if err != nil {
			g.finish(w, r, reply{}, err)
			return
		}
		res, err := h(w, r, p)
		g.finish(w, r, res, err)
	})
}

func (g *Gateway) finish(w http.ResponseWriter, r *http.Request, res reply, err error) {
	if err != nil {
		if k := errs.KindOf(err); k == errs.Internal || k == errs.Unavailable {
			g.logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		}
		writeProblem(w, err)
		return
	}
	if res.status == http.StatusNoContent {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, res.status, res.body)
}

func errNotFound(path string) error {
	return errs.Newf(errs.NotFound, "no such resource: %s", path)
}

func errMethod(method, path string) error {
	return &methodError{fmt.Sprintf("%s is not allowed on %s", method, path)}
}

// methodError is answered with 405.
type methodError struct{ msg string }

func (e *methodError) Error() string { return e.msg }

func (g *Gateway) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(g.openapi)
}

func ts(t *timestamppb.Timestamp) time.Time { return t.AsTime().UTC() }

func toAccount(a *accountv1.Account) api.Account {
	return api.Account{ID: a.GetId(), Name: a.GetName(), Description: a.GetDescription(), Role: a.GetRole(),
		CreatedBy: a.GetCreatedBy(), CreatedAt: ts(a.GetCreatedAt()), UpdatedAt: ts(a.GetUpdatedAt()), ApprovalsRequired: a.GetApprovalsRequired()}
}

func toMember(m *accountv1.Member) api.Member {
	return api.Member{AccountID: m.GetAccountId(), UserID: m.GetUserId(), Email: m.GetEmail(), Role: m.GetRole(), AddedAt: ts(m.GetAddedAt())}
}

func toAPIKey(k *accountv1.APIKey) api.APIKey {
	return api.APIKey{ID: k.GetId(), AccountID: k.GetAccountId(), UserID: k.GetUserId(), Name: k.GetName(),
		CreatedAt: ts(k.GetCreatedAt()), ExpiresAt: ts(k.GetExpiresAt())}
}

func toAudit(e *accountv1.AuditEntry) api.AuditEntry {
	return api.AuditEntry{ID: e.GetId(), OccurredAt: ts(e.GetOccurredAt()),
		Actor: api.Actor{UserID: e.GetActorUserId(), Email: e.GetActorEmail(), Credential: e.GetActorCredential(),
			CredentialID: e.GetActorCredentialId()},
		Action: e.GetAction(), Target: e.GetTarget(), Outcome: e.GetOutcome(), Error: e.GetError()}
}

func list[P any, T any](items []P, next string, f func(P) T) api.List[T] {
	out := api.List[T]{Items: make([]T, 0, len(items)), NextCursor: next}
	for _, it := range items {
		out.Items = append(out.Items, f(it))
	}
	return out
}

func page(r *http.Request) (*accountv1.Page, error) {
	limit, cursor, err := pageParams(r)
	if err != nil {
		return nil, err
	}
	return &accountv1.Page{Limit: limit, Cursor: cursor}, nil
}

func (g *Gateway) signUp(w http.ResponseWriter, r *http.Request) (reply, error) {
	var b api.Credentials
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.accounts.SignUp(r.Context(), &accountv1.SignUpRequest{Email: b.Email, Password: b.Password})
	if err != nil {
		return reply{}, err
	}
	u := resp.GetUser()
	created := ts(u.GetCreatedAt())
	return reply{http.StatusCreated, api.User{ID: u.GetId(), Email: u.GetEmail(), CreatedAt: &created}}, nil
}

func (g *Gateway) login(w http.ResponseWriter, r *http.Request) (reply, error) {
	var b api.Credentials
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.accounts.Login(r.Context(), &accountv1.LoginRequest{Email: b.Email, Password: b.Password})
	if err != nil {
		return reply{}, err
	}
	return reply{http.StatusCreated, api.Session{Token: resp.GetToken(), ExpiresAt: ts(resp.GetExpiresAt()),
		User: api.User{ID: resp.GetUser().GetId(), Email: resp.GetUser().GetEmail()}}}, nil
}

func (g *Gateway) logout(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	if p.Credential != "session" {
		return reply{}, errs.New(errs.Invalid, "only a session can log out; revoke an API key instead")
	}
	token, _ := bearerToken(r)
	if _, err := g.accounts.Logout(r.Context(), &accountv1.LogoutRequest{Token: token}); err != nil {
		return reply{}, err
	}
	_ = g.forget(r.Context(), SessionCacheKey(p.TokenHash))
	return reply{status: http.StatusNoContent}, nil
}

func (g *Gateway) me(_ http.ResponseWriter, _ *http.Request, p principal) (reply, error) {
	return reply{http.StatusOK, api.Me{ID: p.UserID, Email: p.Email, Credential: p.Credential, AccountID: p.AccountID, ExpiresAt: p.ExpiresAt.UTC()}}, nil
}

func (g *Gateway) createAccount(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.CreateAccount
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.accounts.CreateAccount(r.Context(), &accountv1.CreateAccountRequest{Actor: p.proto(), Name: b.Name, Description: b.Description})
	if err != nil {
		return reply{}, err
	}
	return reply{http.StatusCreated, toAccount(resp.GetAccount())}, nil
}

func (g *Gateway) listAccounts(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	pg, err := page(r)
	if err != nil {
		return reply{}, err
	}
	resp, err := g.accounts.ListAccounts(r.Context(), &accountv1.ListAccountsRequest{Actor: p.proto(), Page: pg})
	if err != nil {
		return reply{}, err
	}
	return reply{http.StatusOK, list(resp.GetAccounts(), resp.GetNextCursor(), toAccount)}, nil
}

func (g *Gateway) getAccount(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.accounts.GetAccount(r.Context(), &accountv1.GetAccountRequest{Actor: p.proto(), AccountId: r.PathValue("account_id")})
	if err != nil {
		return reply{}, err
	}
	return reply{http.StatusOK, toAccount(resp.GetAccount())}, nil
}

func (g *Gateway) updateAccount(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.UpdateAccount
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	if b.Name == nil && b.Description == nil && b.ApprovalsRequired == nil {
		return reply{}, errs.New(errs.Invalid, "send at least one of name, description, approvals_required")
	}
	resp, err := g.accounts.UpdateAccount(r.Context(), &accountv1.UpdateAccountRequest{Actor: p.proto(),
		AccountId: r.PathValue("account_id"), Name: b.Name, Description: b.Description, ApprovalsRequired: b.ApprovalsRequired})
	if err != nil {
		return reply{}, err
	}
	return reply{http.StatusOK, toAccount(resp.GetAccount())}, nil
}

func (g *Gateway) deleteAccount(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	_, err := g.accounts.DeleteAccount(r.Context(), &accountv1.DeleteAccountRequest{Actor: p.proto(), AccountId: r.PathValue("account_id")})
	return reply{status: http.StatusNoContent}, err
}

func (g *Gateway) listMembers(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	pg, err := page(r)
	if err != nil {
		return reply{}, err
	}
	resp, err := g.accounts.ListMembers(r.Context(), &accountv1.ListMembersRequest{Actor: p.proto(), AccountId: r.PathValue("account_id"), Page: pg})
	if err != nil {
		return reply{}, err
	}
	return reply{http.StatusOK, list(resp.GetMembers(), resp.GetNextCursor(), toMember)}, nil
}

func (g *Gateway) addMember(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.AddMember
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.accounts.AddMember(r.Context(), &accountv1.AddMemberRequest{Actor: p.proto(),
		AccountId: r.PathValue("account_id"), Email: b.Email, Role: b.Role})
	if err != nil {
		return reply{}, err
	}
	return reply{http.StatusCreated, toMember(resp.GetMember())}, nil
}

func (g *Gateway) setMemberRole(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.SetRole
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.accounts.SetMemberRole(r.Context(), &accountv1.SetMemberRoleRequest{Actor: p.proto(),
		AccountId: r.PathValue("account_id"), UserId: r.PathValue("user_id"), Role: b.Role})
	if err != nil {
		return reply{}, err
	}
	return reply{http.StatusOK, toMember(resp.GetMember())}, nil
}

func (g *Gateway) removeMember(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	_, err := g.accounts.RemoveMember(r.Context(), &accountv1.RemoveMemberRequest{Actor: p.proto(),
		AccountId: r.PathValue("account_id"), UserId: r.PathValue("user_id")})
	return reply{status: http.StatusNoContent}, err
}

func (g *Gateway) listAPIKeys(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	pg, err := page(r)
	if err != nil {
		return reply{}, err
	}
	resp, err := g.accounts.ListAPIKeys(r.Context(), &accountv1.ListAPIKeysRequest{Actor: p.proto(), AccountId: r.PathValue("account_id"), Page: pg})
	if err != nil {
		return reply{}, err
	}
	return reply{http.StatusOK, list(resp.GetKeys(), resp.GetNextCursor(), toAPIKey)}, nil
}

func (g *Gateway) createAPIKey(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.CreateAPIKey
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	resp, err := g.accounts.CreateAPIKey(r.Context(), &accountv1.CreateAPIKeyRequest{Actor: p.proto(),
		AccountId: r.PathValue("account_id"), Name: b.Name, TtlSeconds: b.TTLSeconds})
	if err != nil {
		return reply{}, err
	}
	k := toAPIKey(resp.GetKey())
	k.Token = resp.GetToken()
	return reply{http.StatusCreated, k}, nil
}

func (g *Gateway) revokeAPIKey(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	keyID := r.PathValue("key_id")
	_, err := g.accounts.RevokeAPIKey(r.Context(), &accountv1.RevokeAPIKeyRequest{Actor: p.proto(),
		AccountId: r.PathValue("account_id"), KeyId: keyID})
	if err != nil {
		return reply{}, err
	}
	_ = g.forget(r.Context(), APIKeyCacheKey(keyID))
	return reply{status: http.StatusNoContent}, nil
}

func (g *Gateway) listAudit(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	pg, err := page(r)
	if err != nil {
		return reply{}, err
	}
	resp, err := g.accounts.ListAudit(r.Context(), &accountv1.ListAuditRequest{Actor: p.proto(), AccountId: r.PathValue("account_id"), Page: pg})
	if err != nil {
		return reply{}, err
	}
	return reply{http.StatusOK, list(resp.GetEntries(), resp.GetNextCursor(), toAudit)}, nil
}
