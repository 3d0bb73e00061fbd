// Package gatewaytest runs all of Cloister in one test process, for the
// tests of what talks to the gateway (the node agent, the CLI): the five
// services on an embedded NATS server (SGX simulation on), and a gateway
// serving its REST API and, over TLS with client certificates, its node
// listener, as `cloister server` does. Nothing is faked; Options.Wrap lets
// a test watch the traffic or inject a fault in front of the real thing.
package gatewaytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloister-cc/cloister/libs/events"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/service"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/testkit"
	"github.com/cloister-cc/cloister/libs/testkit/servicetest"
	"github.com/cloister-cc/cloister/services/account"
	"github.com/cloister-cc/cloister/services/attestation"
	"github.com/cloister-cc/cloister/services/ca"
	"github.com/cloister-cc/cloister/services/gateway"
	"github.com/cloister-cc/cloister/services/gateway/api"
	"github.com/cloister-cc/cloister/services/imageconverter"
	"github.com/cloister-cc/cloister/services/noderegistry"
)

// Options change the stack.
type Options struct {
	// Wrap, if set, wraps the API's handler and the node listener's (node
	// is true for the latter), e.g. to record requests or inject faults.
	Wrap func(h http.Handler, node bool) http.Handler
	// Cluster, if set, is the NATS cluster the stack runs on instead of
	// a server of its own (servicetest.OnCluster).
	Cluster *testkit.Cluster
	// Replicas is how many instances of each service run, each with its
	// own connection (on a cluster, to the nodes in turn); default 1.
	Replicas int
	// Attestation, if set, changes the attestation service's
	// configuration (a clock in a vector's window, say).
	Attestation func(*attestation.Config)
}

// Stack is one running deployment.
type Stack struct {
	*servicetest.Stack
	Gateway *gateway.Gateway
	// Attestation is the attestation service's first replica.
	Attestation *attestation.Service
	// API serves the REST API, Node the node listener (mTLS).
	API, Node *httptest.Server
}

// Start runs the deployment until the test ends.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	var stOpts []servicetest.Option
	if o.Cluster != nil {
		stOpts = append(stOpts, servicetest.OnCluster(o.Cluster))
	}
	st := servicetest.New(t, stOpts...)
	s := &Stack{Stack: st}
	for i := range max(o.Replicas, 1) {
		servicetest.Start(st, "account", func(ctx context.Context, opts service.Options) (*account.Service, error) {
			return account.Start(ctx, account.Config{Options: opts, PasswordCost: &account.PasswordCost{Memory: 1024, Time: 1, Threads: 1}})
		})
		att := servicetest.Start(st, "attestation", func(ctx context.Context, opts service.Options) (*attestation.Service, error) {
			cfg := attestation.Config{Options: opts, Simulation: true, KEK: st.KEK, Cache: st.Cache}
			if o.Attestation != nil {
				o.Attestation(&cfg)
			}
			return attestation.Start(ctx, cfg)
		})
		if i == 0 {
			s.Attestation = att
		}
		servicetest.Start(st, "ca", func(ctx context.Context, opts service.Options) (*ca.Service, error) {
			return ca.Start(ctx, ca.Config{Options: opts, KEK: st.KEK, Cache: st.Cache})
		})
		servicetest.Start(st, "imageconverter", func(ctx context.Context, opts service.Options) (*imageconverter.Service, error) {
			return imageconverter.Start(ctx, imageconverter.Config{Options: opts, KEK: st.KEK, GenerateKey: reuseSigningKey})
		})
		servicetest.Start(st, "noderegistry", func(ctx context.Context, opts service.Options) (*noderegistry.Service, error) {
			return noderegistry.Start(ctx, noderegistry.Config{Options: opts, Cache: st.Cache})
		})
	}
	gw, err := gateway.New(context.Background(), gateway.Config{NATS: st.ConnectAs("gateway"), Replicas: st.Replicas(), Assertions: st.Identities().Signer(t), Cache: st.Cache,
		CredentialRate: gateway.CredentialRate{Every: time.Millisecond, Burst: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	s.Gateway = gw
	wrap := o.Wrap
	if wrap == nil {
		wrap = func(h http.Handler, _ bool) http.Handler { return h }
	}
	s.API = httptest.NewServer(wrap(gw, false))
	t.Cleanup(s.API.Close)
	s.Node = httptest.NewUnstartedServer(wrap(gw.NodeHandler(), true))
	s.Node.TLS = gw.NodeTLSConfig(selfSigned(t))
	// Refused handshakes are some tests' point; keep them out of the logs.
	s.Node.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.Node.StartTLS()
	t.Cleanup(s.Node.Close)
	return s
}

// NodeServerCA is the PEM of the node listener's certificate, which a
// node trusts (the agent's --server-ca).
func (s *Stack) NodeServerCA() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Node.Certificate().Raw})
}

// Client calls the API as token.
func (s *Stack) Client(token string) *api.Client {
	return &api.Client{BaseURL: s.API.URL, Token: token, HTTP: s.API.Client()}
}

