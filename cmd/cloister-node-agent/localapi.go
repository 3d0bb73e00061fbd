package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// maxRequestBytes bounds the body of a local request (a CSR and a quote).
const maxRequestBytes = 1 << 20

// nonceRate and nonceBurst bound the nonces the local API asks the server
// for, per second: enclaves starting ask for one each.
const (
	nonceRate  = 10
	nonceBurst = 20
)

// The local API's problem details that callers (and tests) rely on.
const (
	detailUnreachable = "the Cloister server cannot be reached; the agent keeps retrying heartbeats; try again later"
	detailNotEnrolled = "the node agent is not enrolled yet; it keeps trying (see its log); try again later"
	detailNotAccepted = "the Cloister server no longer accepts this node (it was deregistered or its certificate revoked); the agent is stopping"
	detailNoQE        = "the node agent has no simulated quoting enclave yet: the server has not given one (simulation must be enabled in " +
		"the deployment and allowed by the account's attestation policy); the agent keeps trying (see its log); try again later"
)

// handler is the local API, under /v1/. The routes keep the names of
// Fortanix's node agent so that its callers find their way.
func (a *agent) handler() http.Handler {
	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != method {
				w.Header().Set("Allow", method)
				writeProblem(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, method))
				return
			}
			h(w, r)
		})
	}
	route(http.MethodGet, "/v1/health", a.health)
	route(http.MethodGet, "/v1/enclave/target-info", a.targetInfo)
	route(http.MethodPost, "/v1/enclave/attest", a.attest)
	route(http.MethodPost, "/v1/certificate/issue", a.issue)
	route(http.MethodGet, "/v1/certificate/result/{task}", a.result)
	route(http.MethodGet, "/v1/instances/{id}/live", a.live)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such resource: %s; the node agent serves /v1/health, "+
			"/v1/enclave/target-info, /v1/enclave/attest, /v1/certificate/issue and /v1/instances/{id}/live", r.URL.Path))
	})
	return a.hostGuard(mux)
}

// healthAnswer is the body of GET /v1/health.
type healthAnswer struct {
	Status     string `json:"status"` // ok, or enrolling
	NodeID     string `json:"node_id,omitempty"`
	AccountID  string `json:"account_id,omitempty"`
	Enrolled   bool   `json:"enrolled"`
	Simulation bool   `json:"simulation"`
	// Ready: enclaves can get their certificates now. In simulation mode
	// that waits for the simulated QE, which the server gives after
	// enrolment; with hardware the enclave quotes itself.
	Ready         bool       `json:"ready"`
	Instances     int        `json:"instances"`
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
}

// health answers 200 once the node has its identity, 503 before.
func (a *agent) health(w http.ResponseWriter, _ *http.Request) {
	out := healthAnswer{Status: "enrolling", Simulation: a.cfg.Simulation}
	a.mu.Lock()
	out.Instances = len(a.instances)
	if !a.lastBeat.IsZero() {
		t := a.lastBeat
		out.LastHeartbeat = &t
	}
	a.mu.Unlock()
	s := a.sess.Load()
	if s == nil {
		writeJSON(w, http.StatusServiceUnavailable, out)
		return
	}
	out.Status, out.Enrolled, out.NodeID, out.AccountID = "ok", true, s.id.record.ID, s.id.record.Account
	out.Ready = !a.cfg.Simulation || a.qe.Load() != nil
	writeJSON(w, http.StatusOK, out)
}

