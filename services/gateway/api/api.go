// Package api holds the JSON shapes of Cloister's REST API, shared by the
// gateway, which serves them, and Go clients such as the CLI. The OpenAPI
// document (openapi.yaml) describes the same shapes; the gateway's tests
// hold the two together.
package api

import "time"

// Problem is an RFC 9457 problem document, the body of every error.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	// Detail says what is wrong, for a person.
	Detail string `json:"detail,omitempty"`
	// Code is the machine-readable kind of error, e.g. "not_found".
	Code string `json:"code"`
	// Reason names the refusal more precisely, when it has a name, e.g.
	// "image_not_found"; stable, for programs.
	Reason string `json:"reason,omitempty"`
}

// User is a signed-up user.
type User struct {
	ID        string     `json:"id"`
	Email     string     `json:"email"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
}

// Me is the authenticated caller.
type Me struct {
	ID         string `json:"id"`
	Email      string `json:"email"`
	Credential string `json:"credential"` // "session" or "api_key"
	// AccountID is, for API keys, the one account they act on.
	AccountID string    `json:"account_id,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Session is the reply to a login.
type Session struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      User      `json:"user"`
}

// Account is an account as one member sees it.
type Account struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Role        string    `json:"role"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// ApprovalsRequired is how many distinct admins other than its
	// requester must approve a task; 0 lets any one admin approve, the
	// requester included.
	ApprovalsRequired uint32 `json:"approvals_required"`
	// SecretsNeedApproval: a new value of an application's secret waits
	// for a secret task's approval before enclaves are given it.
	SecretsNeedApproval bool `json:"secrets_need_approval"`
	// Task, in the reply to an update of approvals_required, is the task
	// that asks for it: the account has the new value once it is approved
	// (at once under approvals_required 0; the reply is then 200, else 202).
	Task *Task `json:"task,omitempty"`
}

// Member is a user's role in an account.
type Member struct {
	AccountID string    `json:"account_id"`
	UserID    string    `json:"user_id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	AddedAt   time.Time `json:"added_at"`
	// Task, in the reply that adds or promotes an admin, is the task that
	// makes them one: they are a member until it is approved (at once
	// under approvals_required 0; the reply is then 201 or 200, else 202).
	Task *Task `json:"task,omitempty"`
}

