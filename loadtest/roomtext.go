package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// WriteJSON writes the report as JSON.
func (r RoomReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(roomJSON(r))
}

// roomJSON replaces the NaNs JSON cannot hold (no buyer served) by -1.
func roomJSON(r RoomReport) RoomReport {
	fix := func(f *float64) {
		if math.IsNaN(*f) {
			*f = -1
		}
	}
	for _, f := range []*float64{&r.TimeInLineP50, &r.TimeInLineP99, &r.ETAJoin.MedianRelative, &r.ETAJoin.P90Relative,
		&r.ETAJoin.MedianAbsolute, &r.ETAPoll.MedianRelative, &r.ETAPoll.P90Relative, &r.ETAPoll.MedianAbsolute,
		&r.StayedWaitP50, &r.StayedWaitP99, &r.StayedWaitMax} {
		fix(f)
	}
	return r
}

// WriteText writes the report for a terminal.
func (r RoomReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "waiting room: sale %s at %s, stock %d, started %s\n", r.Sale, r.Target, r.Stock, r.StartsAt.Format(time.RFC3339))
	fmt.Fprintf(w, "  %d joined before the start (drawn), %d after; %d joins failed; %d polls in %.1fs (%d late)\n", r.Joined, r.Late, r.JoinErrs, r.Polls, r.Duration, r.LatePolls)
	fmt.Fprintf(w, "  served %d with their pass; %d confirmed\n", r.Served, r.Confirmed)
	fmt.Fprintf(w, "  tickets at the end: %s\n", outcomeText(r.Outcomes))
	fmt.Fprintf(w, "  time in line (start or join to turn): p50 %s  p99 %s\n", secsText(r.TimeInLineP50), secsText(r.TimeInLineP99))
	if r.SoldOutAfter > 0 {
		fmt.Fprintf(w, "  sold out %.1fs after the start\n", r.SoldOutAfter)
	}
	fmt.Fprintf(w, "  turns: %d claimed, %d lapsed (their holders never came for them)\n", r.Claimed, r.Lapsed)
	r.LapseCauses.writeText(w)
	if r.Abandon > 0 {
		fmt.Fprintf(w, "  abandon %.0f%%: %d joiners left after joining; those who stayed waited p50 %s  p99 %s  max %s for their turn\n",
			100*r.Abandon, r.Absent, secsText(r.StayedWaitP50), secsText(r.StayedWaitP99), secsText(r.StayedWaitMax))
	}
	for _, e := range []struct {
		name string
		e    ETAError
	}{{"at join ", r.ETAJoin}, {"at polls", r.ETAPoll}} {
		if e.e.N == 0 {
			fmt.Fprintf(w, "  ETA accuracy %s: no estimate of a buyer who got the turn\n", e.name)
			continue
		}
		fmt.Fprintf(w, "  ETA accuracy %s: median relative error %.0f%% (p90 %.0f%%), median %.1fs off, over %d estimates\n",
			e.name, 100*e.e.MedianRelative, 100*e.e.P90Relative, e.e.MedianAbsolute, e.e.N)
	}
	if r.ETASampled > 1 {
		fmt.Fprintf(w, "  (one estimate in %d kept: the generator bounds its memory at 16 a buyer)\n", r.ETASampled)
	}
	if r.Sybil != nil {
		r.Sybil.writeText(w)
	}
	writeErrors(w, r.Errors)
	r.Generator.writeText(w, "generator")
	for _, g := range r.Shards {
		g.writeText(w, "  shard "+g.Shard)
	}
	fmt.Fprintln(w, "  fairness among the drawn, by decile of join time:")
	fmt.Fprintln(w, "    decile  joined  served  share")
	for i, d := range r.Deciles {
		fmt.Fprintf(w, "    %6d  %6d  %6d  %5.2f%%\n", i+1, d.Joined, d.Served, 100*d.Share)
	}
	fmt.Fprintf(w, "    chi-square %.2f (9 df) against the joiners' shares: p = %.3f\n", r.ChiSquare, r.ChiP)
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.Passed {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, c.Name, c.Detail)
	}
	switch {
	case r.Shard != nil:
		fmt.Fprintf(w, "  outcome check: not run in shard %s (sluice loadtest merge runs it on every shard's --json report)\n", r.Shard)
	case r.Passed:
		fmt.Fprintln(w, "  outcome check: passed")
	default:
		fmt.Fprintln(w, "  outcome check: FAILED")
	}
}

// writeErrors lists the failed requests by class, most frequent first.
func writeErrors(w io.Writer, errs []ErrorCount) {
	if len(errs) == 0 {
		fmt.Fprintln(w, "  errors: none")
		return
	}
	total := 0
	for _, e := range errs {
		total += e.Count
	}
	fmt.Fprintf(w, "  errors: %d requests without the answer they wanted, by request and status and reason, or cause:\n", total)
	for _, e := range errs {
		fmt.Fprintf(w, "    %8d  %s\n", e.Count, e)
	}
}

