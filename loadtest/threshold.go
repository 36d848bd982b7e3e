package loadtest

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A Threshold is a pass/fail criterion on a run's figures, as k6's:
// "p99<50ms", "dropped==0", "failed_ratio<1%", "admitted.p99<=20ms",
// "achieved_rate>=1900". A run that misses one fails (sluice loadtest
// exits 99, k6's code for it).
//
// Figures: latency p50, p90, p95, p99, p99.9 (or p999), mean, min and max, of
// all answers or of one outcome (admitted.p99, diverted.max …), in a
// duration (50ms, 1s, 250us; a bare number is milliseconds); counts
// requests, scheduled, late, dropped, errors and an outcome's name
// (admitted, diverted, rejected, failed); the ratios of those to the
// requests (failed_ratio, late_ratio, dropped_ratio …; "1%" or 0.01);
// rates achieved_rate, target_rate and throughput (per second); and
// confirmed, the orders the backend confirmed (needs the outcome check).
type Threshold struct {
	Expr   string  `json:"expr"`
	Figure string  `json:"figure"`
	Op     string  `json:"op"`
	Value  float64 `json:"value"` // seconds for latencies
}

// ThresholdResult is a threshold and what the run measured.
type ThresholdResult struct {
	Threshold
	Actual float64 `json:"actual"`
	// Text is the measured figure for people; Passed says whether it met
	// the threshold; Error why it could not be judged (counted as a miss).
	Text   string `json:"text"`
	Passed bool   `json:"passed"`
	Error  string `json:"error,omitempty"`
}

var thresholdRe = regexp.MustCompile(`^\s*([a-z][a-z0-9_]*(?:\.[a-z0-9_.]+)?)\s*(<=|>=|==|!=|<|>)\s*([0-9.eE+-]+)\s*([a-zµ%/]*)\s*$`)

var latencyStats = []string{"p50", "p90", "p95", "p99", "p99.9", "p999", "mean", "min", "max"}

var countFigures = []string{"requests", "scheduled", "late", "dropped", "errors"}

var rateFigures = []string{"achieved_rate", "target_rate", "throughput"}

// ParseThreshold reads a threshold expression.
func ParseThreshold(expr string) (Threshold, error) {
	m := thresholdRe.FindStringSubmatch(expr)
	if m == nil {
		return Threshold{}, fmt.Errorf("threshold %q: want FIGURE OP VALUE, as p99<50ms or dropped==0", expr)
	}
	t := Threshold{Expr: strings.TrimSpace(expr), Figure: m[1], Op: m[2]}
	v, err := strconv.ParseFloat(m[3], 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return Threshold{}, fmt.Errorf("threshold %q: %q is not a number", expr, m[3])
	}
	unit := m[4]
	kind, err := figureKind(t.Figure)
	if err != nil {
		return Threshold{}, fmt.Errorf("threshold %q: %w", expr, err)
	}
	switch kind {
	case "latency":
		d, ok := map[string]time.Duration{"": time.Millisecond, "ms": time.Millisecond, "s": time.Second,
			"us": time.Microsecond, "µs": time.Microsecond, "m": time.Minute}[unit]
		if !ok {
			return Threshold{}, fmt.Errorf("threshold %q: a latency's unit is us, ms, s or m", expr)
		}
		t.Value = v * d.Seconds()
	case "ratio":
		switch unit {
		case "%":
			t.Value = v / 100
		case "":
			t.Value = v
		default:
			return Threshold{}, fmt.Errorf("threshold %q: a ratio is a fraction or a percentage", expr)
		}
	default:
		if unit != "" && !(kind == "rate" && unit == "/s") {
			return Threshold{}, fmt.Errorf("threshold %q: %s takes a plain number", expr, t.Figure)
		}
		t.Value = v
	}
	return t, nil
}