// APIKey is an API key; Token is present only in the reply that creates it.
type APIKey struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	UserID    string    `json:"user_id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Token     string    `json:"token,omitempty"`
}

// AuditEntry is one record of the audit log.
type AuditEntry struct {
	ID         string    `json:"id"`
	OccurredAt time.Time `json:"occurred_at"`
	Actor      Actor     `json:"actor"`
	Action     string    `json:"action"`
	Target     string    `json:"target"`
	Outcome    string    `json:"outcome"`
	Error      string    `json:"error,omitempty"`
	// Cause says why the system acted, when no person did (credential
	// "system").
	Cause string `json:"cause,omitempty"`
}

// Actor is who did an audited thing.
type Actor struct {
	UserID     string `json:"user_id"`
	Email      string `json:"email"`
	Credential string `json:"credential"`
	// CredentialID tells which API key (or session) acted.
	CredentialID string `json:"credential_id,omitempty"`
}

// List is a page of items; pass NextCursor as ?cursor= for the next page.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// Request bodies.
type (
	// Credentials signs up or logs in.
	Credentials struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	CreateAccount struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	// UpdateAccount changes the fields that are set.
	UpdateAccount struct {
		Name                *string `json:"name,omitempty"`
		Description         *string `json:"description,omitempty"`
		ApprovalsRequired   *uint32 `json:"approvals_required,omitempty"`
		SecretsNeedApproval *bool   `json:"secrets_need_approval,omitempty"`
	}
	AddMember struct {
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	SetRole struct {
		Role string `json:"role"`
	}
	CreateAPIKey struct {
		Name       string `json:"name"`
		TTLSeconds int64  `json:"ttl_seconds,omitempty"`
	}
)

// AttestationPolicy is an account's attestation policy.
type AttestationPolicy struct {
	AcceptStatuses  []string `json:"accept_statuses"`
	AllowDebug      bool     `json:"allow_debug"`
	AllowSimulation bool     `json:"allow_simulation"`
	MinISVSVN       uint32   `json:"min_isvsvn"`
	// RequireNodeAttestation refuses the enrolment of a node that presents
	// no TEE evidence, whatever its join token says.
	RequireNodeAttestation bool `json:"require_node_attestation"`
	// TDX and SNP are the rules for confidential VMs' evidence (nodes in
	// TDX trust domains or SEV-SNP VMs); the fields above are SGX
	// enclaves'. Absent in a PUT: the defaults.
	TDX *TDXPolicy `json:"tdx,omitempty"`
	SNP *SNPPolicy `json:"sev_snp,omitempty"`
}

// TDXPolicy says which Intel TDX evidence an account accepts.
type TDXPolicy struct {
	// AcceptStatuses: empty means UpToDate and SWHardeningNeeded.
	AcceptStatuses []string `json:"accept_statuses"`
	AllowDebug     bool     `json:"allow_debug"`
	// MRTDs accepted, hex (48 bytes each); empty: any.
	MRTDs []string `json:"mrtds"`
	// RTMRs are what RTMR0 to RTMR3 must be, hex, "" for any value: none,
	// or four.
	RTMRs []string `json:"rtmrs"`
}

// SNPPolicy says which AMD SEV-SNP evidence an account accepts.
type SNPPolicy struct {
	AllowDebug bool `json:"allow_debug"`
	// Measurements accepted, hex (48 bytes each); empty: any.
	Measurements []string `json:"measurements"`
	// HostData is the HOST_DATA a VM must have been launched with, hex
	// (32 bytes); empty: any.
	HostData string `json:"host_data,omitempty"`
	// MinTCB is the least REPORTED_TCB accepted, level by level: a
	// TCB_VERSION in hex, e.g. 0x7308000000000003; empty: any.
	MinTCB string `json:"min_tcb,omitempty"`
}

// VerifyEvidence asks for evidence to be verified under the account's
// policy: an SGX or TDX quote, or an SEV-SNP report (TEE "sev-snp") with
// its VCEK or certificate table in EvidenceAux. Binding and Nonce, when
// given, must be what REPORTDATA holds (32 bytes each).
type VerifyEvidence struct {
	Quote       []byte `json:"quote"` // base64
	Binding     []byte `json:"binding,omitempty"`
	Nonce       []byte `json:"nonce,omitempty"`
	TEE         string `json:"tee,omitempty"`
	EvidenceAux []byte `json:"evidence_aux,omitempty"`
}

// Verdict is the outcome of a verification.
type Verdict struct {
	ID         string    `json:"id"`
	OK         bool      `json:"ok"`
	Reason     string    `json:"reason,omitempty"`
	Error      string    `json:"error,omitempty"`
	TCBStatus  string    `json:"tcb_status,omitempty"`
	Advisories []string  `json:"advisories"`
	MRENCLAVE  string    `json:"mrenclave,omitempty"`
	MRSIGNER   string    `json:"mrsigner,omitempty"`
	ISVProdID  uint32    `json:"isvprodid"`
	ISVSVN     uint32    `json:"isvsvn"`
	Debug      bool      `json:"debug"`
	Simulated  bool      `json:"simulated"`
	ReportData string    `json:"report_data,omitempty"`
	FMSPC      string    `json:"fmspc,omitempty"`
	VerifiedAt time.Time `json:"verified_at"`
	// TEE is "sgx", "tdx" or "sev-snp"; Measurement (hex) a TD's MRTD or
	// an SEV-SNP VM's launch measurement (an enclave's is MRENCLAVE);
	// RTMRs a TD's, HostData an SEV-SNP VM's, hex.
	TEE         string   `json:"tee,omitempty"`
	Measurement string   `json:"measurement,omitempty"`
	RTMRs       []string `json:"rtmrs,omitempty"`
	HostData    string   `json:"host_data,omitempty"`
}

// Collateral is Intel collateral to store: the one-document JSON form, or
// the bodies Intel's PCS serves with the signing chain and CRLs (DER,
// base64 in JSON).
type Collateral struct {
	CollateralJSON []byte `json:"collateral_json,omitempty"`
	TCBInfo        []byte `json:"tcb_info,omitempty"`
	QEIdentity     []byte `json:"qe_identity,omitempty"`
	SigningChain   string `json:"signing_chain,omitempty"`
	RootCRL        []byte `json:"root_crl,omitempty"`
	PCKCRL         []byte `json:"pck_crl,omitempty"`
}

// CollateralStored says which platform the stored collateral is for.
type CollateralStored struct {
	FMSPC      string    `json:"fmspc"`
	NextUpdate time.Time `json:"next_update"`
}

// VCEK is an AMD VCEK to keep for the SEV-SNP reports of its chip and TCB
// that come without one (POST /v1/attestation/vcek): DER or PEM, base64.
type VCEK struct {
	VCEK []byte `json:"vcek"`
}

// VCEKStored says what a stored VCEK was issued for.
type VCEKStored struct {
	Product  string    `json:"product"`
	HWID     string    `json:"hwid"` // hex
	TCB      string    `json:"tcb"`  // hex
	NotAfter time.Time `json:"not_after"`
}

// CA is an account's certificate authority: the chain servers present
// (issuing CA then root) and its parts.
type CA struct {
	ChainPEM   string `json:"chain_pem"`
	RootPEM    string `json:"root_pem"`
	IssuerPEM  string `json:"issuer_pem"`
	RootSHA256 string `json:"root_sha256"`
	// IssuerKeyID is the current issuing CA's subject key id, hex.
	IssuerKeyID string `json:"issuer_key_id"`
	// RetiredIssuers are issuing CAs rotated out whose certificates may
	// still be in use, newest first.
	RetiredIssuers []Issuer `json:"retired_issuers"`
}

// RotateIssuer is the optional body of POST .../ca/rotate.
type RotateIssuer struct {
	// RevokePrevious retires the previous issuer at once: every
	// certificate it issued is revoked and its key destroyed.
	RevokePrevious bool `json:"revoke_previous"`
}

// CAChange is the CA after a rotation or retirement, and how many
// certificates went with the retired issuer.
type CAChange struct {
	CA
	Revoked int `json:"revoked"`
}

// Issuer is an issuing CA.
type Issuer struct {
	KeyID    string    `json:"key_id"`
	NotAfter time.Time `json:"not_after"`
	PEM      string    `json:"pem"`
}

// Certificate is a certificate an account's CA issued.
type Certificate struct {
	Serial           string     `json:"serial"`
	Kind             string     `json:"kind"`
	SubjectID        string     `json:"subject_id"`
	DNSNames         []string   `json:"dns_names"`
	NotBefore        time.Time  `json:"not_before"`
	NotAfter         time.Time  `json:"not_after"`
	Revoked          bool       `json:"revoked"`
	RevokedAt        *time.Time `json:"revoked_at,omitempty"`
	RevocationReason string     `json:"revocation_reason,omitempty"`
	PEM              string     `json:"pem"`
	// Application certificates: the node that forwarded the request, the
	// image and measurement attested, and the attestation verdict.
	NodeID    string `json:"node_id,omitempty"`
	ImageID   string `json:"image_id,omitempty"`
	MRENCLAVE string `json:"mrenclave,omitempty"`
	VerdictID string `json:"verdict_id,omitempty"`
}

// Revocation is the body of a revocation.
type Revocation struct {
	Reason string `json:"reason"`
}

// CertificateConfig is an application's TLS certificate configuration.
type CertificateConfig struct {
	Domain       string `json:"domain"`
	Issuer       string `json:"issuer"`
	KeyPath      string `json:"key_path"`
	KeyType      string `json:"key_type"`
	CertPath     string `json:"cert_path"`
	ValidityDays uint32 `json:"validity_days"`
}

// EnvVar is a fixed environment variable of an application.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// AppSpec is what a user sets on an application: the body of a creation,
// and (as a JSON merge patch) of an update.
type AppSpec struct {
	// Name is 1 to 64 letters, digits, '.', '_' or '-', unique in the
	// account.
	Name        string `json:"name"`
	Description string `json:"description"`
	// InputImage is the image to convert, with its registry, e.g.
	// registry.example.com/team/app:1; OutputImage the repository of the
	// converted images, without a tag.
	InputImage  string `json:"input_image"`
	OutputImage string `json:"output_image"`
	// ISVProdID and ISVSVN are the enclave's product id and security
	// version (0 to 65535).
	ISVProdID uint32 `json:"isvprodid"`
	ISVSVN    uint32 `json:"isvsvn"`
	// MemorySize is the enclave's memory in bytes (Gramine's
	// sgx.enclave_size): a power of two, 32 MiB to 64 GiB. Threads is 1
	// to 256.
	MemorySize uint64 `json:"memory_size"`
	Threads    uint32 `json:"threads"`
	// Entrypoint empty runs the input image's own, with Args; with
	// AllowCmdlineArgs, arguments given at run time replace Args, unmeasured.
	Entrypoint       []string `json:"entrypoint"`
	Args             []string `json:"args"`
	AllowCmdlineArgs bool     `json:"allow_cmdline_args"`
	// Env is fixed (measured); PassthroughEnv names the variables the host
	// may pass through, RWDirs the writable directories (not measured).
	Env            []EnvVar `json:"env"`
	PassthroughEnv []string `json:"passthrough_env"`
	RWDirs         []string `json:"rw_dirs"`
	// Debug builds a debug enclave, whose memory the host can read; it
	// has another MRENCLAVE than the production build.
	Debug       bool              `json:"debug"`
	Certificate CertificateConfig `json:"certificate"`
	// SecretsDir is where the enclave finds the application's secrets,
	// one file each, mode 0400, on an in-enclave tmpfs ("" for none);
	// SecretEnv gives some as environment variables too (SecretsDir then
	// defaults to /run/cloister/secrets). Volumes are encrypted volumes.
	// Secrets and volume keys come with the certificate, after
	// attestation (docs/secrets.md).
	SecretsDir string      `json:"secrets_dir"`
	SecretEnv  []SecretEnv `json:"secret_env"`
	Volumes    []Volume    `json:"volumes"`
}

// SecretEnv sets the environment variable Name to the secret Secret.
type SecretEnv struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

// Volume is the host directory Path, mounted at the same path in the
// enclave and encrypted by Gramine with the key KeyName, which Cloister
// keeps and delivers.
type Volume struct {
	Path    string `json:"path"`
	KeyName string `json:"key_name"`
}

// Secret is an application's secret: its versions, never its value.
type Secret struct {
	AppID     string          `json:"app_id"`
	Name      string          `json:"name"`
	Versions  []SecretVersion `json:"versions"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// SecretVersion is one value a secret had (the newest is delivered).
