package admission_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
)

// burst sends one order per buyer, all at once, and counts answers by
// status; it returns the admitted order ids.
func burst(t *testing.T, c *http.Client, bases []string, sale string, buyers int) (map[int]int, []string) {
	t.Helper()
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		ids    []string
		wg     sync.WaitGroup
		start  = make(chan struct{})
	)
	for i := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a := gatetest.Order(t, c, bases[i%len(bases)], sale, fmt.Sprintf("buyer-%d", i), "")
			mu.Lock()
			defer mu.Unlock()
			counts[a.Status]++
			if a.Status == http.StatusAccepted {
				ids = append(ids, a.Str("order_id"))
				if a.Header.Get("Location") != "/v1/orders/"+a.Str("order_id") {
					t.Errorf("202 Location = %q", a.Header.Get("Location"))
				}
			} else if a.Status == http.StatusGone && a.Str("reason") != "sold_out" {
				t.Errorf("410 reason = %q, want sold_out", a.Str("reason"))
			}
		}()
	}
	close(start)
	wg.Wait()
	return counts, ids
}

func TestStockIsNeverOversold(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 100}))
	c := gatetest.Client()
	counts, ids := burst(t, c, []string{"http://" + srv.APIAddr()}, "s1", 2000)
	if counts[202] != 100 || counts[410] != 1900 || len(counts) != 2 {
		t.Fatalf("answers by status = %v, want 100×202 and 1900×410", counts)
	}
	if n := gatetest.StreamMsgs(t, srv.Ledger(), "s1"); n != 100 {
		t.Fatalf("stream holds %d orders, want 100", n)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("order id %s answered twice", id)
		}
		seen[id] = true
	}
	// Every admitted order can be read back.
	a := gatetest.Get(t, c, "http://"+srv.APIAddr()+"/v1/orders/"+ids[0])
	if a.Status != 200 || (a.Str("status") != "queued" && a.Str("status") != "confirmed") || a.Str("order_id") != ids[0] {
		t.Fatalf("GET order = %d %s", a.Status, a.Raw)
	}
	gatetest.Eventually(t, 5*time.Second, "sale state sold_out", func() bool {
		a := gatetest.Get(t, c, "http://"+srv.APIAddr()+"/v1/sales/s1")
		return a.Str("state") == "sold_out" && a.Body["admitted"] == float64(100) && a.Body["remaining"] == float64(0)
	})
}

func TestTwoGatesShareOneLedger(t *testing.T) {
	cfgA := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 100})
	cfgA.NATSListen = "127.0.0.1:0"
	a := gatetest.Start(t, cfgA)
	if a.NATSURL() == "" {
		t.Fatal("gate A's embedded NATS does not listen")
	}
	cfgB := gatetest.Config(t)
	cfgB.NATSURL = a.NATSURL()
	cfgB.NoDrain = true // one drain per ledger: gate A's
	b := gatetest.Start(t, cfgB)
	gatetest.Eventually(t, 5*time.Second, "gate B to learn sale s1", func() bool {
		return gatetest.Get(t, gatetest.Client(), "http://"+b.APIAddr()+"/v1/sales/s1").Status == 200
	})
	c := gatetest.Client()
	counts, _ := burst(t, c, []string{"http://" + a.APIAddr(), "http://" + b.APIAddr()}, "s1", 2000)
	if counts[202] != 100 || counts[410] != 1900 {
		t.Fatalf("answers by status = %v, want 100×202 and 1900×410", counts)
	}
	if n := gatetest.StreamMsgs(t, a.Ledger(), "s1"); n != 100 {
		t.Fatalf("stream holds %d orders, want 100", n)
	}
	// Both gates learn the sell-out without a request of their own failing.
	for _, g := range []*serve.Server{a, b} {
		gatetest.Eventually(t, 2*time.Second, "sold_out on "+g.APIAddr(), func() bool {
			return gatetest.Get(t, c, "http://"+g.APIAddr()+"/v1/sales/s1").Str("state") == "sold_out"
		})
	}
}