// figureKind is latency, count, ratio, rate or confirmed.
func figureKind(fig string) (string, error) {
	if slices.Contains(latencyStats, fig) {
		return "latency", nil
	}
	outcome, stat, dotted := strings.Cut(fig, ".")
	if dotted {
		if !slices.Contains(Outcomes(), outcome) {
			return "", fmt.Errorf("%q: an outcome's latency is admitted.p99, diverted.p99, rejected.p99 or failed.p99", fig)
		}
		if !slices.Contains(latencyStats, stat) {
			return "", fmt.Errorf("%q: latency figures are %s", fig, strings.Join(latencyStats, ", "))
		}
		return "latency", nil
	}
	if base, ok := strings.CutSuffix(fig, "_ratio"); ok {
		if slices.Contains(Outcomes(), base) || slices.Contains(countFigures[1:], base) {
			return "ratio", nil
		}
	}
	switch {
	case slices.Contains(countFigures, fig), slices.Contains(Outcomes(), fig):
		return "count", nil
	case slices.Contains(rateFigures, fig):
		return "rate", nil
	case fig == "confirmed":
		return "confirmed", nil
	}
	return "", fmt.Errorf("unknown figure %q (latency: p99, admitted.p99 …; counts: requests, late, dropped, errors, failed …; ratios: failed_ratio …; rates: achieved_rate, throughput; confirmed)", fig)
}

// Check judges the thresholds against the report.
func (r Report) Check(ts []Threshold) []ThresholdResult {
	out := make([]ThresholdResult, 0, len(ts))
	for _, t := range ts {
		res := ThresholdResult{Threshold: t}
		v, text, err := r.figure(t.Figure)
		if err != nil {
			res.Error, res.Text = err.Error(), "n/a"
		} else {
			res.Actual, res.Text = v, text
			res.Passed = compare(v, t.Op, t.Value)
		}
		out = append(out, res)
	}
	return out
}

// ThresholdsPassed says whether every threshold of the report held.
func (r Report) ThresholdsPassed() bool {
	for _, t := range r.Thresholds {
		if !t.Passed {
			return false
		}
	}
	return true
}

func compare(v float64, op string, want float64) bool {
	switch op {
	case "<":
		return v < want
	case "<=":
		return v <= want
	case ">":
		return v > want
	case ">=":
		return v >= want
	case "==":
		return v == want
	case "!=":
		return v != want
	}
	return false
}

// figure is a named figure of the report, as a number and as text.
func (r Report) figure(fig string) (float64, string, error) {
	kind, err := figureKind(fig)
	if err != nil {
		return 0, "", err
	}
	count := func(name string) uint64 {
		switch name {
		case "requests":
			return r.Requests
		case "scheduled":
			return r.Scheduled
		case "late":
			return r.Late
		case "dropped":
			return r.Dropped
		case "errors":
			return r.Status["error"]
		}
		return r.Latency[name].Count // an outcome
	}
	switch kind {
	case "latency":
		outcome, stat := "all", fig
		if !slices.Contains(latencyStats, fig) {
			outcome, stat, _ = strings.Cut(fig, ".")
		}
		l := r.Latency[outcome]
		if l.Count == 0 {
			return 0, "", fmt.Errorf("no %s answers to measure", outcome)
		}
		d := map[string]time.Duration{"p50": l.P50, "p90": l.P90, "p95": l.P95, "p99": l.P99, "p99.9": l.P999, "p999": l.P999,
			"mean": l.Mean, "min": l.Min, "max": l.Max}[stat]
		return d.Seconds(), rd(d).String(), nil
	case "count":
		n := count(fig)
		return float64(n), strconv.FormatUint(n, 10), nil
	case "ratio":
		base := strings.TrimSuffix(fig, "_ratio")
		total := r.Requests
		if base == "dropped" {
			total = r.Scheduled // dropped sends were never requests
		}
		if total == 0 {
			return 0, "", fmt.Errorf("no requests")
		}
		v := float64(count(base)) / float64(total)
		return v, fmt.Sprintf("%.3g%%", 100*v), nil
	case "rate":
		v := map[string]float64{"achieved_rate": r.AchievedRate, "target_rate": r.TargetRate, "throughput": r.Throughput}[fig]
		return v, fmt.Sprintf("%.1f/s", v), nil
	}
	if r.Verification == nil {
		return 0, "", fmt.Errorf("confirmed needs the outcome check (drop --no-verify)")
	}
	return float64(r.Verification.Confirmed), strconv.FormatInt(r.Verification.Confirmed, 10), nil
}
