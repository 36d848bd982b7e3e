package drain_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// callClock records when each call reached the endpoint.
type callClock struct {
	mu    sync.Mutex
	times []time.Time
}

func (c *callClock) note() {
	c.mu.Lock()
	c.times = append(c.times, time.Now())
	c.mu.Unlock()
}

// maxPerWindow is the most calls in any window of length w.
func (c *callClock) maxPerWindow(w time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := append([]time.Time(nil), c.times...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// checkPace checks the calls the endpoint saw against a pace of rate/s:
// rate ± 10% on average while the backlog lasted, and never more than
// rate + 10% in any second (any sliding window of one second). The HTTP
// backend waits for the pace call by call once it holds a call's slot,
// so even an endpoint that stops taking calls for a moment (its handler
// descheduled on a loaded machine) then receives at most the calls under
// way (--workers) and a burst of a twentieth of a second at once.
func checkPace(t *testing.T, c *callClock, rate float64) {
	t.Helper()
	c.mu.Lock()
	n := len(c.times)
	elapsed := c.times[n-1].Sub(c.times[0])
	c.mu.Unlock()
	avg := float64(n-1) / elapsed.Seconds()
	peak1 := c.maxPerWindow(time.Second)
	t.Logf("%d calls in %v: %.0f/s on average, at most %d in any second", n, elapsed.Round(time.Millisecond), avg, peak1)
	// The pace is a cap the backend is promised: never above it, on
	// average or in any second.
	if avg > 1.1*rate {
		t.Fatalf("%.0f calls/s on average; the pace is %.0f/s", avg, rate)
	}
	if float64(peak1) > 1.1*rate {
		t.Fatalf("the endpoint saw %d calls in one second; the pace is %.0f/s", peak1, rate)
	}
	// And with a backlog the drain goes at it. How close it comes is
	// the machine's speed (a starved drain runs below it), so this checks
	// only that the pace, not something far slower, held the drain back.
	if float64(peak1) < 0.5*rate {
		t.Fatalf("at most %d calls in a second with a backlog: the pace of %.0f/s is not used", peak1, rate)
	}
}

// A sale's backend_rate paces the drain order by order: with a backlog
// of 2,000 orders and backend_rate 200, the endpoint never sees more than
// 200 calls in any second (+10%), and sees about that many while the
// backlog lasts.
func TestBackendRatePacesTheEndpoint(t *testing.T) {
	var clock callClock
	sh, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) {
		clock.note()
		return 201, 0
	})
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "paced", Stock: 2000, BackendRate: 200}))
	cfg.Backend = ts.URL
	cfg.Drain.Workers = 8
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	start := time.Now()
	ids := buyAll(t, base, "paced", 2000)
	if len(ids) != 2000 {
		t.Fatalf("%d admitted", len(ids))
	}
	t.Logf("2,000 orders admitted in %v", time.Since(start).Round(time.Millisecond))
	waitDrained(t, srv.Ledger(), "paced", 60*time.Second)
	checkStatuses(t, base, ids, "confirmed")
	checkPace(t, &clock, 200)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.orders) != 2000 {
		t.Fatalf("the shop holds %d orders", len(sh.orders))
	}
}

// --backend-rate caps the whole process, over every sale.
func TestProcessBackendRateCapsAllSales(t *testing.T) {
	var clock callClock
	_, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) {
		clock.note()
		return 201, 0
	})
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "a", Stock: 150}, ledger.Sale{Name: "b", Stock: 150}))
	cfg.Backend = ts.URL
	cfg.Drain.BackendRate = 100
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	for _, sale := range []string{"a", "b"} {
		if n := len(buyAll(t, base, sale, 150)); n != 150 {
			t.Fatalf("%s: %d admitted", sale, n)
		}
	}
	for _, sale := range []string{"a", "b"} {
		waitDrained(t, srv.Ledger(), sale, 30*time.Second)
	}
	checkPace(t, &clock, 100)
	if v := gatetest.Counter(t, srv.Registry(), "sluice_drain_pace_wait_seconds_total"); v <= 0 {
		t.Fatalf("pace wait %v: the drain never waited for its pace", v)
	}
}

