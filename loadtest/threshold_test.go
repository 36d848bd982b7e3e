package loadtest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseThreshold(t *testing.T) {
	for expr, want := range map[string]Threshold{
		"p99<50ms":             {Figure: "p99", Op: "<", Value: 0.05},
		" p99.9 <= 1s ":        {Figure: "p99.9", Op: "<=", Value: 1},
		"admitted.p99<250us":   {Figure: "admitted.p99", Op: "<", Value: 250e-6},
		"max<20":               {Figure: "max", Op: "<", Value: 0.02}, // bare latency: ms, as k6
		"dropped==0":           {Figure: "dropped", Op: "==", Value: 0},
		"failed_ratio<1%":      {Figure: "failed_ratio", Op: "<", Value: 0.01},
		"late_ratio<=0.05":     {Figure: "late_ratio", Op: "<=", Value: 0.05},
		"achieved_rate>=1900":  {Figure: "achieved_rate", Op: ">=", Value: 1900},
		"throughput>100/s":     {Figure: "throughput", Op: ">", Value: 100},
		"confirmed!=0":         {Figure: "confirmed", Op: "!=", Value: 0},
		"diverted.mean>1ms":    {Figure: "diverted.mean", Op: ">", Value: 0.001},
		"errors==0":            {Figure: "errors", Op: "==", Value: 0},
		"admitted>=10":         {Figure: "admitted", Op: ">=", Value: 10},
		"rejected_ratio<0.5":   {Figure: "rejected_ratio", Op: "<", Value: 0.5},
		"dropped_ratio==0%":    {Figure: "dropped_ratio", Op: "==", Value: 0},
		"p90 > 1e-3s":          {Figure: "p90", Op: ">", Value: 1e-3},
		"requests>=1000":       {Figure: "requests", Op: ">=", Value: 1000},
		"scheduled_ratio<=1.0": {Figure: "scheduled_ratio", Op: "<=", Value: 1},
	} {
		got, err := ParseThreshold(expr)
		if err != nil {
			t.Errorf("%q: %v", expr, err)
			continue
		}
		if got.Figure != want.Figure || got.Op != want.Op || got.Value < want.Value*(1-1e-9) || got.Value > want.Value*(1+1e-9) {
			t.Errorf("%q: %+v, want %+v", expr, got, want)
		}
	}
	for _, expr := range []string{"", "p99", "p99<", "p98<5ms", "p99<5parsecs", "dropped<5ms", "buyers.p99<1s",
		"failed_ratio<1ms", "nonsense==1", "p99=5ms", "p99<<5ms", "p99<NaN"} {
		if _, err := ParseThreshold(expr); err == nil {
			t.Errorf("%q parsed", expr)
		}
	}
}

func TestThresholdsAgainstAReport(t *testing.T) {
	rep := Report{Requests: 200, Scheduled: 210, Dropped: 10, Late: 4, AchievedRate: 190,
		Status: map[string]uint64{"202": 100, "410": 98, "error": 2},
		Latency: map[string]Latencies{
			"all":           {Count: 200, P99: 40 * time.Millisecond, Max: 90 * time.Millisecond},
			OutcomeAdmitted: {Count: 100, P99: 30 * time.Millisecond},
			OutcomeFailed:   {Count: 2, P99: time.Second},
		}}
	var ts []Threshold
	for _, e := range []string{"p99<50ms", "max<50ms", "admitted.p99<=30ms", "dropped==0", "failed_ratio<=1%",
		"errors==2", "achieved_rate>=190", "rejected.p99<1s", "confirmed==100", "dropped_ratio<5%"} {
		th, err := ParseThreshold(e)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, th)
	}
	got := map[string]bool{}
	for _, r := range rep.Check(ts) {
		got[r.Expr] = r.Passed
	}
	want := map[string]bool{"p99<50ms": true, "max<50ms": false, "admitted.p99<=30ms": true, "dropped==0": false,
		"failed_ratio<=1%": true, "errors==2": true, "achieved_rate>=190": true,
		"rejected.p99<1s":  false, // no rejected answers: not judged, so not passed
		"confirmed==100":   false, // no outcome check
		"dropped_ratio<5%": true}  // 10 of 210 scheduled
	for e, w := range want {
		if got[e] != w {
			t.Errorf("%s: passed %v, want %v", e, got[e], w)
		}
	}
	rep.Thresholds = rep.Check(ts)
	if rep.ThresholdsPassed() {
		t.Fatal("a report with failed thresholds passed")
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "Thresholds    FAILED") || !strings.Contains(text.String(), "✗ max<50ms") ||
		!strings.Contains(text.String(), "no outcome check") && !strings.Contains(text.String(), "needs the outcome check") {
		t.Fatalf("text:\n%s", text.String())
	}
}

