package main

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/google/go-configfs-tsm/configfs/configfsi"

	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/libs/tee"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// Log keys of the agent; obs has the shared ones.
const (
	keyNode     = "node_id"
	keyName     = "node_name"
	keyInstance = "instance_id"
	keyApp      = "app_id"
	keyAttempt  = "attempt"
	keyRetryIn  = "retry_in"
	keyStatus   = "status"
)

// Defaults of the retry schedules.
var (
	// defaultBackoff paces enrolment and heartbeats after a failure.
	defaultBackoff = backoff{Min: time.Second, Max: 30 * time.Second}
	// defaultForward bounds how long an enclave runtime waits on a server
	// that cannot be reached: 3 attempts over about 5 s.
	defaultForward = retryPolicy{Attempts: 3, Backoff: backoff{Min: 1500 * time.Millisecond, Max: 3 * time.Second}}
)

// Timeouts of one call to the server, when the caller's context has no
// deadline.
const (
	enrolTimeout     = 30 * time.Second
	heartbeatTimeout = 10 * time.Second
	forwardTimeout   = 30 * time.Second // attestation and issuance take a while
	shutdownGrace    = 10 * time.Second // for local requests in flight
)

// maxInstances is the most instances a heartbeat may report (the node
// registry's limit); beyond it the oldest are no longer reported.
const maxInstances = 256

// retryPolicy is a bounded number of attempts with a backoff between them.
type retryPolicy struct {
	Attempts int
	Backoff  backoff
}

// config is the agent's configuration, checked by newAgent.
type config struct {
	Server     *url.URL // the gateway's public API, for enrolment
	NodeServer *url.URL // the gateway's mTLS node listener
	ServerCA   []byte   // PEM trusted for the node listener (and, with the system roots, the public API); empty: the system roots

	// JoinToken, or the file that holds it, is read only when the data
	// directory has no identity yet.
	JoinToken     string
	JoinTokenFile string

	// Name is the node's name, sent at enrolment; empty for the
	// server's default: the join token's name when the token is for one
	// node, else HostName.
	Name     string
	HostName string
	DataDir  string

	Listen string // address of the local API: HOST:PORT, or unix:PATH
	// AllowedHosts are the host names (besides IP addresses and localhost)
	// the local API answers to in the Host header: a page on a rebinding
	// domain cannot reach it from a browser.
	AllowedHosts []string
	Listener     net.Listener // when set, used instead of Listen (tests)

	HeartbeatEvery time.Duration
	Simulation     bool
	// TEE is the node's own evidence: auto (configfs-tsm's if the machine
	// has it, else simulated SGX evidence in simulation, else none), none,
	// sgx (simulated: --simulation only), tdx or sev-snp (configfs-tsm's);
	// "" is auto.
	TEE string
	// TSM, when set, is the configfs-tsm client (tests: a fake tree);
	// nil means the machine's, when TEE asks for it.
	TSM configfsi.Client
	// ReattestEvery is the time between re-attestations in simulation
	// mode; zero means defaultReattestEvery.
	ReattestEvery time.Duration
	Logger        *slog.Logger

	// Retry schedules; zero values mean the defaults. Tests shorten them.
	Backoff backoff
	Forward retryPolicy
	// NonceRate is how many nonces a second the local API asks the server
	// for, past a burst of nonceBurst; zero means nonceRate. Tests slow it
	// so that the bound does not depend on how fast they run.
	NonceRate rate.Limit
}

