package serve

import (
	"testing"
	"time"

	"sluice/admission"
)

// The drain's state follows the queue's trend over the last seconds, not
// whether a drain rate is known: a queue that grows is falling behind
// from the first judgement on, one that shrinks after a burst keeps up.
func TestJudgeDrain(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	// samples are one a second, the last one now; each is (depth,
	// admitted, drained) at now-len+i+1 s.
	samples := func(rows ...[3]int64) []consoleSample {
		ss := make([]consoleSample, len(rows))
		for i, r := range rows {
			ss[i] = consoleSample{at: now.Add(time.Duration(i-len(rows)+1) * time.Second), depth: r[0], admitted: r[1], drained: r[2]}
		}
		return ss
	}
	report := func(ss []consoleSample, attached bool, bound int64) admission.SaleReport {
		var r admission.SaleReport
		last := ss[len(ss)-1]
		r.DrainAttached, r.QueueDepth, r.Admitted, r.Drained, r.QueueBound = attached, last.depth, last.admitted, last.drained, bound
		return r
	}
	for _, tc := range []struct {
		name     string
		ss       []consoleSample
		attached bool
		bound    int64
		want     string
		trend    float64 // when judged
	}{
		{"no drain", samples([3]int64{5, 5, 0}), false, 0, DrainNone, 0},
		{"empty and quiet", samples([3]int64{0, 9, 9}, [3]int64{0, 9, 9}, [3]int64{0, 9, 9}), true, 0, DrainIdle, 0},
		{"empty, draining what comes", samples([3]int64{0, 9, 9}, [3]int64{0, 20, 20}, [3]int64{0, 31, 31}), true, 0, DrainKeepingUp, 0},
		{"a queue, one second of samples", samples([3]int64{0, 0, 0}, [3]int64{40, 60, 20}), true, 0, DrainJudging, 0},
		// The first seconds of a burst: the drain rate is known, the queue grows.
		{"growing from the start", samples([3]int64{0, 0, 0}, [3]int64{40, 60, 20}, [3]int64{80, 120, 40}), true, 0, DrainFallingBehind, 40},
		{"growing for a while", samples([3]int64{100, 160, 60}, [3]int64{140, 220, 80}, [3]int64{180, 280, 100},
			[3]int64{220, 340, 120}, [3]int64{260, 400, 140}, [3]int64{300, 460, 160}), true, 0, DrainFallingBehind, 40},
		// Was deeper ten seconds ago, grows again now: the recent trend counts.
		{"growing again", samples([3]int64{900, 1000, 100}, [3]int64{100, 1000, 900}, [3]int64{100, 1000, 900}, [3]int64{100, 1000, 900},
			[3]int64{100, 1000, 900}, [3]int64{100, 1000, 900}, [3]int64{140, 1060, 920}, [3]int64{180, 1120, 940}), true, 0, DrainFallingBehind, 16},
		{"shrinking after the burst", samples([3]int64{300, 460, 160}, [3]int64{280, 460, 180}, [3]int64{260, 460, 200},
			[3]int64{240, 460, 220}, [3]int64{220, 460, 240}, [3]int64{200, 460, 260}), true, 0, DrainKeepingUp, -20},
		{"as fast as admitted, give or take a refresh", samples([3]int64{50, 500, 450}, [3]int64{52, 600, 548}, [3]int64{49, 700, 651},
			[3]int64{51, 800, 749}, [3]int64{50, 900, 850}, [3]int64{53, 1000, 947}), true, 0, DrainKeepingUp, 0.6},
		{"stalled", samples([3]int64{50, 50, 0}, [3]int64{50, 50, 0}, [3]int64{50, 50, 0}, [3]int64{50, 50, 0},
			[3]int64{50, 50, 0}, [3]int64{50, 50, 0}), true, 0, DrainFallingBehind, 0},
		{"at its bound", samples([3]int64{400, 900, 500}, [3]int64{400, 920, 520}, [3]int64{400, 940, 540}), true, 400, DrainQueueFull, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state, admit, trend := judgeDrain(report(tc.ss, tc.attached, tc.bound), tc.ss, now)
			if state != tc.want {
				t.Fatalf("state %s, want %s", state, tc.want)
			}
			if tc.want == DrainFallingBehind || tc.want == DrainKeepingUp && tc.trend != 0 {
				if trend == nil || admit == nil {
					t.Fatalf("no trend or admit rate")
				}
				if d := *trend - tc.trend; d > 0.01 || d < -0.01 {
					t.Fatalf("queue trend %.2f/s, want %.2f/s", *trend, tc.trend)
				}
			}
		})
	}
}
