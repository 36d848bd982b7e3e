package drain_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// orderWaiting posts an order with Prefer: wait=N.
func orderWaiting(t *testing.T, c *http.Client, base, sale, buyer string, wait int) gatetest.Answer {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/sales/"+sale+"/orders", strings.NewReader(`{"buyer_id":"`+buyer+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Prefer", "wait="+strconv.Itoa(wait))
	return gatetest.Do(t, c, req)
}

// Prefer: wait=N answers with the backend's decision when it comes in
// time: 201 with the confirmed order, the refusal's status and reason,
// and 202 when the backend stalls past N (the order confirms later, and a
// long poll of its status wakes when it does).
func TestPreferWaitAnswersWithTheDecision(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	_, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) {
		switch {
		case strings.HasPrefix(buyer, "reject"):
			return 409, 0
		case strings.HasPrefix(buyer, "gone"):
			return 410, 0
		case strings.HasPrefix(buyer, "slow"):
			<-release
		}
		return 201, 0
	})
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "w", Stock: 100}))
	cfg.Backend = ts.URL
	cfg.Drain.BackendTimeout = 20 * time.Second // the stalled call is held, not retried
	cfg.Drain.Workers = 2
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()

	start := time.Now()
	a := orderWaiting(t, c, base, "w", "alice", 10)
	if a.Status != http.StatusCreated || a.Str("status") != "confirmed" || a.Header.Get("Preference-Applied") != "wait=10" ||
		a.Header.Get("Location") != "/v1/orders/"+a.Str("order_id") || a.Str("admitted_at") == "" {
		t.Fatalf("fast backend: %d %v %s", a.Status, a.Header, a.Raw)
	}
	t.Logf("fast backend: 201 confirmed in %v", time.Since(start).Round(time.Millisecond))

	a = orderWaiting(t, c, base, "w", "reject-bob", 10)
	if a.Status != http.StatusConflict || a.Str("reason") != "order_rejected" || a.Str("backend_reason") != "duplicate_customer" ||
		a.Str("order_id") == "" || !strings.HasPrefix(a.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("rejecting backend: %d %s", a.Status, a.Raw)
	}
	a = orderWaiting(t, c, base, "w", "gone-carol", 10)
	if a.Status != http.StatusGone || a.Str("reason") != "sold_out" || a.Str("backend_reason") != "sold_out" {
		t.Fatalf("backend out of stock: %d %s", a.Status, a.Raw)
	}

	// respond-async, or no preference: 202 at once.
	req, _ := http.NewRequest("POST", base+"/v1/sales/w/orders", strings.NewReader(`{"buyer_id":"dave"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Prefer", "respond-async, wait=5")
	if a = gatetest.Do(t, c, req); a.Status != http.StatusAccepted || a.Header.Get("Preference-Applied") != "" {
		t.Fatalf("respond-async: %d %v", a.Status, a.Header)
	}

	// A stalled backend: 202 once the wait is over, the order still queued.
	start = time.Now()
	a = orderWaiting(t, c, base, "w", "slow-erin", 5)
	took := time.Since(start)
	if a.Status != http.StatusAccepted || a.Str("status") != "queued" || a.Header.Get("Preference-Applied") != "wait=5" {
		t.Fatalf("stalled backend: %d %v %s", a.Status, a.Header, a.Raw)
	}
	if took < 5*time.Second || took > 8*time.Second {
		t.Fatalf("stalled backend answered after %v; the wait was 5 s", took)
	}
	id := a.Str("order_id")
	// A long poll of its status wakes when the backend decides.
	var polled gatetest.Answer
	var pollTook time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("GET", base+"/v1/orders/"+id, nil)
		req.Header.Set("Prefer", "wait=20")
		s := time.Now()
		polled = gatetest.Do(t, c, req)
		pollTook = time.Since(s)
	}()
	time.Sleep(time.Second)
	releaseOnce.Do(func() { close(release) })
	released := time.Now()
	<-done
	if polled.Status != http.StatusOK || polled.Str("status") != "confirmed" || polled.Header.Get("Preference-Applied") != "wait=20" {
		t.Fatalf("long poll: %d %v %s", polled.Status, polled.Header, polled.Raw)
	}
	if pollTook > 15*time.Second {
		t.Fatalf("long poll answered after %v: it was not woken by the decision", pollTook)
	}
	t.Logf("stalled backend: 202 after %v; long poll woke %v after the backend was released",
		took.Round(time.Millisecond), time.Since(released).Round(time.Millisecond))
	// A decided order's long poll answers at once, without waiting.
	req, _ = http.NewRequest("GET", base+"/v1/orders/"+id, nil)
	req.Header.Set("Prefer", "wait=20")
	if a = gatetest.Do(t, c, req); a.Status != 200 || a.Header.Get("Preference-Applied") != "" {
		t.Fatalf("decided order's long poll: %d %v", a.Status, a.Header)
	}
	if v := gatetest.Counter(t, srv.Registry(), "sluice_order_waits_total", "outcome", "decided"); v != 4 {
		t.Fatalf("decided waits %v, want 4", v)
	}
	if v := gatetest.Counter(t, srv.Registry(), "sluice_order_waits_total", "outcome", "timeout"); v != 1 {
		t.Fatalf("timed-out waits %v, want 1", v)
	}
}

