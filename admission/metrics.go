package admission

import (
	"github.com/prometheus/client_golang/prometheus"

	"sluice/overflow"
)

// Outcome groups reasons into the four things an answer can be.
type Outcome string

const (
	OutcomeAdmitted Outcome = "admitted" // 202
	OutcomeDiverted Outcome = "diverted" // sold out, busy, window, already ordered
	OutcomeRejected Outcome = "rejected" // bad input, unknown sale
	OutcomeFailed   Outcome = "failed"   // 5xx: the ledger did not take it
)

// OutcomeOf returns the outcome a reason belongs to.
func OutcomeOf(r overflow.Reason) Outcome {
	switch r {
	case overflow.Admitted, overflow.Replayed:
		return OutcomeAdmitted
	case overflow.Unavailable, overflow.BuyerKeysUnavailable:
		return OutcomeFailed
	case overflow.UnknownSale, overflow.BadJSON, overflow.BadBuyerID,
		overflow.BadIdempotencyKey, overflow.BodyTooLarge, overflow.BadContentType, overflow.BadPass,
		overflow.BadPayload, overflow.IdempotencyKeyReused,
		overflow.UntrustedBuyerHeader, overflow.BadBuyerHeader, overflow.BadForm, overflow.BuyerTokenRequired,
		overflow.BadBuyerToken, overflow.BuyerMismatch, overflow.ProofRequired, overflow.BadProof:
		return OutcomeRejected
	}
	return OutcomeDiverted
}

// unknownSaleLabel is the sale label of requests naming no sale; sale names
// cannot start with an underscore, so it never collides.
const unknownSaleLabel = "_unknown"

// Metrics are the gate's Prometheus metrics.
type Metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	durationOf    map[Outcome]prometheus.Observer
	publish       prometheus.Histogram
	publishErrors *prometheus.CounterVec
	stock         *prometheus.GaugeVec
	remaining     *prometheus.GaugeVec
	admitted      *prometheus.GaugeVec
	queueDepth    *prometheus.GaugeVec
	queueBound    *prometheus.GaugeVec
	soldOut       *prometheus.GaugeVec
	state         *prometheus.GaugeVec
	drainRate     *prometheus.GaugeVec
	saleRate      *prometheus.GaugeVec
	backendRate   *prometheus.GaugeVec
	released      *prometheus.GaugeVec
	maxWait       *prometheus.GaugeVec
	waiters       prometheus.Gauge
	waitersMax    prometheus.Gauge
	waits         *prometheus.CounterVec
	confirmed     *prometheus.GaugeVec
	wait          *prometheus.GaugeVec
	inFlight      prometheus.Gauge
	httpRequests  *prometheus.CounterVec
	http          httpCounters
	limiterKeys   *prometheus.GaugeVec
	limiterCap    *prometheus.GaugeVec
	limiterEvict  *prometheus.CounterVec
	ledgerUp      prometheus.Gauge

	// The waiting rooms.
	lineTickets, lineDrawn, lineLetIn, lineOutstanding, lineRate *prometheus.GaugeVec
	lineIssued, linePolls                                        *prometheus.CounterVec
	lineOffered, lineExpired, lineLapsed                         *prometheus.GaugeVec
	lineClaims, lineRejoins, lineClaimWrites                     *prometheus.CounterVec
	lineJoins                                                    *prometheus.CounterVec

	// Who may join: the tickets this process holds against its cap,
	// and the proofs of work checked.
	lineHeld, lineMaxTickets prometheus.Gauge
	proofs                   *prometheus.CounterVec
}

