package loadtest

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency kinds of a rehearsal's requests.
const (
	latJoin = iota
	latPoll
	latOrder
	latKinds
)

// crowdStats is what a rehearsal's workers count as they go. Safe for
// concurrent use.
type crowdStats struct {
	polls, latePolls, joined, served atomic.Int64
	pollsAfterStart                  atomic.Int64
	// Lapses the holders saw, by cause (LapseCauses).
	lapseLate, lapseTold, lapseFailed atomic.Int64

	mu   sync.Mutex
	lat  [latKinds]*hdrhistogram.Histogram // µs from the intended time
	errs errorCounts
}

func newCrowdStats() *crowdStats {
	s := &crowdStats{errs: errorCounts{}}
	for i := range s.lat {
		s.lat[i] = newHist()
	}
	return s
}

func (s *crowdStats) fail(k errorKey) {
	s.mu.Lock()
	s.errs.add(k, 1)
	s.mu.Unlock()
}

// record adds a worker's latencies (µs) of one kind.
func (s *crowdStats) record(kind int, us []int64) {
	s.mu.Lock()
	for _, v := range us {
		_ = s.lat[kind].RecordValue(v)
	}
	s.mu.Unlock()
}

// latencyBatch is a worker's latencies not yet recorded: one lock per
// few hundred requests, not one per request.
type latencyBatch [latKinds][]int64

func (b *latencyBatch) add(s *crowdStats, kind int, d time.Duration) {
	b[kind] = append(b[kind], max(1, d.Microseconds()))
	if len(b[kind]) == cap(b[kind]) && cap(b[kind]) >= 256 {
		b.flush(s, kind)
	}
}

func (b *latencyBatch) flush(s *crowdStats, kind int) {
	s.record(kind, b[kind])
	b[kind] = b[kind][:0]
}

func (b *latencyBatch) flushAll(s *crowdStats) {
	for k := range b {
		b.flush(s, k)
	}
}

// Quantiles summarises a latency distribution, in seconds.
type Quantiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_seconds"`
	P95   float64 `json:"p95_seconds"`
	P99   float64 `json:"p99_seconds"`
	Max   float64 `json:"max_seconds"`
}

func quantilesOf(h *hdrhistogram.Histogram) Quantiles {
	if h == nil || h.TotalCount() == 0 {
		return Quantiles{}
	}
	s := func(v int64) float64 { return float64(v) / 1e6 }
	return Quantiles{Count: int(h.TotalCount()), P50: s(h.ValueAtQuantile(50)), P95: s(h.ValueAtQuantile(95)),
		P99: s(h.ValueAtQuantile(99)), Max: s(h.Max())}
}

// estimate is an ETA a buyer was given: when (ms), the turn it
// foretold (ms), and whether it came with the join (the top bit of
// idx): 12 bytes.
type estimate struct {
	idx      uint32
	at, turn int32
}

const estJoin = 1 << 31

func (e estimate) buyer() uint32 { return e.idx &^ estJoin }
func (e estimate) join() bool    { return e.idx&estJoin != 0 }

// estimateLog is a worker's estimates. It keeps every one up to its
// limit, then every other one, and so on (Stride says which): the ETA
// figures then rest on a sample, and the log stays bounded however long
// the run.
type estimateLog struct {
	recs   []estimate
	stride int
	skip   int
}

func (l *estimateLog) add(e estimate, limit int) {
	if l.stride > 1 {
		if l.skip++; l.skip < l.stride {
			return
		}
		l.skip = 0
	}
	l.recs = append(l.recs, e)
	if len(l.recs) >= limit {
		kept := l.recs[:0]
		for i := 0; i < len(l.recs); i += 2 {
			kept = append(kept, l.recs[i])
		}
		l.recs = kept
		l.stride = max(1, l.stride) * 2
	}
}

// etaErrors are the errors of the estimates given to buyers who got
// their turn: relative (|est − actual| / max(actual, 1 s)) and absolute
// (seconds), at the join and at polls.
type etaErrors struct {
	joinRel, joinAbs, pollRel, pollAbs []float32
	stride                             int // 1 in stride estimates kept (1: all)
}

// etaErrorsOf computes the errors of the logged estimates.
func etaErrorsOf(c *crowd, logs []*estimateLog) etaErrors {
	var e etaErrors
	e.stride = 1
	for _, l := range logs {
		e.stride = max(e.stride, l.stride)
		for _, r := range l.recs {
			b := &c.buyers[r.buyer()]
			if !b.is(fTurn) {
				continue
			}
			actual := float64(b.turnAt-r.at) / 1000
			est := float64(r.turn-r.at) / 1000
			abs := math.Abs(est - actual)
			rel := abs / math.Max(1, actual)
			if r.join() {
				e.joinRel, e.joinAbs = append(e.joinRel, float32(rel)), append(e.joinAbs, float32(abs))
			} else {
				e.pollRel, e.pollAbs = append(e.pollRel, float32(rel)), append(e.pollAbs, float32(abs))
			}
		}
	}
	return e
}

func (e *etaErrors) merge(o etaErrors) {
	e.joinRel, e.joinAbs = append(e.joinRel, o.joinRel...), append(e.joinAbs, o.joinAbs...)
	e.pollRel, e.pollAbs = append(e.pollRel, o.pollRel...), append(e.pollAbs, o.pollAbs...)
	e.stride = max(e.stride, o.stride, 1)
}

func etaSummary(rel, abs []float32) ETAError {
	return ETAError{N: len(rel), MedianRelative: quantile32(rel, 0.5), P90Relative: quantile32(rel, 0.9), MedianAbsolute: quantile32(abs, 0.5)}
}

func quantile32(xs []float32, q float64) float64 {
	f := make([]float64, len(xs))
	for i, x := range xs {
		f[i] = float64(x)
	}
	return quantile(f, q)
}
