package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Outcomes an answer falls in.
const (
	OutcomeAdmitted = "admitted" // 202, or 201 when the answer waited for the decision (Prefer: wait)
	OutcomeDiverted = "diverted" // sold out, busy, already ordered, outside the window
	OutcomeRejected = "rejected" // other 4xx: bad input
	OutcomeFailed   = "failed"   // 5xx and transport errors
)

// Outcomes lists the outcomes in display order.
func Outcomes() []string {
	return []string{OutcomeAdmitted, OutcomeDiverted, OutcomeRejected, OutcomeFailed}
}

// OutcomeOf classifies a result.
func OutcomeOf(r Result) string {
	switch s := r.Status; {
	case s == 202, s == 201:
		return OutcomeAdmitted
	case s == 409, s == 410, s == 429, s == 425, s == 403:
		return OutcomeDiverted
	case s >= 400 && s < 500:
		return OutcomeRejected
	}
	return OutcomeFailed
}

// Latencies summarises a latency distribution.
type Latencies struct {
	Count uint64        `json:"count"`
	Min   time.Duration `json:"min"`
	Mean  time.Duration `json:"mean"`
	P50   time.Duration `json:"p50"`
	P90   time.Duration `json:"p90"`
	P95   time.Duration `json:"p95"`
	P99   time.Duration `json:"p99"`
	P999  time.Duration `json:"p999"`
	Max   time.Duration `json:"max"`
}

// Second is one second of the run, for the charts. Sent and ByOutcome
// count requests by their intended send time; Offered is what the
// schedule asked for in that second, Answered the answers that arrived in
// it: the offered rate laid over the achieved one.
type Second struct {
	T         int               `json:"t"`
	Sent      uint64            `json:"sent"`
	Offered   float64           `json:"offered"`
	Answered  uint64            `json:"answered"`
	ByOutcome map[string]uint64 `json:"by_outcome"`
	P50       time.Duration     `json:"p50"`
	P99       time.Duration     `json:"p99"`
}

// Bucket is a tenth of a second around T0, where a drop's first moments
// happen faster than a per-second chart shows. Counts are per bucket;
// Offered is the schedule's count in it.
type Bucket struct {
	T         float64           `json:"t"` // start, seconds from the start of the run
	Sent      uint64            `json:"sent"`
	Offered   float64           `json:"offered"`
	Answered  uint64            `json:"answered"`
	ByOutcome map[string]uint64 `json:"by_outcome"`
	P50       time.Duration     `json:"p50"`
	P99       time.Duration     `json:"p99"`
}

// Fine buckets: bucketWidth wide, from fineBefore before T0 to fineAfter
// after it.
const (
	bucketWidth = 100 * time.Millisecond
	fineBefore  = time.Second
	fineAfter   = 4 * time.Second
)

// SaleSample is the gate's view of the sale at a moment of the run.
type SaleSample struct {
	T          float64 `json:"t"` // seconds since the start
	State      string  `json:"state"`
	Admitted   int64   `json:"admitted"`
	Remaining  int64   `json:"remaining"`
	Confirmed  int64   `json:"confirmed"`
	QueueDepth int64   `json:"queue_depth"`
}

// Report is a run's outcome.
type Report struct {
	Target       string               `json:"target"`
	Sale         string               `json:"sale"`
	Profile      string               `json:"profile"`
	Started      time.Time            `json:"started"`
	Duration     time.Duration        `json:"duration"` // first intended send to last answer
	Scheduled    uint64               `json:"scheduled"`
	Requests     uint64               `json:"requests"`
	Dropped      uint64               `json:"dropped"`
	Late         uint64               `json:"late"`
	LateAfter    time.Duration        `json:"late_after"`
	TargetRate   float64              `json:"target_rate"`
	AchievedRate float64              `json:"achieved_rate"`
	Throughput   float64              `json:"throughput"` // answered (not failed) per second
	Latency      map[string]Latencies `json:"latency"`    // by outcome, and "all"
	Status       map[string]uint64    `json:"status"`
	Reasons      map[string]uint64    `json:"reasons"`
	Kinds        map[string]uint64    `json:"kinds"`
	Errors       map[string]uint64    `json:"errors,omitempty"`
	Timeline     []Second             `json:"timeline"`
	// T0 is when the drop opened (seconds from the start): the spike's
	// peak, else the start. Phases are the schedule's named stretches.
	T0     float64  `json:"t0"`
	Phases []Phase  `json:"phases,omitempty"`
	Fine   []Bucket `json:"fine,omitempty"` // 100 ms buckets around T0
	// Thresholds are the --threshold checks and how they came out;
	// Comparison the change from a previous report (--compare).
	Thresholds   []ThresholdResult `json:"thresholds,omitempty"`
	Comparison   *Comparison       `json:"comparison,omitempty"`
	SaleSamples  []SaleSample      `json:"sale_samples,omitempty"`
	Verification *Verification     `json:"verification,omitempty"`
	// Interrupted: the run was stopped before its profile ended (Ctrl-C);
	// the figures cover what was sent, and the outcome check did not run.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Aggregator folds results into a Report. It is safe for concurrent use.
type Aggregator struct {
	mu          sync.Mutex
	interrupted bool
	start       time.Time
	late        time.Duration
	last        time.Time // the last answer
	sent        time.Time // the last send
	hists       map[string]*hdrhistogram.Histogram
	perSec      []*secondAgg
	answered    []uint64 // answers by the second they arrived in
	fineFrom    time.Duration
	fine        []*secondAgg // bucketWidth each, from fineFrom
	fineAns     []uint64
	rep         Report
}

type secondAgg struct {
	sent      uint64
	byOutcome map[string]uint64
	hist      *hdrhistogram.Histogram
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 120_000_000, 3) } // 1 µs to 120 s