// agent is the node agent: it holds the node's identity, reports
// heartbeats and serves the local API.
type agent struct {
	cfg    config
	log    *slog.Logger
	public *http.Client   // public API, no client certificate
	roots  *x509.CertPool // for the node listener; nil: the system's
	sess   atomic.Pointer[session]
	// qe is the simulated quoting enclave (--simulation), once fetched
	// from the server; it is kept in memory only, never on disk.
	qe atomic.Pointer[sim.QE]
	// tsm is the node's configfs-tsm evidence (TDX, SEV-SNP), when it has
	// that; simEvidence tells whether it presents simulated SGX evidence.
	tsm         evidenceSource
	simEvidence bool
	// simTD: the simulated evidence is a simulated TD's (--tee tdx
	// --simulation on a machine without configfs-tsm), not SGX's.
	simTD bool

	kick chan struct{} // asks for a heartbeat now
	// closing is closed when the agent stops: the connections instances
	// hold are let go then without counting as their end.
	closing     chan struct{}
	closingOnce sync.Once
	// nonces bounds the nonces the local API asks the server for.
	nonces *rate.Limiter

	mu        sync.Mutex
	instances []instance // oldest first
	lastBeat  time.Time
}

// session is the node's identity once known, with its mTLS client.
type session struct {
	id   *identity
	node *http.Client
}

// instance is an enclave the node runs, as heartbeats report it.
type instance struct {
	ID        string    `json:"id"`
	AppID     string    `json:"app_id"`
	ImageID   string    `json:"image_id"`
	MRENCLAVE string    `json:"mrenclave"` // hex
	Status    string    `json:"status"`
	StartedAt time.Time `json:"started_at"`
	// CertificateSerial is the enclave's certificate's, which this node
	// obtained: the server takes reports of such instances only.
	CertificateSerial string `json:"certificate_serial"`
	// held: the instance's process holds its live connection (the agent's
	// own state, not reported).
	held bool
}

// heartbeatRequest is the body of POST /v1/node/heartbeat.
type heartbeatRequest struct {
	Instances []instance `json:"instances"`
}

// newAgent checks cfg and returns an agent that has not started.
func newAgent(cfg config) (*agent, error) {
	switch {
	case cfg.Logger == nil:
		return nil, errors.New("node agent: no logger")
	case cfg.Server == nil || cfg.NodeServer == nil:
		return nil, errors.New("node agent: no server URL")
	case cfg.DataDir == "":
		return nil, errors.New("node agent: no data directory")
	case cfg.Name != "" && !validName(cfg.Name):
		return nil, fmt.Errorf("node agent: node name %q is not 1 to %d letters, digits, '.', '_' or '-'", cfg.Name, maxNameLength)
	case cfg.HeartbeatEvery <= 0:
		return nil, fmt.Errorf("node agent: heartbeat interval %v is not positive", cfg.HeartbeatEvery)
	case cfg.ReattestEvery < 0:
		return nil, fmt.Errorf("node agent: re-attestation interval %v is negative", cfg.ReattestEvery)
	case cfg.Listener == nil && cfg.Listen == "":
		return nil, errors.New("node agent: no listen address")
	}
	if cfg.ReattestEvery == 0 {
		cfg.ReattestEvery = defaultReattestEvery
	}
	if cfg.Backoff == (backoff{}) {
		cfg.Backoff = defaultBackoff
	}
	if cfg.Forward == (retryPolicy{}) {
		cfg.Forward = defaultForward
	}
	roots, err := serverRoots(cfg.ServerCA)
	if err != nil {
		return nil, err
	}
	a := &agent{cfg: cfg, log: cfg.Logger, public: newHTTPClient(publicRoots(cfg.ServerCA), nil), roots: roots,
		nonces: rate.NewLimiter(cmp.Or(cfg.NonceRate, nonceRate), nonceBurst),
		kick:   make(chan struct{}, 1), closing: make(chan struct{})}
	if err := a.chooseEvidence(); err != nil {
		return nil, err
	}
	return a, nil
}

