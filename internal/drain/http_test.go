package drain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/consumer"
	"sluice/internal/drain"
	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// shop is a real purchase endpoint on loopback: idempotent by
// Idempotency-Key, with a bound it checks on concurrent calls.
type shop struct {
	mu       sync.Mutex
	orders   map[string]string // order id -> "confirmed" | "rejected"
	calls    map[string]int
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	// answer decides a call: status code and whether to stall past the
	// client's timeout first.
	answer func(id, buyer string, attempt int) (code int, stall time.Duration)
}

func newShop(answer func(id, buyer string, attempt int) (int, time.Duration)) (*shop, *httptest.Server) {
	s := &shop{orders: map[string]string{}, calls: map[string]int{}, answer: answer}
	return s, httptest.NewServer(s)
}

func (s *shop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.inFlight.Add(1)
	left := sync.OnceFunc(func() { s.inFlight.Add(-1) })
	defer left()
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	var o consumer.Order
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil || r.Header.Get("Idempotency-Key") != o.ID || o.ID == "" {
		http.Error(w, "bad order", 400)
		return
	}
	s.mu.Lock()
	s.calls[o.ID]++
	attempt := s.calls[o.ID]
	prev, done := s.orders[o.ID]
	s.mu.Unlock()
	if done { // a retry of a decided order: the same answer
		if prev == "confirmed" {
			w.WriteHeader(201)
		} else {
			refuse(w)
		}
		return
	}
	code, stall := s.answer(o.ID, o.BuyerID, attempt)
	if code < 500 {
		s.mu.Lock()
		if code < 300 {
			s.orders[o.ID] = "confirmed"
		} else {
			s.orders[o.ID] = "rejected"
		}
		s.mu.Unlock()
	}
	if stall > 0 { // decided, but the answer would come too late
		select {
		case <-time.After(stall):
		case <-r.Context().Done(): // the client gave up: stop, as a real endpoint does
			left()
			return
		}
	}
	if code == 409 {
		refuse(w)
		return
	}
	w.WriteHeader(code)
}

func refuse(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(409)
	fmt.Fprint(w, `{"reason":"duplicate_customer"}`)
}

func hash(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

func TestHTTPBackendFlakyEndpoint(t *testing.T) {
	const workers = 3
	sh, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) {
		h := hash(id + fmt.Sprint(attempt))
		switch {
		case hash(buyer)%10 == 0:
			return 409, 0 // this buyer is refused, every time
		case h%5 == 0:
			return 500, 0
		case h%11 == 0:
			return 201, 700 * time.Millisecond // decided, answered after the timeout
		}
		return 201, 0
	})
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 400}))
	cfg.Backend = ts.URL + "/purchase"
	cfg.Drain.Workers = workers
	cfg.Drain.BackendTimeout = 300 * time.Millisecond
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	ids := buyAll(t, base, "s1", 400)
	if len(ids) != 400 {
		t.Fatalf("%d admitted", len(ids))
	}
	waitDrained(t, srv.Ledger(), "s1", 60*time.Second)
	c := gatetest.Client()
	byStatus := map[string]int{}
	for _, id := range ids {
		a := gatetest.Get(t, c, base+"/v1/orders/"+id)
		st := a.Str("status")
		byStatus[st]++
		sh.mu.Lock()
		want := sh.orders[id]
		sh.mu.Unlock()
		if st != want {
			t.Fatalf("order %s: gate says %s, the shop %q", id, st, want)
		}
		if st == "rejected" && a.Str("reason") != "duplicate_customer" {
			t.Fatalf("rejected order %s reason %q", id, a.Str("reason"))
		}
	}
	if byStatus["confirmed"]+byStatus["rejected"] != 400 || byStatus["rejected"] == 0 {
		t.Fatalf("statuses %v: every order must end confirmed or rejected", byStatus)
	}
	retried := 0
	for _, n := range sh.calls {
		if n > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Fatal("no order was retried: the endpoint was not flaky")
	}
	if m := sh.maxSeen.Load(); m > workers {
		t.Fatalf("endpoint saw %d concurrent calls, bound %d", m, workers)
	}
	t.Logf("statuses %v, %d orders retried, at most %d concurrent calls", byStatus, retried, sh.maxSeen.Load())
}

func TestHTTPBackend503ForAWhile(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	sh, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) {
		if down.Load() {
			return 503, 0
		}
		return 201, 0
	})
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 200}))
	cfg.Backend = ts.URL
	cfg.Drain.MaxDeliver = 3 // an outage must not use these up
	var lines *gatetest.Lines
	cfg.Logger, lines = gatetest.CaptureLog(t)
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	ids := buyAll(t, base, "s1", 200)
	time.Sleep(2 * time.Second) // several rounds of 503s and backoff
	down.Store(false)
	waitDrained(t, srv.Ledger(), "s1", 60*time.Second)
	checkStatuses(t, base, ids, "confirmed")
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.orders) != 200 {
		t.Fatalf("shop holds %d orders, want 200", len(sh.orders))
	}
	// The outage is in the log once when it began and once when it ended,
	// whatever the number of retries in between.
	if down, back := lines.Count("backend unavailable"), lines.Count("backend is back"); down != 1 || back != 1 {
		t.Fatalf("the log says the backend went down %d times and came back %d times, want 1 and 1:\n%s", down, back, lines)
	}
}

