package admission_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// A sale with variants through the HTTP API, on two gates sharing one
// JetStream: an order names its variant (else 400 variant_required, an
// unknown one 400 unknown_variant, a variant in a sale without 400 too);
// a burst for more buyers than stock sells each variant exactly its
// stock; a sold-out variant answers 410 variant_sold_out with the
// variants left, and the sale reads sold_out only when every variant
// is; per_buyer counts the whole sale; a keyed retry gets its order
// back, with another variant it is idempotency_key_reused; the sale's
// view and metrics show each variant.
func TestVariantsThroughTheGate(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Variants: map[string]int64{"us9": 30, "us10": 20}},
		ledger.Sale{Name: "plain", Stock: 5})
	cfg.AdminToken = "sekret"
	cfg.NATSListen = "127.0.0.1:0"
	a := gatetest.Start(t, cfg)
	cfg2 := gatetest.Config(t)
	cfg2.NATSURL = a.NATSURL()
	cfg2.NoDrain = true // one drain per ledger: gate a's
	b := gatetest.Start(t, cfg2)
	bases := []string{"http://" + a.APIAddr(), "http://" + b.APIAddr()}
	c := gatetest.Client()
	gatetest.Eventually(t, 10*time.Second, "both gates know the sale", func() bool {
		return gatetest.Get(t, c, bases[1]+"/v1/sales/drop").Status == 200
	})

	raw := func(base, body string) gatetest.Answer {
		req, _ := http.NewRequest("POST", base+"/v1/sales/drop/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return gatetest.Do(t, c, req)
	}
	if ans := raw(bases[0], `{"buyer_id":"x"}`); ans.Status != 400 || ans.Str("reason") != "variant_required" || fmt.Sprint(ans.Body["variants"]) != "[us10 us9]" {
		t.Fatalf("no variant: %d %s", ans.Status, ans.Raw)
	}
	if ans := gatetest.OrderVariant(t, c, bases[0], "drop", "x", "us12", ""); ans.Status != 400 || ans.Str("reason") != "unknown_variant" {
		t.Fatalf("unknown variant: %d %s", ans.Status, ans.Raw)
	}
	if ans := raw(bases[0], `{"buyer_id":"x","variant":"US9"}`); ans.Status != 400 || ans.Str("reason") != "unknown_variant" {
		t.Fatalf("a name no variant has: %d %s", ans.Status, ans.Raw)
	}
	if ans := gatetest.OrderVariant(t, c, bases[0], "plain", "x", "us9", ""); ans.Status != 400 || ans.Str("reason") != "unknown_variant" {
		t.Fatalf("a variant in a sale without: %d %s", ans.Status, ans.Raw)
	}

	// A burst: 120 buyers, each choosing us9 or us10, and a buyer told
	// variant_sold_out trying the other.
	var mu sync.Mutex
	got := map[string]int{}
	holder := ""
	var wg sync.WaitGroup
	for i := range 120 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buyer := fmt.Sprintf("b%d", i)
			want := []string{"us9", "us10"}[i%2]
			for range 2 {
				ans := gatetest.OrderVariant(t, c, bases[i%2], "drop", buyer, want, "")
				if ans.Status == 202 {
					mu.Lock()
					got[want]++
					holder = buyer
					mu.Unlock()
					return
				}
				left, _ := ans.Body["variants_left"].([]any)
				if ans.Status != 410 || len(left) == 0 || ans.Str("reason") != "variant_sold_out" && ans.Str("reason") != "sold_out" {
					if ans.Str("reason") != "sold_out" {
						t.Errorf("%s on %s: %d %s", buyer, want, ans.Status, ans.Raw)
					}
					return
				}
				want, _ = left[0].(string)
			}
		}()
	}
	wg.Wait()
	if got["us9"] != 30 || got["us10"] != 20 {
		t.Fatalf("admitted %v, want us9 30, us10 20", got)
	}
	if ans := gatetest.OrderVariant(t, c, bases[1], "drop", "late", "us9", ""); ans.Status != 410 || ans.Str("reason") != "sold_out" {
		t.Fatalf("every variant sold out: %d %s", ans.Status, ans.Raw)
	}
	gatetest.Eventually(t, 5*time.Second, "the sale's view", func() bool {
		v := gatetest.Get(t, c, bases[1]+"/v1/sales/drop")
		var view struct {
			State     string                         `json:"state"`
			Stock     int64                          `json:"stock"`
			Remaining int64                          `json:"remaining"`
			Variants  map[string]ledger.VariantState `json:"variants"`
		}
		_ = json.Unmarshal([]byte(v.Raw), &view)
		return view.State == "sold_out" && view.Stock == 50 && view.Remaining == 0 &&
			view.Variants["us9"] == ledger.VariantState{Stock: 30, Admitted: 30} &&
			view.Variants["us10"] == ledger.VariantState{Stock: 20, Admitted: 20}
	})

	// More us10: variant_sold_out lists it; the sale is open again.
	admin := func(method, body string) gatetest.Answer {
		return gatetest.Admin(t, c, a.OpsAddr(), method, "/admin/sales/drop", "sekret", body)
	}
	if ans := admin("PATCH", `{"variants":{"us10":22}}`); ans.Status != 200 {
		t.Fatalf("raise us10: %d %s", ans.Status, ans.Raw)
	}
	if ans := admin("PATCH", `{"variants":{"us10":25},"stock":40}`); ans.Status != 400 {
		t.Fatalf("a stock that is not the variants' sum: %d %s", ans.Status, ans.Raw)
	}
	gatetest.Eventually(t, 5*time.Second, "us10 back on sale on the other gate", func() bool {
		ans := gatetest.OrderVariant(t, c, bases[1], "drop", "nobody", "us9", "")
		return ans.Status == 410 && fmt.Sprint(ans.Body["variants_left"]) == "[us10]"
	})
	// per_buyer counts the whole sale.
	if ans := gatetest.OrderVariant(t, c, bases[0], "drop", holder, "us10", ""); ans.Status != 409 || ans.Str("reason") != "already_ordered" {
		t.Fatalf("a second order on another variant: %d %s", ans.Status, ans.Raw)
	}
	first := gatetest.OrderVariant(t, c, bases[0], "drop", "k", "us10", "key-1")
	if first.Status != 202 {
		t.Fatalf("keyed: %d %s", first.Status, first.Raw)
	}
	if ans := gatetest.OrderVariant(t, c, bases[1], "drop", "k", "us10", "key-1"); ans.Status != 202 || ans.Str("order_id") != first.Str("order_id") {
		t.Fatalf("keyed retry: %d %s", ans.Status, ans.Raw)
	}
	if ans := gatetest.OrderVariant(t, c, bases[1], "drop", "k", "us9", "key-1"); ans.Status != 422 {
		t.Fatalf("keyed retry with another variant: %d %s", ans.Status, ans.Raw)
	}
	order := gatetest.Get(t, c, bases[0]+"/v1/orders/"+first.Str("order_id"))
	if order.Str("variant") != "us10" {
		t.Fatalf("the order's view: %s", order.Raw)
	}
	// A browser gets the page listing what is left.
	req, _ := http.NewRequest("POST", bases[0]+"/v1/sales/drop/orders", strings.NewReader(`{"buyer_id":"y","variant":"us9"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/html")
	if page := gatetest.Do(t, c, req); page.Status != 410 || !strings.Contains(page.Raw, "Still on sale: <b>us10</b>") {
		t.Fatalf("page: %d %s", page.Status, page.Raw)
	}
	// Metrics by variant.
	m := gatetest.Get(t, c, "http://"+a.OpsAddr()+"/metrics").Raw
	for _, want := range []string{`sluice_sale_variant_stock{sale="drop",variant="us10"} 22`, `sluice_sale_variant_admitted_orders{sale="drop",variant="us9"} 30`,
		`sluice_admission_requests_total{outcome="diverted",reason="variant_sold_out",sale="drop"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
