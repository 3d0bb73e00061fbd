package gateway

import (
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
	accountv1 "github.com/cloister-cc/cloister/libs/gen/cloister/account/v1"
	"github.com/cloister-cc/cloister/libs/idempotency"
	"github.com/cloister-cc/cloister/libs/natsrpc"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// Route is one operation of the API; the OpenAPI test holds the document
// to this table, and the authorization test every route that has an
// Action to authz's table, for every role.
type Route struct {
	Method, Pattern string
	// Action is what a route of an account ({account_id}) does there; the
	// caller's role must allow it. Empty on routes outside accounts.
	Action  authz.Action
	Handler http.Handler
}

// Routes lists the API's operations.
func (g *Gateway) Routes() []Route { return g.routes() }

func (g *Gateway) routes() []Route {
	// gw routes are authorized here, before the call to their service;
	// byAccount routes call the account service, which authorizes the
	// same action itself.
	gw := func(method, pattern string, a authz.Action, h authedHandler) Route {
		return Route{method, pattern, a, g.authed(g.allowed(a, h))}
	}
	byAccount := func(method, pattern string, a authz.Action, h authedHandler) Route {
		return Route{method, pattern, a, g.authed(h)}
	}
	return []Route{
		{Method: "GET", Pattern: "/v1/openapi.json", Handler: http.HandlerFunc(g.serveOpenAPI)},
		{Method: "POST", Pattern: "/v1/users", Handler: g.limited(g.public(g.signUp))},
		{Method: "POST", Pattern: "/v1/sessions", Handler: g.limited(g.public(g.login))},
		{Method: "DELETE", Pattern: "/v1/sessions/current", Handler: g.authed(g.logout)},
		{Method: "GET", Pattern: "/v1/users/me", Handler: g.authed(g.me)},
		{Method: "POST", Pattern: "/v1/accounts", Handler: g.authed(g.createAccount)},
		{Method: "GET", Pattern: "/v1/accounts", Handler: g.authed(g.listAccounts)},
		byAccount("GET", "/v1/accounts/{account_id}", authz.AccountGet, g.getAccount),
		byAccount("PATCH", "/v1/accounts/{account_id}", authz.AccountUpdate, g.updateAccount),
		byAccount("DELETE", "/v1/accounts/{account_id}", authz.AccountDelete, g.deleteAccount),
		gw("GET", "/v1/accounts/{account_id}/summary", authz.AccountGet, g.accountSummary),
		byAccount("GET", "/v1/accounts/{account_id}/members", authz.MemberList, g.listMembers),
		byAccount("POST", "/v1/accounts/{account_id}/members", authz.MemberAdd, g.addMember),
		byAccount("PATCH", "/v1/accounts/{account_id}/members/{user_id}", authz.MemberSetRole, g.setMemberRole),
		byAccount("DELETE", "/v1/accounts/{account_id}/members/{user_id}", authz.MemberRemove, g.removeMember),
		byAccount("GET", "/v1/accounts/{account_id}/api-keys", authz.APIKeyList, g.listAPIKeys),
		byAccount("POST", "/v1/accounts/{account_id}/api-keys", authz.APIKeyCreate, g.createAPIKey),
		byAccount("DELETE", "/v1/accounts/{account_id}/api-keys/{key_id}", authz.APIKeyRevoke, g.revokeAPIKey),
		byAccount("GET", "/v1/accounts/{account_id}/audit", authz.AuditList, g.listAudit),
		gw("GET", "/v1/accounts/{account_id}/attestation/policy", authz.AttestationPolicyGet, g.getAttestationPolicy),
		gw("PUT", "/v1/accounts/{account_id}/attestation/policy", authz.AttestationPolicySet, g.setAttestationPolicy),
		gw("POST", "/v1/accounts/{account_id}/attestation/verify", authz.AttestationVerify, g.verifyEvidence),
		{Method: "POST", Pattern: "/v1/attestation/collateral", Handler: g.authed(g.putCollateral)},
		{Method: "POST", Pattern: "/v1/attestation/vcek", Handler: g.authed(g.putVCEK)},
		gw("GET", "/v1/accounts/{account_id}/ca", authz.CAGet, g.getCA),
		gw("POST", "/v1/accounts/{account_id}/ca/rotate", authz.CARotate, g.rotateIssuer),
		gw("POST", "/v1/accounts/{account_id}/ca/issuers/{key_id}/retire", authz.CARotate, g.retireIssuer),
		{Method: "GET", Pattern: "/v1/crl/{account_crl}", Handler: http.HandlerFunc(g.serveCRL)},
		{Method: "POST", Pattern: "/v1/ocsp/{account}", Handler: http.HandlerFunc(g.serveOCSP)},
		gw("GET", "/v1/accounts/{account_id}/certificates", authz.CertList, g.listCertificates),
		gw("GET", "/v1/accounts/{account_id}/certificates/{serial}", authz.CertList, g.getCertificate),
		gw("POST", "/v1/accounts/{account_id}/certificates/{serial}/revoke", authz.CertRevoke, g.revokeCertificate),
		gw("GET", "/v1/accounts/{account_id}/apps", authz.AppList, g.listApps),
		gw("POST", "/v1/accounts/{account_id}/apps", authz.AppCreate, g.createApp),
		gw("GET", "/v1/accounts/{account_id}/apps/{app}", authz.AppList, g.getApp),
		gw("PATCH", "/v1/accounts/{account_id}/apps/{app}", authz.AppUpdate, g.updateApp),
		gw("DELETE", "/v1/accounts/{account_id}/apps/{app}", authz.AppDelete, g.deleteApp),
		gw("GET", "/v1/accounts/{account_id}/apps/{app}/secrets", authz.SecretList, g.listSecrets),
		gw("PUT", "/v1/accounts/{account_id}/apps/{app}/secrets/{name}", authz.SecretSet, g.putSecret),
		gw("DELETE", "/v1/accounts/{account_id}/apps/{app}/secrets/{name}", authz.SecretDelete, g.deleteSecret),
		gw("POST", "/v1/accounts/{account_id}/apps/{app}/volume-keys/{key_name}/export", authz.VolumeKeyExport, g.exportVolumeKey),
		gw("GET", "/v1/accounts/{account_id}/signing-key", authz.SigningKeyGet, g.getSigningKey),
		gw("POST", "/v1/accounts/{account_id}/images", authz.ImageConvert, g.convertImage),
		gw("GET", "/v1/accounts/{account_id}/images", authz.ImageList, g.listImages),
		gw("GET", "/v1/accounts/{account_id}/images/{image_id}", authz.ImageList, g.getImage),
		gw("DELETE", "/v1/accounts/{account_id}/images/{image_id}", authz.ImageDelete, g.deleteImage),
		gw("GET", "/v1/accounts/{account_id}/registries", authz.RegistryList, g.listRegistries),
		gw("PUT", "/v1/accounts/{account_id}/registries/{registry}", authz.RegistryPut, g.putRegistry),
		gw("DELETE", "/v1/accounts/{account_id}/registries/{registry}", authz.RegistryDelete, g.deleteRegistry),
		byAccount("GET", "/v1/accounts/{account_id}/tasks", authz.TaskList, g.listTasks),
		byAccount("GET", "/v1/accounts/{account_id}/tasks/{task_id}", authz.TaskGet, g.getTask),
		byAccount("POST", "/v1/accounts/{account_id}/tasks/{task_id}/approve", authz.TaskApprove, g.taskAction("approve")),
		byAccount("POST", "/v1/accounts/{account_id}/tasks/{task_id}/deny", authz.TaskDeny, g.taskAction("deny")),
		byAccount("POST", "/v1/accounts/{account_id}/tasks/{task_id}/withdraw", authz.TaskWithdraw, g.taskAction("withdraw")),
		gw("POST", "/v1/accounts/{account_id}/join-tokens", authz.NodeTokenCreate, g.createJoinToken),
		gw("GET", "/v1/accounts/{account_id}/join-tokens", authz.NodeTokenList, g.listJoinTokens),
		gw("DELETE", "/v1/accounts/{account_id}/join-tokens/{token_id}", authz.NodeTokenRevoke, g.revokeJoinToken),
		gw("GET", "/v1/accounts/{account_id}/nodes", authz.NodeList, g.listNodes),
		gw("GET", "/v1/accounts/{account_id}/nodes/{node_id}", authz.NodeList, g.getNode),
		gw("POST", "/v1/accounts/{account_id}/nodes/{node_id}/deregister", authz.NodeDeregister, g.deregisterNode),
		{Method: "POST", Pattern: "/v1/agent/enroll", Handler: g.limited(g.public(g.enroll))},
		{Method: "POST", Pattern: "/v1/agent/simulation-qe", Handler: g.limited(g.public(g.agentSimulatedQE))},
		{Method: "POST", Pattern: "/v1/agent/nonce", Handler: g.limited(g.public(g.agentNonce))},
	}
}

// authedHandler handles a request of an authenticated caller.
type authedHandler func(w http.ResponseWriter, r *http.Request, p principal) (reply, error)

// allowed runs h once the account service says the caller may take
// action in the account of the request's path: a stranger gets the same
// 404 as on the account's own routes, a role that does not allow it 403.
func (g *Gateway) allowed(action authz.Action, h authedHandler) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
		_, err := g.accounts.Authorize(r.Context(), &accountv1.AuthorizeRequest{Actor: p.proto(), AccountId: r.PathValue("account_id"), Action: string(action)})
		if err != nil {
			return reply{}, err
		}
		return h(w, r, p)
	}
}

