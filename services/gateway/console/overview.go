package console

import (
	"fmt"
	"net/http"

	"github.com/cloister-cc/cloister/services/gateway/api"
)

// overviewData is the overview page: the account's summary, its
// applications' names, and the day drawn as a chart.
type overviewData struct {
	api.Summary
	AppNames map[string]string
	Chart    chart
}

// overview is the page an account opens on: what needs a decision, what
// runs, what is about to lapse, and what went wrong, over the last day.
func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	v := c.inAccount(w, r, "overview", "Overview")
	if v == nil {
		return
	}
	var s api.Summary
	if err := c.call(r, http.MethodGet, accountPath(v.Account.ID, "summary"), nil, &s); err != nil {
		c.fail(w, r, err)
		return
	}
	names := map[string]string{}
	var apps api.List[api.App]
	if c.call(r, http.MethodGet, accountPath(v.Account.ID, "apps")+"?limit=200", nil, &apps) == nil {
		for _, a := range apps.Items {
			names[a.ID] = a.Name
		}
	}
	v.Data = overviewData{Summary: s, AppNames: names, Chart: newChart(s.Hours)}
	c.render(w, r, http.StatusOK, "overview", v)
}

// chart is the last day as grouped bars, one group per hour: attestations
// passed, attestations failed, certificates issued. Its geometry is worked
// out here so that the template only draws it: SVG in the page, no script.
type chart struct {
	Width, Height, Baseline int
	Peak                    uint64
	Bars                    []bar
	Ticks                   []tick
}

// bar is one rectangle, with the words a screen reader or a hover shows.
type bar struct {
	X, Y, W, H int
	Class      string
	Title      string
}

// tick labels an hour on the axis.
type tick struct {
	X     int
	Label string
}

// Chart geometry, in SVG user units: 24 groups of three bars.
const (
	chartHeight = 160
	chartTop    = 10
	chartBottom = 20 // room for the hour labels
	groupWidth  = 30
	barWidth    = 8
)

func newChart(hours []api.SummaryHour) chart {
	ch := chart{Width: groupWidth * len(hours), Height: chartHeight, Baseline: chartHeight - chartBottom}
	for _, h := range hours {
		ch.Peak = max(ch.Peak, h.AttestationsSucceeded, h.AttestationsFailed, h.CertificatesIssued)
	}
	span := ch.Baseline - chartTop
	for i, h := range hours {
		x := i*groupWidth + (groupWidth-3*barWidth)/2
		hour := h.Start.UTC().Format("15:04")
		for j, s := range []struct {
			n     uint64
			class string
			what  string
		}{
			{h.AttestationsSucceeded, "bar-ok", "attestations passed"},
			{h.AttestationsFailed, "bar-failed", "attestations failed"},
			{h.CertificatesIssued, "bar-issued", "certificates issued"},
		} {
			if s.n == 0 {
				continue
			}
			// At least 2 units tall: one is still seen.
			height := max(2, int(s.n*uint64(span)/ch.Peak))
			ch.Bars = append(ch.Bars, bar{X: x + j*barWidth, Y: ch.Baseline - height, W: barWidth - 1, H: height, Class: s.class,
				Title: fmt.Sprintf("%s UTC: %d %s", hour, s.n, s.what)})
		}
		if i%6 == 0 || i == len(hours)-1 {
			ch.Ticks = append(ch.Ticks, tick{X: i*groupWidth + groupWidth/2, Label: hour})
		}
	}
	return ch
}
