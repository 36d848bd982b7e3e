// Package series creates the labelled series of a metric vector at zero
// before their first event, for the label values a package knows up front
// (outcomes, results, reasons, a sale once it is known).
//
// A series that exists from the start lets rate() and increase() count
// its first event, and a dashboard show 0 rather than no data. Metrics are
// made and registered with promauto.With(reg) against the registry their
// owner is given, never the global one; this package only fills them.
package series

// Vec is a metric vector with one label left to fill: a
// *prometheus.CounterVec, GaugeVec or HistogramVec of one label, or one
// curried down to one (MustCurryWith).
type Vec[M any] interface {
	WithLabelValues(lvs ...string) M
}

// AtZero creates vec's series for each of values, at zero.
func AtZero[M any](vec Vec[M], values ...string) {
	for _, v := range values {
		vec.WithLabelValues(v)
	}
}
