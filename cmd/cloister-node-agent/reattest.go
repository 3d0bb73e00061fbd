package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cloister-cc/cloister/libs/obs"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// defaultReattestEvery is the default time between re-attestations: half
// the node registry's default period (24 h), so that a node is never
// overdue.
const defaultReattestEvery = 12 * time.Hour

// nodeAgentLabel marks the report body the agent quotes for itself, in
// its CONFIGID: it is no enclave's, and its MRENCLAVE and MRSIGNER are
// left zero.
const nodeAgentLabel = "cloister node agent"

// nodeReportBody is the report body of the node's own simulated SGX
// evidence: REPORTDATA as given (reportData's: it binds the node's key
// and the server's nonce); the enclave identity is left zero but for a
// label.
func nodeReportBody(rd [64]byte) sgx.ReportBody {
	var b sgx.ReportBody
	b.Attributes[0] = sgx.AttributeInit | sgx.AttributeMode64 // not debug
	copy(b.ConfigID[:], nodeAgentLabel)
	b.ReportData = rd
	return b
}

// attestationEvidence asks the server for a nonce for the node's next
// re-attestation (POST /v1/node/attestation-nonce) and makes the node's
// evidence with it, binding the key of its certificate.
func (a *agent) attestationEvidence(ctx context.Context, s *session, src evidenceSource) (api.NodeAttest, error) {
	var out api.Nonce
	if err := call(ctx, s.node, http.MethodPost, a.cfg.NodeServer.JoinPath("v1", "node", "attestation-nonce").String(), nil, &out); err != nil {
		return api.NodeAttest{}, err
	}
	ev, err := withEvidence(src, s.id.leaf().RawSubjectPublicKeyInfo, out.Nonce)
	if err != nil {
		return api.NodeAttest{}, fmt.Errorf("making the node's re-attestation evidence: %w", err)
	}
	return ev, nil
}

// reattests re-attests the node with src (configfs-tsm's evidence, or the
// simulated QE's) at once, then every ReattestEvery, until ctx ends: POST
// /v1/node/attest with evidence binding the key of the node's certificate. The server
// marks a node that has not re-attested within its period (24 h by
// default) as overdue.
//
// A refusal (403) makes the node untrusted and revokes its certificate:
// the agent logs the server's reason and asks for a heartbeat at once,
// whose 401 stops the agent. Failures to reach the server, and 5xx, are
// retried with backoff.
func (a *agent) reattests(ctx context.Context, src evidenceSource) {
	s := a.sess.Load()
	endpoint := a.cfg.NodeServer.JoinPath("v1", "node", "attest").String()
	failures := 0
	for {
		var out api.Node
		cctx, cancel := withDefaultTimeout(ctx, forwardTimeout)
		attest, err := a.attestationEvidence(cctx, s, src)
		if err == nil {
			err = call(cctx, s.node, http.MethodPost, endpoint, attest, &out)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		pause := a.cfg.ReattestEvery
		se, answered := errors.AsType[*statusError](err)
		switch {
		case err == nil:
			failures = 0
			a.log.Info("re-attested", keyNode, s.id.record.ID, "tee", out.TEE, "simulated", out.Simulated, "next_in", pause.String())
		case answered && se.Problem.Status == http.StatusForbidden:
			failures = 0
			a.log.Error("the server refused the node's re-attestation: the node is untrusted now and its certificate revoked; "+
				"the agent stops at its next heartbeat", keyNode, s.id.record.ID, obs.KeyError, se.detail())
			// The heartbeat's 401 stops the agent; ask for it now.
			a.heartbeatSoon()
		case answered && se.Problem.Status == http.StatusUnauthorized:
			failures++
			pause = max(a.cfg.Backoff.delay(failures-1), se.RetryAfter)
			// The heartbeat confirms it and stops the agent.
			a.heartbeatSoon()
			a.log.Warn("the server refused the node's certificate when it re-attested", keyAttempt, failures, keyRetryIn, pause.String(),
				obs.KeyError, err.Error())
		case transient(err):
			failures++
			pause = a.cfg.Backoff.delay(failures - 1)
			if answered {
				pause = max(pause, se.RetryAfter)
			}
			a.log.Warn("re-attestation failed; retrying", keyAttempt, failures, keyRetryIn, pause.String(), obs.KeyError, err.Error())
		default:
			// Another refusal (400, 404 from a gateway without the
			// endpoint...) will not change on a retry: try again next
			// period.
			failures = 0
			a.log.Error("the server rejected the node's re-attestation; trying again next period", keyStatus, se.Problem.Status,
				keyRetryIn, pause.String(), obs.KeyError, se.detail())
		}
		if sleep(ctx, pause) != nil {
			return
		}
	}
}
