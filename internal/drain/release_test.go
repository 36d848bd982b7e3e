package drain_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// Stock 100, a backend that rejects every 5th order, and buyers who keep
// coming: the slots of rejected orders return to the sale, which sells
// them again, and in the end exactly 100 orders are confirmed — never
// more, whatever the redeliveries.
func TestRejectedOrdersAreSoldAgain(t *testing.T) {
	var calls atomic.Int64
	sh, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) {
		if calls.Add(1)%5 == 0 {
			return 409, 0 // refused: {"reason":"duplicate_customer"}
		}
		return 201, 0
	})
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "rel", Stock: 100}))
	cfg.Backend = ts.URL
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	confirmed := func() int {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		n := 0
		for _, s := range sh.orders {
			if s == "confirmed" {
				n++
			}
		}
		return n
	}
	var (
		next     atomic.Int64
		admitted atomic.Int64
		mu       sync.Mutex
		ids      []string
		wg       sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > 1000 || confirmed() >= 100 && settled(t, srv.Ledger(), "rel") {
					return
				}
				a := gatetest.Order(t, c, base, "rel", fmt.Sprint("buyer-", i), "")
				if a.Status == http.StatusAccepted {
					admitted.Add(1)
					mu.Lock()
					ids = append(ids, a.Str("order_id"))
					mu.Unlock()
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	waitDrained(t, srv.Ledger(), "rel", 30*time.Second)
	// Nothing is cancelled here, so the confirmed count only grows: its
	// final value is its most at any instant.
	if n := confirmed(); n != 100 {
		t.Fatalf("%d orders confirmed of a stock of 100 (%d admitted, %d backend calls)", n, admitted.Load(), calls.Load())
	}
	rejected := 0
	for _, id := range ids {
		a := gatetest.Get(t, c, base+"/v1/orders/"+id)
		if a.Str("status") == "rejected" {
			rejected++
			if a.Str("reason") != "duplicate_customer" {
				t.Fatalf("a rejected order: %s", a.Raw)
			}
		}
	}
	sale := gatetest.Get(t, c, base+"/v1/sales/rel")
	if sale.Body["released"] != float64(rejected) || sale.Str("state") != "sold_out" || sale.Body["remaining"] != 0.0 {
		t.Fatalf("sale after %d rejections: %s", rejected, sale.Raw)
	}
	if a := gatetest.Order(t, c, base, "rel", "late", ""); a.Status != http.StatusGone {
		t.Fatalf("a buyer after the end: %d %s", a.Status, a.Raw)
	}
	t.Logf("%d admitted, %d rejected and sold again, %d confirmed", admitted.Load(), rejected, confirmed())
}

// settled says the sale is sold out with nothing queued: no slot can come
// back any more.
func settled(t *testing.T, l *ledger.Ledger, sale string) bool {
	t.Helper()
	st, err := l.State(t.Context(), sale)
	return err == nil && st.SoldOut() && st.Pending == 0
}

// A buyer whose order the backend rejected may order again, once.
func TestRejectedBuyerMayOrderAgain(t *testing.T) {
	var first atomic.Bool
	_, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) {
		if buyer == "carol" && first.CompareAndSwap(false, true) {
			return 409, 0
		}
		return 201, 0
	})
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "again", Stock: 5}))
	cfg.Backend = ts.URL
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	order := func() gatetest.Answer { return orderWaiting(t, c, base, "again", "carol", 10) }
	if a := order(); a.Status != http.StatusConflict || a.Str("reason") != "order_rejected" {
		t.Fatalf("first order: %d %s", a.Status, a.Raw)
	}
	var second gatetest.Answer
	gatetest.Eventually(t, 5*time.Second, "carol's second order", func() bool {
		second = order()
		return second.Status != http.StatusConflict || second.Str("reason") != "already_ordered"
	})
	if second.Status != http.StatusCreated {
		t.Fatalf("second order: %d %s", second.Status, second.Raw)
	}
	// Her third is refused; an anonymous buyer's refusal names no order
	// (an order is its proven buyer's: docs/api.md).
	if a := order(); a.Status != http.StatusConflict || a.Str("reason") != "already_ordered" || a.Str("order_id") != "" {
		t.Fatalf("third order: %d %s", a.Status, a.Raw)
	}
}

// cancel posts POST /admin/orders/{id}/cancel to the gate's ops listener.
func cancel(t *testing.T, srv interface{ OpsAddr() string }, id, token string) gatetest.Answer {
	t.Helper()
	return gatetest.Admin(t, gatetest.Client(), srv.OpsAddr(), "POST", "/admin/orders/"+id+"/cancel", token, "")
}