type SecretVersion struct {
	Version   uint32    `json:"version"`
	Size      uint32    `json:"size"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	// Pending: waiting for its secret task's approval; not delivered.
	Pending bool `json:"pending"`
}

// VolumeKey is an exported volume key (base64 in JSON).
type VolumeKey struct {
	AppID   string `json:"app_id"`
	KeyName string `json:"key_name"`
	Key     []byte `json:"key"`
}

// PutSecret is the body that sets a secret: its value, base64.
type PutSecret struct {
	Value []byte `json:"value"`
}

// App is an application.
type App struct {
	ID string `json:"id"`
	AppSpec
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SigningKey is the public half of the account's enclave signing key.
type SigningKey struct {
	PublicKeyPEM string    `json:"public_key_pem"`
	MRSIGNER     string    `json:"mrsigner"`
	CreatedAt    time.Time `json:"created_at"`
}

// ConvertImage asks for a conversion of an application's input image.
type ConvertImage struct {
	App string `json:"app"` // id or name
	Tag string `json:"tag"`
}

// Progress is how far a conversion got.
type Progress struct {
	Phase       string `json:"phase"`
	Layers      uint32 `json:"layers"`
	TotalLayers uint32 `json:"total_layers"`
	Bytes       int64  `json:"bytes"`
	TotalBytes  int64  `json:"total_bytes"`
}

// Image is a conversion of an application's image.
type Image struct {
	ID         string `json:"id"`
	AppID      string `json:"app_id"`
	Tag        string `json:"tag"`
	Status     string `json:"status"`
	InputImage string `json:"input_image"`
	Output     string `json:"output"`
	Ref        string `json:"ref,omitempty"`
	Digest     string `json:"digest,omitempty"`
	MRENCLAVE  string `json:"mrenclave,omitempty"`
	MRSIGNER   string `json:"mrsigner,omitempty"`
	ISVProdID  uint32 `json:"isvprodid"`
	ISVSVN     uint32 `json:"isvsvn"`
	// GramineRuntime is the Gramine runtime image the image carries, by
	// digest; GramineRuntimeStandIn marks Cloister's stand-in, which
	// cannot start an SGX enclave.
	GramineRuntime        string `json:"gramine_runtime,omitempty"`
	GramineRuntimeStandIn bool   `json:"gramine_runtime_stand_in,omitempty"`
	// ReferenceStatus, when one converted image is read, says whether its
	// registry still has it: present, missing (the registry has no such
	// manifest: convert again) or unknown (the registry could not be
	// asked). Lists leave it out.
	ReferenceStatus string    `json:"reference_status,omitempty"`
	Reason          string    `json:"reason,omitempty"`
	Error           string    `json:"error,omitempty"`
	Progress        Progress  `json:"progress"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// RegistryCredential is a registry login; its password is never returned.
type RegistryCredential struct {
	Registry  string    `json:"registry"`
	Username  string    `json:"username"`
	UpdatedAt time.Time `json:"updated_at"`
}

// PutRegistryCredential is the body that stores a registry login.
type PutRegistryCredential struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// TaskImage is the subject of an image task.
type TaskImage struct {
	ImageID   string `json:"image_id"`
	Tag       string `json:"tag"`
	MRENCLAVE string `json:"mrenclave"`
	MRSIGNER  string `json:"mrsigner"`
	ISVProdID uint32 `json:"isvprodid"`
	ISVSVN    uint32 `json:"isvsvn"`
}

// TaskApproval is one admin's approval.
type TaskApproval struct {
	UserID string    `json:"user_id"`
	At     time.Time `json:"at"`
}

// Task asks the account's admins to approve an application's domain or a
// converted image.
type Task struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind"`
	Status      string     `json:"status"`
	RequesterID string     `json:"requester_id"`
	AppID       string     `json:"app_id"`
	Domain      string     `json:"domain,omitempty"`
	Image       *TaskImage `json:"image,omitempty"`
	// Secret is what a secret task approves: a version of a secret.
	Secret *TaskSecret `json:"secret,omitempty"`
	// NewApprovalsRequired is what a quorum task proposes; Admin the
	// member an admin task makes an admin. Applied says the change of
	// either was made.
	NewApprovalsRequired *uint32        `json:"new_approvals_required,omitempty"`
	Admin                *TaskAdmin     `json:"admin,omitempty"`
	Applied              bool           `json:"applied,omitempty"`
	Approvals            []TaskApproval `json:"approvals"`
	// ApprovalsCounted of ApprovalsRequired: the approvals that count
	// toward the quorum in force ("approvals 1/2").
	ApprovalsCounted  int       `json:"approvals_counted"`
	ApprovalsRequired int       `json:"approvals_required"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// TaskSecret is the subject of a secret task: a new version of an
// application's secret (never its value).
type TaskSecret struct {
	Name    string `json:"name"`
	Version uint32 `json:"version"`
	Size    uint32 `json:"size"`
}

// TaskAdmin is the member an admin task makes an admin.
type TaskAdmin struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
}

// JoinToken lets nodes enrol into an account; its secret is shown once.
type JoinToken struct {
	ID                 string            `json:"id"`
	Name               string            `json:"name"`
	Labels             map[string]string `json:"labels"`
	ExpiresAt          time.Time         `json:"expires_at"`
	MaxUses            uint32            `json:"max_uses"`
	Uses               uint32            `json:"uses"`
	Revoked            bool              `json:"revoked"`
	RequireAttestation bool              `json:"require_attestation"`
	CreatedAt          time.Time         `json:"created_at"`
	CreatedBy          string            `json:"created_by"`
	// Secret is filled in only when the token is created.
	Secret string `json:"secret,omitempty"`
}

// CreateJoinToken is the body that creates a join token.
type CreateJoinToken struct {
	Name               string            `json:"name"`
	Labels             map[string]string `json:"labels,omitempty"`
	TTLSeconds         uint32            `json:"ttl_seconds,omitempty"`
	MaxUses            uint32            `json:"max_uses,omitempty"`
	RequireAttestation bool              `json:"require_attestation,omitempty"`
}

// Instance is an enclave a node runs.
type Instance struct {
	ID        string    `json:"id"`
	AppID     string    `json:"app_id"`
	ImageID   string    `json:"image_id"`
	MRENCLAVE string    `json:"mrenclave"`
	Status    string    `json:"status"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"`
	// CertificateSerial is the enclave's certificate's, issued through the
	// node; the application, image and MRENCLAVE above are its.
	CertificateSerial string `json:"certificate_serial"`
}