// nonceAnswer is the node listener's answer to POST /v1/node/nonce.
type nonceAnswer struct {
	Nonce     []byte     `json:"nonce"` // base64
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// targetInfoAnswer is the body of GET /v1/enclave/target-info.
type targetInfoAnswer struct {
	Nonce      []byte     `json:"nonce"` // base64
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Simulation bool       `json:"simulation,omitempty"`
	// TargetInfo is the simulated QE's TARGETINFO (512 bytes, base64), in
	// simulation mode only. It is informative: the simulated QE is no
	// enclave, and POST /v1/enclave/attest quotes whatever report body it
	// is given.
	TargetInfo []byte `json:"target_info,omitempty"`
}

// targetInfo gives the launcher a fresh nonce of the server's to bind in
// its quote's REPORTDATA and, in simulation mode, the simulated QE's
// target info.
func (a *agent) targetInfo(w http.ResponseWriter, r *http.Request) {
	var qe *sim.QE
	if a.cfg.Simulation && a.sess.Load() != nil {
		if qe = a.qe.Load(); qe == nil {
			writeProblem(w, http.StatusServiceUnavailable, "unavailable", detailNoQE)
			return
		}
	}
	// Each nonce is one the server mints and keeps until it expires: a
	// runaway (or hostile) caller gets 429 rather than filling the CA's
	// store through this node.
	if !a.nonces.Allow() {
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("more than %d nonces a second: wait and try again", nonceRate))
		return
	}
	var n nonceAnswer
	// A nonce request is idempotent enough: a lost answer only leaves an
	// unused nonce to expire.
	if !a.forward(w, r, "nonce", struct{}{}, &n, true) {
		return
	}
	if len(n.Nonce) == 0 {
		a.log.Error("the server's nonce is empty")
		writeProblem(w, http.StatusBadGateway, "bad_gateway", "the Cloister server answered without a nonce")
		return
	}
	out := targetInfoAnswer{Nonce: n.Nonce, ExpiresAt: n.ExpiresAt, Simulation: a.cfg.Simulation}
	if qe != nil {
		out.TargetInfo = qe.TargetInfo()
	}
	writeJSON(w, http.StatusOK, out)
}

// issueRequest is the body of POST /v1/certificate/issue, forwarded as it
// is to POST /v1/node/certificate.
type issueRequest struct {
	AppID string `json:"app_id"`
	CSR   string `json:"csr"`   // PEM
	Quote []byte `json:"quote"` // base64
	// RecipientKey is the enclave's X25519 key its secrets are sealed
	// to; the answer's "secrets" is ciphertext the agent cannot open.
	RecipientKey []byte `json:"recipient_key,omitempty"`
}

// issued is what the agent reads of the server's answer to an issuance;
// the launcher gets the whole answer.
type issued struct {
	Certificate struct {
		Serial    string `json:"serial"`
		ImageID   string `json:"image_id"`
		MRENCLAVE string `json:"mrenclave"`
	} `json:"certificate"`
	Verdict struct {
		MRENCLAVE string `json:"mrenclave"`
	} `json:"verdict"`
}

// issue forwards an enclave's CSR and quote to the server, records the
// instance and answers with the server's answer plus its instance_id.
func (a *agent) issue(w http.ResponseWriter, r *http.Request) {
	var req issueRequest
	if err := decodeRequest(w, r, &req); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	switch {
	case req.AppID == "":
		writeProblem(w, http.StatusBadRequest, "invalid", "app_id is required: the id of the application the enclave runs")
		return
	case req.CSR == "":
		writeProblem(w, http.StatusBadRequest, "invalid", "csr is required: a PEM certificate request for the enclave's key")
		return
	case len(req.Quote) == 0:
		writeProblem(w, http.StatusBadRequest, "invalid", "quote is required: the enclave's quote, base64, binding the CSR's key and the nonce from /v1/enclave/target-info")
		return
	case req.RecipientKey != nil && len(req.RecipientKey) != 32:
		writeProblem(w, http.StatusBadRequest, "invalid", fmt.Sprintf("recipient_key has %d bytes: it is an X25519 public key, 32 bytes, base64", len(req.RecipientKey)))
		return
	}
	var raw json.RawMessage
	// Not idempotent: the quote's nonce is spent by the first issuance
	// that reaches the server, so only a request that never reached it is
	// sent again.
	if !a.forward(w, r, "certificate", req, &raw, false) {
		return
	}
	var answer map[string]json.RawMessage
	var got issued
	if err := json.Unmarshal(raw, &answer); err != nil || answer == nil {
		a.log.Error("the server's answer to an issuance is not a JSON object")
		writeProblem(w, http.StatusBadGateway, "bad_gateway", "the Cloister server's answer is not a JSON object")
		return
	}
	_ = json.Unmarshal(raw, &got) // fields of another type stay empty
	mrenclave := got.Verdict.MRENCLAVE
	if mrenclave == "" {
		mrenclave = got.Certificate.MRENCLAVE
	}
	in := a.record(req.AppID, got.Certificate.ImageID, mrenclave, got.Certificate.Serial)
	answer["instance_id"], _ = json.Marshal(in.ID)
	a.log.Info("certificate issued; instance recorded", keyInstance, in.ID, keyApp, in.AppID, "image_id", in.ImageID,
		"mrenclave", in.MRENCLAVE, "serial", got.Certificate.Serial)
	writeJSON(w, http.StatusOK, answer)
}

