package waitingroom

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the line's gauges and counters that follow its durable
// records: every gate that applied the same records reports the same.
// The gate's own counts of what it answered (joins, polls, claim records
// written, proofs) are admission's.
type Metrics struct {
	tickets, drawn, letIn, outstanding, rate *prometheus.GaugeVec
	offered, expired, lapsed                 *prometheus.GaugeVec
	issued, claims, rejoins                  *prometheus.CounterVec

	mu sync.Mutex
	// followed are the counts the counters last followed, by sale.
	followed map[string]*followed
}

type followed struct{ issued, claims, rejoins int64 }

// NewMetrics makes the line's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"sale"})
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"sale"})
	}
	m := &Metrics{
		tickets:     gauge("sluice_line_tickets", "Tickets in the sale's waiting-room line (drawn and joined after the start)."),
		drawn:       gauge("sluice_line_drawn_tickets", "Tickets taken before the start, ordered by the draw (0 until it is made)."),
		letIn:       gauge("sluice_line_let_in", "Positions of the line that had their turn: 1..this were issued a pass."),
		outstanding: gauge("sluice_line_passes_outstanding", "Passes issued, not used for an order and not expired."),
		rate:        gauge("sluice_line_let_in_rate", "Positions per second the line's estimates assume: what it let in over the last 30 s, else the drain rate."),
		issued:      counter("sluice_line_passes_issued_total", "Passes the line issued, as its durable pace records say (every gate reports the same count: take the max across gates)."),
		// Expired and lapsed are gauges, not counters: a use, or a claim,
		// stored in time and applied late takes one back, and a counter
		// that followed their highest value kept a lagging gate's
		// overcount.
		expired:  gauge("sluice_line_passes_expired", "Passes that expired unused, as the line's records say now: their places went to the next in line (the same on every gate)."),
		offered:  gauge("sluice_line_offered", "Positions of the line offered their turn: 1..this may claim it (at least sluice_line_let_in)."),
		claims:   counter("sluice_line_claims_total", "Turns claimed by their holders (asked for the ticket within the claim window), as the durable claim records say (the same on every gate)."),
		lapsed:   gauge("sluice_line_lapsed_turns", "Turns offered and not claimed within the claim window, as the line's records say now: their room went on at once (the same on every gate)."),
		rejoins:  counter("sluice_line_rejoins_total", "Holders whose turn lapsed who came back and were put at the back of the line, as the durable rejoin records say."),
		followed: map[string]*followed{},
	}
	reg.MustRegister(m.tickets, m.drawn, m.letIn, m.outstanding, m.rate, m.issued, m.expired,
		m.offered, m.claims, m.lapsed, m.rejoins)
	return m
}

// init makes a sale's counters at zero, so that every series exists
// before its first event.
func (m *Metrics) init(sale string) {
	for _, c := range []*prometheus.CounterVec{m.issued, m.claims, m.rejoins} {
		c.WithLabelValues(sale)
	}
}

// follow sets a sale's metrics from the pace's look. The counters follow
// the durable records: claims, rejoins and passes issued only grow with
// the records applied.
func (m *Metrics) follow(sale string, snap *Snapshot) {
	m.offered.WithLabelValues(sale).Set(float64(snap.Offered))
	m.tickets.WithLabelValues(sale).Set(float64(snap.Tickets))
	m.drawn.WithLabelValues(sale).Set(float64(snap.Drawn))
	m.letIn.WithLabelValues(sale).Set(float64(snap.LetIn))
	m.outstanding.WithLabelValues(sale).Set(float64(snap.Outstanding))
	m.rate.WithLabelValues(sale).Set(snap.Rate)
	m.expired.WithLabelValues(sale).Set(float64(snap.Expired))
	m.lapsed.WithLabelValues(sale).Set(float64(snap.Lapsed))
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.followed[sale]
	if f == nil {
		f = &followed{}
		m.followed[sale] = f
	}
	for _, c := range []struct {
		vec  *prometheus.CounterVec
		seen *int64
		now  int64
	}{{m.issued, &f.issued, snap.LetIn}, {m.claims, &f.claims, snap.Claimed}, {m.rejoins, &f.rejoins, snap.Rejoined}} {
		if c.now > *c.seen {
			c.vec.WithLabelValues(sale).Add(float64(c.now - *c.seen))
			*c.seen = c.now
		}
	}
}

// forget drops a sale's series: the sale is gone.
func (m *Metrics) forget(sale string) {
	for _, c := range []*prometheus.CounterVec{m.issued, m.claims, m.rejoins} {
		c.DeleteLabelValues(sale)
	}
	for _, g := range []*prometheus.GaugeVec{m.tickets, m.drawn, m.letIn, m.outstanding, m.rate, m.offered, m.expired, m.lapsed} {
		g.DeleteLabelValues(sale)
	}
	m.mu.Lock()
	delete(m.followed, sale)
	m.mu.Unlock()
}
