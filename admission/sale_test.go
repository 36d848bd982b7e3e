package admission

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/ledger"
)

// TestStaleRefreshDoesNotUndoANewerChange: a refresh that began reading
// before an admin change landed must not put the old settings back, even
// when it is applied after the change.
func TestStaleRefreshDoesNotUndoANewerChange(t *testing.T) {
	g := New(Config{}, nil, NewMetrics(prometheus.NewRegistry()))
	t0 := time.Now()
	open := ledger.Sale{Name: "s1", Stock: 10}
	g.UpdateSales([]ledger.SaleState{{Sale: open, Read: t0}}, nil)
	closed := open
	closed.EndsAt = t0.Add(-time.Hour)
	g.UpdateSale(ledger.SaleState{Sale: closed, Read: t0.Add(2 * time.Millisecond)})
	// The refresh read at t0+1ms answers after the change.
	g.UpdateSales([]ledger.SaleState{{Sale: open, Admitted: 10, Read: t0.Add(time.Millisecond)}}, nil)
	s := g.lookupSale("s1")
	if got := stateOf(s, time.Now()); got != "closed" || s.admitted.Load() != 0 {
		t.Fatalf("state %s, admitted %d: the stale refresh was applied", got, s.admitted.Load())
	}
	// A refresh read after the change applies.
	g.UpdateSales([]ledger.SaleState{{Sale: closed, Admitted: 3, Read: t0.Add(3 * time.Millisecond)}}, nil)
	if s.admitted.Load() != 3 {
		t.Fatalf("admitted %d after a fresh refresh, want 3", s.admitted.Load())
	}
}
