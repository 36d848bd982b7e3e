package serve_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
)

// Three clustered gates sell a sale with variants, its stream replicated
// three ways: a crowd ordering on every gate at once, each buyer the
// variant of their choice and, told variant_sold_out, another of those
// left, sells each variant exactly its stock and no buyer twice across
// the variants; a cancel gives its item back to its own variant on every
// gate, and that variant sells it once more.
func TestThreeGateClusterKeepsEachVariantsStock(t *testing.T) {
	testenv.Exclusive(t) // three gates and a crowd: both cores
	stock := map[string]int64{"us9": 30, "us10": 50, "us11": 20}
	cfgs := clusterConfigs(t, ledger.Sale{Name: "drop", Variants: stock})
	gates := gatetest.StartTogether(t, cfgs...)
	c := gatetest.Client()
	api := func(i int) string { return "http://" + gates[i%3].APIAddr() }
	for i := range gates {
		gatetest.Eventually(t, 20*time.Second, "every gate to know the sale", func() bool {
			return gatetest.Get(t, c, api(i)+"/v1/sales/drop").Status == http.StatusOK
		})
	}

	// 600 buyers, most wanting us9, each on a gate of its own turn. The
	// first 60 then try a second variant on another gate while there is
	// stock left: one order per buyer across the variants.
	choice := []string{"us9", "us9", "us9", "us10", "us11"}
	// A buyer answered 503 (a stream's leader still being elected in a
	// new cluster) tries again, as the answer's Retry-After says.
	orderOn := func(i int, buyer, v string) gatetest.Answer {
		for range 50 {
			if a := gatetest.OrderVariant(t, c, api(i), "drop", buyer, v, ""); a.Status != http.StatusServiceUnavailable {
				return a
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Errorf("%s: 503 for ten seconds", buyer)
		return gatetest.Answer{}
	}
	var mu sync.Mutex
	answers := map[string]int{}
	type order struct{ variant, id string }
	held := map[string]order{} // buyer → their order
	byVariant := map[string]int{}
	buy := func(i int) {
		buyer, v := fmt.Sprint("buyer-", i), choice[i%len(choice)]
		for try := 0; try <= len(stock); try++ {
			a := orderOn(i+try, buyer, v)
			mu.Lock()
			answers[fmt.Sprint(a.Status, " ", a.Str("reason"))]++
			if a.Status == http.StatusAccepted {
				held[buyer] = order{v, a.Str("order_id")}
				byVariant[v]++
			}
			mu.Unlock()
			left, _ := a.Body["variants_left"].([]any)
			if a.Str("reason") != "variant_sold_out" || len(left) == 0 {
				return
			}
			v = left[i%len(left)].(string)
		}
	}
	var bw sync.WaitGroup
	for i := range 60 {
		bw.Go(func() { buy(i) })
	}
	bw.Wait()
	if len(held) != 60 {
		t.Fatalf("60 buyers for 100 items: %d orders (answers %v)", len(held), answers)
	}
	second := map[string]int{}
	i := 0
	for buyer, o := range held {
		other := "us10"
		if o.variant == "us10" {
			other = "us11"
		}
		i++
		gate := i // on another gate than the first order's, mostly
		bw.Go(func() {
			a := orderOn(gate, buyer, other)
			mu.Lock()
			second[fmt.Sprint(a.Status, " ", a.Str("reason"))]++
			mu.Unlock()
		})
	}
	bw.Wait()
	if second["409 already_ordered"] != len(held) {
		t.Errorf("second orders of another variant by the %d buyers holding one: %v, want all 409 already_ordered", len(held), second)
	}
	for i := 60; i < 600; i++ {
		bw.Go(func() { buy(i) })
	}
	bw.Wait()
	for name, n := range stock {
		if int64(byVariant[name]) != n {
			t.Errorf("variant %s: %d orders admitted, stock %d (answers %v)", name, byVariant[name], n, answers)
		}
	}
	if answers["410 variant_sold_out"] == 0 || answers["410 sold_out"] == 0 {
		t.Errorf("answers %v: want buyers told variant_sold_out, then sold_out", answers)
	}

	// Every gate counts each variant's stock sold; the drain confirms them.
	for i := range gates {
		gatetest.Eventually(t, 30*time.Second, "every gate to see each variant sold and confirmed", func() bool {
			a := gatetest.Get(t, c, api(i)+"/v1/sales/drop")
			vs, _ := a.Body["variants"].(map[string]any)
			for name, n := range stock {
				v, _ := vs[name].(map[string]any)
				if v["admitted"] != float64(n) || v["remaining"] != 0.0 {
					return false
				}
			}
			return a.Str("state") == "sold_out" && a.Body["confirmed"] == 100.0
		})
	}

	// A cancel of a us11 order gives its item back to us11, on every gate:
	// us9 stays sold out, and us11 sells once more, once.
	var id string
	for _, o := range held {
		if o.variant == "us11" {
			id = o.id
			break
		}
	}
	if a := gatetest.Admin(t, c, gates[0].OpsAddr(), "POST", "/admin/orders/"+id+"/cancel", cfgs[0].AdminToken, ""); a.Status != http.StatusOK {
		t.Fatalf("cancel %s: %d %s", id, a.Status, a.Raw)
	}
	for i := range gates {
		gatetest.Eventually(t, 20*time.Second, "every gate to see the item back in us11", func() bool {
			vs, _ := gatetest.Get(t, c, api(i)+"/v1/sales/drop").Body["variants"].(map[string]any)
			us9, _ := vs["us9"].(map[string]any)
			us11, _ := vs["us11"].(map[string]any)
			return us11["remaining"] == 1.0 && us9["remaining"] == 0.0
		})
	}
	if a := gatetest.OrderVariant(t, c, api(2), "drop", "late-1", "us9", ""); a.Status != http.StatusGone || a.Str("reason") != "variant_sold_out" {
		t.Fatalf("us9 after a us11 cancel: %d %s", a.Status, a.Raw)
	}
	got := map[int]int{}
	var late sync.WaitGroup
	for i := range 9 {
		late.Go(func() {
			a := orderOn(i, fmt.Sprint("late-us11-", i), "us11") // a 503 asked again, as every buyer here does
			mu.Lock()
			got[a.Status]++
			mu.Unlock()
		})
	}
	late.Wait()
	if got[http.StatusAccepted] != 1 || got[http.StatusGone] != 8 {
		t.Fatalf("nine buyers for the one us11 given back, on three gates: %v, want one 202", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := gates[1].Ledger().State(ctx, "drop")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("answers %v; the stream holds %d orders; each variant sold its stock, the cancelled item once more", answers, st.Admitted)
}