// live holds the connection an instance's process keeps open while it
// runs: the launcher opens it with the instance_id of its certificate and
// leaves it to the application across exec, so the kernel closes it when
// the process ends, however it ends (exit, crash, kill -9, container
// removed). The instance is then stopped: the next heartbeat, sent at
// once, no longer reports it. The answer's headers come at once; its body
// never does. The connection is taken from the HTTP server and read until
// it closes, so bytes the holder may write change nothing.
func (a *agent) live(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.hold(id); errors.Is(err, errHeld) {
		writeProblem(w, http.StatusConflict, "conflict", fmt.Sprintf("instance %s's live connection is held already, by its process", id))
		return
	} else if err != nil {
		writeProblem(w, http.StatusNotFound, "not_found", fmt.Sprintf("no running instance %s on this node: hold the live connection "+
			"with the instance_id that POST /v1/certificate/issue answered", id))
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		a.release(id)
		writeProblem(w, http.StatusInternalServerError, "internal", "the local API cannot hold connections")
		return
	}
	_, _ = rw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n\r\n")
	if err := rw.Flush(); err != nil {
		conn.Close()
		a.stopped(id)
		return
	}
	ended := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, rw) // until the holder's end (EOF) or ours
		close(ended)
	}()
	select {
	case <-ended: // the connection closed: the process ended
		conn.Close()
		a.stopped(id)
		a.log.Info("instance stopped: its process closed its live connection", keyInstance, id)
	case <-a.closing: // the agent stops; the instance may well run on
		conn.Close()
		<-ended
	}
}

// result keeps Fortanix's route for callers that poll for a result.
func (a *agent) result(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, http.StatusNotFound, "not_found", fmt.Sprintf("there is no task %q to poll: this node agent issues certificates synchronously, "+
		"and POST /v1/certificate/issue returns the certificate in its answer", r.PathValue("task")))
}

// attestRequest is the body of POST /v1/enclave/attest.
type attestRequest struct {
	ReportBody []byte `json:"report_body"` // base64, the 384-byte SGX REPORTBODY
}

// attestAnswer is the answer of POST /v1/enclave/attest.
type attestAnswer struct {
	Quote      []byte `json:"quote"` // base64 SGX ECDSA quote v3
	Simulation bool   `json:"simulation"`
}

// attest turns an enclave's report body into a quote with the simulated
// QE (--simulation only). The body is quoted as given: the simulation
// cannot check that an enclave produced it, and its quotes prove nothing
// about hardware. Without --simulation, the enclave runtime quotes.
func (a *agent) attest(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.Simulation {
		writeProblem(w, http.StatusNotImplemented, "not_implemented", "this node agent quotes only in simulation mode (--simulation): "+
			"on SGX hardware, obtain the quote from the enclave runtime and send it to POST /v1/certificate/issue")
		return
	}
	if a.sess.Load() == nil {
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", detailNotEnrolled)
		return
	}
	qe := a.qe.Load()
	if qe == nil {
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", detailNoQE)
		return
	}
	var req attestRequest
	if err := decodeRequest(w, r, &req); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	if len(req.ReportBody) != sgx.ReportBodySize {
		writeProblem(w, http.StatusBadRequest, "invalid", fmt.Sprintf("report_body must be the enclave's %d-byte SGX report body, base64; it has %d bytes",
			sgx.ReportBodySize, len(req.ReportBody)))
		return
	}
	body, err := sgx.ParseReportBody(req.ReportBody)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid", "report_body: "+err.Error())
		return
	}
	quote, err := qe.Quote(body)
	if err != nil {
		a.log.Error("the simulated QE could not quote", obs.KeyError, err.Error())
		writeProblem(w, http.StatusInternalServerError, "internal", "the simulated quoting enclave could not quote the report body")
		return
	}
	a.log.Debug("quoted a report body in simulation", "mrenclave", hex.EncodeToString(body.MRENCLAVE[:]))
	writeJSON(w, http.StatusOK, attestAnswer{Quote: quote, Simulation: true})
}