func TestPoisonOrderIsDeadLettered(t *testing.T) {
	sh, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) {
		if buyer == "buyer-7" {
			return 500, 0 // this order always fails
		}
		return 201, 0
	})
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 100}))
	cfg.Backend = ts.URL
	cfg.Drain.MaxDeliver = 4
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	ids := buyAll(t, base, "s1", 100)
	var poison string
	c := gatetest.Client()
	for _, id := range ids {
		oid, err := ledger.ParseOrderID(id)
		if err != nil {
			t.Fatal(err)
		}
		if o, err := srv.Ledger().Lookup(context.Background(), oid); err == nil && o.BuyerID == "buyer-7" {
			poison = id
		}
	}
	// The 99 other orders are confirmed meanwhile, so the backend is seen
	// healthy and the poison order's failures count towards MaxDeliver.
	waitDrained(t, srv.Ledger(), "s1", 60*time.Second)
	// The drain records the decision before it acks; the gate reads it
	// from the decisions stream a moment later (a run saw "queued" just
	// after the queue emptied).
	var a gatetest.Answer
	gatetest.Eventually(t, 5*time.Second, "the poison order to read failed", func() bool {
		a = gatetest.Get(t, c, base+"/v1/orders/"+poison)
		return a.Str("status") == "failed"
	})
	if !strings.Contains(a.Str("reason"), "500") {
		t.Fatalf("poison order status: %s", a.Raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js := srv.Ledger().JetStream()
	dead, err := js.Stream(ctx, drain.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := dead.GetLastMsgForSubject(ctx, "sluice.dead.s1")
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	// Four failed attempts dead-letter it. An attempt made before any
	// other order was decided does not count (the backend is not yet seen
	// healthy: see Drainer.retry), so on a machine slow enough for the
	// poison order to come first its deliveries are one more.
	if n, _ := strconv.Atoi(msg.Header.Get("Sluice-Deliveries")); msg.Header.Get("Sluice-Order-Id") != poison || n < 4 || n > 5 || msg.Header.Get("Sluice-Reason") == "" {
		t.Fatalf("dead letter headers %v", msg.Header)
	}
	if info, _ := dead.Info(ctx); info.State.Msgs != 1 {
		t.Fatalf("%d dead letters, want 1", info.State.Msgs)
	}
	sh.mu.Lock()
	confirmed := len(sh.orders)
	sh.mu.Unlock()
	if confirmed != 99 {
		t.Fatalf("shop confirmed %d, want the 99 others", confirmed)
	}
}

// Under a backlog of 50,000 orders the backend never sees more calls at
// once than the worker bound.
func TestWorkersStayWithinBoundUnderBacklog(t *testing.T) {
	const workers, backlog = 4, 50_000
	sh, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) { return 201, 0 })
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "s1", Stock: backlog}))
	cfg.NoDrain = true
	cfg.NATSListen = "127.0.0.1:0"
	gate := gatetest.Start(t, cfg)
	// Fill the ledger first, then let a drain loose on it.
	gatetest.FillLedger(t, gate.Ledger(), "s1", backlog)
	dcfg := fast(gatetest.Config(t))
	dcfg.DrainOnly = true
	dcfg.NATSURL = gate.NATSURL()
	dcfg.Backend = ts.URL
	dcfg.Drain.Workers = workers
	dcfg.Drain.Batch = 200
	gatetest.Start(t, dcfg)
	waitDrained(t, gate.Ledger(), "s1", 120*time.Second)
	sh.mu.Lock()
	n := len(sh.orders)
	sh.mu.Unlock()
	if n != backlog {
		t.Fatalf("shop holds %d orders, want %d", n, backlog)
	}
	if m := sh.maxSeen.Load(); m > workers || m < 2 {
		t.Fatalf("endpoint saw at most %d concurrent calls; bound %d", m, workers)
	}
	t.Logf("%d orders drained, at most %d concurrent backend calls (bound %d)", n, sh.maxSeen.Load(), workers)
}

// A batch that waits its turn at a slow endpoint for longer than AckWait is
// kept alive, not redelivered: every order is forwarded exactly once, and
// no order is cut off by one call's timeout while it waits for a slot.
func TestSlowEndpointBatchIsNotRedelivered(t *testing.T) {
	sh, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) {
		time.Sleep(50 * time.Millisecond)
		return 201, 0
	})
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 60}))
	cfg.Backend = ts.URL
	cfg.Drain.Workers = 2 // a second worker to take a redelivered batch
	cfg.Drain.Batch = 60  // one batch takes 1.5 s
	cfg.Drain.AckWait = 600 * time.Millisecond
	cfg.Drain.BackendTimeout = 500 * time.Millisecond
	cfg.NoDrain = true
	cfg.NATSListen = "127.0.0.1:0"
	srv := gatetest.Start(t, cfg)
	// The whole backlog first, so that the drain takes it in one batch.
	gatetest.FillLedger(t, srv.Ledger(), "s1", 60)
	dcfg := fast(gatetest.Config(t))
	dcfg.DrainOnly = true
	dcfg.NATSURL = srv.NATSURL()
	dcfg.Backend = ts.URL
	dcfg.Drain = cfg.Drain
	drain := gatetest.Start(t, dcfg)
	waitDrained(t, srv.Ledger(), "s1", 60*time.Second)
	// Nor was any order sent back for a later try: waiting for a slot is
	// not a call, so one call's timeout does not cut the batch short.
	if n := gatetest.Counter(t, drain.Registry(), "sluice_drain_orders_total", "sale", "s1", "outcome", "retried"); n != 0 {
		t.Fatalf("%v orders were sent back for a later try", n)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.orders) != 60 {
		t.Fatalf("shop holds %d orders, want 60", len(sh.orders))
	}
	for id, n := range sh.calls {
		if n != 1 {
			t.Fatalf("order %s forwarded %d times: the batch was redelivered while it waited", id, n)
		}
	}
}
