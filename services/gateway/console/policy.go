package console

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/services/gateway/api"
)

// policyForm is the attestation policy form: the policy shown (stored or
// as submitted), the ISVSVN as typed, and a checkbox per TCB status.
type policyForm struct {
	Policy    api.AttestationPolicy
	MinISVSVN string
	Statuses  []statusChoice
	Admin     bool // whether the user may change the policy
	// TDX and SEV-SNP rules: TDX's statuses, and the lists one per line.
	TDXStatuses     []statusChoice
	TDXMRTDs        string
	TDXRTMRs        [4]string
	TDXAllowDebug   bool
	SNPMeasurements string
	SNPHostData     string
	SNPMinTCB       string
	SNPAllowDebug   bool
}

// statusChoice is one TCB status checkbox.
type statusChoice struct {
	Name, Help string
	Checked    bool
	Warn       bool // accepting it is almost never right
}

// statusHelp says in a few words what each TCB status means. The list of
// statuses itself is sgx.AllStatuses, the one the API checks against.
var statusHelp = map[sgx.TCBStatus]string{
	sgx.StatusUpToDate:                          "the platform's TCB is current",
	sgx.StatusSWHardeningNeeded:                 "current, but enclaves must mitigate known issues in software",
	sgx.StatusConfigurationNeeded:               "current, but the platform's configuration (BIOS) must change",
	sgx.StatusConfigurationAndSWHardeningNeeded: "both of the above",
	sgx.StatusOutOfDate:                         "the platform lacks security updates",
	sgx.StatusOutOfDateConfigurationNeeded:      "out of date, and its configuration must change",
	sgx.StatusRevoked:                           "Intel revoked the platform's keys: its evidence cannot be trusted",
}

func (c *Console) policyRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /a/{account}/policy", c.policyPage)
	m.HandleFunc("POST /a/{account}/policy", c.setPolicy)
}

func policyPath(account string) string { return accountPath(account, "attestation", "policy") }

func newPolicyForm(p api.AttestationPolicy, minISVSVN string, role string) policyForm {
	f := policyForm{Policy: p, MinISVSVN: minISVSVN, Admin: role == "admin"}
	tdx := p.TDX
	if tdx == nil {
		tdx = &api.TDXPolicy{}
	}
	tdxStatuses := tdx.AcceptStatuses
	if len(tdxStatuses) == 0 {
		for _, s := range sgx.DefaultPolicy().AcceptStatuses {
			tdxStatuses = append(tdxStatuses, string(s))
		}
	}
	for _, s := range sgx.AllStatuses {
		f.Statuses = append(f.Statuses, statusChoice{Name: string(s), Help: statusHelp[s],
			Checked: slices.Contains(p.AcceptStatuses, string(s)), Warn: s == sgx.StatusRevoked})
		f.TDXStatuses = append(f.TDXStatuses, statusChoice{Name: string(s), Help: statusHelp[s],
			Checked: slices.Contains(tdxStatuses, string(s)), Warn: s == sgx.StatusRevoked})
	}
	f.TDXMRTDs, f.TDXAllowDebug = strings.Join(tdx.MRTDs, "\n"), tdx.AllowDebug
	copy(f.TDXRTMRs[:], tdx.RTMRs)
	if snp := p.SNP; snp != nil {
		f.SNPMeasurements, f.SNPHostData, f.SNPMinTCB, f.SNPAllowDebug = strings.Join(snp.Measurements, "\n"), snp.HostData, snp.MinTCB, snp.AllowDebug
	}
	return f
}

func (c *Console) policyPage(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "policy", "Attestation policy")
	if v == nil {
		return
	}
	var p api.AttestationPolicy
	if err := c.call(r, http.MethodGet, policyPath(v.Account.ID), nil, &p); err != nil {
		c.fail(w, r, err)
		return
	}
	v.Data = newPolicyForm(p, strconv.FormatUint(uint64(p.MinISVSVN), 10), v.Account.Role)
	c.render(w, r, http.StatusOK, "policy", v)
}

func (c *Console) setPolicy(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "policy", "Attestation policy")
	if v == nil {
		return
	}
	p, err := parsePolicyForm(r)
	if err == nil {
		var saved api.AttestationPolicy
		if err = c.call(r, http.MethodPut, policyPath(v.Account.ID), p, &saved); err == nil {
			msg := "Attestation policy saved: it applies to the next evidence verified."
			if saved.AllowSimulation {
				msg += " Simulated evidence is accepted: do not run production workloads in this account."
			}
			flash(w, r, msg)
			http.Redirect(w, r, consolePath(v.Account.ID, "policy"), http.StatusSeeOther)
			return
		}
		if statusOf(err) == http.StatusUnauthorized {
			c.fail(w, r, err)
			return
		}
	}
	v.Error = err.Error()
	v.Data = newPolicyForm(p, r.PostFormValue("min_isvsvn"), v.Account.Role)
	c.render(w, r, formStatus(err), "policy", v)
}

// parsePolicyForm reads the policy form; unchecked boxes are absent.
func parsePolicyForm(r *http.Request) (api.AttestationPolicy, error) {
	f := r.PostFormValue
	p := api.AttestationPolicy{AcceptStatuses: r.PostForm["accept_statuses"], AllowDebug: f("allow_debug") == "on",
		AllowSimulation: f("allow_simulation") == "on", RequireNodeAttestation: f("require_node_attestation") == "on"}
	if p.AcceptStatuses == nil {
		p.AcceptStatuses = []string{}
	}
	if s := strings.TrimSpace(f("min_isvsvn")); s != "" {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return p, formError{fmt.Sprintf("Minimum ISVSVN must be a whole number from 0 to 65535, not %q", s)}
		}
		p.MinISVSVN = uint32(n)
	}
	p.TDX = &api.TDXPolicy{AcceptStatuses: r.PostForm["tdx_accept_statuses"], AllowDebug: f("tdx_allow_debug") == "on",
		MRTDs: append([]string{}, lines(f("tdx_mrtds"))...)}
	if p.TDX.AcceptStatuses == nil {
		p.TDX.AcceptStatuses = []string{}
	}
	var rtmrs []string
	for i := range 4 {
		rtmrs = append(rtmrs, strings.TrimSpace(f(fmt.Sprintf("tdx_rtmr%d", i))))
	}
	if strings.Join(rtmrs, "") != "" {
		p.TDX.RTMRs = rtmrs
	}
	p.SNP = &api.SNPPolicy{AllowDebug: f("snp_allow_debug") == "on", Measurements: append([]string{}, lines(f("snp_measurements"))...),
		HostData: strings.TrimSpace(f("snp_host_data")), MinTCB: strings.TrimSpace(f("snp_min_tcb"))}
	return p, nil
}