// chooseEvidence decides, from cfg.TEE, what evidence the node presents
// of itself.
func (a *agent) chooseEvidence() error {
	cfg := a.cfg
	tsm := func() (configfsi.Client, error) {
		if cfg.TSM != nil {
			return cfg.TSM, nil
		}
		return openTSM()
	}
	switch cfg.TEE {
	case teeNone:
	case tee.SGX:
		if !cfg.Simulation {
			return exitWith(exitConfig, "--tee sgx: the agent presents SGX evidence of the node only in simulation (--simulation)")
		}
		a.simEvidence = true
	case tee.TDX, tee.SEVSNP:
		c, err := tsm()
		switch {
		case err == nil:
			a.tsm = tsmSource{client: c, want: cfg.TEE}
		case cfg.TEE == tee.TDX && cfg.Simulation:
			// A simulated TD, quoted by the server's simulated QE.
			a.simEvidence, a.simTD = true, true
		default:
			return exitWith(exitConfig, "--tee %s: %v", cfg.TEE, err)
		}
	case "", teeAuto:
		if c, err := tsm(); err == nil {
			a.tsm = tsmSource{client: c}
		} else {
			a.simEvidence = cfg.Simulation
		}
	default:
		return exitWith(exitUsage, "--tee %q: want auto, none, sgx, tdx or sev-snp", cfg.TEE)
	}
	return nil
}

// run serves the local API, loads or enrols the node's identity, then
// sends heartbeats until ctx ends (it returns nil then) or the server no
// longer accepts the node. The error of a fatal failure carries its exit
// code (exitCode).
func (a *agent) run(ctx context.Context) error {
	// Listen first: a taken address is found before a join token is spent.
	ln := a.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = listen(a.cfg.Listen); err != nil {
			return fmt.Errorf("listening for the local API: %w", err)
		}
	}
	if !loopback(ln.Addr()) {
		a.log.Warn("the local API listens beyond loopback and has no authentication: keep it on a host-only network", "addr", ln.Addr().String())
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	a.log.Info("serving the local API", "addr", ln.Addr().String())

	wctx, stop := context.WithCancel(ctx)
	worked := make(chan error, 1)
	go func() { worked <- a.work(wctx) }()
	var err error
	select {
	case err = <-worked:
	case err = <-served:
		err = fmt.Errorf("serving the local API: %w", err)
		stop()
		<-worked
	}
	stop()
	a.closingOnce.Do(func() { close(a.closing) })

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		a.log.Warn("local requests were still running at shutdown; closing them", obs.KeyError, serr.Error())
		srv.Close()
	}
	return err
}

