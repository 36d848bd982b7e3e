package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
)

// A sale with variants under faults. Three clustered gates (streams
// replicated three ways) sell a drop of three sizes; gate 1 drains into
// a shop that rejects every fourth new order. Buyers behave as people:
// each wants a size (by weight), orders it on any gate with an
// Idempotency-Key (the same again after a lost answer), takes another
// size of those left when told variant_sold_out, waits and tries again
// when told sold_out (an item may come back), and orders again when the
// order they hold is rejected or cancelled. A loop of faults drawn from
// a printed seed hits them (each kind once in the first six steps):
// SIGTERM and kill -9 of any gate with a restart, kill -9 of the gate
// that drains, a cancel and fifty concurrent cancels of one order, a
// size's stock raised. After every step, and at the end:
//
//   - no size has more orders holding an item (confirmed by the shop and
//     not cancelled) than its stock, and the gates' count agrees
//     (admitted − released ≤ stock, by size);
//   - no buyer holds two across the sizes;
//   - at the end: each size sold exactly its stock, every order answered
//     202 decided by the shop (none lost) and in the size it was ordered
//     in, every gate agreeing.
//
// The seeds are the line fault test's (SLUICE_FAULT_SEEDS,
// SLUICE_FAULT_STEPS).
func TestVariantsUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("three clustered gates under faults: not in -short")
	}
	seeds, steps := faultSeeds(t, 6)
	binary(t) // built before the clock of any seed starts
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			testenv.Exclusive(t) // three gates and their buyers take both cores
			t.Logf("seed %d, %d steps (rerun: SLUICE_FAULT_SEEDS=%d go test ./cmd/sluice -run TestVariantsUnderFaults -v)", seed, steps, seed)
			runVariantFaults(t, seed, steps)
		})
	}
}

// sizeShop is a purchase endpoint that refuses every 4th new order and
// answers a repeated call for an order as it did the first time; it
// keeps each order's buyer and size.
type sizeShop struct {
	mu      sync.Mutex
	n       int
	decided map[string]shopOrder
}

type shopOrder struct {
	buyer, variant string
	code           int
}

func (s *sizeShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var o struct {
		ID      string `json:"order_id"`
		Buyer   string `json:"buyer_id"`
		Variant string `json:"variant"`
	}
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil || o.ID == "" {
		http.Error(w, "bad order", 400)
		return
	}
	s.mu.Lock()
	d, ok := s.decided[o.ID]
	if !ok {
		s.n++
		d = shopOrder{buyer: o.Buyer, variant: o.Variant, code: 201}
		if s.n%4 == 0 {
			d.code = 409
		}
		s.decided[o.ID] = d
	}
	s.mu.Unlock()
	if d.code == 409 {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(409)
		fmt.Fprint(w, `{"reason":"payment_failed"}`)
		return
	}
	w.WriteHeader(d.code)
}

// held are the shop's confirmed orders not cancelled, by size and by buyer.
func (s *sizeShop) held(cancelled map[string]bool) (bySize map[string]int, byBuyer map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bySize, byBuyer = map[string]int{}, map[string][]string{}
	for id, d := range s.decided {
		if d.code == 201 && !cancelled[id] {
			bySize[d.variant]++
			byBuyer[d.buyer] = append(byBuyer[d.buyer], id)
		}
	}
	return bySize, byBuyer
}

// sizeBuyer is a person wanting one pair.
type sizeBuyer struct {
	id   string
	want string
	// what they hold: the order answered 202 and its size; round counts
	// their orders given back (their key's round).
	order, size string
	round       int
}

var sizeWeights = []struct {
	name   string
	weight int
}{{"us9", 5}, {"us10", 3}, {"us11", 2}}