// forward calls POST {node-server}/v1/node/{op} as the node and decodes
// its answer into out. It retries while the server cannot be reached (any
// failure to reach it when idempotent; otherwise only when the request
// never left), up to the Forward policy. On failure it answers the local
// caller and returns false.
func (a *agent) forward(w http.ResponseWriter, r *http.Request, op string, body, out any, idempotent bool) bool {
	s := a.sess.Load()
	if s == nil {
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", detailNotEnrolled)
		return false
	}
	endpoint := a.cfg.NodeServer.JoinPath("v1", "node", op).String()
	var err error
	for attempt := 1; ; attempt++ {
		ctx, cancel := withDefaultTimeout(r.Context(), forwardTimeout)
		err = call(ctx, s.node, http.MethodPost, endpoint, body, out)
		cancel()
		retry := notSent(err) || idempotent && transient(err)
		if err == nil || !retry || attempt >= a.cfg.Forward.Attempts || r.Context().Err() != nil {
			break
		}
		pause := a.cfg.Forward.Backoff.delay(attempt - 1)
		a.log.Warn("calling the server for an enclave failed; retrying", obs.KeyOp, op, keyAttempt, attempt, keyRetryIn, pause.String(), obs.KeyError, err.Error())
		if sleep(r.Context(), pause) != nil {
			break
		}
	}
	if err == nil {
		return true
	}
	se, answered := errors.AsType[*statusError](err)
	switch {
	case r.Context().Err() != nil:
		// The caller has gone; nobody reads an answer.
	case !answered:
		a.log.Error("the server cannot be reached for an enclave", obs.KeyOp, op, obs.KeyError, err.Error())
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", detailUnreachable)
	case se.Problem.Status == http.StatusUnauthorized:
		a.log.Error("the server refused the node's certificate", obs.KeyOp, op, obs.KeyError, err.Error())
		// The heartbeat confirms it and stops the agent.
		a.heartbeatSoon()
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", detailNotAccepted)
	default:
		// The server's refusal (a quote it does not accept, an image not
		// approved...) is the launcher's to read, as the server said it.
		a.log.Warn("the server refused a request for an enclave", obs.KeyOp, op, keyStatus, se.Problem.Status, obs.KeyError, se.detail())
		writeJSONAs(w, "application/problem+json", se.Problem.Status, se.Problem)
	}
	return false
}

// decodeRequest reads one JSON object into v, strictly, as the gateway
// does (api.DecodeStrict).
func decodeRequest(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return fmt.Errorf("Content-Type must be application/json, not %q", r.Header.Get("Content-Type"))
	}
	return api.DecodeStrict(http.MaxBytesReader(w, r.Body, maxRequestBytes), v)
}

func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	writeJSONAs(w, "application/problem+json", status, api.Problem{Type: "about:blank", Title: http.StatusText(status),
		Status: status, Detail: detail, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONAs(w, "application/json", status, v)
}

func writeJSONAs(w http.ResponseWriter, contentType string, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// hostGuard refuses a request whose Host header names a host the agent
// does not answer to: a page served from a domain that rebinds to this
// machine's address sends its own name, and is refused. IP addresses,
// localhost and the --allowed-hosts names pass (a Unix socket's clients
// send localhost, or nothing).
func (a *agent) hostGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if host != "" && host != "localhost" && net.ParseIP(strings.Trim(host, "[]")) == nil && !slices.Contains(a.cfg.AllowedHosts, host) {
			writeProblem(w, http.StatusForbidden, "forbidden", fmt.Sprintf("the local API does not answer to the host %q: "+
				"call it by IP address or localhost, or give the name with --allowed-hosts", r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}
