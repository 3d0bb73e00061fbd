// Package busauth is who may do what on Cloister's NATS bus: one NKey
// identity per service, and each identity's least-privilege permissions,
// the NATS way (publish and subscribe allow lists enforced by the server).
//
// A service may subscribe to its own request subjects and its own inbox
// (_INBOX_<name>, not the shared _INBOX, so no one reads another's
// replies), answer requests it was sent, publish its own events, audit
// records, jobs and dead letters, use its own KV buckets and the shared
// streams, and call only the methods it needs. The gateway alone may call
// every service. Nothing without an identity may connect.
//
// The same Roles produce the embedded server's options (-dev, tests) and
// the nats-server configuration a deployment runs with (Config), so
// development runs with the permissions production has.
package busauth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/cloister-cc/cloister/libs/kv"
)

// Gateway is the role of the process that serves the REST API: the only
// one that calls every service.
const Gateway = "gateway"

// Shared streams every service ensures and reads (libs/events).
var sharedStreams = []string{"EVENTS", "AUDIT", "DEADLETTERS", "JOBS"}

// Role is what one service may do on the bus.
type Role struct {
	Name string
	// Serves: the service answers cloister.<Name>.v1.<Method>.
	Serves bool
	// Calls are the request subjects it may send.
	Calls []string
	// Buckets are its JetStream KV buckets.
	Buckets []string
	// Durables are its durable consumers, whose dead letters it writes.
	Durables []string
	// Jobs: it queues work on jobs.<Name>.>.
	Jobs bool
}

func method(service, name string) string { return "cloister." + service + ".v1." + name }

// Roles lists every identity of a deployment. A test that runs every
// service under these permissions fails when one is missing.
var Roles = []Role{
	{Name: "account", Serves: true,
		Buckets:  []string{"account_users", "account_sessions", "account_accounts", "account_members", "account_apikeys", "account_apikey_ids", "account_tasks"},
		Durables: []string{"account-purge"}},
	{Name: "attestation", Serves: true,
		Buckets:  []string{"attestation_policies", "attestation_collateral", "attestation_verdicts", "attestation_activity", "attestation_images", "attestation_withdrawn_tasks", "attestation_simulation", "attestation_vceks"},
		Durables: []string{"attestation-approvals"}},
	{Name: "ca", Serves: true,
		Calls:    []string{method("attestation", "GetVerdict")},
		Buckets:  []string{"ca_authorities", "ca_certificates", "ca_final_crls", "ca_apps", "ca_domains", "ca_nonces", "ca_images", "ca_withdrawn_tasks"},
		Durables: []string{"ca-approvals", "ca-accounts"}},
	{Name: "imageconverter", Serves: true, Jobs: true,
		Calls:    []string{method("ca", "GetCertificate")},
		Buckets:  []string{"imageconverter_apps", "imageconverter_keys", "imageconverter_images", "imageconverter_registries", "imageconverter_secrets"},
		Durables: []string{"imageconverter-accounts", "imageconverter-convert"}},
	{Name: "noderegistry", Serves: true,
		Calls: []string{
			method("attestation", "Verify"), method("attestation", "GetPolicy"), method("attestation", "IssueSimulatedQE"),
			method("ca", "IssueNodeCertificate"), method("ca", "RevokeCertificate"), method("ca", "GetCertificate"),
		},
		Buckets:  []string{"noderegistry_tokens", "noderegistry_token_hashes", "noderegistry_nodes", "noderegistry_nonces"},
		Durables: []string{"noderegistry-accounts"}},
	{Name: Gateway, Calls: []string{"cloister.*.v1.*"}},
}

// RoleNames are the names of Roles, in order.
func RoleNames() []string {
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = r.Name
	}
	return names
}

// RoleOf returns the role named name.
func RoleOf(name string) (Role, error) {
	for _, r := range Roles {
		if r.Name == name {
			return r, nil
		}
	}
	return Role{}, fmt.Errorf("no bus identity %q; known: %s", name, strings.Join(RoleNames(), ", "))
}

// InboxPrefix is where the role's replies arrive: its own, so no other
// identity may subscribe to them.
func InboxPrefix(name string) string { return "_INBOX_" + name }

