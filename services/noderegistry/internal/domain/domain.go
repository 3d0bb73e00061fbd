// Package domain holds the node registry's join tokens, nodes and their
// rules. It imports no transport or storage package.
package domain

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloister-cc/cloister/libs/authz"
	"github.com/cloister-cc/cloister/libs/errs"
)

// Limits and defaults of join tokens and nodes.
const (
	DefaultTokenTTL = 24 * time.Hour
	MaxTokenTTL     = 30 * 24 * time.Hour
	MaxNameLength   = 64
	MaxLabels       = 32
	MaxLabelKey     = 63
	MaxLabelValue   = 256
	MaxInstances    = 256
	MaxIDLength     = 64
)

// SecretPrefix starts every join token secret, so that one pasted in the
// wrong place is recognised (and secret scanners can find them).
const SecretPrefix = authz.JoinTokenPrefix

// secretBytes is the entropy of a secret: 256 bits.
const secretBytes = 32

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
)

// NewSecret returns a new join token secret ("cjt_" and 32 random bytes in
// unpadded base64url) and its hash, the only form the registry keeps.
func NewSecret() (secret, hash string, err error) {
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("generating join token: %w", err)
	}
	secret = SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashSecret(secret), nil
}

// HashSecret is the form in which credentials are kept: SHA-256 of the
// whole secret, in hex.
func HashSecret(secret string) string { return authz.HashToken(secret) }