// newFineHist is a fine bucket's histogram: two significant figures are
// enough for a chart, and a fortieth of the memory.
func newFineHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 120_000_000, 2) }

// Zoom keeps 100 ms buckets around t0, the moment the drop opens.
func (a *Aggregator) Zoom(t0 time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fineFrom = max(0, t0-fineBefore)
	n := int((t0 + fineAfter - a.fineFrom) / bucketWidth)
	a.fine = make([]*secondAgg, n)
	a.fineAns = make([]uint64, n)
	for i := range a.fine {
		a.fine[i] = &secondAgg{byOutcome: map[string]uint64{}, hist: newFineHist()}
	}
}

// NewAggregator starts a report for a run that began at start.
func NewAggregator(start time.Time, lateAfter time.Duration) *Aggregator {
	a := &Aggregator{start: start, late: lateAfter, hists: map[string]*hdrhistogram.Histogram{"all": newHist()}}
	for _, o := range Outcomes() {
		a.hists[o] = newHist()
	}
	a.rep = Report{Started: start, LateAfter: lateAfter, Status: map[string]uint64{}, Reasons: map[string]uint64{},
		Kinds: map[string]uint64{}, Errors: map[string]uint64{}}
	return a
}

// Add records one result.
func (a *Aggregator) Add(r Result) {
	a.mu.Lock()
	defer a.mu.Unlock()
	o := OutcomeOf(r)
	us := max(1, r.Latency.Microseconds())
	_ = a.hists["all"].RecordValue(us)
	_ = a.hists[o].RecordValue(us)
	a.rep.Requests++
	if r.late(a.late) {
		a.rep.Late++
	}
	if r.Err != "" {
		if _, ok := a.rep.Errors[r.Err]; ok || len(a.rep.Errors) < 20 {
			a.rep.Errors[r.Err]++
		} else {
			a.rep.Errors["(other errors)"]++
		}
		a.rep.Status["error"]++
	} else {
		a.rep.Status[statusName(r.Status)]++
	}
	if r.Reason != "" {
		a.rep.Reasons[r.Reason]++
	}
	a.rep.Kinds[string(r.Kind)]++
	sec := int(r.Intended.Sub(a.start) / time.Second)
	for len(a.perSec) <= sec {
		a.perSec = append(a.perSec, &secondAgg{byOutcome: map[string]uint64{}, hist: newHist()})
	}
	s := a.perSec[sec]
	s.sent++
	s.byOutcome[o]++
	_ = s.hist.RecordValue(us)
	answeredAt := r.Intended.Add(r.Latency).Sub(a.start)
	if sec := int(answeredAt / time.Second); sec >= 0 && sec < 1<<20 {
		for len(a.answered) <= sec {
			a.answered = append(a.answered, 0)
		}
		a.answered[sec]++
	}
	if i := int((r.Intended.Sub(a.start) - a.fineFrom) / bucketWidth); r.Intended.Sub(a.start) >= a.fineFrom && i < len(a.fine) {
		f := a.fine[i]
		f.sent++
		f.byOutcome[o]++
		_ = f.hist.RecordValue(us)
	}
	if i := int((answeredAt - a.fineFrom) / bucketWidth); answeredAt >= a.fineFrom && i < len(a.fineAns) {
		a.fineAns[i]++
	}
	if r.Sent.After(a.sent) {
		a.sent = r.Sent
	}
	if end := r.Intended.Add(r.Latency); end.After(a.last) {
		a.last = end
	}
}

// statusNames are the HTTP status codes as map keys, made once.
var statusNames = func() (n [600]string) {
	for i := range n {
		n[i] = strconv.Itoa(i)
	}
	return n
}()

func statusName(code int) string {
	if code >= 0 && code < len(statusNames) {
		return statusNames[code]
	}
	return strconv.Itoa(code)
}