// Past --max-waiters a request is answered at once, as without the
// preference; a gate shutting down answers its held requests at once.
func TestWaitersAreBounded(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	_, ts := newShop(func(id, buyer string, attempt int) (int, time.Duration) {
		<-release
		return 201, 0
	})
	defer ts.Close()
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "w", Stock: 100}))
	cfg.Backend = ts.URL
	cfg.Drain.BackendTimeout = 20 * time.Second
	cfg.Gate.MaxWaiters = 2
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	var wg sync.WaitGroup
	answers := make([]gatetest.Answer, 5)
	tooks := make([]time.Duration, 5)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			answers[i] = orderWaiting(t, c, base, "w", fmt.Sprint("b", i), 20)
			tooks[i] = time.Since(s)
		}()
	}
	gatetest.Eventually(t, 10*time.Second, "two waiters held, three refused", func() bool {
		return gatetest.Counter(t, srv.Registry(), "sluice_order_waiters") == 2 &&
			gatetest.Counter(t, srv.Registry(), "sluice_order_waits_total", "outcome", "refused") == 3
	})
	shutAt := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	wg.Wait()
	answeredIn := time.Since(shutAt)
	releaseOnce.Do(func() { close(release) }) // the drain's call may finish: the shutdown completes
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	held := 0
	for i, a := range answers {
		if a.Status != http.StatusAccepted {
			t.Fatalf("answer %d: %d %s", i, a.Status, a.Raw)
		}
		if a.Header.Get("Preference-Applied") != "" {
			held++
		}
	}
	if held != 2 {
		t.Fatalf("%d requests were held; --max-waiters is 2", held)
	}
	if answeredIn > 5*time.Second {
		t.Fatalf("held requests answered %v after shutdown began", answeredIn)
	}
}

// waitClientEnv makes the test binary a client holding many waiting
// requests (see TestMain): the gate's process then holds only the
// server's side of the connections, so its goroutines and memory are the
// waiters' cost, and neither process needs more than N descriptors.
const waitClientEnv = "SLUICE_WAIT_CLIENT"