func TestOneOrderPerBuyer(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 100}))
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()

	t.Run("different keys", func(t *testing.T) {
		var mu sync.Mutex
		counts := map[int]int{}
		ids := map[string]int{}
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := gatetest.Order(t, c, base, "s1", "greedy", fmt.Sprintf("key-%d", i))
				mu.Lock()
				defer mu.Unlock()
				counts[a.Status]++
				ids[a.Str("order_id")]++
				if a.Status == 409 && a.Str("reason") != "already_ordered" {
					t.Errorf("409 reason = %q", a.Str("reason"))
				}
			}()
		}
		wg.Wait()
		if counts[202] != 1 || counts[409] != 49 {
			t.Fatalf("answers = %v, want one 202 and 49 409", counts)
		}
		// The 409s name no order: anyone may send this buyer_id.
		if len(ids) != 2 || ids[""] != 49 {
			t.Fatalf("order ids in answers = %v, want one id in the 202 and none in the 409s", ids)
		}
	})

	t.Run("same key", func(t *testing.T) {
		var mu sync.Mutex
		bodies := map[string]int{}
		var wg sync.WaitGroup
		ids := map[string]int{}
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := gatetest.Order(t, c, base, "s1", "patient", "the-one-key")
				mu.Lock()
				defer mu.Unlock()
				bodies[fmt.Sprintf("%d %s", a.Status, a.Str("status"))]++
				ids[a.Str("order_id")]++
			}()
		}
		wg.Wait()
		// One order; each answer says what it is when asked: queued (202),
		// or confirmed (201) once the drain has decided it mid-burst.
		if len(ids) != 1 {
			t.Fatalf("orders: %v", ids)
		}
		for b := range bodies {
			if b != "202 queued" && b != "201 confirmed" {
				t.Fatalf("answers %v, want 202 queued or 201 confirmed", bodies)
			}
		}
	})

	t.Run("repeat without key", func(t *testing.T) {
		first := gatetest.Order(t, c, base, "s1", "repeat", "")
		again := gatetest.Order(t, c, base, "s1", "repeat", "")
		if first.Status != 202 || again.Status != 409 || again.Str("order_id") != "" {
			t.Fatalf("first %d %s, again %d %s: want 202 then 409 naming no order", first.Status, first.Raw, again.Status, again.Raw)
		}
	})

	// greedy + patient + repeat: three buyers, three orders.
	if n := gatetest.StreamMsgs(t, srv.Ledger(), "s1"); n != 3 {
		t.Fatalf("stream holds %d orders, want 3", n)
	}
}

func TestRetryAfterSellOutGetsItsOrder(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1}))
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	first := gatetest.Order(t, c, base, "s1", "early", "k1")
	if first.Status != 202 {
		t.Fatalf("first order: %d %s", first.Status, first.Raw)
	}
	if a := gatetest.Order(t, c, base, "s1", "late", ""); a.Status != 410 {
		t.Fatalf("second buyer: %d, want 410", a.Status)
	}
	retry := gatetest.Order(t, c, base, "s1", "early", "k1")
	// The first 202 again, or, once the drain confirmed the order, 201.
	replayOK := retry.Status == 202 && retry.Raw == first.Raw || retry.Status == 201 && retry.Str("status") == "confirmed"
	if !replayOK || retry.Str("order_id") != first.Str("order_id") || retry.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after sell-out: %d %s, want the first order replayed", retry.Status, retry.Raw)
	}
}