// Snapshot returns the counts so far (for progress): requests, by
// outcome, late sends, p50 and p99.
// Snapshot returns requests so far, answers by outcome (and "replayed",
// the admitted answers that were replays of an earlier order), late
// sends, p50 and p99.
func (a *Aggregator) Snapshot() (uint64, map[string]uint64, uint64, time.Duration, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	by := map[string]uint64{}
	for _, o := range Outcomes() {
		by[o] = uint64(a.hists[o].TotalCount())
	}
	by["replayed"] = a.rep.Reasons["replayed"]
	all := a.hists["all"]
	return a.rep.Requests, by, a.rep.Late, us(all.ValueAtQuantile(50)), us(all.ValueAtQuantile(99))
}

func us(v int64) time.Duration { return time.Duration(v) * time.Microsecond }

func summarise(h *hdrhistogram.Histogram) Latencies {
	if h.TotalCount() == 0 {
		return Latencies{}
	}
	return Latencies{Count: uint64(h.TotalCount()), Min: us(h.Min()), Mean: time.Duration(h.Mean() * float64(time.Microsecond)),
		P50: us(h.ValueAtQuantile(50)), P90: us(h.ValueAtQuantile(90)), P95: us(h.ValueAtQuantile(95)), P99: us(h.ValueAtQuantile(99)),
		P999: us(h.ValueAtQuantile(99.9)), Max: us(h.Max())}
}

// Report finishes the report of a run.
func (a *Aggregator) Report(cfg Config, run *Run, samples []SaleSample) Report {
	a.mu.Lock()
	defer a.mu.Unlock()
	rep := a.rep
	rep.Interrupted = a.interrupted
	rep.Target, rep.Sale, rep.Profile = cfg.Target, cfg.Sale, cfg.Profile.Name
	if run != nil {
		rep.Scheduled, rep.Dropped = run.Scheduled(), run.Dropped()
	}
	if !a.last.IsZero() {
		rep.Duration = a.last.Sub(a.start)
	}
	if d := cfg.Profile.Duration().Seconds(); d > 0 {
		planned := cfg.Profile.Total()
		if cfg.MaxRequests > 0 {
			planned = min(planned, cfg.MaxRequests)
		}
		rep.TargetRate = float64(planned) / d
	}
	// Achieved: requests over the time it took to send them (as vegeta's
	// rate). On schedule that is the profile's length; a generator or a
	// gate that cannot keep up stretches it.
	if span := a.sent.Sub(a.start).Seconds(); span > 0 {
		planned := cfg.Profile.Duration().Seconds()
		if a.interrupted {
			planned = 0 // the run ended early: the rate is over what was sent
		}
		rep.AchievedRate = float64(rep.Requests) / max(span, planned)
	}
	if secs := rep.Duration.Seconds(); secs > 0 {
		rep.Throughput = float64(rep.Requests-uint64(a.hists[OutcomeFailed].TotalCount())) / secs
	}
	rep.Latency = map[string]Latencies{}
	for k, h := range a.hists {
		rep.Latency[k] = summarise(h)
	}
	prof := cfg.Profile
	offered := func(from, to time.Duration) float64 { return float64(prof.CountBy(to)) - float64(prof.CountBy(from)) }
	// The timeline runs to the last second anything was sent or answered
	// in: the last sends' answers may come in the second after.
	rep.Timeline = make([]Second, max(len(a.perSec), len(a.answered)))
	for i := range rep.Timeline {
		rep.Timeline[i] = Second{T: i, Offered: offered(time.Duration(i)*time.Second, time.Duration(i+1)*time.Second)}
		if i < len(a.perSec) {
			s := a.perSec[i]
			rep.Timeline[i].Sent, rep.Timeline[i].ByOutcome = s.sent, s.byOutcome
			rep.Timeline[i].P50, rep.Timeline[i].P99 = us(s.hist.ValueAtQuantile(50)), us(s.hist.ValueAtQuantile(99))
		}
		if i < len(a.answered) {
			rep.Timeline[i].Answered = a.answered[i]
		}
	}
	rep.T0 = prof.T0().Seconds()
	rep.Phases = prof.Phases()
	// Fine buckets up to the last one anything was sent or answered in.
	last := -1
	for i, f := range a.fine {
		if f.sent > 0 || a.fineAns[i] > 0 {
			last = i
		}
	}
	for i, f := range a.fine[:last+1] {
		from := a.fineFrom + time.Duration(i)*bucketWidth
		rep.Fine = append(rep.Fine, Bucket{T: from.Seconds(), Sent: f.sent, ByOutcome: f.byOutcome,
			Offered: offered(from, from+bucketWidth), Answered: a.fineAns[i],
			P50: us(f.hist.ValueAtQuantile(50)), P99: us(f.hist.ValueAtQuantile(99))})
	}
	rep.SaleSamples = samples
	return rep
}