// runWaitClient long-polls each order named in the file (one id a line)
// on a connection of its own, GET /v1/orders/{id} with Prefer: wait=30,
// and prints the count of answers by status (and how many were held and
// read "confirmed") as JSON once all have come. An answer of 503 (the
// gate could not read the order in time on a loaded machine) is asked
// again on a new connection.
func runWaitClient(spec string) {
	var addr, ops, file string
	if _, err := fmt.Sscan(spec, &addr, &ops, &file); err != nil {
		fmt.Fprintln(os.Stderr, "bad spec:", err)
		os.Exit(2)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ids := strings.Fields(string(raw))
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
		sem    = make(chan struct{}, 64) // connections being opened and written at once
	)
	poll := func(id string) (status int, applied bool, body map[string]any, err error) {
		sem <- struct{}{}
		cn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err == nil {
			_, err = fmt.Fprintf(cn, "GET /v1/orders/%s HTTP/1.1\r\nHost: gate\r\nPrefer: wait=30\r\n\r\n", id)
		}
		<-sem
		if err != nil {
			if cn != nil {
				cn.Close()
			}
			return 0, false, nil, err
		}
		defer cn.Close()
		_ = cn.SetReadDeadline(time.Now().Add(120 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(cn), nil)
		if err != nil {
			return 0, false, nil, err
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header.Get("Preference-Applied") != "", body, nil
	}
	// held is how many requests the gate holds, from its GET /status.
	held := func() int64 {
		resp, err := http.Get("http://" + ops + "/status")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		var st struct {
			Waiters int64 `json:"waiters"`
		}
		if json.NewDecoder(resp.Body).Decode(&st) != nil {
			return -1
		}
		return st.Waiters
	}
	// In waves: each request costs the gate a JetStream look-up before it
	// is held, and 10,000 look-ups at once on a loaded machine time out.
	// The next wave goes once the gate holds this one (or after 10 s).
	var done atomic.Int64
	const wave = 250
	for i, id := range ids {
		if i > 0 && i%wave == 0 {
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if held() >= int64(i)-done.Load() {
					break
				}
			}
		}
		wg.Add(1)
		go func() {
			defer done.Add(1)
			defer wg.Done()
			var (
				status  int
				applied bool
				body    map[string]any
				err     error
			)
			for range 20 {
				if status, applied, body, err = poll(id); err == nil && status != http.StatusServiceUnavailable {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				counts["failed"]++
				return
			}
			counts[strconv.Itoa(status)]++
			if applied {
				counts["applied"]++
			}
			if body["status"] == "confirmed" {
				counts["confirmed"]++
			}
		}()
	}
	wg.Wait()
	b, _ := json.Marshal(counts)
	fmt.Println(string(b))
	os.Exit(0)
}

// 10,000 requests wait at once for their orders' decisions (long polls of
// queued orders): the gate holds them with no goroutine of their own and
// no JetStream call each, in bounded memory, and answers each as soon as
// a drain decides its order.
func TestTenThousandWaiters(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 10,000 connections")
	}
	const n = 10_000
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "w", Stock: n}))
	cfg.NoDrain = true // nothing decides until the drain starts below
	cfg.NATSListen = "127.0.0.1:0"
	gate := gatetest.Start(t, cfg)
	reg := gate.Registry()
	jsAPI := func() uint64 {
		info, err := gate.Broker().Server().Jsz(&server.JSzOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return info.API.Total
	}
	// n queued orders.
	ids := gatetest.FillLedger(t, gate.Ledger(), "w", n)
	if t.Failed() {
		t.FailNow()
	}
	idFile := filepath.Join(t.TempDir(), "ids")
	if err := os.WriteFile(idFile, []byte(strings.Join(ids, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), waitClientEnv+"="+gate.APIAddr()+" "+gate.OpsAddr()+" "+idFile)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	gatetest.Eventually(t, 180*time.Second, "10,000 requests held", func() bool {
		return gatetest.Counter(t, reg, "sluice_order_waiters") == n
	})
	// Held: what do they cost, and does anything poll JetStream for them?
	api0 := jsAPI()
	time.Sleep(2 * time.Second)
	apiCalls := jsAPI() - api0
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	goroutinesDuring := runtime.NumGoroutine()
	perWaiter := (int64(during.HeapInuse+during.StackInuse) - int64(before.HeapInuse+before.StackInuse)) / n
	extraG := goroutinesDuring - goroutinesBefore
	t.Logf("%d requests held: %d more goroutines (%.2f each, fasthttp's one per connection), %d bytes each (heap and stack, connection included), %d JetStream API calls in 2 s",
		n, extraG, float64(extraG)/n, perWaiter, apiCalls)
	if extraG > n+n/20 {
		t.Errorf("%d more goroutines for %d held requests: the wait costs more than its connection's", extraG, n)
	}
	bound := int64(28 << 10)
	if raceEnabled {
		bound = 48 << 10
	}
	if perWaiter > bound {
		t.Errorf("%d bytes per held request; the README says about 22 KiB, connection included (bound %d)", perWaiter, bound)
	}
	if apiCalls > n/20 {
		t.Errorf("%d JetStream API calls in 2 s while %d requests waited: something polls per waiter", apiCalls, n)
	}

	// A drain decides them: each held request answers with "confirmed".
	dcfg := fast(gatetest.Config(t))
	dcfg.DrainOnly = true
	dcfg.NATSURL = gate.NATSURL()
	gatetest.Start(t, dcfg)
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		t.Fatalf("client: %v", lines.Err())
	}
	var counts map[string]int
	if err := json.Unmarshal(lines.Bytes(), &counts); err != nil {
		t.Fatalf("client: %q: %v", lines.Text(), err)
	}
	if counts["200"] != n || counts["applied"] != n || counts["confirmed"] != n {
		t.Fatalf("answers %v: want %d × 200 confirmed with Preference-Applied", counts, n)
	}
	gatetest.Eventually(t, 10*time.Second, "no waiter left", func() bool {
		return gatetest.Counter(t, reg, "sluice_order_waiters") == 0
	})
}