func TestLedgerUnavailableNever202(t *testing.T) {
	t.Run("server shut down", func(t *testing.T) {
		cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1000})
		srv := gatetest.Start(t, cfg)
		base := "http://" + srv.APIAddr()
		c := gatetest.Client()
		ok := 0
		for i := range 20 {
			if gatetest.Order(t, c, base, "s1", fmt.Sprintf("b%d", i), "").Status == 202 {
				ok++
			}
		}
		admitted := gatetest.StreamMsgs(t, srv.Ledger(), "s1")
		srv.Broker().Server().Shutdown()
		srv.Broker().Server().WaitForShutdown()
		for i := range 50 {
			a := gatetest.Order(t, c, base, "s1", fmt.Sprintf("after-%d", i), "")
			if a.Status != 503 || a.Str("reason") != "unavailable" {
				t.Fatalf("order with JetStream down: %d %s, want 503 unavailable", a.Status, a.Raw)
			}
		}
		if uint64(ok) != admitted || ok != 20 {
			t.Fatalf("%d answers 202, stream held %d", ok, admitted)
		}
	})

	t.Run("store full", func(t *testing.T) {
		cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 100000})
		cfg.MaxStore = 64 << 10 // a few hundred orders
		srv := gatetest.Start(t, cfg)
		base := "http://" + srv.APIAddr()
		c := gatetest.Client()
		counts := map[int]int{}
		for i := range 3000 {
			a := gatetest.Order(t, c, base, "s1", fmt.Sprintf("b%d", i), "")
			counts[a.Status]++
			if a.Status == 503 && counts[503] > 20 {
				break
			}
		}
		if counts[503] == 0 {
			t.Fatalf("answers %v: the store never filled", counts)
		}
		if counts[202]+counts[503] != sum(counts) {
			t.Fatalf("answers %v: want only 202 and 503", counts)
		}
		if n := gatetest.StreamMsgs(t, srv.Ledger(), "s1"); n != uint64(counts[202]) {
			t.Fatalf("%d answers 202 but the stream holds %d", counts[202], n)
		}
	})
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestBadInputChangesNothing(t *testing.T) {
	now := time.Now()
	srv := gatetest.Start(t, gatetest.Config(t,
		ledger.Sale{Name: "s1", Stock: 10},
		ledger.Sale{Name: "later", Stock: 10, StartsAt: now.Add(time.Hour)},
		ledger.Sale{Name: "over", Stock: 10, StartsAt: now.Add(-2 * time.Hour), EndsAt: now.Add(-time.Hour)},
	))
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	cases := []struct {
		name        string
		sale        string
		contentType string
		body        string
		header      [2]string
		status      int
		reason      string
	}{
		{"bad json", "s1", "application/json", `{"buyer_id":`, [2]string{}, 400, "bad_json"},
		{"not an object", "s1", "application/json", `["x"]`, [2]string{}, 400, "bad_json"},
		{"null", "s1", "application/json", `null`, [2]string{}, 400, "bad_json"},
		{"trailing data", "s1", "application/json", `{"buyer_id":"a"}]`, [2]string{}, 400, "bad_json"},
		{"wrong content type", "s1", "text/plain", `{"buyer_id":"a"}`, [2]string{}, 415, "bad_content_type"},
		{"no content type", "s1", "", `{"buyer_id":"a"}`, [2]string{}, 415, "bad_content_type"},
		{"oversized", "s1", "application/json", `{"buyer_id":"a","pad":"` + strings.Repeat("x", 10000) + `"}`, [2]string{}, 413, "body_too_large"},
		{"missing buyer", "s1", "application/json", `{}`, [2]string{}, 400, "bad_buyer_id"},
		{"empty buyer", "s1", "application/json", `{"buyer_id":""}`, [2]string{}, 400, "bad_buyer_id"},
		{"buyer with space", "s1", "application/json", `{"buyer_id":"a b"}`, [2]string{}, 400, "bad_buyer_id"},
		{"buyer too long", "s1", "application/json", `{"buyer_id":"` + strings.Repeat("a", 129) + `"}`, [2]string{}, 400, "bad_buyer_id"},
		{"buyer not a string", "s1", "application/json", `{"buyer_id":42}`, [2]string{}, 400, "bad_json"},
		{"buyer twice", "s1", "application/json", `{"buyer_id":"a","buyer_id":"b"}`, [2]string{}, 400, "bad_json"},
		{"buyer in another case", "s1", "application/json", `{"Buyer_ID":"a"}`, [2]string{}, 400, "bad_json"},
		{"problem+json body", "s1", "application/problem+json", `{"buyer_id":"a"}`, [2]string{}, 415, "bad_content_type"},
		{"bad idempotency key", "s1", "application/json", `{"buyer_id":"a"}`, [2]string{"Idempotency-Key", "has space"}, 400, "bad_idempotency_key"},
		{"unknown sale", "nope", "application/json", `{"buyer_id":"a"}`, [2]string{}, 404, "unknown_sale"},
		{"not started", "later", "application/json", `{"buyer_id":"a"}`, [2]string{}, 425, "not_started"},
		{"closed", "over", "application/json", `{"buyer_id":"a"}`, [2]string{}, 403, "closed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", base+"/v1/sales/"+tc.sale+"/orders", strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.header[0] != "" {
				req.Header.Set(tc.header[0], tc.header[1])
			}
			a := gatetest.Do(t, c, req)
			if a.Status != tc.status || a.Str("reason") != tc.reason {
				t.Fatalf("got %d %s, want %d reason %s", a.Status, a.Raw, tc.status, tc.reason)
			}
			if ct := a.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cc := a.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
		})
	}
	for _, sale := range []string{"s1", "later", "over"} {
		if n := gatetest.StreamMsgs(t, srv.Ledger(), sale); n != 0 {
			t.Fatalf("bad input left %d orders in %s", n, sale)
		}
	}
	// The one good request still works afterwards.
	if a := gatetest.Order(t, c, base, "s1", "a", ""); a.Status != 202 {
		t.Fatalf("good order after bad ones: %d %s", a.Status, a.Raw)
	}
}

