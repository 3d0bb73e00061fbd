// Package pcs fetches SGX collateral from Intel's Provisioning
// Certification Service, or from a PCCS that mirrors its API (v4).
package pcs

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cloister-cc/cloister/libs/sgx"
)

// Client fetches collateral from one base URL, such as
// https://api.trustedservices.intel.com/sgx/certification/v4/.
type Client struct {
	base       *url.URL
	rootCRLURL string
	// tdxPrefix leads from the base URL (the SGX API) to the TDX API.
	tdxPrefix string
	http      *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default HTTP client (30 s timeout).
func WithHTTPClient(c *http.Client) Option { return func(p *Client) { p.http = c } }

// WithRootCRLURL sets where the Intel SGX Root CA CRL is fetched; by
// default <base>/rootcacrl, as a PCCS serves it.
func WithRootCRLURL(u string) Option { return func(p *Client) { p.rootCRLURL = u } }

// New returns a client for base.
func New(base string, opts ...Option) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("PCS URL %q is not an http(s) URL", base)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	c := &Client{base: u, http: &http.Client{Timeout: 30 * time.Second}, tdxPrefix: "tdx/"}
	c.rootCRLURL = u.JoinPath("rootcacrl").String()
	// Intel's PCS and a PCCS serve TDX beside SGX: …/sgx/certification/v4/
	// and …/tdx/certification/v4/. Another base has its TDX API under it.
	if i := strings.LastIndex(u.Path, "/sgx/certification/"); i >= 0 {
		c.tdxPrefix = "../../../tdx/certification/" + strings.TrimPrefix(u.Path[i+len("/sgx/certification/"):], "/")
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// maxBody bounds every response read: collateral is a few tens of KiB, a
// CRL at most a few MiB.
const maxBody = 8 << 20

// Fetch returns the collateral for a platform: its TCB Info, the QE
// Identity, their signing chain, and both CRLs. ca is "processor" or
// "platform", the PCK CA that issued the platform's certificate; with the
// prefix "tdx-" it asks for a TDX platform's TDX collateral: the TCB Info
// and QE Identity (TD_QE) from the PCS's TDX API, beside its SGX API
// (…/tdx/certification/v4/ for …/sgx/certification/v4/).
func (c *Client) Fetch(ctx context.Context, fmspc [6]byte, ca string) (*sgx.Collateral, error) {
	tdx := strings.HasPrefix(ca, "tdx-")
	ca = strings.TrimPrefix(ca, "tdx-")
	if ca != "processor" && ca != "platform" {
		return nil, fmt.Errorf("PCK CA %q is neither processor nor platform", ca)
	}
	identities := "" // TCB Info and QE Identity: the SGX API's, or the TDX API's
	if tdx {
		identities = c.tdxPrefix
	}
	var col sgx.Collateral
	body, chain, err := c.get(ctx, identities+"tcb?fmspc="+strings.ToUpper(hex.EncodeToString(fmspc[:])), "TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain")
	if err != nil {
		return nil, fmt.Errorf("fetching TCB Info: %w", err)
	}
	if col.TCBInfoJSON, col.TCBInfoSignature, err = sgx.SplitPCSBody(body); err != nil {
		return nil, fmt.Errorf("fetching TCB Info: %w", err)
	}
	col.TCBInfoIssuerChain = chain
	body, chain, err = c.get(ctx, identities+"qe/identity", "SGX-Enclave-Identity-Issuer-Chain")
	if err != nil {
		return nil, fmt.Errorf("fetching QE Identity: %w", err)
	}
	if col.QEIdentityJSON, col.QEIdentitySignature, err = sgx.SplitPCSBody(body); err != nil {
		return nil, fmt.Errorf("fetching QE Identity: %w", err)
	}
	col.QEIdentityIssuerChain = chain
	body, chain, err = c.get(ctx, "pckcrl?ca="+ca+"&encoding=der", "SGX-PCK-CRL-Issuer-Chain")
	if err != nil {
		return nil, fmt.Errorf("fetching PCK CRL: %w", err)
	}
	if col.PCKCRL, err = crlDER(body); err != nil {
		return nil, fmt.Errorf("fetching PCK CRL: %w", err)
	}
	col.PCKCRLIssuerChain = chain
	body, _, err = c.getURL(ctx, c.rootCRLURL)
	if err != nil {
		return nil, fmt.Errorf("fetching Root CA CRL: %w", err)
	}
	if col.RootCACRL, err = crlDER(body); err != nil {
		return nil, fmt.Errorf("fetching Root CA CRL: %w", err)
	}
	return &col, nil
}

func crlDER(b []byte) ([]byte, error) {
	crl, err := sgx.ParseCRL(b)
	if err != nil {
		return nil, err
	}
	return crl.Raw, nil
}

// get fetches a path under the base URL and returns the body and the first
// of chainHeaders present, URL-decoded (PCS sends PEM chains that way).
func (c *Client) get(ctx context.Context, path string, chainHeaders ...string) ([]byte, []byte, error) {
	ref, err := url.Parse(path)
	if err != nil {
		return nil, nil, err
	}
	body, h, err := c.getURL(ctx, c.base.ResolveReference(ref).String())
	if err != nil {
		return nil, nil, err
	}
	for _, name := range chainHeaders {
		if v := h.Get(name); v != "" {
			pem, err := url.PathUnescape(v) // not QueryUnescape: "+" in base64 stays "+"
			if err != nil {
				return nil, nil, fmt.Errorf("decoding %s header: %w", name, err)
			}
			return body, []byte(pem), nil
		}
	}
	if len(chainHeaders) > 0 {
		return nil, nil, fmt.Errorf("response lacks the %s header", chainHeaders[0])
	}
	return body, nil, nil
}

func (c *Client) getURL(ctx context.Context, u string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, nil, err
	}
	if len(body) > maxBody {
		return nil, nil, errors.New("response larger than 8 MiB")
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s answered %s", req.URL.Redacted(), resp.Status)
	}
	return body, resp.Header, nil
}