// Node is an enrolled compute node.
type Node struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	// Status is active, unreachable (silent past the heartbeat timeout),
	// untrusted (its re-attestation failed or is overdue) or deregistered;
	// StatusReason says why when it is not active.
	Status       string `json:"status"`
	StatusReason string `json:"status_reason,omitempty"`
	JoinTokenID  string `json:"join_token_id"`
	// CertificateSerial is the node's current client certificate's, hex.
	CertificateSerial string `json:"certificate_serial"`
	// Attested: the node presented TEE evidence (Simulated: simulated
	// evidence), judged by the verdict VerdictID.
	Attested  bool   `json:"attested"`
	Simulated bool   `json:"simulated"`
	VerdictID string `json:"verdict_id,omitempty"`
	// TEE is the TEE its evidence was from ("sgx", "tdx", "sev-snp"),
	// and Measurement, hex, what a confidential VM proved (a TD's MRTD,
	// an SEV-SNP VM's launch measurement).
	TEE           string     `json:"tee,omitempty"`
	Measurement   string     `json:"measurement,omitempty"`
	EnrolledAt    time.Time  `json:"enrolled_at"`
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
	LastAttested  *time.Time `json:"last_attested,omitempty"`
	Instances     []Instance `json:"instances"`
}

// Summary is an account's overview: GET /v1/accounts/{id}/summary.
type Summary struct {
	AccountID   string    `json:"account_id"`
	GeneratedAt time.Time `json:"generated_at"`
	// PendingTasks wait for approvals.
	PendingTasks []Task `json:"pending_tasks"`
	// Nodes counts the account's nodes by status: active, unreachable,
	// untrusted and deregistered.
	Nodes map[string]int `json:"nodes"`
	// Running are the instances the nodes report, newest first.
	Running []RunningInstance `json:"running"`
	// ExpiringCertificates are the certificates in use (the nodes' and
	// their instances') that end within 7 days, soonest first; without
	// their PEM.
	ExpiringCertificates []Certificate `json:"expiring_certificates"`
	// AttestationFailures are the latest failed verdicts of the last day
	// (at most 10, newest first).
	AttestationFailures []Verdict `json:"attestation_failures"`
	// Hours are the last 24 hours, oldest first, the last one under way.
	Hours []SummaryHour `json:"hours"`
}