// Cancelling 10 confirmed orders gives their items back in the database
// and their slots back to the sale, which reopens: 10 more buyers get in,
// never more, and the database ends with the stock confirmed again.
func TestCancelReopensTheSale(t *testing.T) {
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "can", Stock: 20}))
	cfg.AdminToken = "secret"
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	first := buyAll(t, base, "can", 20)
	waitDrained(t, srv.Ledger(), "can", 30*time.Second)
	checkStatuses(t, base, first, "confirmed")
	db := backendDB(t, srv)
	count := func(q string) int {
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var firstAnswer string
	for i, id := range first[:10] {
		a := cancel(t, srv, id, "secret")
		if a.Status != http.StatusOK || a.Str("status") != "cancelled" || a.Str("decided_at") == "" {
			t.Fatalf("cancel %s: %d %s", id, a.Status, a.Raw)
		}
		if i == 0 {
			firstAnswer = a.Raw
		}
	}
	// Cancelling again changes nothing and answers the same 200, the
	// recorded decided_at included: at once (the gate's view may not
	// have the cancel yet, so the record answers) and once it has.
	if a := cancel(t, srv, first[0], "secret"); a.Status != http.StatusOK || a.Raw != firstAnswer {
		t.Fatalf("cancel again: %d %s, the first cancel answered %s", a.Status, a.Raw, firstAnswer)
	}
	if n := count(`SELECT remaining FROM sales WHERE sale = 'can'`); n != 10 {
		t.Fatalf("remaining %d in the database after 10 cancels", n)
	}
	gatetest.Eventually(t, 5*time.Second, "the sale to reopen", func() bool {
		s := gatetest.Get(t, c, base+"/v1/sales/can")
		return s.Str("state") == "open" && s.Body["released"] == 10.0 && s.Body["remaining"] == 10.0
	})
	if a := gatetest.Get(t, c, base+"/v1/orders/"+first[0]); a.Str("status") != "cancelled" {
		t.Fatalf("a cancelled order: %s", a.Raw)
	}
	if a := cancel(t, srv, first[0], "secret"); a.Status != http.StatusOK || a.Raw != firstAnswer {
		t.Fatalf("cancel once the gate follows it: %d %s, the first cancel answered %s", a.Status, a.Raw, firstAnswer)
	}
	// The database cannot confirm more than its stock row allows (its
	// CHECK keeps remaining >= 0), so sampling its confirmed rows while
	// buyers come proves nothing; the end state below is what counts: 20
	// confirmed, none of the later buyers refused for want of stock.
	admitted := 0
	for i := range 30 {
		if a := gatetest.Order(t, c, base, "can", fmt.Sprint("late-", i), ""); a.Status == http.StatusAccepted {
			admitted++
		}
	}
	if admitted != 10 {
		t.Fatalf("%d of 30 later buyers admitted after 10 cancels", admitted)
	}
	waitDrained(t, srv.Ledger(), "can", 30*time.Second)
	if n, m, r := count(`SELECT COUNT(*) FROM orders WHERE sale = 'can' AND status = 'confirmed'`),
		count(`SELECT COUNT(*) FROM orders WHERE sale = 'can' AND status = 'cancelled'`),
		count(`SELECT remaining FROM sales WHERE sale = 'can'`); n != 20 || m != 10 || r != 0 {
		t.Fatalf("database: %d confirmed, %d cancelled, %d remaining; want 20, 10, 0", n, m, r)
	}
	// Bad input changes nothing.
	other := ledger.OrderID{Sale: "can", Seq: 3, Token: ledger.NewToken()}.String()
	for name, c := range map[string]struct {
		id, token string
		status    int
	}{
		"no token":      {first[10], "", http.StatusUnauthorized},
		"wrong token":   {first[10], "guess", http.StatusUnauthorized},
		"unknown order": {other, "secret", http.StatusNotFound},
		"malformed id":  {"not-an-id", "secret", http.StatusNotFound},
	} {
		if a := cancel(t, srv, c.id, c.token); a.Status != c.status || a.Str("reason") == "" {
			t.Errorf("%s: %d %s", name, a.Status, a.Raw)
		}
	}
	if n := count(`SELECT COUNT(*) FROM orders WHERE sale = 'can' AND status = 'cancelled'`); n != 10 {
		t.Fatalf("%d cancelled after bad requests", n)
	}
}

// A queued order cannot be cancelled (409: it is not decided yet), nor a
// rejected one (nothing to give back); with the HTTP backend, where the
// shop cancels and tells sluice, a confirmed one can.
func TestCancelAnswersByStatus(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	_, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) {
		switch buyer {
		case "slow":
			<-release
		case "refused":
			return 409, 0
		}
		return 201, 0
	})
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "cs", Stock: 10}))
	cfg.Backend = ts.URL
	cfg.Drain.BackendTimeout = 20 * time.Second
	cfg.AdminToken = "secret"
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	slow := gatetest.Order(t, c, base, "cs", "slow", "").Str("order_id")
	if a := cancel(t, srv, slow, "secret"); a.Status != http.StatusConflict || !strings.Contains(a.Str("detail"), "queued") {
		t.Fatalf("a queued order: %d %s", a.Status, a.Raw)
	}
	refused := orderWaiting(t, c, base, "cs", "refused", 10)
	if a := cancel(t, srv, refused.Str("order_id"), "secret"); a.Status != http.StatusConflict || !strings.Contains(a.Str("detail"), "not confirmed") {
		t.Fatalf("a rejected order: %d %s", a.Status, a.Raw)
	}
	ok := orderWaiting(t, c, base, "cs", "paid-late", 10)
	if ok.Status != http.StatusCreated {
		t.Fatalf("order: %d %s", ok.Status, ok.Raw)
	}
	if a := cancel(t, srv, ok.Str("order_id"), "secret"); a.Status != http.StatusOK || a.Str("status") != "cancelled" {
		t.Fatalf("a confirmed order: %d %s", a.Status, a.Raw)
	}
	gatetest.Eventually(t, 5*time.Second, "the status to read cancelled", func() bool {
		return gatetest.Get(t, c, base+"/v1/orders/"+ok.Str("order_id")).Str("status") == "cancelled"
	})
	releaseOnce.Do(func() { close(release) })
}