// Call is Client(token).Do, failing the test on an error.
func (s *Stack) Call(token, method, path string, in, out any) {
	s.T.Helper()
	if err := s.Client(token).Do(context.Background(), method, path, in, out); err != nil {
		s.T.Fatalf("%s %s: %v", method, path, err)
	}
}

// Admin signs up email, logs in and creates an account whose policy
// accepts simulated evidence, and waits for the account's CA. It returns
// the session token and the account id.
func (s *Stack) Admin(email string) (token, accountID string) {
	s.T.Helper()
	creds := map[string]string{"email": email, "password": "correct horse battery"}
	s.Call("", "POST", "/v1/users", creds, nil)
	var sess api.Session
	s.Call("", "POST", "/v1/sessions", creds, &sess)
	var a api.Account
	s.Call(sess.Token, "POST", "/v1/accounts", map[string]string{"name": "A"}, &a)
	s.Call(sess.Token, "PUT", "/v1/accounts/"+a.ID+"/attestation/policy",
		api.AttestationPolicy{AcceptStatuses: []string{"UpToDate"}, AllowSimulation: true}, nil)
	deadline := time.Now().Add(10 * time.Second)
	for s.Client(sess.Token).Do(context.Background(), "GET", "/v1/accounts/"+a.ID+"/ca", nil, nil) != nil {
		if time.Now().After(deadline) {
			s.T.Fatalf("the CA of account %s did not appear", a.ID)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return sess.Token, a.ID
}

// JoinToken creates a join token in the account and returns it, with its
// secret.
func (s *Stack) JoinToken(token, accountID string, req api.CreateJoinToken) api.JoinToken {
	s.T.Helper()
	if req.Name == "" {
		req.Name = "test"
	}
	var jt api.JoinToken
	s.Call(token, "POST", "/v1/accounts/"+accountID+"/join-tokens", req, &jt)
	return jt
}

// Node reads a node of the account.
func (s *Stack) GetNode(token, accountID, nodeID string) api.Node {
	s.T.Helper()
	var n api.Node
	s.Call(token, "GET", "/v1/accounts/"+accountID+"/nodes/"+nodeID, nil, &n)
	return n
}

// Approved is an application whose domain and one converted image are
// approved.
type Approved struct {
	AppID, ImageID, Domain string
	MRENCLAVE, MRSIGNER    [32]byte
}

// ApprovedApp creates an application serving domain in the account,
// announces a converted image of it with the measurement given, as the
// converter does once it has built one, and approves both tasks as token
// (whose user is userID). The attestation service and the CA learn of
// the approvals through events: callers retry until they have.
func (s *Stack) ApprovedApp(token, userID, accountID, domain string, mrenclave, mrsigner [32]byte) Approved {
	s.T.Helper()
	base := "/v1/accounts/" + accountID
	var a api.App
	s.Call(token, "POST", base+"/apps", map[string]any{"name": "hello", "input_image": "registry.example.com/samples/hello:1",
		"output_image": "registry.example.com/samples/hello-sgx", "certificate": map[string]any{"domain": domain}}, &a)
	img := &imageconverterv1.Image{Id: uuid.NewString(), AccountId: accountID, AppId: a.ID, Tag: "1", Status: "converted",
		Mrenclave: mrenclave[:], Mrsigner: mrsigner[:], RequestedBy: userID}
	ctx := context.Background()
	msg, _, err := events.NewMessage(ctx, events.Subject(imageconverterv1.ImageConverterServiceName, &imageconverterv1.ImageConverted{}),
		imageconverterv1.ImageConverterServiceName, accountID, &imageconverterv1.ImageConverted{Image: img})
	if err != nil {
		s.T.Fatal(err)
	}
	if err := events.Publish(ctx, s.JetStream(), msg); err != nil {
		s.T.Fatal(err)
	}
	var tasks api.List[api.Task]
	deadline := time.Now().Add(10 * time.Second)
	for len(tasks.Items) < 2 {
		if time.Now().After(deadline) {
			s.T.Fatalf("the domain and image tasks of %s did not appear: %+v", a.ID, tasks.Items)
		}
		time.Sleep(10 * time.Millisecond)
		s.Call(token, "GET", base+"/tasks?status=pending", nil, &tasks)
	}
	for _, t := range tasks.Items {
		s.Call(token, "POST", base+"/tasks/"+t.ID+"/approve", nil, nil)
	}
	return Approved{AppID: a.ID, ImageID: img.Id, Domain: domain, MRENCLAVE: mrenclave, MRSIGNER: mrsigner}
}

// signingKey is one enclave signing key for every account: making an
// RSA-3072 e = 3 key takes a second or more.
var signingKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return sgx.GenerateSigningKey(rand.Reader) })

func reuseSigningKey(io.Reader) (*rsa.PrivateKey, error) { return signingKey() }

// selfSigned is the node listener's own certificate for 127.0.0.1, as
// `cloister server --node-tls-self-signed` makes one.
func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(fmt.Errorf("self-signing the node listener: %w", err))
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
