package admission

import (
	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/series"
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
		overflow.BadBuyerToken, overflow.BuyerMismatch, overflow.ProofRequired, overflow.BadProof,
		overflow.VariantRequired, overflow.UnknownVariant:
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

	// A sale with variants' stock, by variant (at most
	// ledger.MaxVariants a sale).
	variantStock, variantAdmitted, variantRemaining, variantReleased *prometheus.GaugeVec

	// The waiting rooms, as this gate answers them (what their records
	// say is waitingroom.Metrics).
	linePolls, lineClaimWrites, lineJoins *prometheus.CounterVec

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
	m.variantStock = variantGauge("sluice_sale_variant_stock", "Stock a variant of a sale with variants was configured with.")
	m.variantAdmitted = variantGauge("sluice_sale_variant_admitted_orders", "Orders of a variant in the sale's ledger stream.")
	m.variantRemaining = variantGauge("sluice_sale_variant_stock_remaining", "How many more orders of a variant the ledger takes: its stock and released orders less its admitted ones.")
	m.variantReleased = variantGauge("sluice_sale_variant_released_orders", "Orders of a variant that gave their item back to it (rejected, failed, cancelled).")
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
	series.AtZero(m.proofs, proofOutcomes[:]...)
	m.durationOf = make(map[Outcome]prometheus.Observer)
	for _, o := range []Outcome{OutcomeAdmitted, OutcomeDiverted, OutcomeRejected, OutcomeFailed} {
		m.durationOf[o] = m.duration.WithLabelValues(string(o))
	}
	m.http.vec = m.httpRequests
	m.httpRequests.WithLabelValues("200", "get") // the usual answer, so the series exists
	series.AtZero(m.publishErrors, "unavailable", "store_full")
	series.AtZero(m.limiterKeys, "ip", "buyer")
	series.AtZero(m.limiterCap, "ip", "buyer")
	series.AtZero(m.limiterEvict, "ip", "buyer")
	m.initSale(unknownSaleLabel)
	reg.MustRegister(m.requests, m.duration, m.publish, m.publishErrors, m.stock,
		m.remaining, m.admitted, m.queueDepth, m.queueBound, m.soldOut, m.state, m.drainRate,
		m.saleRate, m.inFlight, m.httpRequests, m.limiterKeys, m.limiterCap, m.limiterEvict,
		m.ledgerUp, m.confirmed, m.wait, m.backendRate, m.maxWait, m.waiters, m.waitersMax, m.waits, m.released,
		m.linePolls, m.lineJoins, m.lineHeld, m.lineMaxTickets, m.proofs, m.lineClaimWrites,
		m.variantStock, m.variantAdmitted, m.variantRemaining, m.variantReleased)
	series.AtZero(m.waits, waitDecided, waitTimedOut, waitRefused, waitShutdown)
	return m
}

func saleGauge(name, help string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"sale"})
}

func variantGauge(name, help string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"sale", "variant"})
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

// initLine makes a sale's waiting-room series at zero, once it has a
// line.
func (m *Metrics) initLine(sale string) {
	series.AtZero(m.lineJoins.MustCurryWith(prometheus.Labels{"sale": sale}), joinOutcomes[:]...)
	series.AtZero(m.lineClaimWrites, sale)
}

// forgetSale drops a removed sale's series.
func (m *Metrics) forgetSale(sale string) {
	l := prometheus.Labels{"sale": sale}
	m.requests.DeletePartialMatch(l)
	m.state.DeletePartialMatch(l)
	m.lineJoins.DeletePartialMatch(l)
	for _, g := range []*prometheus.GaugeVec{m.variantStock, m.variantAdmitted, m.variantRemaining, m.variantReleased} {
		g.DeletePartialMatch(l)
	}
	for _, c := range []*prometheus.CounterVec{m.linePolls, m.lineClaimWrites} {
		c.DeleteLabelValues(sale)
	}
	for _, g := range []*prometheus.GaugeVec{m.stock, m.remaining, m.admitted, m.queueDepth, m.queueBound, m.soldOut, m.drainRate, m.saleRate, m.confirmed, m.wait, m.backendRate, m.maxWait, m.released} {
		g.DeleteLabelValues(sale)
	}
}
