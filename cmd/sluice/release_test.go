package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// rejectingShop is a purchase endpoint that refuses every 5th new order
// and answers a repeated call for an order as it did the first time.
type rejectingShop struct {
	mu      sync.Mutex
	decided map[string]int
	n       int
}

func (s *rejectingShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var o struct {
		ID string `json:"order_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil || o.ID == "" {
		http.Error(w, "bad order", 400)
		return
	}
	s.mu.Lock()
	code, ok := s.decided[o.ID]
	if !ok {
		s.n++
		code = 201
		if s.n%5 == 0 {
			code = 409
		}
		s.decided[o.ID] = code
	}
	s.mu.Unlock()
	if code == 409 {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(409)
		fmt.Fprint(w, `{"reason":"payment_failed"}`)
		return
	}
	w.WriteHeader(code)
}

func (s *rejectingShop) count(code int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.decided {
		if c == code {
			n++
		}
	}
	return n
}

// Stock 100, a backend that rejects every 5th order, buyers who keep
// coming, and the drain killed with SIGKILL and started again mid-run:
// the rejected orders' slots are sold again, none is released twice, and
// exactly 100 orders are confirmed in the end.
func TestKill9OfDrainReleasesEachSlotOnce(t *testing.T) {
	shop := &rejectingShop{decided: map[string]int{}}
	ts := httptest.NewServer(shop)
	defer ts.Close()
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 100})
	cfg.NoDrain = true
	cfg.NATSListen = "127.0.0.1:0"
	gate := gatetest.Start(t, cfg)
	base := "http://" + gate.APIAddr()
	args := []string{"drain", "--nats-url", gate.NATSURL(), "--backend", ts.URL, "--batch", "5", "--workers", "2", "--backend-timeout", "1s"}
	drain := startProc(t, "sluice drain up", args...)

	c := gatetest.Client()
	var (
		next   atomic.Int64
		killed atomic.Bool
		wg     sync.WaitGroup
	)
	done := func() bool {
		st, err := gate.Ledger().State(t.Context(), "s1")
		return shop.count(201) >= 100 && err == nil && st.SoldOut() && st.Pending == 0
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= 2000 && !(killed.Load() && done()); i = next.Add(1) {
				gatetest.Order(t, c, base, "s1", fmt.Sprint("buyer-", i), "")
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	gatetest.Eventually(t, 30*time.Second, "some orders confirmed and some rejected", func() bool {
		return shop.count(201) >= 40 && shop.count(409) >= 5
	})
	if err := drain.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-drain.done
	drain.done <- nil
	atKill := shop.count(201)
	startProc(t, "sluice drain up", args...)
	killed.Store(true)
	wg.Wait()
	gatetest.Eventually(t, 30*time.Second, "the queue drained", func() bool {
		st, err := gate.Ledger().State(t.Context(), "s1")
		return err == nil && st.Pending == 0
	})
	confirmed, rejected := shop.count(201), shop.count(409)
	if confirmed != 100 {
		t.Fatalf("%d orders confirmed of a stock of 100 (%d rejected)", confirmed, rejected)
	}
	sale := gatetest.Get(t, c, base+"/v1/sales/s1")
	if sale.Body["released"] != float64(rejected) || sale.Body["admitted"] != float64(100+rejected) {
		t.Fatalf("%d rejected at the shop; the sale: %s", rejected, sale.Raw)
	}
	t.Logf("killed the drain at %d confirmed; in the end %d confirmed, %d rejected and each slot sold again once", atKill, confirmed, rejected)
}
