package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/broker"
	"sluice/internal/ledger"
)

// jetStream starts an in-process JetStream server and returns n
// connections to it, as n gates sharing it would have.
func jetStream(t testing.TB, n int) []jetstream.JetStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	b, err := broker.Start(ctx, broker.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	out := []jetstream.JetStream{}
	for i := range n {
		conn := b.Conn
		if i > 0 {
			other, err := broker.Connect(ctx, b.ClientURL(), quiet)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Conn.Close() })
			conn = other.Conn
		}
		js, err := jetstream.New(conn)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, js)
	}
	return out
}

// released counts released orders by variant, as the decisions tracker
// would.
type released struct {
	mu sync.Mutex
	n  map[string]int64
}

func (r *released) of(_, v string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[v]
}

func (r *released) add(v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int64{}
	}
	r.n[v]++
}

func order(sale, buyer, variant string) ledger.Order {
	return ledger.Order{Sale: sale, BuyerID: buyer, Variant: variant, Token: ledger.NewToken(), AdmittedAt: time.Now().UTC()}
}

// TestVariantsExactUnderConcurrency: three ledgers (three gates) place
// orders at once for more buyers than the stock, each buyer trying
// every variant in turn as a person told variant_sold_out would: every
// variant sells exactly its stock, no buyer holds two orders, and every
// refusal is a sold-out variant or the buyer's order already held.
func TestVariantsExactUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	jss := jetStream(t, 3)
	stock := map[string]int64{"us7": 40, "us8": 25, "us9": 60, "us10": 1}
	var ls []*ledger.Ledger
	for _, js := range jss {
		ls = append(ls, ledger.New(js, ledger.Options{}))
	}
	st, err := ls[0].EnsureSale(ctx, ledger.Sale{Name: "drop", Variants: stock})
	if err != nil {
		t.Fatal(err)
	}
	if st.Sale.Stock != 126 || st.SoldOut() {
		t.Fatalf("made: stock %d, sold out %v", st.Sale.Stock, st.SoldOut())
	}
	names := []string{"us7", "us8", "us9", "us10"}
	var placed atomic.Int64
	var wg sync.WaitGroup
	for b := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := ls[b%3]
			buyer := fmt.Sprintf("b%d", b)
			start := rand.IntN(len(names))
			for i := range names {
				v := names[(start+i)%len(names)]
				_, _, err := l.Place(ctx, order("drop", buyer, v), "")
				switch {
				case err == nil:
					placed.Add(1)
					// A second order on another variant is refused.
					other := names[(start+i+1)%len(names)]
					if _, _, err := l.Place(ctx, order("drop", buyer, other), ""); !errors.Is(err, ledger.ErrAlreadyOrdered) {
						t.Errorf("%s's second order: %v, want already ordered", buyer, err)
					}
					return
				case errors.Is(err, ledger.ErrVariantSoldOut):
				default:
					t.Errorf("%s on %s: %v", buyer, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if placed.Load() != 126 {
		t.Fatalf("placed %d orders, want 126", placed.Load())
	}
	for i, l := range ls {
		st, err := l.State(ctx, "drop")
		if err != nil {
			t.Fatal(err)
		}
		for v, n := range stock {
			if got := st.Variants[v]; got.Admitted != n || got.Remaining != 0 {
				t.Errorf("ledger %d: %s: %+v, want %d admitted, none left", i, v, got, n)
			}
		}
		if !st.SoldOut() || st.Admitted != 126 || len(st.VariantsLeft()) != 0 {
			t.Errorf("ledger %d: sold out %v, admitted %d, left %v", i, st.SoldOut(), st.Admitted, st.VariantsLeft())
		}
	}
	checkStream(t, ls[0], "drop", stock)
}

// checkStream reads every order of the sale from its stream: per
// variant at most its stock, one order per buyer.
func checkStream(t *testing.T, l *ledger.Ledger, sale string, want map[string]int64) {
	t.Helper()
	per := map[string]int64{}
	buyers := map[string]bool{}
	if _, err := l.ReadOrders(context.Background(), sale, 1, func(o ledger.Order) {
		if o.BuyerID == "" {
			return // a burn
		}
		per[o.Variant]++
		if buyers[o.BuyerID] {
			t.Errorf("buyer %s holds two orders", o.BuyerID)
		}
		buyers[o.BuyerID] = true
	}); err != nil {
		t.Fatal(err)
	}
	for v, n := range want {
		if per[v] != n {
			t.Errorf("stream: %s has %d orders, want %d", v, per[v], n)
		}
	}
}

// TestVariantStockChanges: raising a variant's stock sells more of it,
// lowering it sells no more than the new stock even from a ledger that
// has not read the change (a gate a refresh behind), lowering below
// what was sold keeps the orders and sells nothing until released
// orders bring it under, and a released order gives its item back to
// its own variant.
func TestVariantStockChanges(t *testing.T) {
	ctx := context.Background()
	jss := jetStream(t, 2)
	rel := &released{}
	a := ledger.New(jss[0], ledger.Options{ReleasedVariant: rel.of})
	stale := ledger.New(jss[1], ledger.Options{ReleasedVariant: rel.of})
	sale := ledger.Sale{Name: "tee", PerBuyer: 1, Variants: map[string]int64{"red": 5, "blue": 2}}
	if _, err := a.EnsureSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	buyer := 0
	sell := func(l *ledger.Ledger, v string, n int) int {
		t.Helper()
		got := 0
		for range n {
			buyer++
			_, _, err := l.Place(ctx, order("tee", fmt.Sprintf("c%d", buyer), v), "")
			switch {
			case err == nil:
				got++
			case !errors.Is(err, ledger.ErrVariantSoldOut):
				t.Fatal(err)
			}
		}
		return got
	}
	if got := sell(stale, "red", 2); got != 2 {
		t.Fatalf("sold %d red", got)
	}
	// Lowered to 3 by a; stale has read the sale with 5 and sells on.
	sale.Variants["red"] = 3
	if _, err := a.EnsureSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	if got := sell(stale, "red", 5) + sell(a, "red", 5); got != 1 {
		t.Fatalf("after lowering red to 3 with 2 sold, sold %d more, want 1", got)
	}
	// Raised to 6: three more.
	sale.Variants["red"] = 6
	if _, err := a.EnsureSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	if got := sell(a, "red", 5); got != 3 {
		t.Fatalf("after raising red to 6, sold %d more, want 3", got)
	}
	// Lowered to 4, below the 6 sold: nothing sells, two released
	// orders do not reopen it, a third does (6-3 = 3 < 4).
	sale.Variants["red"] = 4
	if _, err := a.EnsureSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	if got := sell(a, "red", 3); got != 0 {
		t.Fatalf("red lowered below its orders sold %d", got)
	}
	rel.add("red")
	rel.add("red")
	if got := sell(stale, "red", 3) + sell(a, "red", 3); got != 0 {
		t.Fatalf("red 4, 6 sold, 2 released: sold %d more", got)
	}
	rel.add("red")
	if got := sell(stale, "red", 3) + sell(a, "red", 3); got != 1 {
		t.Fatalf("red 4, 6 sold, 3 released: sold %d more, want 1", got)
	}
	// blue is untouched by all of it, and gets its released item back.
	if got := sell(a, "blue", 5); got != 2 {
		t.Fatalf("sold %d blue", got)
	}
	rel.add("blue")
	if got := sell(stale, "blue", 3); got != 1 {
		t.Fatalf("blue released one: sold %d", got)
	}
	st, err := a.State(ctx, "tee")
	if err != nil {
		t.Fatal(err)
	}
	if r, b := st.Variants["red"], st.Variants["blue"]; r.Stock != 4 || r.Admitted != 7 || r.Remaining != 0 || b.Admitted != 3 || b.Remaining != 0 {
		t.Fatalf("states: red %+v, blue %+v", r, b)
	}
	stock, err := a.Stock(ctx, "tee")
	if err != nil || stock.Left != 0 {
		t.Fatalf("stock left %d, %v", stock.Left, err)
	}
}

// TestVariantRetries: a retry with its Idempotency-Key (or its pass)
// gets its order back, with one order per buyer or several; another
// key is a second order, or already_ordered; a variant the sale does
// not sell, or none, is refused; the sale cannot lose a variant or
// gain variants.
func TestVariantRetries(t *testing.T) {
	ctx := context.Background()
	l := ledger.New(jetStream(t, 1)[0], ledger.Options{})
	for _, s := range []ledger.Sale{
		{Name: "one", Variants: map[string]int64{"s": 5, "m": 5}},
		{Name: "two", PerBuyer: 2, Variants: map[string]int64{"s": 5, "m": 5}},
	} {
		if _, err := l.EnsureSale(ctx, s); err != nil {
			t.Fatal(err)
		}
		o := order(s.Name, "ann", "s")
		o.IdempotencyKey = "k1"
		id, dup, err := l.Place(ctx, o, "")
		if err != nil || dup {
			t.Fatalf("%s: first: %v %v", s.Name, dup, err)
		}
		again := o
		again.Variant, again.Token = "m", ledger.NewToken()
		if id2, dup, err := l.Place(ctx, again, ""); err != nil || !dup || id2 != id {
			t.Fatalf("%s: retry: %v %v %v, want %v", s.Name, id2, dup, err, id)
		}
		p := order(s.Name, "ben", "m")
		p.Pass = "ticket-1"
		pid, _, err := l.Place(ctx, p, "")
		if err != nil {
			t.Fatal(err)
		}
		p.IdempotencyKey, p.Token = "other", ledger.NewToken()
		if id2, dup, err := l.Place(ctx, p, ""); err != nil || !dup || id2 != pid {
			t.Fatalf("%s: a pass's second order: %v %v %v", s.Name, id2, dup, err)
		}
		second := order(s.Name, "ann", "m")
		second.IdempotencyKey = "k2"
		_, _, err = l.Place(ctx, second, "")
		if s.PerBuyer == 2 && err != nil || s.PerBuyer != 2 && !errors.Is(err, ledger.ErrAlreadyOrdered) {
			t.Fatalf("%s: a second key: %v", s.Name, err)
		}
		if _, _, err := l.Place(ctx, order(s.Name, "cat", "xl"), ""); !errors.Is(err, ledger.ErrUnknownVariant) {
			t.Fatalf("%s: unknown variant: %v", s.Name, err)
		}
		if _, _, err := l.Place(ctx, order(s.Name, "cat", ""), ""); !errors.Is(err, ledger.ErrVariantRequired) {
			t.Fatalf("%s: no variant: %v", s.Name, err)
		}
	}
	for _, bad := range []ledger.Sale{
		{Name: "one", Variants: map[string]int64{"s": 5}},
		{Name: "one", Stock: 10},
		{Name: "plain", Stock: 3, Variants: map[string]int64{"s": 2}},
		{Name: "plain", Overbook: 1, Variants: map[string]int64{"s": 2}},
		{Name: "plain", Variants: map[string]int64{"S": 2}},
		{Name: "plain", Variants: map[string]int64{}},
		{Name: "plain", Variants: map[string]int64{"s": ledger.MaxVariantStock + 1}},
	} {
		if _, err := l.EnsureSale(ctx, bad); !errors.Is(err, ledger.ErrInvalidSale) {
			t.Errorf("%+v: %v, want invalid", bad, err)
		}
	}
	if _, err := l.EnsureSale(ctx, ledger.Sale{Name: "plain", Stock: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.EnsureSale(ctx, ledger.Sale{Name: "plain", Variants: map[string]int64{"s": 3}}); !errors.Is(err, ledger.ErrInvalidSale) {
		t.Fatalf("a plain sale given variants: %v", err)
	}
}