// max_wait: the queue bound follows the pace the drain can keep, so an
// order answered 202 is decided within max_wait; beyond the bound the
// gate answers 429 queue_full with a Retry-After.
func TestMaxWaitBoundsTheQueue(t *testing.T) {
	_, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) { return 201, 0 })
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "mw", Stock: 1000, BackendRate: 50, MaxWait: ledger.Duration(2 * time.Second)}))
	cfg.Backend = ts.URL
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	sale := gatetest.Get(t, c, base+"/v1/sales/mw")
	if sale.Body["max_wait_seconds"] != 2.0 || sale.Body["backend_rate"] != 50.0 || sale.Body["queue_bound"] != 100.0 {
		t.Fatalf("sale: %s", sale.Raw)
	}
	var (
		mu       sync.Mutex
		admitted []string
		lastAt   time.Time
		full     int
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 4)
	)
	burst := time.Now()
	for i := range 300 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			a := gatetest.Order(t, c, base, "mw", fmt.Sprint("b", i), "")
			mu.Lock()
			defer mu.Unlock()
			switch a.Status {
			case http.StatusAccepted:
				admitted = append(admitted, a.Str("order_id"))
				lastAt = time.Now()
			case http.StatusTooManyRequests:
				if a.Str("reason") != "queue_full" {
					t.Errorf("429 %s", a.Raw)
				}
				if ra, err := strconv.Atoi(a.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
					t.Errorf("Retry-After %q", a.Header.Get("Retry-After"))
				}
				full++
			default:
				t.Errorf("%d %s", a.Status, a.Raw)
			}
		}()
	}
	wg.Wait()
	// The queue holds at most 100; while the burst lasts the drain takes
	// up to 50 a second out of it (+10%, and its burst), and 4 orders are
	// in flight at any time.
	most := 100 + 4 + int(55*time.Since(burst).Seconds()) + 3
	if full == 0 || len(admitted) > most {
		t.Fatalf("%d admitted (at most %d), %d answered queue_full: the bound of 100 did not hold", len(admitted), most, full)
	}
	waitDrained(t, srv.Ledger(), "mw", 30*time.Second)
	if took := time.Since(lastAt); took > 2*time.Second+1500*time.Millisecond {
		// waitDrained polls; the drain itself decided the last order in
		// about len(admitted)/50 s.
		t.Fatalf("the last order answered 202 was decided %v later; max_wait is 2s", took)
	}
	checkStatuses(t, base, admitted, "confirmed")
	if v := gatetest.Counter(t, srv.Registry(), "sluice_sale_max_wait_seconds", "sale", "mw"); v != 2 {
		t.Fatalf("sluice_sale_max_wait_seconds %v", v)
	}
	t.Logf("%d admitted, %d answered queue_full", len(admitted), full)
}

// A shutdown does not wait out the pace. With backend_rate 0.5 and orders
// queued, the drain's workers (Workers x 2 batches under way) wait in
// turn for the pace, two seconds each: SIGTERM took 16 s. The batches
// still waiting are given back to the stream and Shutdown returns within
// the backend calls under way; the next start drains every order once.
func TestShutdownDoesNotWaitForThePace(t *testing.T) {
	for _, tc := range []struct {
		name string
		http bool
	}{{"SQLite", false}, {"HTTP endpoint, paced call by call", true}} {
		t.Run(tc.name, func(t *testing.T) {
			sh, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) { return 201, 0 })
			defer ts.Close()
			dir := t.TempDir()
			cfg := fast(gatetest.Config(t, ledger.Sale{Name: "slow", Stock: 40, BackendRate: 0.5}))
			cfg.DataDir = dir
			if tc.http {
				cfg.Backend = ts.URL
			}
			srv := gatetest.Start(t, cfg)
			ids := buyAll(t, "http://"+srv.APIAddr(), "slow", 20)
			if len(ids) != 20 {
				t.Fatalf("%d admitted", len(ids))
			}
			gatetest.Eventually(t, 10*time.Second, "the first order to go through the pace", func() bool {
				return gatetest.Counter(t, srv.Registry(), "sluice_drain_orders_total", "sale", "slow", "outcome", "confirmed") >= 1
			})
			time.Sleep(time.Second) // the workers are waiting for the pace
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := srv.Shutdown(ctx)
			took := time.Since(start)
			t.Logf("shutdown took %v", took.Round(time.Millisecond))
			if err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			// The pace would hold it 2 s per batch queued for it; the
			// backend answers at once.
			if took > 3*time.Second {
				t.Fatalf("shutdown took %v: it waited for the pace", took)
			}

			// The next start, without the pace, drains every order once.
			again := fast(gatetest.Config(t, ledger.Sale{Name: "slow", Stock: 40}))
			again.DataDir, again.Backend = dir, cfg.Backend
			srv = gatetest.Start(t, again)
			waitDrained(t, srv.Ledger(), "slow", 30*time.Second)
			checkStatuses(t, "http://"+srv.APIAddr(), ids, "confirmed")
			if !tc.http {
				checkBackend(t, backendDB(t, srv), "slow", 40, ids, 20)
				return
			}
			sh.mu.Lock()
			defer sh.mu.Unlock()
			for _, id := range ids {
				if _, ok := sh.orders[id]; !ok {
					t.Errorf("order %s never reached the endpoint", id)
				}
			}
			if len(sh.orders) != len(ids) {
				t.Fatalf("the endpoint holds %d orders, want %d", len(sh.orders), len(ids))
			}
		})
	}
}
