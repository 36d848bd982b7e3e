package loadtest

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"sluice/internal/waitingroom/line"
)

// RoomReport is what a waiting-room rehearsal measured and checked.
type RoomReport struct {
	Target   string    `json:"target"`
	Sale     string    `json:"sale"`
	StartsAt time.Time `json:"starts_at"`
	Stock    int64     `json:"stock"`
	Joined   int       `json:"joined"` // tickets taken before the start (drawn)
	Late     int       `json:"late"`   // tickets taken after it
	JoinErrs int       `json:"join_errors"`
	Served   int       `json:"served"` // orders answered 202 with a pass
	// Outcomes of the tickets at the end: served, sold_out, expired, waiting…
	Outcomes map[string]int `json:"outcomes"`
	Polls    int            `json:"polls"`
	// LatePolls are the polls sent later than LateAfter after the time
	// the gate gave: the generator could not keep the schedule.
	LatePolls int `json:"late_polls"`
	// TimeInLine is from the start (or the join, for a late ticket) to
	// the turn, over the buyers served: p50 and p99, seconds.
	TimeInLineP50 float64 `json:"time_in_line_p50_seconds"`
	TimeInLineP99 float64 `json:"time_in_line_p99_seconds"`
	// ETA accuracy: |estimated − actual wait| / max(actual, 1 s), over the
	// estimates of buyers who got their turn, at the join and at polls.
	// ETASampled: past a bound of the generator's memory (16 estimates a
	// buyer), one estimate in ETASampled was kept (1: every one).
	ETAJoin    ETAError `json:"eta_at_join"`
	ETAPoll    ETAError `json:"eta_at_polls"`
	ETASampled int      `json:"eta_sampled_one_in"`
	// Fairness among the drawn: by decile of join time, how many joined
	// and how many were served; chi-square of the served against the
	// joiners' shares, and its p-value.
	Deciles   []Decile `json:"fairness_deciles"`
	ChiSquare float64  `json:"chi_square"`
	ChiP      float64  `json:"chi_square_p"`
	// The checks.
	Confirmed int64    `json:"confirmed"`
	Checks    []Check  `json:"checks"`
	Passed    bool     `json:"passed"`
	Duration  float64  `json:"duration_seconds"`
	Problems  []string `json:"problems,omitempty"`
	// Sybil is the attacker's take, with --sybil.
	Sybil *SybilReport `json:"sybil,omitempty"`
	// With --abandon: the share asked, the joiners who left, the turns
	// that lapsed and were claimed (the line's count), the time from the
	// start to sold out, and how long those who stayed waited for their
	// turn (p50, p99, max; seconds from the start, or their join).
	Abandon       float64 `json:"abandon"`
	Absent        int     `json:"absent"`
	Lapsed        int64   `json:"lapsed_turns"`
	Claimed       int64   `json:"claimed_turns"`
	SoldOutAfter  float64 `json:"sold_out_after_seconds"`
	StayedWaitP50 float64 `json:"stayed_wait_p50_seconds"`
	StayedWaitP99 float64 `json:"stayed_wait_p99_seconds"`
	StayedWaitMax float64 `json:"stayed_wait_max_seconds"`
	// Errors are the requests that did not get the answer they wanted,
	// by request and HTTP status and reason, or transport cause.
	Errors []ErrorCount `json:"errors"`
	// LapseCauses attributes the lapsed turns.
	LapseCauses LapseCauses `json:"lapse_causes"`
	// Generator is what the generator did and what it cost; with shards
	// merged, the sums (the largest RSS), and Shards each shard's.
	Generator GeneratorStats   `json:"generator"`
	Shards    []GeneratorStats `json:"shards,omitempty"`
	// Shard and Records: a shard's report (--shard), with what the
	// outcome check of the merged shards needs of its buyers.
	Shard   *Shard                            `json:"shard,omitempty"`
	Records *BuyerRecords                     `json:"buyer_records,omitempty"`
	eta     etaErrors                         // the ETA errors, for the records
	lat     [latKinds]*hdrhistogram.Histogram // the latencies, for the records
}