// Permissions are what the role may publish and subscribe to.
func (r Role) Permissions() *server.Permissions {
	var pub, sub []string
	sub = append(sub, InboxPrefix(r.Name)+".>")
	if r.Serves {
		sub = append(sub, "cloister."+r.Name+".v1.>")
		pub = append(pub, "events."+r.Name+".>", "audit.*."+r.Name)
	}
	if r.Jobs {
		pub = append(pub, "jobs."+r.Name+".>")
	}
	pub = append(pub, r.Calls...)
	for _, d := range r.Durables {
		pub = append(pub, "deadletter.*."+d)
	}
	pub = append(pub, "$JS.API.INFO")
	for _, s := range sharedStreams {
		pub = append(pub, "$JS.API.STREAM.INFO."+s, "$JS.API.STREAM.CREATE."+s, "$JS.API.STREAM.UPDATE."+s)
		pub = append(pub, readStream(s)...)
	}
	for _, b := range r.Buckets {
		pub = append(pub, bucket(b)...)
		pub = append(pub, bucket(kv.OutboxBucket(b))...)
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
		// Answering a request it received is allowed once, for a while.
		Response: &server.ResponsePermission{MaxMsgs: 1},
	}
}

// bucket are the subjects of using the KV bucket b: all of its stream's
// API, and its keys.
func bucket(b string) []string {
	s := "KV_" + b
	return append([]string{"$JS.API.STREAM.*." + s, "$JS.API.STREAM.MSG.*." + s, "$KV." + b + ".>"}, readStream(s)...)
}

// readStream are the API subjects of reading stream: fetching messages
// and running consumers on it.
func readStream(s string) []string {
	return []string{
		"$JS.API.STREAM.MSG.GET." + s, "$JS.API.DIRECT.GET." + s, "$JS.API.DIRECT.GET." + s + ".>",
		"$JS.API.CONSUMER.*." + s, "$JS.API.CONSUMER.*." + s + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + s + ".>", "$JS.API.CONSUMER.DURABLE.CREATE." + s + ".>",
		"$JS.ACK." + s + ".>", "$JS.FC." + s + ".>",
	}
}

// Identity is one role's NKey: its seed signs the server's challenge.
type Identity struct {
	Name string
	kp   nkeys.KeyPair
}

// NewIdentity makes a fresh identity for the role name.
func NewIdentity(name string) (Identity, error) {
	if _, err := RoleOf(name); err != nil {
		return Identity{}, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return Identity{}, fmt.Errorf("making the NKey of %s: %w", name, err)
	}
	return Identity{Name: name, kp: kp}, nil
}

// ParseIdentity reads the identity of role name from its NKey seed.
func ParseIdentity(name string, seed []byte) (Identity, error) {
	if _, err := RoleOf(name); err != nil {
		return Identity{}, err
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		return Identity{}, fmt.Errorf("the NKey seed of %s: %w", name, err)
	}
	if p, _ := kp.PublicKey(); !nkeys.IsValidPublicUserKey(p) {
		return Identity{}, fmt.Errorf("the NKey seed of %s is not a user seed (SU...)", name)
	}
	return Identity{Name: name, kp: kp}, nil
}

// Public is the identity's public NKey (U...), which the server knows.
func (i Identity) Public() string {
	p, _ := i.kp.PublicKey()
	return p
}

// Seed is the identity's secret.
func (i Identity) Seed() []byte {
	s, _ := i.kp.Seed()
	return s
}

// Options connect as the identity, with replies on its own inbox.
func (i Identity) Options() []nats.Option {
	return []nats.Option{
		nats.Nkey(i.Public(), i.kp.Sign),
		nats.CustomInboxPrefix(InboxPrefix(i.Name)),
	}
}

// Users are the embedded server's users for the public keys of the roles
// (name → public NKey); a role without a key has no user.
func Users(keys map[string]string) ([]*server.NkeyUser, error) {
	var users []*server.NkeyUser
	for _, r := range Roles {
		k, ok := keys[r.Name]
		if !ok {
			continue
		}
		if !nkeys.IsValidPublicUserKey(k) {
			return nil, fmt.Errorf("the public NKey of %s (%q) is not a user key (U...)", r.Name, k)
		}
		users = append(users, &server.NkeyUser{Nkey: k, Permissions: r.Permissions()})
	}
	return users, nil
}

