package loadtest

import (
	"net"
	"net/http"
	"time"

	"sluice/internal/series"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the generator's own Prometheus metrics, so a dashboard can
// lay the offered load over the gate's throttling.
type Metrics struct {
	offered  prometheus.Gauge
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	late     prometheus.Counter
	dropped  prometheus.Counter
	running  prometheus.Gauge
	stopRate chan struct{}
	rateDone chan struct{}
}

// ServeMetrics makes a set of metrics in a registry of their own and
// serves it on ln (at /metrics, and at any path), as --metrics-listen does.
// Shut the server down when done.
func ServeMetrics(ln net.Listener) (*Metrics, *http.Server) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return m, srv
}

// NewMetrics makes the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		offered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_loadtest_offered_rate",
			Help: "Requests per second the schedule asks for now.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_loadtest_requests_total",
			Help: "Requests answered (or failed), by outcome (admitted, diverted, rejected, failed).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_loadtest_latency_seconds",
			Help:    "Latency from each request's intended send time to its answer, by outcome.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_loadtest_late_sends_total",
			Help: "Requests sent later than allowed after their intended time: the generator fell behind.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_loadtest_dropped_sends_total",
			Help: "Scheduled requests never sent because the run ended first.",
		}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_loadtest_running",
			Help: "1 while a run is going.",
		}),
	}
	series.AtZero(m.requests, Outcomes()...)
	series.AtZero(m.latency, Outcomes()...)
	reg.MustRegister(m.offered, m.requests, m.latency, m.late, m.dropped, m.running)
	return m
}

func (m *Metrics) start(p Profile, start time.Time) {
	m.running.Set(1)
	m.stopRate, m.rateDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.rateDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			m.offered.Set(p.RateAt(time.Since(start)))
			select {
			case <-m.stopRate:
				m.offered.Set(0)
				return
			case <-t.C:
			}
		}
	}()
}

func (m *Metrics) observe(r Result, lateAfter time.Duration) {
	o := OutcomeOf(r)
	m.requests.WithLabelValues(o).Inc()
	m.latency.WithLabelValues(o).Observe(r.Latency.Seconds())
	if r.late(lateAfter) {
		m.late.Inc()
	}
}

func (m *Metrics) finish(dropped uint64) {
	m.dropped.Add(float64(dropped))
	close(m.stopRate)
	<-m.rateDone
	m.running.Set(0)
}