func TestBrowserGetsHTML(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1}))
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	gatetest.Order(t, c, base, "s1", "a", "")
	gatetest.Order(t, c, base, "s1", "b", "") // flips sold out
	req, _ := http.NewRequest("POST", base+"/v1/sales/s1/orders", strings.NewReader(`{"buyer_id":"c"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	a := gatetest.Do(t, c, req)
	if a.Status != 410 || !strings.HasPrefix(a.Header.Get("Content-Type"), "text/html") || !strings.Contains(a.Raw, "Sold out") {
		t.Fatalf("browser sold-out answer: %d %s %q", a.Status, a.Header.Get("Content-Type"), a.Raw)
	}
}

func TestRateLimitedAnswersBusy(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1000, Rate: 1, Burst: 5})
	frozen := time.Now()
	cfg.Gate.Now = func() time.Time { return frozen } // no token refills during the test
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	counts := map[int]int{}
	var retryAfter string
	for i := range 20 {
		a := gatetest.Order(t, c, base, "s1", fmt.Sprintf("b%d", i), "")
		counts[a.Status]++
		if a.Status == 429 {
			retryAfter = a.Header.Get("Retry-After")
			if a.Str("reason") != "rate_limited" {
				t.Fatalf("429 reason %q", a.Str("reason"))
			}
		}
	}
	if counts[202] != 5 || counts[429] != 15 {
		t.Fatalf("answers %v: want the burst of 5 admitted and 15 answered 429", counts)
	}
	if retryAfter == "" {
		t.Fatal("429 without Retry-After")
	}
}

func TestQueueBoundAnswersBusy(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1000, QueueBound: 10})
	cfg.NoDrain = true // nothing drains, so the queue fills and stays full
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	counts := map[string]int{}
	for i := range 30 {
		a := gatetest.Order(t, c, base, "s1", fmt.Sprintf("b%d", i), "")
		counts[fmt.Sprint(a.Status, a.Str("reason"))]++
	}
	// No drain runs, so the queue fills at 10 and stays full.
	if counts["202"] != 10 || counts["429queue_full"] != 20 {
		t.Fatalf("answers %v: want 10 admitted, 20 queue_full", counts)
	}
}

func TestAdminAPI(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 2})
	cfg.AdminToken = "sekret"
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	admin := func(method, path, token, body string) gatetest.Answer {
		return gatetest.Admin(t, c, srv.OpsAddr(), method, path, token, body)
	}
	if a := admin("GET", "/admin/sales/s1", "", ""); a.Status != 401 {
		t.Fatalf("no token: %d", a.Status)
	}
	if a := admin("GET", "/admin/sales/s1", "wrong", ""); a.Status != 401 {
		t.Fatalf("wrong token: %d", a.Status)
	}
	if a := admin("PUT", "/admin/sales/new", "sekret", `{"stock":5}`); a.Status != 201 {
		t.Fatalf("create: %d %s", a.Status, a.Raw)
	}
	if a := gatetest.Order(t, c, base, "new", "x", ""); a.Status != 202 {
		t.Fatalf("order in created sale: %d %s", a.Status, a.Raw)
	}
	gatetest.Order(t, c, base, "s1", "a", "")
	gatetest.Order(t, c, base, "s1", "b", "")
	if a := gatetest.Order(t, c, base, "s1", "c", ""); a.Status != 410 {
		t.Fatalf("sold out: %d", a.Status)
	}
	if a := admin("PATCH", "/admin/sales/s1", "sekret", `{"stock":3}`); a.Status != 200 {
		t.Fatalf("raise stock: %d %s", a.Status, a.Raw)
	}
	if a := gatetest.Order(t, c, base, "s1", "c", ""); a.Status != 202 {
		t.Fatalf("order after raising stock: %d %s", a.Status, a.Raw)
	}
	a := admin("PATCH", "/admin/sales/s1", "sekret", `{"stock":1}`)
	if a.Status != 200 || !strings.Contains(a.Raw, "warnings") {
		t.Fatalf("lower stock below admitted: %d %s", a.Status, a.Raw)
	}
	if n := gatetest.StreamMsgs(t, srv.Ledger(), "s1"); n != 3 {
		t.Fatalf("lowering stock changed the ledger: %d orders, want 3", n)
	}
	if a := admin("PATCH", "/admin/sales/s1", "sekret", `{"stock":-1}`); a.Status != 400 {
		t.Fatalf("negative stock: %d %s", a.Status, a.Raw)
	}
	if a := admin("PATCH", "/admin/sales/s1", "sekret", `{"ends_at":"2000-01-01T00:00:00Z"}`); a.Status != 200 {
		t.Fatalf("close window: %d %s", a.Status, a.Raw)
	}
	if a := gatetest.Order(t, c, base, "s1", "d", ""); a.Status != 403 {
		t.Fatalf("order after closing: %d %s", a.Status, a.Raw)
	}
	a = admin("GET", "/admin/sales/s1", "sekret", "")
	ans, _ := a.Body["answers"].(map[string]any)
	if a.Status != 200 || ans["admitted"] != float64(3) || ans["sold_out"] != float64(1) || ans["closed"] != float64(1) {
		t.Fatalf("counters: %d %s", a.Status, a.Raw)
	}
}

// A stock and overbook whose sum overflows, or passes the documented
// bound, are refused through the admin API and change nothing: the sum
// 9223372036854775807 + 10 once wrapped negative and made a sale that
// was sold out from its creation.
func TestAdminRefusesAbsurdCapacity(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 2})
	cfg.AdminToken = "sekret"
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	admin := func(method, path, body string) gatetest.Answer {
		return gatetest.Admin(t, c, srv.OpsAddr(), method, path, "sekret", body)
	}
	for _, body := range []string{
		`{"stock":10,"overbook":9223372036854775807}`,
		`{"stock":9223372036854775807,"overbook":1}`,
		`{"stock":9223372036854775807}`,
		`{"stock":1000000000,"overbook":1}`,
		`{"stock":1000000001}`,
	} {
		if a := admin("PUT", "/admin/sales/big", body); a.Status != 400 || a.Str("reason") != "bad_request" || !strings.Contains(a.Str("detail"), "1000000000") {
			t.Errorf("PUT %s: %d %s; want 400 naming the bound", body, a.Status, a.Raw)
		}
		if a := admin("PATCH", "/admin/sales/s1", body); a.Status != 400 {
			t.Errorf("PATCH %s: %d %s; want 400", body, a.Status, a.Raw)
		}
	}
	if a := admin("GET", "/admin/sales/big", ""); a.Status != 404 {
		t.Errorf("a refused PUT made the sale: %d %s", a.Status, a.Raw)
	}
	// s1 is as it was: open, with its stock of 2.
	if a := gatetest.Order(t, c, base, "s1", "a", ""); a.Status != 202 {
		t.Fatalf("order after refused changes: %d %s", a.Status, a.Raw)
	}
	if a := gatetest.Get(t, c, base+"/v1/sales/s1"); a.Body["stock"] != float64(2) || a.Str("state") != "open" {
		t.Errorf("sale after refused changes: %s", a.Raw)
	}
	// The bound itself is a sale.
	if a := admin("PUT", "/admin/sales/big", `{"stock":999999999,"overbook":1}`); a.Status != 201 {
		t.Errorf("stock + overbook at the bound: %d %s", a.Status, a.Raw)
	}
}

func TestReadyAndMetrics(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1}))
	c := gatetest.Client()
	ops := "http://" + srv.OpsAddr()
	for _, p := range []string{"/healthz", "/readyz", "/debug/pprof/"} {
		if a := gatetest.Get(t, c, ops+p); a.Status != 200 {
			t.Fatalf("%s: %d", p, a.Status)
		}
	}
	base := "http://" + srv.APIAddr()
	gatetest.Order(t, c, base, "s1", "a", "")
	gatetest.Order(t, c, base, "s1", "b", "")
	m := gatetest.Get(t, c, ops+"/metrics").Raw
	for _, want := range []string{
		`sluice_admission_requests_total{outcome="admitted",reason="admitted",sale="s1"} 1`,
		`sluice_admission_requests_total{outcome="diverted",reason="sold_out",sale="s1"} 1`,
		`sluice_build_info{`,
		`sluice_admission_duration_seconds_bucket{outcome="admitted"`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if a := gatetest.Get(t, c, base+"/openapi.yaml"); a.Status != 200 || !strings.Contains(a.Raw, "openapi: 3") {
		t.Fatalf("/openapi.yaml: %d", a.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestNoDrainReportsUnknownWait: with orders waiting and no drain, the
// gate says it does not know the drain rate or the wait (null), never a
// huge number, and logs once that nothing drains.
func TestNoDrainReportsUnknownWait(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 10})
	cfg.NoDrain = true
	var lines *gatetest.Lines
	cfg.Logger, lines = gatetest.CaptureLog(t)
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	a := gatetest.Order(t, c, base, "s1", "a", "")
	if a.Status != 202 {
		t.Fatalf("order: %d %s", a.Status, a.Raw)
	}
	gatetest.Eventually(t, 5*time.Second, "the refresh to see the queued order", func() bool {
		return strings.Contains(gatetest.Get(t, c, base+"/v1/sales/s1").Raw, `"queue_depth":1`)
	})
	time.Sleep(200 * time.Millisecond) // a few more refreshes
	sale := gatetest.Get(t, c, base+"/v1/sales/s1")
	if !strings.Contains(sale.Raw, `"drain_rate":null`) || !strings.Contains(sale.Raw, `"estimated_wait_seconds":null`) {
		t.Fatalf("sale with no drain: %s", sale.Raw)
	}
	order := gatetest.Get(t, c, base+"/v1/orders/"+a.Str("order_id"))
	if !strings.Contains(order.Raw, `"estimated_wait_seconds":null`) || order.Str("status") != "queued" {
		t.Fatalf("order with no drain: %s", order.Raw)
	}
	if n := lines.Count("no drain is attached"); n != 1 {
		t.Fatalf("the log said %d times that no drain is attached, want once:\n%s", n, lines)
	}
	m := gatetest.Get(t, c, "http://"+srv.OpsAddr()+"/metrics").Raw
	if !strings.Contains(m, `sluice_sale_estimated_wait_seconds{sale="s1"} NaN`) {
		t.Fatalf("the wait metric is not NaN with no drain")
	}
}

// TestKeyedRetryOfSoldOutSaleAnsweredFromMemory: once a sale is sold out
// and the gate holds its orders, a request carrying an Idempotency-Key is
// answered as the ledger would answer it, without the ledger: it still is
// with JetStream shut down.
func TestKeyedRetryOfSoldOutSaleAnsweredFromMemory(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 3})
	var lines *gatetest.Lines
	cfg.Logger, lines = gatetest.CaptureLog(t)
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	ids := map[string]string{}
	for _, b := range []string{"a", "b", "c"} {
		a := gatetest.Order(t, c, base, "s1", b, "key-"+b)
		if a.Status != 202 {
			t.Fatalf("order %s: %d %s", b, a.Status, a.Raw)
		}
		ids[b] = a.Str("order_id")
	}
	if a := gatetest.Order(t, c, base, "s1", "d", ""); a.Status != 410 {
		t.Fatalf("past the stock: %d", a.Status)
	}
	// The index is built in the background within a few refreshes; until
	// then the same answers come from JetStream.
	check := func(when string) {
		t.Helper()
		if a := gatetest.Order(t, c, base, "s1", "fresh", "a-new-key"); a.Status != 410 || a.Str("reason") != "sold_out" {
			t.Fatalf("%s: fresh key: %d %s", when, a.Status, a.Raw)
		}
		// A replay answers what the order is: queued (202) or, once the
		// drain confirmed it, 201.
		a := gatetest.Order(t, c, base, "s1", "b", "key-b")
		replayOK := a.Status == 202 && a.Str("status") == "queued" || a.Status == 201 && a.Str("status") == "confirmed"
		if !replayOK || a.Str("order_id") != ids["b"] || a.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%s: retry of b: %d %s", when, a.Status, a.Raw)
		}
		// Neither refusal names the order: the buyer is the body's.
		if a := gatetest.Order(t, c, base, "s1", "c", "another-key"); a.Status != 409 || a.Str("order_id") != "" {
			t.Fatalf("%s: c with another key: %d %s", when, a.Status, a.Raw)
		}
		if a := orderWith(t, base, "s1", `{"buyer_id":"b","payload":{"size":"M"}}`, "Idempotency-Key", "key-b"); a.Status != 422 || a.Str("order_id") != "" {
			t.Fatalf("%s: b's key with another payload: %d %s", when, a.Status, a.Raw)
		}
	}
	check("from the ledger or memory")
	gatetest.Eventually(t, 10*time.Second, "the gate to hold the sold-out sale's orders", func() bool {
		return lines.Count("answered from memory") == 1
	})
	srv.Broker().Server().Shutdown()
	srv.Broker().Server().WaitForShutdown()
	check("with JetStream shut down")
}