func runVariantFaults(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x512e))
	pickRng := rand.New(rand.NewPCG(seed^0xb0b, seed))
	var rngMu sync.Mutex
	pick := func(n int) int {
		rngMu.Lock()
		defer rngMu.Unlock()
		return pickRng.IntN(n)
	}
	shop := &sizeShop{decided: map[string]shopOrder{}}
	ts := httptest.NewServer(shop)
	defer ts.Close()
	a := addrs(t, 12)
	fc := &faultCluster{t: t, c: gatetest.Client(), backend: ts.URL}
	for i := range 3 {
		fc.gates = append(fc.gates, &faultGate{n: i + 1, api: a[4*i], ops: a[4*i+1], nats: a[4*i+2], rout: a[4*i+3], dir: t.TempDir()})
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, g := range fc.gates {
		wg.Go(func() { errs[i] = fc.start(g) }) // JetStream waits for a quorum: the three start together
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("gate %d: %v", i+1, err)
		}
	}
	g1 := fc.gates[0]
	stock := map[string]int64{"us9": 5, "us10": 6, "us11": 3}
	var stockMu sync.Mutex
	gatetest.Eventually(t, 30*time.Second, "the sale to be made", func() bool {
		status, v, _ := do(fc.c, "PUT", "http://"+g1.ops+"/admin/sales/drop", faultToken, `{"variants":{"us9":5,"us10":6,"us11":3}}`, nil)
		if status != 200 && status != 201 && status != 503 {
			t.Fatalf("make the sale: %d %v", status, v)
		}
		return status == 200 || status == 201
	})
	for _, g := range fc.gates {
		gatetest.Eventually(t, 30*time.Second, "every gate to know the sale", func() bool {
			status, _, _ := get(fc.c, "http://"+g.api+"/v1/sales/drop")
			return status == 200
		})
	}

	var (
		mu        sync.Mutex            // guards what follows, and the buyers' holdings
		admitted  = map[string]string{} // order id answered 202 → its size
		cancelled = map[string]bool{}
		odd       []string // answers no person should get
	)
	liveGate := func() *faultGate {
		for {
			live := fc.live()
			if len(live) > 0 {
				return live[pick(len(live))]
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// A buyer's life: order, hold, order again when what they hold is
	// given back.
	follow := func(ctx context.Context, b *sizeBuyer) {
		size := b.want
		for ctx.Err() == nil {
			mu.Lock()
			order := b.order
			mu.Unlock()
			if order != "" { // they look at their order now and then
				time.Sleep(time.Duration(300+pick(500)) * time.Millisecond)
				status, v, ok := get(fc.c, "http://"+liveGate().api+"/v1/orders/"+order)
				if ok && status == 200 && (v["status"] == "rejected" || v["status"] == "cancelled") {
					mu.Lock()
					b.order, b.size = "", ""
					b.round++
					mu.Unlock()
					size = b.want
				}
				continue
			}
			key := fmt.Sprintf("%s-%d-%s", b.id, b.round, size)
			status, v, ok := do(fc.c, "POST", "http://"+liveGate().api+"/v1/sales/drop/orders", "",
				`{"buyer_id":"`+b.id+`","variant":"`+size+`"}`, map[string]string{"Idempotency-Key": key})
			reason, _ := v["reason"].(string)
			switch {
			case !ok || status == 503 || status >= 500:
				time.Sleep(200 * time.Millisecond) // the same key again
			case status == 202:
				id, _ := v["order_id"].(string)
				mu.Lock()
				b.order, b.size = id, size
				admitted[id] = size
				mu.Unlock()
			case status == 410 && reason == "variant_sold_out":
				left, _ := v["variants_left"].([]any)
				if len(left) == 0 {
					time.Sleep(300 * time.Millisecond)
					break
				}
				size, _ = left[pick(len(left))].(string)
			case status == 410 && reason == "sold_out", status == 409 && reason == "already_ordered":
				// Sold out: an item may come back. Already ordered: the
				// gate asked has not yet seen their order given back.
				time.Sleep(time.Duration(300+pick(600)) * time.Millisecond)
				size = b.want
			default:
				mu.Lock()
				odd = append(odd, fmt.Sprintf("%s: %d %v", b.id, status, v))
				mu.Unlock()
				time.Sleep(300 * time.Millisecond)
			}
		}
	}
	buyers := make([]*sizeBuyer, 45)
	total := 0
	for _, w := range sizeWeights {
		total += w.weight
	}
	for i := range buyers {
		x := rng.IntN(total)
		want := ""
		for _, w := range sizeWeights {
			if x -= w.weight; x < 0 {
				want = w.name
				break
			}
		}
		buyers[i] = &sizeBuyer{id: fmt.Sprint("buyer-", i), want: want}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var bw sync.WaitGroup
	defer func() { cancel(); bw.Wait() }()
	for _, b := range buyers {
		bw.Go(func() { follow(ctx, b) })
	}

	// check: the promises, now. final: every size sold exactly its stock.
	check := func(when string, final bool) {
		t.Helper()
		mu.Lock()
		gone := map[string]bool{}
		for id := range cancelled {
			gone[id] = true
		}
		mu.Unlock()
		stockMu.Lock()
		want := map[string]int64{}
		for k, n := range stock {
			want[k] = n
		}
		stockMu.Unlock()
		bySize, byBuyer := shop.held(gone)
		for size, n := range bySize {
			if int64(n) > want[size] || (final && int64(n) != want[size]) {
				t.Errorf("%s: size %s: %d orders confirmed and not cancelled, stock %d", when, size, n, want[size])
			}
		}
		if final && len(bySize) != len(want) {
			t.Errorf("%s: sizes confirmed %v, stock %v", when, bySize, want)
		}
		for b, ids := range byBuyer {
			if len(ids) > 1 {
				t.Errorf("%s: %s holds %d orders across the sizes: %v", when, b, len(ids), ids)
			}
		}
		for _, g := range fc.live() {
			status, v, ok := get(fc.c, "http://"+g.api+"/v1/sales/drop")
			if !ok || status != 200 {
				continue // going down, or electing a leader
			}
			vs, _ := v["variants"].(map[string]any)
			for size, n := range want {
				s, _ := vs[size].(map[string]any)
				adm, _ := s["admitted"].(float64)
				rel, _ := s["released"].(float64)
				if int64(adm-rel) > n || (final && int64(adm-rel) != n) {
					t.Errorf("%s: gate %d counts size %s: %v admitted, %v released, stock %d", when, g.n, size, adm, rel, n)
				}
			}
		}
	}

	cancelOne := func(times int) string {
		mu.Lock()
		var ids []string
		for id := range admitted {
			if !cancelled[id] {
				ids = append(ids, id)
			}
		}
		mu.Unlock()
		sort.Strings(ids)
		if len(ids) == 0 {
			return "no order to cancel yet"
		}
		if !fc.up(1) {
			return "gate 1 (the drain) is down: no cancel"
		}
		id := ids[pick(len(ids))]
		answers := map[int]int{}
		var amu sync.Mutex
		var cw sync.WaitGroup
		for range times {
			cw.Go(func() {
				status, _, ok := do(fc.c, "POST", "http://"+g1.ops+"/admin/orders/"+id+"/cancel", faultToken, "", nil)
				if !ok {
					status = -1
				}
				amu.Lock()
				answers[status]++
				amu.Unlock()
			})
		}
		cw.Wait()
		if answers[200] == times {
			mu.Lock()
			cancelled[id] = true
			mu.Unlock()
		} else if answers[409] == 0 && answers[-1] == 0 && answers[503] == 0 {
			t.Fatalf("seed %d: %d cancels of %s answered %v", seed, times, id, answers)
		}
		mu.Lock()
		size := admitted[id]
		mu.Unlock()
		return fmt.Sprintf("cancel of %s (%s) ×%d: %v", id, size, times, answers)
	}

	const kinds = 6
	order := rng.Perm(kinds)
	time.Sleep(time.Second) // the first orders
	for step := 1; step <= steps; step++ {
		kind := rng.IntN(kinds)
		if step <= kinds {
			kind = order[step-1]
		}
		n := 1 + rng.IntN(3)
		pause := time.Duration(1000+rng.IntN(2000)) * time.Millisecond
		var did string
		switch kind {
		case 0, 1, 2: // a gate stops and comes back; 2: the drain's, by kill -9
			sig := syscall.SIGTERM
			if kind >= 1 {
				sig = syscall.SIGKILL
			}
			if kind == 2 {
				n = 1
			}
			g := fc.gates[n-1]
			fc.stop(g, sig)
			time.Sleep(pause / 2)
			if err := fc.start(g); err != nil {
				t.Fatalf("seed %d step %d: gate %d does not come back after %v: %v", seed, step, n, sig, err)
			}
			did = fmt.Sprintf("gate %d %v and restarted", n, sig)
		case 3:
			did = cancelOne(1)
		case 4:
			did = cancelOne(50)
		case 5: // a size's stock raised
			size := sizeWeights[rng.IntN(len(sizeWeights))].name
			stockMu.Lock()
			to := stock[size] + 1 + int64(rng.IntN(2))
			stockMu.Unlock()
			status, v, _ := do(fc.c, "PATCH", "http://"+fc.gates[n-1].ops+"/admin/sales/drop", faultToken, fmt.Sprintf(`{"variants":{%q:%d}}`, size, to), nil)
			if status != 200 {
				t.Fatalf("seed %d step %d: PATCH %s to %d: %d %v", seed, step, size, to, status, v)
			}
			stockMu.Lock()
			stock[size] = to
			stockMu.Unlock()
			did = fmt.Sprintf("size %s's stock raised to %d on gate %d", size, to, n)
		}
		time.Sleep(pause)
		t.Logf("step %d (%s): %s", step, clock(time.Now()), did)
		check(fmt.Sprintf("seed %d after step %d (%s)", seed, step, did), false)
	}

	// The end: every gate up; the buyers go on until every size is sold,
	// decided and stays so.
	for _, g := range fc.gates {
		if !fc.up(g.n) {
			if err := fc.start(g); err != nil {
				t.Fatal(err)
			}
		}
	}
	settled := 0
	gatetest.Eventually(t, 120*time.Second, "every size sold and decided", func() bool {
		status, v, ok := get(fc.c, "http://"+g1.api+"/v1/sales/drop")
		if ok && status == 200 && v["state"] == "sold_out" && v["queue_depth"] == 0.0 {
			settled++
		} else {
			settled = 0
		}
		return settled >= 6 // three seconds, while buyers of orders rejected order again
	})
	cancel()
	bw.Wait()
	gatetest.Eventually(t, 30*time.Second, "the last orders decided", func() bool {
		status, v, ok := get(fc.c, "http://"+g1.api+"/v1/sales/drop")
		return ok && status == 200 && v["queue_depth"] == 0.0
	})
	check(fmt.Sprintf("seed %d at the end", seed), true)
	// Every order answered 202 was decided by the shop, in its size, and
	// every gate reads it so.
	mu.Lock()
	defer mu.Unlock()
	shop.mu.Lock()
	defer shop.mu.Unlock()
	statuses := map[string]int{}
	for id, size := range admitted {
		d, ok := shop.decided[id]
		if !ok {
			t.Errorf("seed %d: order %s answered 202 never reached the shop", seed, id)
			continue
		}
		if d.variant != size {
			t.Errorf("seed %d: order %s ordered in %s, the shop got %s", seed, id, size, d.variant)
		}
		g := fc.gates[pick(3)]
		status, v, _ := get(fc.c, "http://"+g.api+"/v1/orders/"+id)
		st, _ := v["status"].(string)
		statuses[st]++
		want := map[int]string{201: "confirmed", 409: "rejected"}[d.code]
		if cancelled[id] {
			want = "cancelled"
		}
		if status != 200 || st != want || v["variant"] != size {
			t.Errorf("seed %d: gate %d reads order %s (%s, shop %d): %d %v", seed, g.n, id, size, d.code, status, v)
		}
	}
	if len(odd) > 0 {
		t.Errorf("seed %d: answers no buyer should get: %s", seed, strings.Join(odd, "; "))
	}
	t.Logf("seed %d: stock %v; %d orders answered 202 (%v), %d cancelled; the shop decided %d; every promise held",
		seed, stock, len(admitted), statuses, len(cancelled), len(shop.decided))
}