// RunningInstance is an instance with the node that runs it.
type RunningInstance struct {
	Instance
	NodeID   string `json:"node_id"`
	NodeName string `json:"node_name"`
}

// SummaryHour is what one hour of an account came to.
type SummaryHour struct {
	Start                 time.Time `json:"start"`
	AttestationsSucceeded uint64    `json:"attestations_succeeded"`
	AttestationsFailed    uint64    `json:"attestations_failed"`
	CertificatesIssued    uint64    `json:"certificates_issued"`
}

// Enroll is what a node agent sends to join an account.
type Enroll struct {
	JoinToken string `json:"join_token"`
	// NodeName is empty for the default: the token's name when the token
	// is for one node, else HostName.
	NodeName string `json:"node_name,omitempty"`
	HostName string `json:"host_name,omitempty"`
	CSR      string `json:"csr"` // PEM, EC P-256
	// Evidence is base64 evidence whose REPORTDATA is SHA-256 of the
	// CSR's public key, then Nonce (from POST /v1/agent/nonce): an SGX or
	// TDX quote, or an SEV-SNP report (TEE "sev-snp").
	Evidence []byte `json:"evidence,omitempty"`
	Nonce    []byte `json:"nonce,omitempty"` // base64, 32 bytes
	// TEE names the evidence's TEE ("sgx", "tdx", "sev-snp"); empty for
	// a quote, whose header says.
	TEE string `json:"tee,omitempty"`
	// EvidenceAux is what the evidence needs beside it, base64: an
	// SEV-SNP report's VCEK, or the certificate table its host gave.
	EvidenceAux []byte `json:"evidence_aux,omitempty"`
}