func loopback(addr net.Addr) bool {
	if _, ok := addr.(*net.UnixAddr); ok {
		return true // on this machine, for who may open the socket
	}
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// work is the agent's life once listening: identity, then heartbeats
// and, in simulation mode, the simulated QE and re-attestations.
func (a *agent) work(ctx context.Context) error {
	id, err := a.loadOrEnrol(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	a.sess.Store(&session{id: id, node: newHTTPClient(a.roots, &id.cert)})
	var wg sync.WaitGroup
	qctx, cancel := context.WithCancel(ctx)
	defer wg.Wait()
	defer cancel()
	if a.tsm != nil {
		wg.Go(func() { a.reattests(qctx, a.tsm) })
	}
	if a.cfg.Simulation {
		wg.Go(func() {
			if qe := a.fetchQE(qctx); qe != nil && a.tsm == nil && a.simEvidence {
				a.reattests(qctx, simSource{qe: qe, td: a.simTD})
			}
		})
	}
	return a.heartbeats(ctx)
}

// fetchQE gets the node's simulated quoting enclave from the server
// (POST /v1/node/simulation/qe) and keeps it in memory. It retries with
// backoff until it has one or ctx ends: the server may be unreachable, and
// an admin may yet allow simulation in the account's policy. It returns
// the QE, or nil when ctx ends first.
func (a *agent) fetchQE(ctx context.Context) *sim.QE {
	s := a.sess.Load()
	endpoint := a.cfg.NodeServer.JoinPath("v1", "node", "simulation", "qe").String()
	for attempt := 1; ; attempt++ {
		var out api.SimulatedQE
		cctx, cancel := withDefaultTimeout(ctx, forwardTimeout)
		err := call(cctx, s.node, http.MethodPost, endpoint, nil, &out)
		cancel()
		if err == nil {
			qe, perr := sim.ParseQE(out.QE)
			if perr == nil {
				a.qe.Store(qe)
				a.log.Info("got the simulated quoting enclave: enclave reports are quoted in SIMULATION, proving nothing about hardware",
					"pck_serial", qe.PCKCertificate().SerialNumber.Text(16))
				return qe
			}
			err = fmt.Errorf("the server's simulated QE is unusable: %w", perr)
		}
		if ctx.Err() != nil {
			return nil
		}
		pause := a.cfg.Backoff.delay(attempt - 1)
		se, answered := errors.AsType[*statusError](err)
		if answered {
			pause = max(pause, se.RetryAfter)
		}
		switch {
		case answered && se.Problem.Status == http.StatusUnauthorized:
			// The heartbeat confirms it and stops the agent.
			a.heartbeatSoon()
			a.log.Warn("the server refused the node's certificate when asked for a simulated QE", obs.KeyError, err.Error())
		case answered && (se.Problem.Status == http.StatusForbidden || se.Problem.Status == http.StatusNotFound):
			a.log.Error("the server refuses a simulated QE: enclaves cannot be quoted until simulation is enabled in the deployment "+
				"and allowed by the account's attestation policy; retrying", keyAttempt, attempt, keyRetryIn, pause.String(), obs.KeyError, se.detail())
		default:
			a.log.Warn("fetching the simulated QE failed; retrying", keyAttempt, attempt, keyRetryIn, pause.String(), obs.KeyError, err.Error())
		}
		if sleep(ctx, pause) != nil {
			return nil
		}
	}
}

// loadOrEnrol loads the node's identity from the data directory, or enrols
// the node when there is none.
func (a *agent) loadOrEnrol(ctx context.Context) (*identity, error) {
	id, err := loadIdentity(a.cfg.DataDir, time.Now())
	if err != nil {
		return nil, err
	}
	if id != nil {
		if a.cfg.JoinToken != "" || a.cfg.JoinTokenFile != "" {
			a.log.Info("the node has an identity already; the join token is not used", "data_dir", a.cfg.DataDir)
		}
		if a.cfg.Name != "" && id.record.Name != a.cfg.Name {
			a.log.Info("the node keeps the name it enrolled with; --name is used only at enrolment", keyName, id.record.Name, "flag_name", a.cfg.Name)
		}
		a.log.Info("loaded the node's identity", keyNode, id.record.ID, obs.KeyAccount, id.record.Account, keyName, id.record.Name,
			"certificate_expires", id.leaf().NotAfter.UTC())
		return id, nil
	}
	return a.enrol(ctx)
}

// enrol enrols the node with the join token and saves its identity. It
// retries while the server cannot be reached or is unavailable, and
// stops on a refusal.
func (a *agent) enrol(ctx context.Context) (*identity, error) {
	token, err := a.joinToken()
	if err != nil {
		return nil, err
	}
	key, csr, err := newKey(cmp.Or(a.cfg.Name, a.cfg.HostName))
	if err != nil {
		return nil, err
	}
	endpoint := a.cfg.Server.JoinPath("v1", "agent", "enroll").String()
	body := api.Enroll{JoinToken: token, NodeName: a.cfg.Name, HostName: a.cfg.HostName, CSR: string(csr)}
	src := a.tsm
	if src == nil && a.simEvidence {
		qe, err := a.enrolmentQE(ctx, token)
		if err != nil {
			return nil, err
		}
		if qe != nil {
			src = simSource{qe: qe, td: a.simTD}
		}
	}
	for attempt := 1; ; attempt++ {
		a.log.Info("enrolling", "server", a.cfg.Server.String(), keyName, a.cfg.Name, "host_name", a.cfg.HostName, keyAttempt, attempt)
		var out api.Enrolled
		cctx, cancel := withDefaultTimeout(ctx, enrolTimeout)
		var err error
		if src != nil {
			// Fresh evidence each attempt: its nonce is good for one.
			var ev api.NodeAttest
			ev, err = a.enrolmentEvidence(cctx, src, token, csr)
			body.Evidence, body.Nonce, body.TEE, body.EvidenceAux = ev.Evidence, ev.Nonce, ev.TEE, ev.EvidenceAux
		}
		if err == nil {
			err = call(cctx, a.public, http.MethodPost, endpoint, body, &out)
		}
		cancel()
		if err == nil {
			return a.enrolled(key, out)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if se, ok := errors.AsType[*statusError](err); ok && !transient(err) {
			switch se.Problem.Status {
			case http.StatusUnauthorized, http.StatusForbidden:
				return nil, exitWith(exitNoPerm, "the server refused the enrolment: %s. Create a new join token with `cloister node token create NAME` "+
					"(without --require-attestation unless the node presents evidence: in a TDX or SEV-SNP VM, or with --simulation) and start the agent with it", se.detail())
			case http.StatusNotFound, http.StatusMethodNotAllowed:
				return nil, exitWith(exitConfig, "%s answered %d to the enrolment: is --server the gateway's public API?", endpoint, se.Problem.Status)
			default:
				return nil, exitWith(exitConfig, "the server rejected the enrolment: %s", se.detail())
			}
		}
		pause := a.cfg.Backoff.delay(attempt - 1)
		if se, ok := errors.AsType[*statusError](err); ok {
			pause = max(pause, se.RetryAfter)
		}
		a.log.Warn("enrolment failed; retrying", keyAttempt, attempt, keyRetryIn, pause.String(), obs.KeyError, err.Error())
		if err := sleep(ctx, pause); err != nil {
			return nil, err
		}
	}
}

// enrolmentQE asks, in simulation mode, for the simulated QE the node
// quotes its enrolment evidence with, on its join token's word (POST
// /v1/agent/simulation-qe, which takes no use of it). When the server
// refuses simulation (403, or 404: off in the deployment, or an older
// gateway) it logs a warning and returns none: the node enrols without
// evidence, as the account's policy may allow. It retries while the
// server cannot be reached or is unavailable. The QE is used for the
// enrolment only; the node's own comes after enrolment.
func (a *agent) enrolmentQE(ctx context.Context, token string) (*sim.QE, error) {
	endpoint := a.cfg.Server.JoinPath("v1", "agent", "simulation-qe").String()
	for attempt := 1; ; attempt++ {
		var out api.SimulatedQE
		cctx, cancel := withDefaultTimeout(ctx, enrolTimeout)
		err := call(cctx, a.public, http.MethodPost, endpoint, api.AgentSimulatedQE{JoinToken: token}, &out)
		cancel()
		if err == nil {
			qe, err := sim.ParseQE(out.QE)
			if err != nil {
				a.log.Warn("the server's simulated QE is unusable; enrolling without attestation evidence", obs.KeyError, err.Error())
				return nil, nil
			}
			a.log.Info("enrolling with SIMULATED attestation evidence, proving nothing about hardware")
			return qe, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if se, ok := errors.AsType[*statusError](err); ok && !transient(err) {
			switch se.Problem.Status {
			case http.StatusUnauthorized:
				return nil, exitWith(exitNoPerm, "the server refused the join token: %s. Create a new join token with `cloister node token create NAME` "+
					"and start the agent with it", se.detail())
			case http.StatusForbidden, http.StatusNotFound:
				a.log.Warn("the server refuses a simulated QE for the enrolment (simulation is off in the deployment or not allowed by the "+
					"account's attestation policy); enrolling without attestation evidence", obs.KeyError, se.detail())
			default:
				a.log.Warn("asking for a simulated QE for the enrolment failed; enrolling without attestation evidence", obs.KeyError, se.detail())
			}
			return nil, nil
		}
		pause := a.cfg.Backoff.delay(attempt - 1)
		if se, ok := errors.AsType[*statusError](err); ok {
			pause = max(pause, se.RetryAfter)
		}
		a.log.Warn("asking for a simulated QE for the enrolment failed; retrying", keyAttempt, attempt, keyRetryIn, pause.String(), obs.KeyError, err.Error())
		if err := sleep(ctx, pause); err != nil {
			return nil, err
		}
	}
}

// enrolmentEvidence makes, with src, the node's enrolment evidence: its
// REPORTDATA binds the CSR's key and a fresh nonce the server gives for
// the join token (POST /v1/agent/nonce), which makes the evidence good for
// one enrolment.
func (a *agent) enrolmentEvidence(ctx context.Context, src evidenceSource, token string, csrPEM []byte) (api.NodeAttest, error) {
	blk, _ := pem.Decode(csrPEM)
	if blk == nil {
		return api.NodeAttest{}, errors.New("the node's CSR is not PEM")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return api.NodeAttest{}, fmt.Errorf("parsing the node's CSR: %w", err)
	}
	var out api.Nonce
	if err := call(ctx, a.public, http.MethodPost, a.cfg.Server.JoinPath("v1", "agent", "nonce").String(), api.AgentNonce{JoinToken: token}, &out); err != nil {
		return api.NodeAttest{}, err
	}
	ev, err := withEvidence(src, csr.RawSubjectPublicKeyInfo, out.Nonce)
	if err != nil {
		return api.NodeAttest{}, fmt.Errorf("making the enrolment evidence: %w", err)
	}
	return ev, nil
}

// enrolled checks the server's answer to an enrolment and saves the
// identity it gives.
func (a *agent) enrolled(key *ecdsa.PrivateKey, out api.Enrolled) (*identity, error) {
	id, err := newIdentity(key, []byte(out.ChainPEM), cmp.Or(out.Node.Name, a.cfg.Name, a.cfg.HostName), time.Now())
	if err != nil {
		return nil, exitWith(exitConfig, "the server's answer to the enrolment is unusable: %w", err)
	}
	if out.Node.ID != "" && out.Node.ID != id.record.ID {
		return nil, exitWith(exitConfig, "the server's answer to the enrolment is unusable: node %s got a certificate for node %s", out.Node.ID, id.record.ID)
	}
	id.record.Server, id.record.EnrolledAt = a.cfg.Server.String(), time.Now().UTC()
	if err := id.save(a.cfg.DataDir); err != nil {
		// The server has enrolled the node; without its key it cannot act
		// as the node. Say so rather than enrol a second node later.
		return nil, fmt.Errorf("saving the node's identity in %s (the server enrolled node %s; deregister it before enrolling again): %w",
			a.cfg.DataDir, id.record.ID, err)
	}
	a.log.Info("enrolled", keyNode, id.record.ID, obs.KeyAccount, id.record.Account, keyName, id.record.Name,
		"certificate_expires", id.leaf().NotAfter.UTC(), "data_dir", a.cfg.DataDir)
	return id, nil
}

// joinToken is the token from the flag or its file.
func (a *agent) joinToken() (string, error) {
	if a.cfg.JoinTokenFile != "" {
		b, err := os.ReadFile(a.cfg.JoinTokenFile)
		if err != nil {
			return "", exitWith(exitUsage, "reading --join-token-file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", exitWith(exitUsage, "--join-token-file %s is empty", a.cfg.JoinTokenFile)
		}
		return t, nil
	}
	if a.cfg.JoinToken == "" {
		return "", exitWith(exitUsage, "the node has no identity in %s yet: give --join-token-file or --join-token "+
			"(create a join token with `cloister node token create NAME`)", a.cfg.DataDir)
	}
	return a.cfg.JoinToken, nil
}

// heartbeats sends a heartbeat at once, then every HeartbeatEvery, and
// when asked (kick). A failed one is retried with backoff; a 401 stops
// the agent.
func (a *agent) heartbeats(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-a.kick:
			t.Stop()
		}
		err := a.heartbeat(ctx)
		switch {
		case err == nil:
			if failures > 0 {
				a.log.Info("heartbeats resumed", "failed_attempts", failures)
			}
			failures = 0
			t.Reset(a.cfg.HeartbeatEvery)
		case ctx.Err() != nil:
			return nil
		case answerStatus(err) == http.StatusUnauthorized:
			se, _ := errors.AsType[*statusError](err)
			id := a.sess.Load().id
			return exitWith(exitDeregistered, "the server no longer accepts node %s (%s): it was deregistered or its certificate revoked. "+
				"To run this machine as a node again, move %s away and start the agent with a new join token", id.record.ID, se.detail(), a.cfg.DataDir)
		default:
			failures++
			pause := a.cfg.Backoff.delay(failures - 1)
			a.log.Warn("heartbeat failed; retrying", keyAttempt, failures, keyRetryIn, pause.String(), obs.KeyError, err.Error())
			t.Reset(pause)
		}
	}
}

// heartbeat sends one heartbeat with the instances the agent knows.
func (a *agent) heartbeat(ctx context.Context) error {
	s := a.sess.Load()
	ctx, cancel := withDefaultTimeout(ctx, heartbeatTimeout)
	defer cancel()
	body := heartbeatRequest{Instances: a.snapshot()}
	if err := call(ctx, s.node, http.MethodPost, a.cfg.NodeServer.JoinPath("v1", "node", "heartbeat").String(), body, nil); err != nil {
		return err
	}
	a.mu.Lock()
	a.lastBeat = time.Now().UTC()
	a.mu.Unlock()
	a.log.Debug("heartbeat sent", "instances", len(body.Instances))
	return nil
}

// heartbeatSoon asks for a heartbeat now, unless one is asked already.
func (a *agent) heartbeatSoon() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// record adds a running instance, on the certificate of serial, and
// returns it.
func (a *agent) record(appID, imageID, mrenclave, serial string) instance {
	in := instance{ID: newInstanceID(), AppID: appID, ImageID: imageID, MRENCLAVE: mrenclave, Status: "running", StartedAt: time.Now().UTC(),
		CertificateSerial: serial}
	a.mu.Lock()
	a.instances = append(a.instances, in)
	var dropped []instance
	// Past the bound, the oldest instances that no process holds go first
	// (those may have ended unseen; held ones end when their process
	// does), never the one just recorded.
	for len(a.instances) > maxInstances {
		i := slices.IndexFunc(a.instances[:len(a.instances)-1], func(old instance) bool { return !old.held })
		if i < 0 {
			i = 0
		}
		dropped = append(dropped, a.instances[i])
		a.instances = slices.Delete(a.instances, i, i+1)
	}
	a.mu.Unlock()
	for _, d := range dropped {
		a.log.Warn("too many instances to report; the oldest is no longer reported", keyInstance, d.ID, keyApp, d.AppID, "limit", maxInstances)
	}
	a.heartbeatSoon()
	return in
}

// hold marks instance id as held by its process's live connection. It
// refuses an instance the agent does not run, and a second hold.
func (a *agent) hold(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := slices.IndexFunc(a.instances, func(in instance) bool { return in.ID == id })
	switch {
	case i < 0:
		return errNoInstance
	case a.instances[i].held:
		return errHeld
	}
	a.instances[i].held = true
	return nil
}

var (
	errNoInstance = errors.New("no such running instance")
	errHeld       = errors.New("the instance's live connection is held already")
)

// release lets go of instance id's hold without stopping it.
func (a *agent) release(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i := slices.IndexFunc(a.instances, func(in instance) bool { return in.ID == id }); i >= 0 {
		a.instances[i].held = false
	}
}

// stopped forgets instance id, whose process ended: the next heartbeat,
// sent now, no longer reports it, and the server publishes its end.
func (a *agent) stopped(id string) {
	a.mu.Lock()
	a.instances = slices.DeleteFunc(a.instances, func(in instance) bool { return in.ID == id })
	a.mu.Unlock()
	a.heartbeatSoon()
}

// snapshot returns the instances to report, never nil.
func (a *agent) snapshot() []instance {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append(make([]instance, 0, len(a.instances)), a.instances...)
}

func newInstanceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "inst-" + hex.EncodeToString(b[:])
}

// withDefaultTimeout applies d only when ctx has no deadline.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// listen opens the local API's listener: a Unix socket for unix:PATH (a
// stale socket file is replaced; the socket is for its owner and group),
// else TCP.
func listen(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
