package admission

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"sluice/internal/ledger"
	"sluice/limiter"
	"sluice/overflow"
)

// sale is a gate's cached view of one sale. The request path reads it
// without locks; UpdateSales and the request path's own outcomes write it.
type sale struct {
	name     string
	cfg      atomic.Pointer[ledger.Sale]
	soldOut  atomic.Bool
	admitted atomic.Int64 // orders in the ledger: last refresh plus local admits since
	pending  atomic.Int64 // queue depth: last refresh plus local admits since
	drained  atomic.Int64
	// drainRate is orders/s, an EWMA over refreshes, as float64 bits.
	drainRate atomic.Uint64
	lastSeen  time.Time // refresh goroutine only
	read      time.Time // when the state applied last was read; under Gate.updates
	limiter   *rate.Limiter
	counters  map[overflow.Reason]prometheus.Counter

	soldOutAnswer *overflow.Answer
	closedAnswer  *overflow.Answer
	notStarted    answerCache
	rateLimited   answerCache
	queueFull     answerCache
}

func (s *sale) rate() float64 { return math.Float64frombits(s.drainRate.Load()) }

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
	s.cfg.Store(&cfg)
	s.soldOutAnswer = r.Render(overflow.Problem{Reason: overflow.SoldOut, Sale: cfg.Name})
	s.closedAnswer = r.Render(overflow.Problem{Reason: overflow.Closed, Sale: cfg.Name})
	return s
}
