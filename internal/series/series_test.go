package series_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"sluice/internal/series"
)

// Every series named exists at zero before any event, in the vector and
// through a curried view of it, for counters, gauges and histograms.
func TestAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := promauto.With(reg)
	byOutcome := f.NewCounterVec(prometheus.CounterOpts{Name: "t_orders_total", Help: "h"}, []string{"sale", "outcome"})
	bySale := f.NewGaugeVec(prometheus.GaugeOpts{Name: "t_pending", Help: "h"}, []string{"sale"})
	byResult := f.NewHistogramVec(prometheus.HistogramOpts{Name: "t_call_seconds", Help: "h"}, []string{"result"})

	series.AtZero(byOutcome.MustCurryWith(prometheus.Labels{"sale": "s1"}), "confirmed", "rejected")
	series.AtZero(bySale, "s1", "s2")
	series.AtZero(byResult, "ok", "error")

	if n := testutil.CollectAndCount(byOutcome); n != 2 {
		t.Fatalf("%d orders series, want 2", n)
	}
	if v := testutil.ToFloat64(byOutcome.WithLabelValues("s1", "rejected")); v != 0 {
		t.Fatalf("rejected %v", v)
	}
	want := `
# HELP t_pending h
# TYPE t_pending gauge
t_pending{sale="s1"} 0
t_pending{sale="s2"} 0
`
	if err := testutil.CollectAndCompare(bySale, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(byResult); n != 2 {
		t.Fatalf("%d call series, want 2", n)
	}
}