// WellFormedSecret tells whether s has the shape of a secret NewSecret
// makes; anything else is unknown without a lookup.
func WellFormedSecret(s string) bool {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok || len(rest) != base64.RawURLEncoding.EncodedLen(secretBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}

// TokenSpec is what a member sets on a join token.
type TokenSpec struct {
	Name               string
	Labels             map[string]string
	TTL                time.Duration // 0: DefaultTokenTTL
	MaxUses            uint32        // 0: unlimited until it expires
	RequireAttestation bool
}

// Check validates a spec, naming the first field at fault, and fills in
// the default TTL.
func (s TokenSpec) Check() (TokenSpec, error) {
	if err := CheckName("name", s.Name); err != nil {
		return s, err
	}
	if err := CheckLabels(s.Labels); err != nil {
		return s, err
	}
	switch {
	case s.TTL == 0:
		s.TTL = DefaultTokenTTL
	case s.TTL < time.Second || s.TTL > MaxTokenTTL:
		return s, invalid("ttl_seconds", "must be 1 s to %d days (0 for %d hours)", int(MaxTokenTTL.Hours()/24), int(DefaultTokenTTL.Hours()))
	}
	s.Labels = maps.Clone(s.Labels)
	return s, nil
}

// JoinToken lets nodes enrol into an account. Only the hash of its secret
// is kept.
type JoinToken struct {
	ID                 string            `json:"id"`
	AccountID          string            `json:"account_id"`
	Name               string            `json:"name"`
	Labels             map[string]string `json:"labels,omitempty"`
	Hash               string            `json:"hash"`
	ExpiresAt          time.Time         `json:"expires_at"`
	MaxUses            uint32            `json:"max_uses"`
	Uses               uint32            `json:"uses"`
	Revoked            bool              `json:"revoked,omitempty"`
	RevokedAt          time.Time         `json:"revoked_at,omitzero"`
	RequireAttestation bool              `json:"require_attestation,omitempty"`
	CreatedAt          time.Time         `json:"created_at"`
	CreatedBy          string            `json:"created_by,omitempty"`
	Version            uint64            `json:"-"`
}

// NodeName is the name a node enrolling with t gets: the name it asked
// for; else the token's, when the token was made for one node; else its
// host name.
func (t JoinToken) NodeName(asked, hostName string) string {
	switch {
	case asked != "":
		return asked
	case t.MaxUses == 1:
		return t.Name
	default:
		return hostName
	}
}

// Ref is what the lookup by hash gives: enough to refuse a revoked or
// expired token without reading the token itself.
func (t JoinToken) Ref() TokenRef {
	return TokenRef{AccountID: t.AccountID, TokenID: t.ID, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked}
}

// Usable says why the token cannot enrol one more node at now, or nil.
func (t JoinToken) Usable(now time.Time) error {
	if err := t.Ref().Usable(now); err != nil {
		return err
	}
	if t.MaxUses > 0 && t.Uses >= t.MaxUses {
		return errs.Newf(errs.Unauthenticated, "the join token is used up (%d of %d uses)", t.Uses, t.MaxUses)
	}
	return nil
}

// TokenRef is the entry of a token's hash: which token it is, and what
// refuses it without a count of uses.
type TokenRef struct {
	AccountID string    `json:"account_id"`
	TokenID   string    `json:"token_id"`
	ExpiresAt time.Time `json:"expires_at"`
	Revoked   bool      `json:"revoked,omitempty"`
}

// Usable says whether the token is revoked or expired at now.
func (r TokenRef) Usable(now time.Time) error {
	switch {
	case r.Revoked:
		return ErrTokenRevoked
	case !now.Before(r.ExpiresAt):
		return errs.Newf(errs.Unauthenticated, "the join token expired at %s", r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// Status is where a node is in its life. A node moves forward only:
// active ⇄ unreachable → untrusted → deregistered; heartbeats bring an
// unreachable node back, nothing brings back an untrusted or deregistered
// one.
type Status string

// The statuses of a node.
const (
	StatusActive       Status = "active"
	StatusUnreachable  Status = "unreachable"
	StatusUntrusted    Status = "untrusted"
	StatusDeregistered Status = "deregistered"
)

// Live tells whether a node of this status speaks for itself: it may
// authenticate and send heartbeats.
func (s Status) Live() bool { return s == StatusActive || s == StatusUnreachable }

// CanMoveTo tells whether a node may go from s to next.
func (s Status) CanMoveTo(next Status) bool {
	switch next {
	case StatusActive, StatusUnreachable:
		return s.Live()
	case StatusUntrusted:
		return s.Live()
	case StatusDeregistered:
		return s != StatusDeregistered
	}
	return false
}

// Node is an enrolled compute node.
type Node struct {
	ID                string            `json:"id"`
	AccountID         string            `json:"account_id"`
	Name              string            `json:"name"`
	Labels            map[string]string `json:"labels,omitempty"`
	Status            Status            `json:"status"`
	StatusReason      string            `json:"status_reason,omitempty"`
	JoinTokenID       string            `json:"join_token_id"`
	CertificateSerial string            `json:"certificate_serial"`
	Attested          bool              `json:"attested,omitempty"`
	VerdictID         string            `json:"verdict_id,omitempty"`
	Simulated         bool              `json:"simulated,omitempty"`
	// TEE is the TEE its last verdict was for ("sgx", "tdx", "sev-snp"),
	// and Measurement what it proved of a confidential VM (a TD's MRTD,
	// an SEV-SNP VM's launch measurement).
	TEE           string     `json:"tee,omitempty"`
	Measurement   []byte     `json:"measurement,omitempty"`
	EnrolledAt    time.Time  `json:"enrolled_at"`
	LastHeartbeat time.Time  `json:"last_heartbeat,omitzero"`
	LastAttested  time.Time  `json:"last_attested,omitzero"`
	Instances     []Instance `json:"instances,omitempty"`
	Version       uint64     `json:"-"`
}

// LastSeen is the last sign of life: the last heartbeat, or the enrolment.
func (n Node) LastSeen() time.Time {
	if n.LastHeartbeat.IsZero() {
		return n.EnrolledAt
	}
	return n.LastHeartbeat
}

// Speaks tells whether a client certificate of serial speaks for the node:
// the node is live and serial is its current certificate's.
func (n Node) Speaks(serial string) error {
	switch {
	case !n.Status.Live():
		return errs.Newf(errs.Unauthenticated, "the node is %s", n.Status)
	case serial == "" || !strings.EqualFold(strings.TrimLeft(serial, "0"), strings.TrimLeft(n.CertificateSerial, "0")):
		return errs.New(errs.Unauthenticated, "the certificate is not the node's current one")
	}
	return nil
}

// Instance is an enclave a node runs.
type Instance struct {
	ID        string    `json:"id"`
	AppID     string    `json:"app_id,omitempty"`
	ImageID   string    `json:"image_id,omitempty"`
	MRENCLAVE []byte    `json:"mrenclave,omitempty"`
	Status    string    `json:"status"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"`
	// CertificateSerial is the enclave's certificate's (hex), which the CA
	// issued through the node reporting it.
	CertificateSerial string `json:"certificate_serial,omitempty"`
}

// Statuses of an instance.
const (
	InstanceStatusRunning = "running"
	InstanceStatusStopped = "stopped"
)

// CheckInstances validates what a heartbeat reports.
func CheckInstances(is []Instance) error {
	if len(is) > MaxInstances {
		return invalid("instances", "at most %d", MaxInstances)
	}
	seen := make(map[string]bool, len(is))
	for i, in := range is {
		field := fmt.Sprintf("instances[%d]", i)
		switch {
		case len(in.ID) > MaxIDLength || !nameRE.MatchString(in.ID):
			return invalid(field+".id", "must be 1 to %d letters, digits, '.', '_' or '-'", MaxIDLength)
		case seen[in.ID]:
			return invalid(field+".id", "%s is reported twice", in.ID)
		case len(in.AppID) > MaxIDLength || in.AppID != "" && !nameRE.MatchString(in.AppID):
			return invalid(field+".app_id", "must be an application's id")
		case len(in.ImageID) > MaxIDLength || in.ImageID != "" && !nameRE.MatchString(in.ImageID):
			return invalid(field+".image_id", "must be an image's id")
		case len(in.MRENCLAVE) != 0 && len(in.MRENCLAVE) != 32:
			return invalid(field+".mrenclave", "must be 32 bytes")
		case in.CertificateSerial == "" || len(in.CertificateSerial) > 64 || !isHex(in.CertificateSerial):
			return invalid(field+".certificate_serial", "must be the hex serial of the enclave's certificate, issued through this node")
		case in.Status != "" && in.Status != InstanceStatusRunning && in.Status != InstanceStatusStopped:
			return invalid(field+".status", "must be %s or %s", InstanceStatusRunning, InstanceStatusStopped)
		}
		seen[in.ID] = true
	}
	return nil
}

// Report applies a heartbeat's list of instances at now: what runs now,
// which of them are new, and which of those the node ran before are gone.
// An instance reported stopped counts as gone.
func (n Node) Report(reported []Instance, now time.Time) (running, started, stopped []Instance) {
	before := make(map[string]Instance, len(n.Instances))
	for _, in := range n.Instances {
		before[in.ID] = in
	}
	for _, in := range reported {
		if in.Status == InstanceStatusStopped {
			continue
		}
		prev, known := before[in.ID]
		delete(before, in.ID)
		in.Status, in.LastSeen = InstanceStatusRunning, now
		switch {
		case known:
			in.StartedAt = prev.StartedAt
		case in.StartedAt.IsZero() || in.StartedAt.After(now):
			in.StartedAt = now
		}
		running = append(running, in)
		if !known {
			started = append(started, in)
		}
	}
	for _, in := range n.Instances {
		if _, gone := before[in.ID]; gone {
			in.Status = InstanceStatusStopped
			stopped = append(stopped, in)
		}
	}
	return running, started, stopped
}

// StopInstances marks stopped every instance the node runs, as when it
// is deregistered or untrusted, and returns those it stopped. The record
// keeps them; instances already stopped are left alone.
func (n *Node) StopInstances() []Instance {
	var stopped []Instance
	out := make([]Instance, len(n.Instances))
	for i, in := range n.Instances {
		if in.Status == InstanceStatusRunning {
			in.Status = InstanceStatusStopped
			stopped = append(stopped, in)
		}
		out[i] = in
	}
	if len(n.Instances) > 0 {
		n.Instances = out
	}
	return stopped
}

// CheckName accepts 1 to 64 letters, digits, '.', '_' and '-'.
func CheckName(field, name string) error {
	if len(name) > MaxNameLength || !nameRE.MatchString(name) {
		return invalid(field, "must be 1 to %d letters, digits, '.', '_' or '-'", MaxNameLength)
	}
	return nil
}

// CheckLabels accepts at most 32 labels whose keys are 1 to 63 letters,
// digits, '.', '_', '/' or '-' and whose values are UTF-8 of at most 256
// bytes.
func CheckLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return invalid("labels", "at most %d", MaxLabels)
	}
	for k, v := range labels {
		if len(k) > MaxLabelKey || !labelKeyRE.MatchString(k) {
			return invalid("labels", "key %q must be 1 to %d letters, digits, '.', '_', '/' or '-', starting with a letter or digit", k, MaxLabelKey)
		}
		if len(v) > MaxLabelValue || !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return invalid("labels", "the value of %s must be UTF-8 without NUL, at most %d bytes", k, MaxLabelValue)
		}
	}
	return nil
}

func invalid(field, format string, args ...any) error {
	return errs.Newf(errs.Invalid, "%s: %s", field, fmt.Sprintf(format, args...))
}

// Errors of the node registry.
var (
	ErrTokenNotFound    = errs.Define(errs.NotFound, "token_not_found", "join token not found")
	ErrNodeNotFound     = errs.Define(errs.NotFound, "node_not_found", "node not found")
	ErrConcurrentChange = errs.Define(errs.Conflict, "concurrent_change", "changed by another request; retry")
	ErrTokenExists      = errs.Define(errs.Conflict, "token_exists", "a join token with this id exists")
	// ErrTokenTaken refuses a token's creation sent again with its
	// Idempotency-Key once the token it made was used or revoked.
	ErrTokenTaken = errs.Define(errs.Conflict, "token_taken",
		"the join token this Idempotency-Key made was used or revoked since: its secret cannot be given again; create another with a new key")
	// ErrNotIssuedHere refuses a heartbeat reporting an enclave whose
	// certificate the node did not obtain.
	ErrNotIssuedHere = errs.Define(errs.PermissionDenied, "instance_not_issued_here", "an instance's certificate was not issued through this node")

	// Refusals of a join token at enrolment; expiry and use-up name the
	// time and the count.
	ErrTokenUnknown = errs.Define(errs.Unauthenticated, "token_unknown", "the join token is unknown")
	// ErrNonceRefused refuses evidence whose nonce is not one the registry
	// gave for this enrolment or node, or was used or expired: a replay.
	ErrNonceRefused = errs.Define(errs.PermissionDenied, "nonce_refused", "the nonce is unknown, used, expired or another's: ask for a new one")
	ErrTokenRevoked = errs.Define(errs.Unauthenticated, "token_revoked", "the join token is revoked")
	// ErrAttestationRequired refuses a node without evidence when its
	// token requires it.
	ErrAttestationRequired = errs.Define(errs.PermissionDenied, "attestation_required", "the join token requires attestation evidence, and the node presented none")
	// ErrNodeEvidenceRequired refuses a node without evidence when its
	// account's attestation policy requires it.
	ErrNodeEvidenceRequired = errs.Define(errs.PermissionDenied, "node_evidence_required", "the account's attestation policy requires node evidence, and the node presented none")
	// ErrPolicyUnavailable fails an enrolment whose account's attestation
	// policy cannot be read: it may require evidence, so none is waived.
	ErrPolicyUnavailable = errs.Define(errs.Unavailable, "policy_unavailable", "the account's attestation policy cannot be read; retry later")

	// ErrNodeUnknown refuses a node-facing call for a node the account
	// does not have.
	ErrNodeUnknown = errs.Define(errs.Unauthenticated, "node_unknown", "the node is not enrolled in this account")
)

// NodeNonce is a nonce the registry gave, for the evidence of one
// enrolment with a join token ("token:<id>") or one re-attestation of a
// node ("node:<id>").
type NodeNonce struct {
	AccountID string    `json:"account_id"`
	Scope     string    `json:"scope"`
	ExpiresAt time.Time `json:"expires_at"`
}

// TokenScope and NodeScope name what a nonce is for.
func TokenScope(tokenID string) string { return "token:" + tokenID }

// NodeScope is the scope of a node's re-attestation nonce.
func NodeScope(nodeID string) string { return "node:" + nodeID }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
