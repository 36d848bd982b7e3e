package consumer_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/gatetest"
	"sluice/internal/ledger"
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
	order := func() gatetest.Answer {
		req, _ := http.NewRequest("POST", base+"/v1/sales/again/orders", strings.NewReader(`{"buyer_id":"carol"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "wait=10")
		return gatetest.Do(t, c, req)
	}
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
	if a := order(); a.Status != http.StatusConflict || a.Str("reason") != "already_ordered" || a.Str("order_id") != second.Str("order_id") {
		t.Fatalf("third order: %d %s", a.Status, a.Raw)
	}
}