// NewMetrics makes the gate's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_admission_requests_total",
			Help: "Order requests answered, by sale, outcome (admitted, diverted, rejected, failed) and reason.",
		}, []string{"sale", "outcome", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_admission_duration_seconds",
			Help:    "Time from an order request's arrival to its answer, by outcome.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"outcome"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_ledger_publish_duration_seconds",
			Help:    "Time from publishing an order to JetStream to its PubAck (or error).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ledger_publish_errors_total",
			Help: "Publishes JetStream did not store for reasons other than stock or the buyer's limit, by kind (unavailable, store_full).",
		}, []string{"kind"}),
		stock:       saleGauge("sluice_sale_stock", "Stock the sale was configured with."),
		remaining:   saleGauge("sluice_sale_stock_remaining", "Stock not yet taken by an admitted order (stock minus admitted, floored at 0)."),
		admitted:    saleGauge("sluice_sale_admitted_orders", "Orders in the sale's ledger stream."),
		queueDepth:  saleGauge("sluice_sale_queue_depth", "Admitted orders the drain has not finished: the queue behind the gate."),
		queueBound:  saleGauge("sluice_sale_queue_bound", "Queue depth at which the gate answers busy (derived from the drain rate when the sale has max_wait); 0 means no bound."),
		released:    saleGauge("sluice_sale_released_orders", "Orders that gave their slot back to the sale (rejected by the backend for a reason other than stock, or dead-lettered): the sale sells stock + overbook + these."),
		backendRate: saleGauge("sluice_sale_backend_rate", "The sale's cap on orders per second each drain sends to the backend; 0 means none."),
		maxWait:     saleGauge("sluice_sale_max_wait_seconds", "How long an order answered 202 may wait for the drain: the queue bound follows the drain rate times this; 0 means a fixed queue_bound."),
		soldOut:     saleGauge("sluice_sale_sold_out", "1 when the sale is known to be sold out."),
		state:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_sale_state", Help: "1 for the sale's current state (upcoming, open, sold_out, closed)."}, []string{"sale", "state"}),
		drainRate:   saleGauge("sluice_sale_drain_rate", "Orders drained per second, smoothed over the last refreshes."),
		saleRate:    saleGauge("sluice_sale_rate_limit", "Configured admission rate of the sale per gate, orders per second; 0 means none."),
		confirmed:   saleGauge("sluice_sale_confirmed_orders", "Orders the backend confirmed, as recorded in the decisions stream (exact, survives restarts)."),
		wait:        saleGauge("sluice_sale_estimated_wait_seconds", "Time the drain needs for the whole queue at the observed drain rate; +Inf when orders wait and nothing drains."),
		waiters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_order_waiters",
			Help: "Requests held for their order's decision (Prefer: wait) right now.",
		}),
		waitersMax: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_order_waiters_max",
			Help: "Most requests held for a decision at once (--max-waiters); past it they are answered 202 at once.",
		}),
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_order_waits_total",
			Help: "Requests that asked to wait for their order's decision (Prefer: wait), by how the wait ended: decided, timeout, refused (too many waiting), shutdown.",
		}, []string{"outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_http_requests_in_flight",
			Help: "Requests being served by the public API, order placements excepted.",
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_http_requests_total",
			Help: "Requests served by the public API other than order placements (see sluice_admission_requests_total) and ticket polls (sluice_line_polls_total), by status code and method.",
		}, []string{"code", "method"}),
		limiterKeys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_limiter_keys",
			Help: "Keys held by a keyed limiter (ip, buyer).",
		}, []string{"limiter"}),
		limiterCap: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_limiter_keys_max",
			Help: "Most keys a keyed limiter holds (ip, buyer).",
		}, []string{"limiter"}),
		limiterEvict: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_limiter_evictions_total",
			Help: "Keys a keyed limiter forgot to stay within its bound or because they were idle.",
		}, []string{"limiter"}),
		ledgerUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_ledger_up",
			Help: "1 when the last refresh of sale states from JetStream succeeded.",
		}),
	}
	m.lineTickets = saleGauge("sluice_line_tickets", "Tickets in the sale's waiting-room line (drawn and joined after the start).")
	m.lineDrawn = saleGauge("sluice_line_drawn_tickets", "Tickets taken before the start, ordered by the draw (0 until it is made).")
	m.lineLetIn = saleGauge("sluice_line_let_in", "Positions of the line that had their turn: 1..this were issued a pass.")
	m.lineOutstanding = saleGauge("sluice_line_passes_outstanding", "Passes issued, not used for an order and not expired.")
	m.lineRate = saleGauge("sluice_line_let_in_rate", "Positions per second the line's estimates assume: what it let in over the last 30 s, else the drain rate.")
	m.lineIssued = saleCounter("sluice_line_passes_issued_total", "Passes the line issued, as its durable pace records say (every gate reports the same count: take the max across gates).")
	// Expired and lapsed are gauges, not counters: a use, or a claim,
	// stored in time and applied late takes one back, and a counter that
	// followed their highest value kept a lagging gate's overcount.
	m.lineExpired = saleGauge("sluice_line_passes_expired", "Passes that expired unused, as the line's records say now: their places went to the next in line (the same on every gate).")
	m.lineOffered = saleGauge("sluice_line_offered", "Positions of the line offered their turn: 1..this may claim it (at least sluice_line_let_in).")
	m.lineClaims = saleCounter("sluice_line_claims_total", "Turns claimed by their holders (asked for the ticket within the claim window), as the durable claim records say (the same on every gate).")
	m.lineLapsed = saleGauge("sluice_line_lapsed_turns", "Turns offered and not claimed within the claim window, as the line's records say now: their room went on at once (the same on every gate).")
	m.lineRejoins = saleCounter("sluice_line_rejoins_total", "Holders whose turn lapsed who came back and were put at the back of the line, as the durable rejoin records say.")
	m.lineClaimWrites = saleCounter("sluice_line_claim_writes_total", "Claim records this gate wrote (at most one per claimed turn and gate; the stream keeps one per turn).")
	m.linePolls = saleCounter("sluice_line_polls_total", "Ticket polls (GET /v1/tickets/{id}) this gate answered, by sale (_unknown: no such ticket).")
	m.lineJoins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_line_joins_total",
		Help: "Requests to join a waiting-room line, by sale and outcome (joined, rejoined, line_full, sold_out, not_started, closed, bad_request, no_waiting_room, unavailable, rate_limited, unauthorized, proof_required, bad_proof, address_limit, at_capacity).",
	}, []string{"sale", "outcome"})
	m.linePolls.WithLabelValues(unknownSaleLabel)
	m.lineHeld = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_line_held_tickets",
		Help: "Tickets this gate holds in memory, over every waiting room's line (see sluice_line_max_tickets)."})
	m.lineMaxTickets = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_line_max_tickets",
		Help: "The most tickets this gate holds over every line (--line-max-tickets): past it joins are answered 503."})
	m.proofs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_line_proofs_total",
		Help: "Proofs of work checked on joins, by outcome: ok, missing, bad (wrong, expired, another sale's), used (spent on another ticket), held (shown by a buyer holding a ticket, who got it back and kept the solution)."},
		[]string{"outcome"})
	for _, o := range proofOutcomes {
		m.proofs.WithLabelValues(o)
	}
	m.durationOf = make(map[Outcome]prometheus.Observer)
	for _, o := range []Outcome{OutcomeAdmitted, OutcomeDiverted, OutcomeRejected, OutcomeFailed} {
		m.durationOf[o] = m.duration.WithLabelValues(string(o))
	}
	m.http.vec = m.httpRequests
	m.httpRequests.WithLabelValues("200", "get") // the usual answer, so the series exists
	for _, k := range []string{"unavailable", "store_full"} {
		m.publishErrors.WithLabelValues(k)
	}
	for _, l := range []string{"ip", "buyer"} {
		m.limiterKeys.WithLabelValues(l)
		m.limiterCap.WithLabelValues(l)
		m.limiterEvict.WithLabelValues(l)
	}
	m.initSale(unknownSaleLabel)
	reg.MustRegister(m.requests, m.duration, m.publish, m.publishErrors, m.stock,
		m.remaining, m.admitted, m.queueDepth, m.queueBound, m.soldOut, m.state, m.drainRate,
		m.saleRate, m.inFlight, m.httpRequests, m.limiterKeys, m.limiterCap, m.limiterEvict,
		m.ledgerUp, m.confirmed, m.wait, m.backendRate, m.maxWait, m.waiters, m.waitersMax, m.waits, m.released,
		m.lineTickets, m.lineDrawn, m.lineLetIn, m.lineOutstanding, m.lineRate, m.lineIssued, m.lineExpired,
		m.linePolls, m.lineJoins, m.lineHeld, m.lineMaxTickets, m.proofs,
		m.lineOffered, m.lineClaims, m.lineLapsed, m.lineRejoins, m.lineClaimWrites)
	for _, o := range []string{waitDecided, waitTimedOut, waitRefused, waitShutdown} {
		m.waits.WithLabelValues(o)
	}
	return m
}