// BenchmarkDecisionLatency is how long a buyer takes to learn an order's
// fate, one order at a time, with the SQLite backend: Prefer: wait
// against a 202 and polling its status every 100 ms (or 20 ms).
//
//	go test ./internal/drain -run '^$' -bench DecisionLatency -benchtime 100x -count 3
func BenchmarkDecisionLatency(b *testing.B) {
	cfg := fast(gatetest.Config(b, ledger.Sale{Name: "lat", Stock: 1 << 30, PerBuyer: 1 << 20}))
	srv := gatetest.Start(b, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	n := 0
	place := func(prefer string) gatetest.Answer {
		n++
		req, _ := http.NewRequest("POST", base+"/v1/sales/lat/orders", strings.NewReader(fmt.Sprintf(`{"buyer_id":"b%d"}`, n)))
		req.Header.Set("Content-Type", "application/json")
		if prefer != "" {
			req.Header.Set("Prefer", prefer)
		}
		return gatetest.Do(b, c, req)
	}
	b.Run("wait", func(b *testing.B) {
		for b.Loop() {
			if a := place("wait=5"); a.Status != http.StatusCreated {
				b.Fatalf("%d %s", a.Status, a.Raw)
			}
		}
	})
	for _, every := range []time.Duration{100 * time.Millisecond, 20 * time.Millisecond} {
		b.Run("poll-"+every.String(), func(b *testing.B) {
			polls := 0
			for b.Loop() {
				a := place("")
				if a.Status != http.StatusAccepted {
					b.Fatalf("%d %s", a.Status, a.Raw)
				}
				for {
					time.Sleep(every)
					polls++
					if gatetest.Get(b, c, base+"/v1/orders/"+a.Str("order_id")).Str("status") == "confirmed" {
						break
					}
				}
			}
			b.ReportMetric(float64(polls)/float64(b.N), "polls/op")
		})
	}
}

// After JetStream is restarted in process (what the gate does to clear a
// stream's write error once a full disk has room again), the drain drains,
// the decisions are followed and waiters are woken as before.
func TestJetStreamRestartInProcess(t *testing.T) {
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "r", Stock: 100}))
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	first := buyAll(t, base, "r", 50)
	waitDrained(t, srv.Ledger(), "r", 30*time.Second)
	if err := srv.RestartJetStream(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	all := first
	for i := range 50 {
		a := orderWaiting(t, c, base, "r", fmt.Sprint("after-", i), 20)
		if a.Status != http.StatusCreated {
			t.Fatalf("order %d after the restart: %d %s", i, a.Status, a.Raw)
		}
		if i == 0 {
			t.Logf("first order after the restart confirmed in %v", time.Since(restarted).Round(time.Millisecond))
		}
		all = append(all, a.Str("order_id"))
	}
	checkStatuses(t, base, all, "confirmed")
	checkBackend(t, backendDB(t, srv), "r", 100, all, 100)
}
