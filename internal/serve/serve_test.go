package serve_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
)

// noLeaks checks, when the func it returns is called, that every goroutine
// started since has ended within two seconds: fasthttp's worker-pool
// cleaner notices a shutdown only when it wakes, after at most the
// server's MaxIdleWorkerDuration (one second).
func noLeaks(t *testing.T) func() {
	before := goleak.IgnoreCurrent()
	return func() {
		deadline := time.Now().Add(2 * time.Second)
		for {
			err := goleak.Find(before, gatetest.IgnoreServerClock)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// No goroutine outlives a gate's shutdown: the embedded server, the
// refresher, the listeners and the NATS connection all stop.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	defer noLeaks(t)()
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 50})
	cfg.NATSListen = "127.0.0.1:0"
	s, err := serve.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := gatetest.Client()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gatetest.Order(t, c, "http://"+s.APIAddr(), "s1", fmt.Sprint("b", i), "")
		}()
	}
	wg.Wait()
	c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// A gate stopped at once after it started stops: fasthttp learns of its
// listener only when its Serve goroutine runs, and a Shutdown before that
// found nothing to close, returned, and left Serve to run for ever, so
// that Shutdown then waited for it for ever. With one P the goroutine
// that Start left runnable has not run when Shutdown is called.
func TestShutdownRightAfterStart(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for i := range 3 {
		s, err := serve.Start(context.Background(), gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 5}))
		if err != nil {
			t.Fatal(err)
		}
		// Shutdown's wait for its goroutines is not bounded by ctx, so
		// the hang is timed here: a failure, not the package's timeout.
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- s.Shutdown(ctx)
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Shutdown right after Start: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Shutdown right after Start has not returned in 30 s", i)
		}
	}
}

// Clients that keep connections open (a load balancer's pool) do not hold
// a shutdown up: a connection waiting for its first request is ended at
// once, not when its read times out (10 s), as are idle keep-alive ones.
// A request in progress, here held for a decision, is answered first.
func TestShutdownEndsKeepAliveConnections(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 50})
	cfg.NoDrain = true // the held order below is never decided
	s, err := serve.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.APIAddr()
	idle := gatetest.Client()
	for i := range 4 { // connections left open, waiting for a next request
		if a := gatetest.Get(t, idle, base+"/v1/sales/s1"); a.Status != 200 {
			t.Fatalf("request %d: %d", i, a.Status)
		}
	}
	// Connections opened and not used yet: net/http's Transport leaves such
	// ones in its pool when a request it dialed for went out on another.
	for range 2 {
		c, err := net.Dial("tcp", s.APIAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	held := make(chan gatetest.Answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/v1/sales/s1/orders", strings.NewReader(`{"buyer_id":"waiting"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "wait=30")
		held <- gatetest.Do(t, gatetest.Client(), req)
	}()
	gatetest.Eventually(t, 5*time.Second, "the order held", func() bool {
		return gatetest.Counter(t, s.Registry(), "sluice_order_waiters") == 1
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if a := <-held; a.Status != http.StatusAccepted {
		t.Fatalf("the held order: %d %s", a.Status, a.Raw)
	}
	if took > 5*time.Second {
		t.Fatalf("shutdown took %v with idle keep-alive connections open", took)
	}
	t.Logf("shutdown took %v", took.Round(time.Millisecond))
}

func TestStartFailsCleanly(t *testing.T) {
	defer noLeaks(t)()
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1})
	cfg.Listen = "256.0.0.1:1" // cannot listen
	if _, err := serve.Start(context.Background(), cfg); err == nil {
		t.Fatal("Start succeeded on a bad address")
	}
}

func TestDemoSaleOnFirstStart(t *testing.T) {
	cfg := gatetest.Config(t)
	cfg.NoDemo = false
	s := gatetest.Start(t, cfg)
	a := gatetest.Get(t, gatetest.Client(), "http://"+s.APIAddr()+"/v1/sales/demo")
	if a.Status != 200 || a.Body["stock"] != float64(1000) || a.Str("state") != "open" {
		t.Fatalf("demo sale: %d %s", a.Status, a.Raw)
	}
}

// A --sale NAME=STOCK restart changes the stock and keeps the rest.
func TestRestartWithNewStockKeepsOrdersAndSettings(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 3, Rate: 1000, QueueBound: 50})
	s := gatetest.Start(t, cfg)
	c := gatetest.Client()
	for _, b := range []string{"a", "b", "c"} {
		gatetest.Order(t, c, "http://"+s.APIAddr(), "s1", b, "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cfg.Sales = []serve.SaleSpec{{Sale: ledger.Sale{Name: "s1", Stock: 5}, StockOnly: true}}
	s = gatetest.Start(t, cfg)
	st, err := s.Ledger().State(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Admitted != 3 || st.Sale.Stock != 5 || st.Sale.QueueBound != 50 || st.Sale.Rate != 1000 {
		t.Fatalf("after restart: %+v", st)
	}
	if a := gatetest.Order(t, c, "http://"+s.APIAddr(), "s1", "a", ""); a.Status != 409 {
		t.Fatalf("buyer a again after restart: %d %s", a.Status, a.Raw)
	}
	if a := gatetest.Order(t, c, "http://"+s.APIAddr(), "s1", "d", ""); a.Status != 202 {
		t.Fatalf("new buyer after raising stock: %d %s", a.Status, a.Raw)
	}
}

// TestBusyPortFailsFirst: a --listen port that is taken is reported before
// JetStream starts or a sale is provisioned.
func TestBusyPortFailsFirst(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 5})
	cfg.Listen = taken.Addr().String()
	start := time.Now()
	_, err = serve.Start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "listen "+taken.Addr().String()) {
		t.Fatalf("Start on a busy port: %v", err)
	}
	if entries, _ := os.ReadDir(cfg.DataDir); len(entries) != 0 {
		t.Fatalf("JetStream started before the port was found busy: the data dir holds %v", entries)
	}
	t.Logf("refused in %v: %v", time.Since(start), err)
}

// TestOpsIndexAndAdminOff: / on the ops listener says what it serves, and
// the admin API says it is off rather than asking for a token.
func TestOpsIndexAndAdminOff(t *testing.T) {
	s := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 5}))
	c := gatetest.Client()
	ops := "http://" + s.OpsAddr()
	if a := gatetest.Get(t, c, ops+"/"); a.Status != 200 || !strings.Contains(a.Raw, "/metrics") || !strings.Contains(a.Raw, "admin API: off") {
		t.Fatalf("ops /: %d %s", a.Status, a.Raw)
	}
	if a := gatetest.Get(t, c, ops+"/admin/sales"); a.Status != 404 || !strings.Contains(a.Raw, "--admin-token") {
		t.Fatalf("admin API off: %d %s", a.Status, a.Raw)
	}
	if a := gatetest.Get(t, c, ops+"/nothing"); a.Status != 404 {
		t.Fatalf("ops /nothing: %d", a.Status)
	}
}