// GeneratorStats is what a rehearsal's generator did and what it cost.
type GeneratorStats struct {
	Shard       string `json:"shard,omitempty"` // i/n
	Buyers      int    `json:"buyers"`          // simulated by this process
	Connections int    `json:"connections"`
	// LateAfter: a poll this late after its time counts as late.
	LateAfter float64 `json:"late_after_seconds"`
	Polls     int     `json:"polls"`
	LatePolls int     `json:"late_polls"`
	// PollRate is the polls over the run's time, PollRateAfterStart
	// those sent after the sale's start over the time from the start to
	// the run's end; PollsPerCPUSecond the polls over the CPU this
	// process spent (user and system) in the run.
	PollRate           float64 `json:"polls_per_second"`
	PollsAfterStart    int     `json:"polls_after_start"`
	PollRateAfterStart float64 `json:"polls_per_second_after_start"`
	CPUSeconds         float64 `json:"cpu_seconds"`
	PollsPerCPUSecond  float64 `json:"polls_per_cpu_second"`
	// Latencies from the intended time: a poll's from when the gate said
	// to come, a join's from its planned time, an order's from its send.
	PollLatency  Quantiles `json:"poll_latency"`
	JoinLatency  Quantiles `json:"join_latency"`
	OrderLatency Quantiles `json:"order_latency"`
	// MaxRSS is the process's peak resident size; LiveHeapPerBuyer the
	// live heap at the sale's start (every early buyer joined) over the
	// buyers simulated.
	MaxRSS           int64   `json:"max_rss_bytes"`
	LiveHeapPerBuyer float64 `json:"live_heap_bytes_per_buyer"`
}

// ETAError summarises estimates against what happened.
type ETAError struct {
	N              int     `json:"n"`
	MedianRelative float64 `json:"median_relative_error"`
	P90Relative    float64 `json:"p90_relative_error"`
	MedianAbsolute float64 `json:"median_absolute_error_seconds"`
}

// Decile is one tenth of the drawn buyers by join time.
type Decile struct {
	Joined int     `json:"joined"`
	Served int     `json:"served"`
	Share  float64 `json:"share_served"`
}

// Check is one property the outcome check proves.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// newRoomReport sums a finished run up.
func newRoomReport(o RoomOptions, sale roomSale, r *crowdRun, took, cpu time.Duration) RoomReport {
	rep := RoomReport{Target: o.Target, Sale: o.Sale, StartsAt: sale.StartsAt, Stock: sale.Stock, Abandon: o.Abandon,
		Polls: int(r.st.polls.Load()), LatePolls: int(r.st.latePolls.Load()), Duration: took.Seconds()}
	if ns := r.soldAt.Load(); ns != 0 {
		rep.SoldOutAfter = time.Unix(0, ns).Sub(sale.StartsAt).Seconds()
	}
	rep.eta = etaErrorsOf(r.c, r.logs)
	rep.summarise(r.c, rep.eta)
	r.st.mu.Lock()
	rep.Errors = r.st.errs.list()
	rep.lat = r.st.lat
	r.st.mu.Unlock()
	rep.LapseCauses = LapseCauses{GeneratorLate: int(r.st.lapseLate.Load()), CameWhenTold: int(r.st.lapseTold.Load()),
		PollFailed: int(r.st.lapseFailed.Load())}
	g := GeneratorStats{Buyers: len(r.c.buyers), Connections: o.Connections, LateAfter: o.LateAfter.Seconds(),
		Polls: rep.Polls, LatePolls: rep.LatePolls, CPUSeconds: cpu.Seconds(), MaxRSS: peakRSS(),
		PollLatency: quantilesOf(rep.lat[latPoll]), JoinLatency: quantilesOf(rep.lat[latJoin]), OrderLatency: quantilesOf(rep.lat[latOrder])}
	if o.Shard.Of > 1 {
		g.Shard = o.Shard.String()
	}
	g.rates(took.Seconds())
	g.PollsAfterStart = int(r.st.pollsAfterStart.Load())
	if since := time.Since(sale.StartsAt).Seconds(); since > 0 {
		g.PollRateAfterStart = float64(g.PollsAfterStart) / since
	}
	if n := len(r.c.buyers); n > 0 {
		g.LiveHeapPerBuyer = float64(r.liveHeap.Load()) / float64(n)
	}
	rep.Generator = g
	if o.Sybil > 0 {
		rep.Sybil = sybilReport(r.c, o.Sybil, o.SybilWorkers, r.proof, sale.Stock, rep.Joined)
	}
	return rep
}