func (l LapseCauses) writeText(w io.Writer) {
	if l.Gate == 0 && l.seen() == 0 && l.Away == 0 {
		return
	}
	fmt.Fprintf(w, "  lapsed turns by cause: never polled in time %d (the generator late %d, came when told but after the window %d, the poll before failed %d); away %d (offered to a holder who had left)",
		l.seen(), l.GeneratorLate, l.CameWhenTold, l.PollFailed, l.Away)
	if n := l.unseen(); n > 0 {
		fmt.Fprintf(w, "; %d not seen by their holders (the run ended first)", n)
	}
	fmt.Fprintln(w)
}

func (g GeneratorStats) writeText(w io.Writer, name string) {
	fmt.Fprintf(w, "  %s: %d buyers, %d connections; %d polls (%.0f/s after the start, %d late by over %s); CPU %.1f s, %.0f polls per CPU-second; max RSS %s, live heap %.0f bytes a buyer at the start\n",
		name, g.Buyers, g.Connections, g.Polls, g.PollRateAfterStart, g.LatePolls, time.Duration(g.LateAfter*float64(time.Second)), g.CPUSeconds,
		g.PollsPerCPUSecond, mib(g.MaxRSS), g.LiveHeapPerBuyer)
	for _, q := range []struct {
		name string
		q    Quantiles
	}{{"poll (from the time the gate gave)", g.PollLatency}, {"join (from its planned time)", g.JoinLatency}, {"order", g.OrderLatency}} {
		if q.q.Count > 0 {
			fmt.Fprintf(w, "    latency of %s: p50 %s  p95 %s  p99 %s  max %s over %d\n", q.name, latText(q.q.P50), latText(q.q.P95),
				latText(q.q.P99), latText(q.q.Max), q.q.Count)
		}
	}
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func secsText(s float64) string {
	if math.IsNaN(s) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fs", s)
}

func outcomeText(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// WriteHTML writes the report as one self-contained page: the summary,
// and the share served per decile of join time as bars.
func (r RoomReport) WriteHTML(w io.Writer) error {
	var text bytes.Buffer
	r.WriteText(&text)
	maxShare := 0.0
	for _, d := range r.Deciles {
		maxShare = math.Max(maxShare, d.Share)
	}
	type bar struct {
		N            int
		X, H, Y      float64
		Share        float64
		Served, Join int
	}
	var bars []bar
	for i, d := range r.Deciles {
		h := 0.0
		if maxShare > 0 {
			h = 180 * d.Share / maxShare
		}
		bars = append(bars, bar{N: i + 1, X: float64(40 + i*60), H: h, Y: 200 - h, Share: 100 * d.Share, Served: d.Served, Join: d.Joined})
	}
	return roomPage.Execute(w, struct {
		R       RoomReport
		Summary string
		Bars    []bar
	}{roomJSON(r), text.String(), bars})
}

var roomPage = template.Must(template.New("room").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>sluice loadtest — waiting room {{.R.Sale}}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:900px;padding:0 1em;color:#222}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}.pass{color:#070}.fail{color:#b00}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
svg text{font-size:11px}</style></head><body>
<h1>sluice loadtest — waiting room of <code>{{.R.Sale}}</code></h1>
<p>Outcome check: {{if .R.Shard}}<b>not run in shard {{.R.Shard}}</b> (sluice loadtest merge runs it){{else if .R.Passed}}<b class="pass">passed</b>{{else}}<b class="fail">FAILED</b>{{end}} —
{{.R.Served}} served of {{.R.Joined}} drawn and {{.R.Late}} late, stock {{.R.Stock}}.</p>
<h2>Share served, by decile of join time (among the drawn)</h2>
<svg id="fairness" width="660" height="230" role="img" aria-label="share served per decile">
{{range .Bars}}<rect x="{{.X}}" y="{{.Y}}" width="44" height="{{.H}}" fill="#0a7"><title>decile {{.N}}: {{.Served}} of {{.Join}}</title></rect>
<text x="{{.X}}" y="215">{{.N}}</text><text x="{{.X}}" y="{{.Y}}" dy="-3">{{printf "%.1f" .Share}}%</text>
{{end}}</svg>
<p>chi-square {{printf "%.2f" .R.ChiSquare}} (9 df), p = {{printf "%.3f" .R.ChiP}}</p>
<h2>Errors</h2>
{{if .R.Errors}}<table id="errors"><tr><th>request</th><th>status</th><th>reason or cause</th><th>count</th></tr>
{{range .R.Errors}}<tr><td>{{.Request}}</td><td>{{if .Status}}{{.Status}}{{end}}</td><td>{{.Reason}}{{.Cause}}</td><td>{{.Count}}</td></tr>
{{end}}</table>{{else}}<p id="errors">None.</p>{{end}}
<h2>Lapsed turns</h2>
<table id="lapses"><tr><th>the line's count</th><td>{{.R.LapseCauses.Gate}}</td></tr>
<tr><th>never polled in time: the generator late</th><td>{{.R.LapseCauses.GeneratorLate}}</td></tr>
<tr><th>never polled in time: came when told, after the window</th><td>{{.R.LapseCauses.CameWhenTold}}</td></tr>
<tr><th>never polled in time: the poll before failed</th><td>{{.R.LapseCauses.PollFailed}}</td></tr>
<tr><th>away (the holder had left)</th><td>{{.R.LapseCauses.Away}}</td></tr></table>
<h2>Summary</h2><pre>{{.Summary}}</pre>
</body></html>
`))
