package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"
)

// Comparison is a run's figures against a previous run's (--compare).
type Comparison struct {
	// Against names the previous run: its file and when it started.
	Against string    `json:"against"`
	Started time.Time `json:"started"`
	Changes []Change  `json:"changes"`
}

// Change is one figure in both runs. Ratio is now/before (0 when before
// was 0); Better says whether the change is an improvement (a lower
// latency, a higher rate, fewer failures), nil when it is neither.
type Change struct {
	Figure string  `json:"figure"`
	Before float64 `json:"before"`
	Now    float64 `json:"now"`
	// BeforeText and NowText are the figures for people.
	BeforeText string  `json:"before_text"`
	NowText    string  `json:"now_text"`
	Ratio      float64 `json:"ratio"`
	Better     *bool   `json:"better,omitempty"`
}

// ReadReport reads a report that --json wrote.
func ReadReport(path string) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, fmt.Errorf("loadtest: compare: %w", err)
	}
	defer f.Close()
	var r Report
	dec := json.NewDecoder(io.LimitReader(f, 256<<20))
	if err := dec.Decode(&r); err != nil {
		return Report{}, fmt.Errorf("loadtest: compare: %s is not a report of sluice loadtest --json: %w", path, err)
	}
	if r.Requests == 0 && r.Started.IsZero() {
		return Report{}, fmt.Errorf("loadtest: compare: %s is not a report of sluice loadtest --json", path)
	}
	return r, nil
}

// comparedFigures are the figures --compare shows, and which way is
// better: -1 lower, +1 higher, 0 neither.
var comparedFigures = []struct {
	name string
	dir  int
}{
	{"requests", 0}, {"achieved_rate", +1}, {"throughput", +1},
	{"p50", -1}, {"p90", -1}, {"p95", -1}, {"p99", -1}, {"p99.9", -1}, {"max", -1},
	{"admitted.p99", -1},
	{"admitted", 0}, {"diverted", 0}, {"rejected", 0}, {"failed", -1},
	{"late", -1}, {"dropped", -1}, {"errors", -1}, {"confirmed", 0},
}

// Compare sets the report's comparison with a previous one.
func (r *Report) Compare(prev Report, against string) {
	c := &Comparison{Against: against, Started: prev.Started, Changes: []Change{}}
	for _, f := range comparedFigures {
		before, bt, err1 := prev.figure(f.name)
		now, nt, err2 := r.figure(f.name)
		if err1 != nil && err2 != nil {
			continue // in neither run (no answers of that outcome, no check)
		}
		if err1 != nil {
			bt = "-"
		}
		if err2 != nil {
			nt = "-"
		}
		ch := Change{Figure: f.name, Before: before, Now: now, BeforeText: bt, NowText: nt}
		if before != 0 {
			ch.Ratio = now / before
		}
		// A change under 0.05% is noise, neither better nor worse.
		if f.dir != 0 && err1 == nil && err2 == nil && math.Abs(now-before) > 5e-4*math.Abs(before) {
			better := (now < before) == (f.dir < 0)
			ch.Better = &better
		}
		c.Changes = append(c.Changes, ch)
	}
	r.Comparison = c
}

// ChangeText is the change as people read it: +12.5%, -3.0%, "=" for
// none, "≈" under 0.05%, "from 0".
func (c Change) ChangeText() string {
	switch {
	case c.Before == c.Now:
		return "="
	case c.Before == 0:
		return "from 0"
	}
	pct := 100 * (c.Now/c.Before - 1)
	if math.Abs(pct) < 0.05 {
		return "≈"
	}
	sign := ""
	if pct > 0 {
		sign = "+"
	}
	return sign + strconv.FormatFloat(pct, 'f', 1, 64) + "%"
}

// Verdict is "better", "worse" or "" (a figure with no better side).
func (c Change) Verdict() string {
	switch {
	case c.Better == nil:
		return ""
	case *c.Better:
		return "better"
	}
	return "worse"
}