// AgentNonce asks, with a join token, for a nonce to bind into the
// evidence of an enrolment with it (POST /v1/agent/nonce); the answer is a
// Nonce.
type AgentNonce struct {
	JoinToken string `json:"join_token"`
}

// AgentSimulatedQE asks, with a join token, for a simulated quoting
// enclave before enrolling (POST /v1/agent/simulation-qe); the answer is a
// SimulatedQE.
type AgentSimulatedQE struct {
	JoinToken string `json:"join_token"`
}

// Enrolled is the answer to an enrolment.
type Enrolled struct {
	Node     Node   `json:"node"`
	ChainPEM string `json:"chain_pem"`
}

// NodeHeartbeat is what a node reports on each heartbeat: every enclave it
// runs (an instance it ran before and no longer reports has stopped).
type NodeHeartbeat struct {
	Instances []InstanceReport `json:"instances"`
}

// InstanceReport is an enclave as its node reports it.
type InstanceReport struct {
	ID string `json:"id"`
	// CertificateSerial is the enclave's certificate's (hex), which the
	// node obtained for it: a node reports only those. The application,
	// image and MRENCLAVE are taken from it; when given, they must agree.
	CertificateSerial string     `json:"certificate_serial"`
	AppID             string     `json:"app_id,omitempty"`
	ImageID           string     `json:"image_id,omitempty"`
	MRENCLAVE         string     `json:"mrenclave,omitempty"` // hex, 32 bytes
	Status            string     `json:"status,omitempty"`    // running (default) or stopped
	StartedAt         *time.Time `json:"started_at,omitempty"`
}

