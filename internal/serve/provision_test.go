package serve_test

import (
	"context"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// A restart with more stock for a sold-out sale opens it again, and says
// so; a sale whose window has ended is provisioned closed, and that is
// said too.
func TestProvisionWarnsWhenItReopensOrClosesASale(t *testing.T) {
	dir := t.TempDir()
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1})
	cfg.DataDir = dir
	first := gatetest.Start(t, cfg)
	c := gatetest.Client()
	if a := gatetest.Order(t, c, "http://"+first.APIAddr(), "s1", "alice", ""); a.Status != 202 {
		t.Fatalf("order: %d %s", a.Status, a.Raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	log, lines := gatetest.CaptureLog(t)
	again := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 5},
		ledger.Sale{Name: "past", Stock: 5, EndsAt: time.Now().Add(-time.Hour)},
		ledger.Sale{Name: "fresh", Stock: 5})
	again.DataDir, again.Logger = dir, log
	for i := range again.Sales {
		again.Sales[i].StockOnly = again.Sales[i].Sale.Name != "past"
	}
	second := gatetest.Start(t, again)
	if a := gatetest.Order(t, c, "http://"+second.APIAddr(), "s1", "bob", ""); a.Status != 202 {
		t.Fatalf("order after more stock: %d %s", a.Status, a.Raw)
	}
	for msg, want := range map[string]int{
		"the sale was sold out: its new stock opens it again": 1,
		"the sale is closed: its ends_at is past":             1,
		"level=WARN": 2, // a new sale is provisioned without one
	} {
		if n := lines.Count(msg); n != want {
			t.Errorf("%q logged %d times, want %d:\n%s", msg, n, want, lines)
		}
	}
}
