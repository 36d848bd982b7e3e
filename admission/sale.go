package admission

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"sluice/internal/ledger"
	"sluice/internal/payload"
	"sluice/limiter"
	"sluice/overflow"
)

// sale is a gate's cached view of one sale. The request path reads it
// without locks; UpdateSales and the request path's own outcomes write it.
type sale struct {
	name         string
	proofKeyMemo atomic.Pointer[[]byte] // proofKey's, derived once
	cfg          atomic.Pointer[ledger.Sale]
	soldOut      atomic.Bool
	admitted     atomic.Int64 // orders in the ledger: last refresh plus local admits since
	pending      atomic.Int64 // queue depth: last refresh plus local admits since
	// lastSeq is the highest stream sequence of an order this gate
	// stored: a refresh that read the stream before it counts the orders
	// after its read on top of what it read (see UpdateSales).
	lastSeq atomic.Uint64
	// streamCreated is when the sale's stream was made (guarded by the
	// gate's updates lock).
	streamCreated time.Time
	drained       atomic.Int64
	// released: orders that gave their slot back (rejected, failed), as
	// the stream's limit says at the last refresh.
	released atomic.Int64
	draining atomic.Bool // a drain consumer exists
	index    atomic.Pointer[orderIndex]
	// payloadSchema is the sale's compiled payload_schema; nil for none.
	payloadSchema atomic.Pointer[payload.Schema]
	// replication is the stream's replica group at the last refresh.
	replication atomic.Pointer[ledger.Replication]
	// drainRate is orders/s, an EWMA over refreshes, as float64 bits;
	// drainPeak the highest it has been on this gate (drainCapacity).
	drainRate, drainPeak atomic.Uint64
	lastSeen             time.Time // refresh goroutine only
	// warnedNoDrain: the log said orders wait with no drain; under Gate.updates.
	warnedNoDrain bool
	read          time.Time // when the state applied last was read; under Gate.updates
	// hasLine: the sale has a line (its room is on, or was): the gate
	// follows it whatever the room's state, and an order without a pass
	// takes only the stock its turns and passes do not hold.
	hasLine atomic.Bool
	// variants are a sale with variants' (nil without).
	variants  atomic.Pointer[saleVariants]
	linePolls prometheus.Counter
	// claiming holds the turns this gate is writing a claim for: a poll
	// of a turn whose claim is in flight writes none (claimTurn).
	claiming   sync.Map    // claimKey → struct{}
	lineSeries atomic.Bool // the line's series are made
	orderURL   string      // the path orders are placed at
	limiter    *rate.Limiter
	counters   map[overflow.Reason]prometheus.Counter

	soldOutAnswer *overflow.Answer
	closedAnswer  *overflow.Answer
	notStarted    answerCache
	rateLimited   answerCache
	queueFull     answerCache
	// passRequired answers a waiting-room sale's order without a pass.
	passRequired *overflow.Answer
}

func (s *sale) rate() float64 { return math.Float64frombits(s.drainRate.Load()) }

// drainRateKnown is the drain rate, and whether there is one to report: a
// drain is attached and drained something lately.
func (s *sale) drainRateKnown() (float64, bool) {
	r := s.rate()
	return r, s.draining.Load() && r >= minDrainRate
}

// drainCapacity is what the drain has shown it can take: the highest of
// its rates so far, and whether there is one. A drain with nothing to
// drain drains what comes, so its rate then says how much was ordered,
// not how much it can take: a line paced by that rate would let in less
// as fewer orders come, down to nothing while unused passes hold the
// budget (the line then stalls until they expire).
func (s *sale) drainCapacity() (float64, bool) {
	r, ok := s.drainRateKnown()
	if peak := math.Float64frombits(s.drainPeak.Load()); s.draining.Load() && peak > r {
		return peak, true
	}
	return r, ok
}