func saleGauge(name, help string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"sale"})
}

func saleCounter(name, help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"sale"})
}

// initSale returns the per-reason request counters of a sale, created at
// zero so that every series exists before its first event. The map is
// read-only once returned.
func (m *Metrics) initSale(sale string) map[overflow.Reason]prometheus.Counter {
	cs := make(map[overflow.Reason]prometheus.Counter, len(overflow.Reasons()))
	for _, r := range overflow.Reasons() {
		cs[r] = m.requests.WithLabelValues(sale, string(OutcomeOf(r)), string(r))
	}
	return cs
}

// forgetSale drops a removed sale's series.
func (m *Metrics) forgetSale(sale string) {
	l := prometheus.Labels{"sale": sale}
	m.requests.DeletePartialMatch(l)
	m.state.DeletePartialMatch(l)
	m.lineJoins.DeletePartialMatch(l)
	for _, c := range []*prometheus.CounterVec{m.lineIssued, m.linePolls, m.lineClaims, m.lineRejoins, m.lineClaimWrites} {
		c.DeleteLabelValues(sale)
	}
	for _, g := range []*prometheus.GaugeVec{m.stock, m.remaining, m.admitted, m.queueDepth, m.queueBound, m.soldOut, m.drainRate, m.saleRate, m.confirmed, m.wait, m.backendRate, m.maxWait, m.released,
		m.lineTickets, m.lineDrawn, m.lineLetIn, m.lineOutstanding, m.lineRate, m.lineOffered, m.lineExpired, m.lineLapsed} {
		g.DeleteLabelValues(sale)
	}
}
