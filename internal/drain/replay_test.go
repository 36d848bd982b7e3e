package drain_test

import (
	"net/http"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// A retry with the key of an order the drain has confirmed answers what
// the order is, 201 confirmed, not the 202 "queued" of its first answer:
// while the sale is open (the ledger finds the key) and once it is sold
// out (each gate's copy of the sale's orders finds it).
func TestReplayOfAConfirmedOrderAnswersConfirmed(t *testing.T) {
	srv := gatetest.Start(t, fast(gatetest.Config(t, ledger.Sale{Name: "rp", Stock: 2})))
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	first := gatetest.Order(t, c, base, "rp", "alice", "alice-1")
	if first.Status != http.StatusAccepted || first.Str("status") != "queued" {
		t.Fatalf("first order: %d %s", first.Status, first.Raw)
	}
	id := first.Str("order_id")
	waitDrained(t, srv.Ledger(), "rp", 30*time.Second)
	checkStatuses(t, base, []string{id}, "confirmed")
	replay := func(when string) {
		t.Helper()
		a := gatetest.Order(t, c, base, "rp", "alice", "alice-1")
		if a.Status != http.StatusCreated || a.Str("status") != "confirmed" || a.Str("order_id") != id ||
			a.Header.Get("Idempotent-Replayed") != "true" || a.Header.Get("Location") != "/v1/orders/"+id {
			t.Fatalf("replay %s: %d %v %s", when, a.Status, a.Header, a.Raw)
		}
	}
	replay("while the sale is open")
	if a := gatetest.Order(t, c, base, "rp", "bob", ""); a.Status != http.StatusAccepted {
		t.Fatalf("bob: %d %s", a.Status, a.Raw)
	}
	if a := gatetest.Order(t, c, base, "rp", "carol", ""); a.Status != http.StatusGone {
		t.Fatalf("carol after the stock: %d %s", a.Status, a.Raw)
	}
	for range 5 { // the first may still ask the ledger while the copy fills
		replay("once sold out")
	}
}
