package amd

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cloister-cc/cloister/libs/snp"
)

// KDS fetches VCEKs from AMD's key distribution service, or a mirror of
// it, by its URL scheme: <base>/vcek/v1/<product>/<CHIP_ID in hex>?<the
// reported TCB's patch levels>, and keeps each until it expires.
type KDS struct {
	base *url.URL
	http *http.Client

	mu    sync.Mutex
	vceks map[string]cachedVCEK // by URL
}

type cachedVCEK struct {
	der      []byte
	notAfter time.Time
}

// maxVCEK bounds a VCEK read: a certificate of a few KiB.
const maxVCEK = 64 << 10

// maxCachedVCEKs bounds the cache; past it the cache starts afresh.
const maxCachedVCEKs = 4096

// NewKDS returns a client of the service at base (https://kdsintf.amd.com
// for AMD's own).
func NewKDS(base string) (*KDS, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("AMD KDS URL %q is not an http(s) URL", base)
	}
	return &KDS{base: u, http: &http.Client{Timeout: 30 * time.Second}, vceks: map[string]cachedVCEK{}}, nil
}

// kdsTimeout bounds the fetches of one verification.
const kdsTimeout = 10 * time.Second

// VCEK returns the VCEK of the chip and TCB report names, at at: from
// the cache while it is valid, else fetched. A version 2 report does not
// name its processor: Milan's and Genoa's URLs are tried in turn.
func (k *KDS) VCEK(report []byte, at time.Time) ([]byte, error) {
	r, _, err := snp.ParseReport(report)
	if err != nil {
		return nil, err
	}
	lines := []string{"Milan", "Genoa"}
	if line := snp.ProductLine(r); line != "" {
		lines = []string{line}
	}
	ctx, cancel := context.WithTimeout(context.Background(), kdsTimeout)
	defer cancel()
	var errs []string
	for _, line := range lines {
		u, err := k.vcekURL(line, r.GetChipId(), snp.TCB(r.GetReportedTcb()))
		if err != nil {
			return nil, err
		}
		der, err := k.fetch(ctx, u, at)
		if err == nil {
			return der, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("fetching the VCEK from %s: %s", k.base, strings.Join(errs, "; "))
}

// vcekURL is the KDS URL of a VCEK: the chip's id (Turin's, 8 bytes) and
// the TCB's patch levels, by their KDS names.
func (k *KDS) vcekURL(line string, chipID []byte, tcb snp.TCB) (string, error) {
	levels := tcb.Levels(line)
	if levels == nil {
		return "", fmt.Errorf("no KDS URL for a %q processor", line)
	}
	hwid := chipID
	params := []string{"blSPL", "teeSPL", "snpSPL", "ucodeSPL"}
	if line == "Turin" {
		hwid = chipID[:8]
		params = append([]string{"fmcSPL"}, params...)
	}
	names := map[string]string{"fmcSPL": "fmc", "blSPL": "bootloader", "teeSPL": "tee", "snpSPL": "snp", "ucodeSPL": "microcode"}
	q := make([]string, len(params))
	for i, p := range params {
		q[i] = fmt.Sprintf("%s=%d", p, levels[names[p]])
	}
	u := k.base.JoinPath("vcek", "v1", line, hex.EncodeToString(hwid))
	u.RawQuery = strings.Join(q, "&")
	return u.String(), nil
}

// fetch returns the certificate at u, cached until it expires.
func (k *KDS) fetch(ctx context.Context, u string, at time.Time) ([]byte, error) {
	k.mu.Lock()
	c, ok := k.vceks[u]
	k.mu.Unlock()
	if ok && !at.After(c.notAfter) {
		return c.der, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	der, err := io.ReadAll(io.LimitReader(resp.Body, maxVCEK))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", u, resp.Status)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s: not a DER certificate: %w", u, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.vceks) >= maxCachedVCEKs {
		clear(k.vceks)
	}
	k.vceks[u] = cachedVCEK{der: der, notAfter: cert.NotAfter}
	return der, nil
}