// NodeAttest is a node's periodic re-attestation: a quote whose
// REPORTDATA is SHA-256 of the SubjectPublicKeyInfo of the node's current
// client certificate, then the nonce.
type NodeAttest struct {
	Evidence []byte `json:"evidence"` // base64 evidence, as Enroll's
	// Nonce is from POST /v1/node/attestation-nonce, used once.
	Nonce []byte `json:"nonce"`
	// TEE and EvidenceAux are as Enroll's.
	TEE         string `json:"tee,omitempty"`
	EvidenceAux []byte `json:"evidence_aux,omitempty"`
}

// Nonce is a fresh value for REPORTDATA (from the account's CA for an
// enclave, from the node registry for a node's evidence); it is good for
// one use until it expires.
type Nonce struct {
	Nonce     []byte    `json:"nonce"` // base64, 32 bytes
	ExpiresAt time.Time `json:"expires_at"`
}

// SimulatedQE is a simulated quoting enclave for a node agent in
// simulation mode, serialised by libs/sgx/sim (sim.ParseQE reads it). It
// holds private keys; its quotes prove nothing about hardware.
type SimulatedQE struct {
	QE []byte `json:"qe"` // base64
}

// IssueAppCertificate is what a node forwards for an enclave: the
// application, the enclave's CSR and its quote, whose REPORTDATA is
// SHA-256 of the CSR's public key followed by a nonce.
type IssueAppCertificate struct {
	AppID string `json:"app_id"`
	CSR   string `json:"csr"`   // PEM
	Quote []byte `json:"quote"` // base64
	// RecipientKey is the enclave's X25519 public key (base64), bound in
	// REPORTDATA with the CSR's key, that its secrets are sealed to.
	RecipientKey []byte `json:"recipient_key,omitempty"`
}

// IssuedAppCertificate is an enclave's certificate, its chain and the
// verdict it was issued on; with a recipient key, its application's
// secrets and volume keys sealed to it.
type IssuedAppCertificate struct {
	Certificate Certificate `json:"certificate"`
	ChainPEM    string      `json:"chain_pem"`
	Verdict     Verdict     `json:"verdict"`
	// Secrets is the sealed bundle (HPKE, base64), absent when there is
	// nothing to deliver.
	Secrets []byte `json:"secrets,omitempty"`
}