// Set is one identity per role, as a deployment or -dev has.
type Set map[string]Identity

// NewSet makes an identity for every role.
func NewSet() (Set, error) {
	s := Set{}
	for _, name := range RoleNames() {
		id, err := NewIdentity(name)
		if err != nil {
			return nil, err
		}
		s[name] = id
	}
	return s, nil
}

// PublicKeys are the set's public keys by role.
func (s Set) PublicKeys() map[string]string {
	keys := map[string]string{}
	for n, id := range s {
		keys[n] = id.Public()
	}
	return keys
}

// SeedFile is the name of role name's seed in a credentials directory.
func SeedFile(name string) string { return name + ".nk" }

// LoadIdentity reads the seed of role name from dir.
func LoadIdentity(dir, name string) (Identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, SeedFile(name)))
	if err != nil {
		return Identity{}, fmt.Errorf("reading the NATS identity of %s: %w", name, err)
	}
	return ParseIdentity(name, b)
}

// Write writes the set's seeds into dir (0600, which must not hold them
// already: a deployment's keys are made once) and the nats-server
// authorization block, AuthFile.
func (s Set) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range s {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		if err := WriteNew(filepath.Join(dir, SeedFile(n)), append(s[n].Seed(), '\n'), 0o600); err != nil {
			return err
		}
	}
	conf, err := Config(s.PublicKeys())
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, AuthFile), []byte(conf), 0o644)
}

// AuthFile is the name of the nats-server authorization block a
// credentials directory holds, for nats.conf to include.
const AuthFile = "nats-auth.conf"

// RoutePasswordFile holds the password NATS servers give each other on
// their cluster routes (no newline: it goes into route URLs as it is).
const RoutePasswordFile = "nats-route.password"

// writeRoutePassword writes a new random route password into dir.
func writeRoutePassword(dir string) error {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return WriteNew(filepath.Join(dir, RoutePasswordFile), []byte(base64.RawURLEncoding.EncodeToString(b)), 0o600)
}

// Load reads the identities of the roles names from dir.
func Load(dir string, names []string) (Set, error) {
	s := Set{}
	for _, n := range names {
		id, err := LoadIdentity(dir, n)
		if err != nil {
			return nil, err
		}
		s[n] = id
	}
	return s, nil
}

// Credentials are what a deployment's bus runs with: an identity per role
// and the gateway's assertion secret.
type Credentials struct {
	Identities Set
	Assertion  AssertionSecret
}

// NewCredentials makes a deployment's credentials.
func NewCredentials() (Credentials, error) {
	set, err := NewSet()
	if err != nil {
		return Credentials{}, err
	}
	secret, err := NewAssertionSecret()
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{set, secret}, nil
}

// Write writes the credentials into dir, which must not hold them
// already: the identities' seeds and the nats-server authorization (as
// Set.Write), a password for the servers' cluster routes, the assertion
// secret (for the gateway alone) and each
// service's assertion key (for that service alone).
func (c Credentials) Write(dir string) error {
	if err := c.Identities.Write(dir); err != nil {
		return err
	}
	if err := writeRoutePassword(dir); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, AssertionSecretFile), c.Assertion); err != nil {
		return err
	}
	for _, r := range Roles {
		if r.Serves {
			if err := writeKey(filepath.Join(dir, AssertionKeyFile(r.Name)), c.Assertion.ServiceKey(r.Name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// LoadOrCreate reads the credentials of every role from dir, or makes and
// writes them there when dir holds none (as -dev does on its first start).
func LoadOrCreate(dir string) (Credentials, error) {
	if _, err := os.Stat(filepath.Join(dir, AuthFile)); errors.Is(err, os.ErrNotExist) {
		c, err := NewCredentials()
		if err != nil {
			return Credentials{}, err
		}
		return c, c.Write(dir)
	}
	set, err := Load(dir, RoleNames())
	if err != nil {
		return Credentials{}, err
	}
	secret, err := LoadAssertionSecret(dir)
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{set, secret}, nil
}

// WriteNew writes a file that must not exist yet: credentials are made
// once, never overwritten.
func WriteNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists: a deployment's bus credentials are made once; remove them to make new ones", path)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