// answer is a handler's reply once its call is made: err if there is
// one, else status with the body made (only then) by body.
func answer(err error, status int, body func() any) (reply, error) {
	if err != nil {
		return reply{}, err
	}
	return reply{status, body()}, nil
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

func (g *Gateway) authed(h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := g.authenticate(r.Context(), r)
		if err != nil {
			g.finish(w, r, reply{}, err)
			return
		}
		// Every call made for the caller carries the gateway's word on
		// who they are and which account they act on.
		r = r.WithContext(natsrpc.WithAsserter(r.Context(), g.assertions.For(p.proto(), r.PathValue("account_id"))))
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
		CreatedBy: a.GetCreatedBy(), CreatedAt: ts(a.GetCreatedAt()), UpdatedAt: ts(a.GetUpdatedAt()), ApprovalsRequired: a.GetApprovalsRequired(),
		SecretsNeedApproval: a.GetSecretsNeedApproval()}
}

// changeTask is the task a change of who approves opened, if it did.
func changeTask(t *accountv1.Task) *api.Task {
	if t == nil {
		return nil
	}
	out := toTask(t)
	return &out
}

// changeStatus is 202 Accepted while the change waits for its approvals,
// else done (the change was made).
func changeStatus(t *api.Task, done int) int {
	if t != nil && !t.Applied {
		return http.StatusAccepted
	}
	return done
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
		Action: e.GetAction(), Target: e.GetTarget(), Outcome: e.GetOutcome(), Error: e.GetError(), Cause: e.GetCause()}
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
	if err := g.allowEmail(w, b.Email); err != nil {
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
	if err := g.allowEmail(w, b.Email); err != nil {
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
	resp, err := g.accounts.CreateAccount(r.Context(), &accountv1.CreateAccountRequest{Actor: p.proto(), Name: b.Name, Description: b.Description,
		IdempotencyKey: r.Header.Get(idempotency.Header)})
	return answer(err, http.StatusCreated, func() any { return toAccount(resp.GetAccount()) })
}

func (g *Gateway) listAccounts(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	pg, err := page(r)
	if err != nil {
		return reply{}, err
	}
	resp, err := g.accounts.ListAccounts(r.Context(), &accountv1.ListAccountsRequest{Actor: p.proto(), Page: pg})
	return answer(err, http.StatusOK, func() any { return list(resp.GetAccounts(), resp.GetNextCursor(), toAccount) })
}

func (g *Gateway) getAccount(_ http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	resp, err := g.accounts.GetAccount(r.Context(), &accountv1.GetAccountRequest{Actor: p.proto(), AccountId: r.PathValue("account_id")})
	return answer(err, http.StatusOK, func() any { return toAccount(resp.GetAccount()) })
}

func (g *Gateway) updateAccount(w http.ResponseWriter, r *http.Request, p principal) (reply, error) {
	var b api.UpdateAccount
	if err := decodeJSON(w, r, &b); err != nil {
		return reply{}, err
	}
	if b.Name == nil && b.Description == nil && b.ApprovalsRequired == nil && b.SecretsNeedApproval == nil {
		return reply{}, errs.New(errs.Invalid, "send at least one of name, description, approvals_required, secrets_need_approval")
	}
	resp, err := g.accounts.UpdateAccount(r.Context(), &accountv1.UpdateAccountRequest{Actor: p.proto(),
		AccountId: r.PathValue("account_id"), Name: b.Name, Description: b.Description, ApprovalsRequired: b.ApprovalsRequired,
		SecretsNeedApproval: b.SecretsNeedApproval})
	if err != nil {
		return reply{}, err
	}
	a := toAccount(resp.GetAccount())
	a.Task = changeTask(resp.GetTask())
	return reply{changeStatus(a.Task, http.StatusOK), a}, nil
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
	return answer(err, http.StatusOK, func() any { return list(resp.GetMembers(), resp.GetNextCursor(), toMember) })
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
	m := toMember(resp.GetMember())
	m.Task = changeTask(resp.GetTask())
	return reply{changeStatus(m.Task, http.StatusCreated), m}, nil
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
	m := toMember(resp.GetMember())
	m.Task = changeTask(resp.GetTask())
	return reply{changeStatus(m.Task, http.StatusOK), m}, nil
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
	return answer(err, http.StatusOK, func() any { return list(resp.GetKeys(), resp.GetNextCursor(), toAPIKey) })
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
	var newest bool
	switch order := r.URL.Query().Get("order"); order {
	case "", "oldest":
	case "newest":
		newest = true
	default:
		return reply{}, errs.Newf(errs.Invalid, "order %q is not one of oldest, newest", order)
	}
	resp, err := g.accounts.ListAudit(r.Context(), &accountv1.ListAuditRequest{Actor: p.proto(), AccountId: r.PathValue("account_id"), Page: pg,
		NewestFirst: newest})
	return answer(err, http.StatusOK, func() any { return list(resp.GetEntries(), resp.GetNextCursor(), toAudit) })
}