// WriteJSON writes the report as JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes a summary for people, in the manner of vegeta's.
func (r Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "Target        %s  sale %s  profile %s\n", r.Target, r.Sale, r.Profile)
	if r.Interrupted {
		fmt.Fprintf(w, "INTERRUPTED   the run was stopped early: figures cover what was sent; the outcome check did not run\n")
	}
	fmt.Fprintf(w, "Requests      [total, target rate, achieved rate, throughput]  %d, %.1f/s, %.1f/s, %.1f/s\n",
		r.Requests, r.TargetRate, r.AchievedRate, r.Throughput)
	fmt.Fprintf(w, "Schedule      [sent, late (>%v), dropped]  %d, %d, %d\n", r.LateAfter, r.Scheduled, r.Late, r.Dropped)
	fmt.Fprintf(w, "Duration      %v\n", r.Duration.Round(time.Millisecond))
	fmt.Fprintf(w, "Latencies     [count, min, mean, 50, 90, 95, 99, 99.9, max]  (from the intended send time)\n")
	for _, k := range append([]string{"all"}, Outcomes()...) {
		l := r.Latency[k]
		if l.Count == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-9s   %d, %v, %v, %v, %v, %v, %v, %v, %v\n", k, l.Count, rd(l.Min), rd(l.Mean), rd(l.P50), rd(l.P90), rd(l.P95), rd(l.P99), rd(l.P999), rd(l.Max))
	}
	fmt.Fprintf(w, "Status codes  %s\n", counts(r.Status))
	fmt.Fprintf(w, "Reasons       %s\n", counts(r.Reasons))
	fmt.Fprintf(w, "Kinds         %s\n", counts(r.Kinds))
	r.writePhases(w)
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "Errors:\n")
		for _, k := range sortedKeys(r.Errors) {
			fmt.Fprintf(w, "  %d × %s\n", r.Errors[k], k)
		}
	}
	if v := r.Verification; v != nil {
		v.WriteText(w)
	}
	r.writeThresholds(w)
	r.writeComparison(w)
}

// writePhases names the schedule's phases and shows the first second
// from T0 in tenths: where a drop's thundering herd is.
func (r Report) writePhases(w io.Writer) {
	if len(r.Phases) > 0 {
		fmt.Fprintf(w, "Phases        T0 at %.1fs:", r.T0)
		for i, p := range r.Phases {
			sep := " "
			if i > 0 {
				sep = " · "
			}
			rate := fmt.Sprintf("%.0f/s", p.From)
			if p.From != p.To {
				rate = fmt.Sprintf("%.0f→%.0f/s", p.From, p.To)
			}
			fmt.Fprintf(w, "%s%s %.1f–%.1fs %s", sep, p.Name, p.Start, p.End, rate)
		}
		fmt.Fprintln(w)
	}
	var rows []Bucket
	for _, b := range r.Fine {
		if b.T >= r.T0-1e-9 && len(rows) < 10 {
			rows = append(rows, b)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "From T0       [t, offered, sent, answered, admitted, diverted, p99] per 100 ms\n")
	for _, b := range rows {
		fmt.Fprintf(w, "  +%.1fs       %.0f, %d, %d, %d, %d, %v\n", b.T-r.T0, b.Offered, b.Sent, b.Answered,
			b.ByOutcome[OutcomeAdmitted], b.ByOutcome[OutcomeDiverted], rd(b.P99))
	}
}

func (r Report) writeThresholds(w io.Writer) {
	if len(r.Thresholds) == 0 {
		return
	}
	verdict := "all passed"
	if !r.ThresholdsPassed() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "Thresholds    %s\n", verdict)
	for _, t := range r.Thresholds {
		mark := "✓"
		if !t.Passed {
			mark = "✗"
		}
		line := fmt.Sprintf("  %s %-24s %s", mark, t.Expr, t.Text)
		if t.Error != "" {
			line += " (" + t.Error + ")"
		}
		fmt.Fprintln(w, line)
	}
}

func (r Report) writeComparison(w io.Writer) {
	c := r.Comparison
	if c == nil {
		return
	}
	fmt.Fprintf(w, "Compared with %s (run of %s)\n", c.Against, c.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "  %-14s %14s %14s %9s\n", "figure", "before", "now", "change")
	for _, ch := range c.Changes {
		fmt.Fprintf(w, "  %-14s %14s %14s %9s %s\n", ch.Figure, ch.BeforeText, ch.NowText, ch.ChangeText(), ch.Verdict())
	}
}

func rd(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(time.Millisecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d
}

func counts(m map[string]uint64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "  ")
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

func (a *Aggregator) setInterrupted(v bool) {
	a.mu.Lock()
	a.interrupted = v
	a.mu.Unlock()
}