func (g *GeneratorStats) rates(secs float64) {
	if secs > 0 {
		g.PollRate = float64(g.Polls) / secs
	}
	if g.CPUSeconds > 0 {
		g.PollsPerCPUSecond = float64(g.Polls) / g.CPUSeconds
	}
}

// readLine reads the line's own counts of lapsed and claimed turns.
func (r *RoomReport) readLine(ctx context.Context, c *http.Client, base string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var ln struct {
		Lapsed  int64 `json:"lapsed"`
		Claimed int64 `json:"claimed"`
	}
	if getJSON(ctx, c, base+"/v1/sales/"+url.PathEscape(r.Sale)+"/line", &ln) == nil {
		r.Lapsed, r.Claimed = ln.Lapsed, ln.Claimed
		r.LapseCauses.Gate = ln.Lapsed
	}
}

// summarise computes the figures from the buyers' records.
func (r *RoomReport) summarise(c *crowd, eta etaErrors) {
	r.Outcomes = map[string]int{}
	var inLine, stayed []float64
	var drawn []uint32
	for i := range c.buyers {
		b := &c.buyers[i]
		r.Outcomes[c.names.name(b.outcome)]++
		if b.is(fAbsent) && b.is(fTicket) {
			r.Absent++
		}
		switch {
		case !b.is(fTicket):
			r.JoinErrs++
			continue
		case b.is(fDrawn):
			r.Joined++
			drawn = append(drawn, uint32(i))
		default:
			r.Late++
		}
		if b.is(fServed) {
			r.Served++
		}
		if !b.is(fTurn) {
			continue
		}
		from := max(c.startMs, b.joinAt)
		wait := float64(b.turnAt-from) / 1000
		inLine = append(inLine, wait)
		if !b.is(fAbsent) {
			stayed = append(stayed, wait)
		}
	}
	r.TimeInLineP50, r.TimeInLineP99 = quantile(inLine, 0.5), quantile(inLine, 0.99)
	r.StayedWaitP50, r.StayedWaitP99, r.StayedWaitMax = quantile(stayed, 0.5), quantile(stayed, 0.99), quantile(stayed, 1)
	r.ETAJoin, r.ETAPoll = etaSummary(eta.joinRel, eta.joinAbs), etaSummary(eta.pollRel, eta.pollAbs)
	r.ETASampled = max(1, eta.stride)
	slices.SortStableFunc(drawn, func(a, b uint32) int { return int(c.buyers[a].joinAt) - int(c.buyers[b].joinAt) })
	r.deciles(c, drawn)
}

// deciles sums the served up by decile of join time (drawn in join
// order), with the chi-square of the served against the joiners' shares.
func (r *RoomReport) deciles(c *crowd, drawn []uint32) {
	r.Deciles = make([]Decile, 10)
	for i, l := range drawn {
		d := &r.Deciles[i*10/len(drawn)]
		d.Joined++
		if c.buyers[l].is(fServed) {
			d.Served++
		}
	}
	served := 0
	for _, d := range r.Deciles {
		served += d.Served
	}
	r.ChiSquare = 0
	for i := range r.Deciles {
		d := &r.Deciles[i]
		if d.Joined > 0 {
			d.Share = float64(d.Served) / float64(d.Joined)
		}
		if served > 0 && len(drawn) > 0 {
			exp := float64(served) * float64(d.Joined) / float64(len(drawn))
			if exp > 0 {
				r.ChiSquare += (float64(d.Served) - exp) * (float64(d.Served) - exp) / exp
			}
		}
	}
	r.ChiP = 1
	if served > 0 {
		r.ChiP = line.ChiSquareP(r.ChiSquare, 9)
	}
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}