// wait is how long the drain needs for pending orders, and whether that
// is known: nothing waiting takes no time; orders waiting with no drain,
// or a drain that drains nothing, take an unknown time.
func (s *sale) wait(pending uint64) (float64, bool) {
	if pending == 0 {
		return 0, true
	}
	r, ok := s.drainRateKnown()
	if !ok {
		return 0, false
	}
	return float64(pending) / r, true
}

// answerCache keeps the last answer rendered for a Retry-After value, so a
// burst of diverted requests with the same advice renders it once.
type answerCache struct {
	p atomic.Pointer[cachedAnswer]
}

type cachedAnswer struct {
	secs int64
	a    *overflow.Answer
}

func (c *answerCache) get(r *overflow.Renderer, p overflow.Problem) *overflow.Answer {
	secs := int64((p.RetryAfter + time.Second - 1) / time.Second)
	if ca := c.p.Load(); ca != nil && ca.secs == secs {
		return ca.a
	}
	a := r.Render(p)
	c.p.Store(&cachedAnswer{secs: secs, a: a})
	return a
}

func newSale(cfg ledger.Sale, r *overflow.Renderer, m *Metrics) *sale {
	s := &sale{
		name:     cfg.Name,
		limiter:  limiter.NewRate(cfg.Rate, cfg.Burst),
		counters: m.initSale(cfg.Name),
	}
	s.linePolls = m.linePolls.WithLabelValues(cfg.Name)
	s.orderURL = "/v1/sales/" + cfg.Name + "/orders"
	s.cfg.Store(&cfg)
	s.setSchema(&cfg)
	s.soldOutAnswer = r.Render(overflow.Problem{Reason: overflow.SoldOut, Sale: cfg.Name})
	s.closedAnswer = r.Render(overflow.Problem{Reason: overflow.Closed, Sale: cfg.Name})
	s.passRequired = r.Render(overflow.Problem{Reason: overflow.PassRequired, Sale: cfg.Name, Line: lineURL(cfg.Name)})
	return s
}

// setSchema compiles the sale's payload_schema when it changed. The
// ledger validated it; one that fails here all the same (a newer gate's
// schema dialect) makes every payload refused rather than unchecked.
func (s *sale) setSchema(cfg *ledger.Sale) {
	if s.payloadSchema.Load().Same(cfg.PayloadSchema) {
		return
	}
	sch, err := payload.Compile(cfg.PayloadSchema)
	if err != nil {
		sch = payload.RefuseAll(err)
	}
	s.payloadSchema.Store(sch)
}

// minDerivedBound is the queue bound of a sale with max_wait while no
// drain rate is known (no drain attached, or nothing drained lately) and
// no queue_bound is set: enough orders for a drain to show its pace.
const minDerivedBound = 100

// queueBound is the queue depth at which the sale answers busy, 0 for
// none. With max_wait it is what the drain decides within max_wait at the
// pace it has shown (at most backend_rate), never above queue_bound;
// without, queue_bound.
func (s *sale) queueBound(cfg *ledger.Sale) int64 {
	if cfg.MaxWait <= 0 {
		return cfg.QueueBound
	}
	r, ok := s.drainRateKnown()
	if br := cfg.BackendRate; br > 0 && (!ok || r > br) {
		r, ok = br, true // the drain is paced at backend_rate: it will not go faster
	}
	if !ok {
		if cfg.QueueBound > 0 {
			return cfg.QueueBound
		}
		return minDerivedBound
	}
	b := max(1, int64(r*cfg.MaxWait.Seconds()))
	if cfg.QueueBound > 0 {
		b = min(b, cfg.QueueBound)
	}
	return b
}

// storedSeq notes the stream sequence of an order this gate stored.
func (s *sale) storedSeq(seq uint64) {
	for {
		cur := s.lastSeq.Load()
		if seq <= cur || s.lastSeq.CompareAndSwap(cur, seq) {
			return
		}
	}
}
