package drain

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"sluice/internal/series"
)

// Metrics are the drain's Prometheus metrics.
type Metrics struct {
	drained      *prometheus.CounterVec
	backend      *prometheus.HistogramVec
	batchSize    prometheus.Histogram
	inFlight     prometheus.Gauge
	bound        prometheus.Gauge
	redelivered  prometheus.Counter
	deadLetters  *prometheus.CounterVec
	pending      *prometheus.GaugeVec
	ackPending   *prometheus.GaugeVec
	statusErrors prometheus.Counter
	paceLimit    prometheus.Gauge
	paceWait     prometheus.Counter
	// backendChanged: see Drainer.checkBackend.
	backendChanged *prometheus.GaugeVec
}

// Drain outcomes of sluice_drain_orders_total.
const (
	outcomeConfirmed    = "confirmed"
	outcomeRejected     = "rejected"
	outcomeRetried      = "retried"
	outcomeDeadLettered = "dead_lettered"
)

// NewMetrics makes the drain's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		drained: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_drain_orders_total",
			Help: "Orders the drain finished or sent back, by sale and outcome (confirmed, rejected, retried, dead_lettered).",
		}, []string{"sale", "outcome"}),
		backend: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_drain_backend_duration_seconds",
			Help:    "Time of one backend call (a batch, or one order when a batch is retried order by order), by result (ok, error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		batchSize: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_drain_batch_size",
			Help:    "Orders per fetched batch.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		inFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_drain_workers_busy",
			Help: "Backend calls under way.",
		}),
		bound: f.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_drain_workers_max",
			Help: "Most backend calls that may run at once (--workers).",
		}),
		redelivered: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_drain_redeliveries_total",
			Help: "Orders received again after an earlier delivery was not acknowledged.",
		}),
		deadLetters: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_drain_dead_letters_total",
			Help: "Orders given up on and published to the dead-letter stream, by sale.",
		}, []string{"sale"}),
		pending: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_drain_consumer_pending",
			Help: "Orders in the sale's stream not yet delivered to the drain.",
		}, []string{"sale"}),
		ackPending: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_drain_consumer_ack_pending",
			Help: "Orders delivered to the drain and not yet acknowledged.",
		}, []string{"sale"}),
		statusErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_drain_record_errors_total",
			Help: "Failures to record a batch's decisions (its orders are then redelivered).",
		}),
		paceLimit: f.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_drain_backend_rate_limit",
			Help: "The process's cap on orders per second sent to the backend (--backend-rate); 0 means none.",
		}),
		paceWait: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_drain_pace_wait_seconds_total",
			Help: "Time batches waited for the backend's pace (--backend-rate, a sale's backend_rate) before their call.",
		}),
		// A gauge, not a counter: the change is found as the drain starts,
		// before any scrape, and a counter born at 1 shows no increase.
		backendChanged: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_drain_backend_changed",
			Help: "1 when this process's drain of the sale started into another backend than the one the sale's earlier orders were drained into (logged as a warning): those orders stay there.",
		}, []string{"sale"}),
	}
	series.AtZero(m.backend, "ok", "error")
	return m
}

// initSale creates a sale's series at zero as its drain starts.
func (m *Metrics) initSale(sale string) {
	series.AtZero(m.drained.MustCurryWith(prometheus.Labels{"sale": sale}),
		outcomeConfirmed, outcomeRejected, outcomeRetried, outcomeDeadLettered)
	series.AtZero(m.deadLetters, sale)
	series.AtZero(m.backendChanged, sale)
	series.AtZero(m.pending, sale)
	series.AtZero(m.ackPending, sale)
}