// --compare reads a --json report back and shows each figure's change,
// and which way is better.
func TestCompareWithAPreviousReport(t *testing.T) {
	prev := Report{Started: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Requests: 1000, AchievedRate: 500, Late: 10,
		Status:  map[string]uint64{},
		Latency: map[string]Latencies{"all": {Count: 1000, P50: time.Millisecond, P99: 20 * time.Millisecond}, OutcomeAdmitted: {Count: 100}}}
	file := filepath.Join(t.TempDir(), "prev.json")
	f, _ := os.Create(file)
	if err := prev.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	back, err := ReadReport(file)
	if err != nil {
		t.Fatal(err)
	}
	now := Report{Requests: 1000, AchievedRate: 600, Late: 20, Status: map[string]uint64{},
		Latency: map[string]Latencies{"all": {Count: 1000, P50: time.Millisecond, P99: 10 * time.Millisecond}, OutcomeAdmitted: {Count: 120}}}
	now.Compare(back, "prev.json")
	by := map[string]Change{}
	for _, c := range now.Comparison.Changes {
		by[c.Figure] = c
	}
	check := func(fig, change, verdict string) {
		t.Helper()
		c, ok := by[fig]
		if !ok {
			t.Fatalf("%s missing from %+v", fig, now.Comparison.Changes)
		}
		if c.ChangeText() != change || c.Verdict() != verdict {
			t.Errorf("%s: %s %s, want %s %s", fig, c.ChangeText(), c.Verdict(), change, verdict)
		}
	}
	check("p99", "-50.0%", "better")
	check("achieved_rate", "+20.0%", "better")
	check("late", "+100.0%", "worse")
	check("p50", "=", "")
	check("admitted", "+20.0%", "")
	if _, ok := by["confirmed"]; ok {
		t.Error("confirmed compared although neither run checked the outcome")
	}
	if !now.Comparison.Started.Equal(prev.Started) {
		t.Errorf("started %v", now.Comparison.Started)
	}
	if _, err := ReadReport(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing file was read")
	}
	junk := filepath.Join(t.TempDir(), "junk.json")
	os.WriteFile(junk, []byte(`{"hello":1}`), 0o644)
	if _, err := ReadReport(junk); err == nil || !strings.Contains(err.Error(), "not a report") {
		t.Errorf("junk: %v", err)
	}
}

// Around T0 the report keeps 100 ms buckets with the schedule's offered
// count beside what was sent and answered; the phases are named.
func TestFineBucketsAroundT0(t *testing.T) {
	rep := sampleReport(t) // steps of 100/s and 300/s, a second each
	if rep.T0 != 0 || len(rep.Phases) != 2 || rep.Phases[1].Start != 1 || rep.Phases[1].From != 300 {
		t.Fatalf("t0 %v phases %+v", rep.T0, rep.Phases)
	}
	// Two seconds of 100 ms, and one more if the last answers came after.
	if len(rep.Fine) != 20 && len(rep.Fine) != 21 {
		t.Fatalf("%d fine buckets, want 20 (two seconds of 100 ms)", len(rep.Fine))
	}
	var sent, answered uint64
	var offered float64
	for i, b := range rep.Fine {
		sent += b.Sent
		answered += b.Answered
		offered += b.Offered
		if want := float64(i) / 10; b.T < want-1e-9 || b.T > want+1e-9 {
			t.Fatalf("bucket %d starts at %v", i, b.T)
		}
	}
	if sent != 400 || offered != 400 || answered != 400 {
		t.Fatalf("fine buckets: sent %d, offered %v, answered %d; want 400 each", sent, offered, answered)
	}
	if rep.Fine[15].Offered != 30 {
		t.Fatalf("offered in a 100 ms bucket at 300/s: %v", rep.Fine[15].Offered)
	}
	var timelineAnswered uint64
	for _, s := range rep.Timeline {
		timelineAnswered += s.Answered
	}
	if rep.Timeline[1].Offered != 300 || timelineAnswered != 400 {
		t.Fatalf("timeline %+v", rep.Timeline)
	}
	spike := Spike(50, 2*time.Second, 1000, time.Second, time.Second)
	if spike.T0() != 2*time.Second || spike.Phases()[1].Name != "peak from T0" {
		t.Fatalf("spike: %v %+v", spike.T0(), spike.Phases())
	}
}

// p95 is a latency figure like the others (issue 27 found none): it
// parses, is judged against the report's p95 of all answers or of one
// outcome, and the report's p95 is the histogram's 95th percentile.
func TestP95Threshold(t *testing.T) {
	h := newHist()
	for v := int64(1); v <= 1000; v++ {
		_ = h.RecordValue(v * 1000) // 1 ms .. 1 s, evenly
	}
	all := summarise(h)
	if all.P95 < all.P90 || all.P95 > all.P99 || all.P95 < 945*time.Millisecond || all.P95 > 955*time.Millisecond {
		t.Fatalf("p90 %v p95 %v p99 %v: want p95 ≈ 950ms between them", all.P90, all.P95, all.P99)
	}
	rep := Report{Requests: 1000, Latency: map[string]Latencies{"all": all, OutcomeAdmitted: {Count: 10, P95: 30 * time.Millisecond}}}
	want := map[string]bool{"p95<960ms": true, "p95<940ms": false, "admitted.p95<=30ms": true, "admitted.p95<29ms": false, "diverted.p95<1s": false}
	var ts []Threshold
	for e := range want {
		th, err := ParseThreshold(e)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		ts = append(ts, th)
	}
	for _, r := range rep.Check(ts) {
		if r.Passed != want[r.Expr] {
			t.Errorf("%s: passed %v (measured %s %s), want %v", r.Expr, r.Passed, r.Text, r.Error, want[r.Expr])
		}
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "[count, min, mean, 50, 90, 95, 99, 99.9, max]") {
		t.Errorf("the text report's latencies lack p95:\n%s", text.String())
	}
}
