package serve_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
)

// lineFigures is what GET /v1/sales/{sale}/line says of the line.
func lineFigures(t testing.TB, c *http.Client, base, sale string) (letIn, outstanding int64) {
	t.Helper()
	a := gatetest.Get(t, c, base+"/v1/sales/"+sale+"/line")
	if a.Status != 200 {
		t.Fatalf("GET the line: %d %s", a.Status, a.Raw)
	}
	n := func(k string) int64 { f, _ := a.Body[k].(float64); return int64(f) }
	return n("let_in"), n("passes_outstanding")
}

// ticketsYourTurn counts the tickets that read your_turn.
func ticketsYourTurn(t testing.TB, c *http.Client, base string, tickets []string) int {
	t.Helper()
	n := 0
	for _, id := range tickets {
		if gatetest.Get(t, c, base+"/v1/tickets/"+id).Str("state") == "your_turn" {
			n++
		}
	}
	return n
}

// startAt starts a gate on cfg (its data directory kept), for a test that
// stops and starts it again.
func startAt(t *testing.T, cfg serve.Config) *serve.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := serve.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start gate: %v", err)
	}
	return s
}

func stop(t *testing.T, s *serve.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// Break 1: reopening a room (a restart of the gate, the room turned off
// and on) handed out a second stock of passes: reading the line's state
// to log it moved the expired-through mark. The line's figures are a
// function of its records: neither changes them.
func TestReopeningARoomHandsOutNoSecondStock(t *testing.T) {
	const stock, buyers = 20, 100
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: stock, StartsAt: time.Now().Add(3 * time.Second),
		WaitingRoom: true, LineOpens: ledger.Duration(time.Hour), PassTTL: ledger.Duration(time.Minute)})
	cfg.AdminToken = "admin-token-for-tests"
	cfg.NoDrain = true // orders stay queued: the budget is the stock
	cfg.Gate.PublishTimeout = 2 * time.Second
	g := startAt(t, cfg)
	defer func() { stop(t, g) }()
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })
	var tickets []string
	for i := range buyers {
		a := joinBuyer(t, c, base, "drop", fmt.Sprint("buyer-", i))
		if a.Status != 201 {
			t.Fatalf("join %d: %d %s", i, a.Status, a.Raw)
		}
		tickets = append(tickets, a.Str("ticket_id"))
	}
	gatetest.Eventually(t, 15*time.Second, "the line to let the stock in", func() bool {
		l, _ := lineFigures(t, c, base, "drop")
		return l == stock
	})
	// Every holder claims their turn (asking for the ticket claims it),
	// and five order with their passes, so that claims and used passes
	// are in the records too.
	if n := ticketsYourTurn(t, c, base, tickets); n != stock {
		t.Fatalf("%d tickets read your_turn once claimed, want %d", n, stock)
	}
	ordered := 0
	for _, id := range tickets {
		tk := gatetest.Get(t, c, base+"/v1/tickets/"+id)
		if tk.Str("state") != "your_turn" {
			continue
		}
		if a := orderWithPass(t, c, base, "drop", tk.Str("buyer_id"), tk.Str("pass"), ""); a.Status != 202 {
			t.Fatalf("order with a pass: %d %s", a.Status, a.Raw)
		}
		if ordered++; ordered == 5 {
			break
		}
	}
	gatetest.Eventually(t, 10*time.Second, "the uses to be recorded", func() bool {
		_, o := lineFigures(t, c, base, "drop")
		return o == stock-5
	})
	want := func(when string) {
		t.Helper()
		time.Sleep(300 * time.Millisecond) // several paces
		l, o := lineFigures(t, c, base, "drop")
		yours := ticketsYourTurn(t, c, base, tickets)
		if l != stock || o != stock-5 || yours != stock-5 {
			t.Fatalf("%s: let in %d, %d passes outstanding, %d tickets read your_turn; want %d, %d, %d",
				when, l, o, yours, stock, stock-5, stock-5)
		}
	}
	want("before")
	for round := range 2 {
		stop(t, g)
		g = startAt(t, cfg)
		base = "http://" + g.APIAddr()
		gatetest.Eventually(t, 10*time.Second, "the room to open again", func() bool { return g.Rooms().Room("drop") != nil })
		want(fmt.Sprintf("after restart %d", round+1))
		for _, on := range []string{"false", "true"} {
			if a := gatetest.Admin(t, c, g.OpsAddr(), "PATCH", "/admin/sales/drop", cfg.AdminToken, `{"waiting_room":`+on+`}`); a.Status != 200 {
				t.Fatalf("PATCH waiting_room %s: %d %s", on, a.Status, a.Raw)
			}
			time.Sleep(200 * time.Millisecond)
		}
		gatetest.Eventually(t, 10*time.Second, "the room to open after the toggle", func() bool { return g.Rooms().Room("drop") != nil })
		want(fmt.Sprintf("after the room was turned off and on, round %d", round+1))
		// A shorter pass_ttl changes no pass already given.
		if a := gatetest.Admin(t, c, g.OpsAddr(), "PATCH", "/admin/sales/drop", cfg.AdminToken, `{"pass_ttl":"5s"}`); a.Status != 200 {
			t.Fatalf("PATCH pass_ttl: %d %s", a.Status, a.Raw)
		}
		want(fmt.Sprintf("after a PATCH of pass_ttl, round %d", round+1))
	}
}

// crowd is buyers holding tickets who poll them and order the moment
// their turn comes, as the waiting page does.
type crowd struct {
	mu sync.Mutex
	// served: position → order id; refused: positions whose holder, with
	// a valid pass, was refused.
	served  map[int64]string
	refused map[int64]string
}

func (cr *crowd) run(t *testing.T, c *http.Client, base, sale string, tickets []string, until time.Time) {
	cr.served, cr.refused = map[int64]string{}, map[int64]string{}
	done := make([]bool, len(tickets))
	for left := len(tickets); left > 0 && time.Now().Before(until); {
		var wg sync.WaitGroup
		var mu sync.Mutex
		next := make(chan int)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					tk := gatetest.Get(t, c, base+"/v1/tickets/"+tickets[i])
					state := tk.Str("state")
					if state == "waiting" || state == "sold_out" {
						continue
					}
					if state == "your_turn" {
						pos, _ := tk.Body["position"].(float64)
						a := orderWithPass(t, c, base, sale, tk.Str("buyer_id"), tk.Str("pass"), tickets[i])
						cr.mu.Lock()
						if a.Status == 202 {
							cr.served[int64(pos)] = a.Str("order_id")
						} else {
							cr.refused[int64(pos)] = fmt.Sprint(a.Status, " ", a.Str("reason"))
						}
						cr.mu.Unlock()
					}
					mu.Lock()
					done[i] = true
					left--
					mu.Unlock()
				}
			}()
		}
		for i := range tickets {
			if !done[i] {
				next <- i
			}
		}
		close(next)
		wg.Wait()
		if l, o := lineFigures(t, c, base, sale); o == 0 && int64(len(cr.served)+len(cr.refused)) >= l && gatetest.Get(t, c, base+"/v1/sales/"+sale).Str("state") == "sold_out" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Break 2: at the sell-out the line gave one pass too many (a refresh
// stored a count of orders older than the used passes the line had
// applied), and a holder of a valid pass was refused while a position
// behind bought. Every buyer here orders at once: the line lets in
// exactly the stock, and nobody with a pass is refused.
func TestSellOutGivesNoPassTooMany(t *testing.T) {
	const stock, buyers = 150, 300
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: stock, StartsAt: time.Now().Add(3 * time.Second),
		WaitingRoom: true, LineOpens: ledger.Duration(time.Hour), QueueBound: 20})
	cfg.Refresh = 20 * time.Millisecond // many refreshes: many chances of a stale count
	g := gatetest.Start(t, cfg)
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })
	var tickets []string
	for i := range buyers {
		tickets = append(tickets, joinBuyer(t, c, base, "drop", fmt.Sprint("buyer-", i)).Str("ticket_id"))
	}
	var cr crowd
	cr.run(t, c, base, "drop", tickets, time.Now().Add(60*time.Second))
	l, o := lineFigures(t, c, base, "drop")
	if l != stock || o != 0 || len(cr.served) != stock || len(cr.refused) != 0 {
		t.Fatalf("let in %d with %d outstanding, %d served, refused with a pass: %v; want %d let in, all served, none refused",
			l, o, len(cr.served), cr.refused, stock)
	}
	for p := range cr.served {
		if p < 1 || p > stock {
			t.Fatalf("position %d bought; only 1..%d were let in", p, stock)
		}
	}
}

// follower is a buyer who polls their ticket when poll_after_seconds
// says, no sooner, and orders when their turn comes.
func follow(ctx context.Context, t *testing.T, c *http.Client, base, sale, id string, bought func(pos int64, order string)) {
	for ctx.Err() == nil {
		tk := gatetest.Get(t, c, base+"/v1/tickets/"+id)
		switch tk.Str("state") {
		case "your_turn":
			pos, _ := tk.Body["position"].(float64)
			a := orderWithPass(t, c, base, sale, tk.Str("buyer_id"), tk.Str("pass"), id)
			if a.Status == 202 {
				bought(int64(pos), a.Str("order_id"))
			} else {
				t.Errorf("position %v, holding a valid pass, refused: %d %s", pos, a.Status, a.Raw)
			}
			return
		case "ordered", "closed", "expired":
			return
		}
		after, _ := tk.Body["poll_after_seconds"].(float64)
		if after < 1 {
			t.Errorf("ticket %s: poll_after_seconds %v", id, tk.Body["poll_after_seconds"])
			return
		}
		select {
		case <-time.After(time.Duration(after) * time.Second):
		case <-ctx.Done():
		}
	}
}

// Break 4: a sold_out ticket was told to come back in 60 s, longer than
// a pass lives: stock given back went to positions nobody was polling
// for, and positions behind them bought it. Every state that can still
// change is polled within a third of pass_ttl, so the next in line takes
// a returned item.
func TestReturnedStockGoesToTheNextInLine(t *testing.T) {
	const stock, buyers, cancelled = 10, 30, 3
	ttl := 15 * time.Second
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: stock, StartsAt: time.Now().Add(3 * time.Second),
		WaitingRoom: true, LineOpens: ledger.Duration(time.Hour), PassTTL: ledger.Duration(ttl)})
	cfg.AdminToken = "admin-token-for-tests"
	g := gatetest.Start(t, cfg)
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })
	var tickets []string
	for i := range buyers {
		tickets = append(tickets, joinBuyer(t, c, base, "drop", fmt.Sprint("buyer-", i)).Str("ticket_id"))
	}
	var mu sync.Mutex
	served := map[int64]string{}
	bought := func(pos int64, order string) {
		mu.Lock()
		defer mu.Unlock()
		served[pos] = order
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, id := range tickets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			follow(ctx, t, c, base, "drop", id, bought)
		}()
	}
	gatetest.Eventually(t, 30*time.Second, "the stock to sell and be confirmed", func() bool {
		a := gatetest.Get(t, c, base+"/v1/sales/drop")
		return a.Body["confirmed"] == float64(stock)
	})
	// Sold out: every waiting ticket says so, and to come back soon.
	mu.Lock()
	for p := int64(1); p <= stock; p++ {
		if served[p] == "" {
			t.Fatalf("position %d did not buy; served: %v", p, served)
		}
	}
	mu.Unlock()
	for _, id := range tickets {
		tk := gatetest.Get(t, c, base+"/v1/tickets/"+id)
		if tk.Str("state") != "sold_out" {
			continue
		}
		if after, _ := tk.Body["poll_after_seconds"].(float64); time.Duration(after)*time.Second > ttl/3 {
			t.Fatalf("a sold_out ticket is told to come back in %vs; a pass lives %v", after, ttl)
		}
	}
	for p := int64(1); p <= cancelled; p++ {
		if a := gatetest.Admin(t, c, g.OpsAddr(), "POST", "/admin/orders/"+served[p]+"/cancel", cfg.AdminToken, ""); a.Status != 200 {
			t.Fatalf("cancel: %d %s", a.Status, a.Raw)
		}
	}
	gatetest.Eventually(t, 45*time.Second, "the returned items to be bought", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(served) == stock+cancelled
	})
	time.Sleep(time.Second) // no one else buys
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for p := int64(stock + 1); p <= stock+cancelled; p++ {
		if served[p] == "" {
			t.Fatalf("returned stock: position %d did not buy; served %v", p, served)
		}
	}
	if len(served) != stock+cancelled {
		t.Fatalf("served %d, want %d: %v", len(served), stock+cancelled, served)
	}
}

// Break (issue 27, 1): a room turned off gave promised stock away. Stock
// 5, 10 in line, 5 turns claimed: with the room off, 7 orders without a
// pass took the 5 items, and with the room on again every holder of a
// valid pass was refused sold_out; meanwhile every ticket answered 404.
// The stock the line promised stays promised whatever the room's state:
// orders without a pass take only what no pass holds, each ticket keeps
// answering, and a pass admits its holder with the room off or on.
func TestRoomOffKeepsPromisedStock(t *testing.T) {
	const stock, buyers = 5, 10
	cfg := gatetest.Config(t, ledger.Sale{Name: "oo", Stock: stock, StartsAt: time.Now().Add(2 * time.Second),
		WaitingRoom: true, LineOpens: ledger.Duration(time.Hour), PassTTL: ledger.Duration(6 * time.Second)})
	cfg.AdminToken = "admin-token-for-tests"
	g := startAt(t, cfg)
	defer func() { stop(t, g) }()
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("oo") != nil })
	var tickets []string
	for i := range buyers {
		a := joinBuyer(t, c, base, "oo", fmt.Sprint("buyer-", i))
		if a.Status != 201 {
			t.Fatalf("join %d: %d %s", i, a.Status, a.Raw)
		}
		tickets = append(tickets, a.Str("ticket_id"))
	}
	gatetest.Eventually(t, 15*time.Second, "the line to let the stock in", func() bool {
		l, _ := lineFigures(t, c, base, "oo")
		return l == stock
	})
	// Every holder asks for their ticket: the five let in claim their
	// turn and hold a pass.
	passes := map[string]string{} // buyer → pass
	gatetest.Eventually(t, 10*time.Second, "five passes", func() bool {
		for _, id := range tickets {
			if tk := gatetest.Get(t, c, base+"/v1/tickets/"+id); tk.Str("state") == "your_turn" {
				passes[tk.Str("buyer_id")] = tk.Str("pass")
			}
		}
		return len(passes) == stock
	})
	patch := func(on string) {
		t.Helper()
		if a := gatetest.Admin(t, c, g.OpsAddr(), "PATCH", "/admin/sales/oo", cfg.AdminToken, `{"waiting_room":`+on+`}`); a.Status != 200 {
			t.Fatalf("PATCH waiting_room %s: %d %s", on, a.Status, a.Raw)
		}
	}
	patch("false")
	// Seven orders without a pass: the stock left is the passes'.
	for i := range 7 {
		a := gatetest.Order(t, c, base, "oo", fmt.Sprint("walk-in-", i), "")
		wantProblem(t, fmt.Sprintf("order %d without a pass, the room off", i), a, 409, "stock_held")
	}
	if room, _ := gatetest.Get(t, c, base+"/v1/sales/oo").Body["waiting_room"].(map[string]any); room["off"] != true || room["held"] != float64(stock) {
		t.Fatalf("the sale's room with the room off: %v, want off and %d held", room, stock)
	}
	// Every ticket still answers its state.
	for _, id := range tickets {
		if tk := gatetest.Get(t, c, base+"/v1/tickets/"+id); tk.Status != 200 {
			t.Fatalf("ticket %s with the room off: %d %s", id, tk.Status, tk.Raw)
		}
	}
	// Two holders order with the room off, with their passes.
	n := 0
	for b, p := range passes {
		if a := orderWithPass(t, c, base, "oo", b, p, ""); a.Status != 202 {
			t.Fatalf("%s's order with a valid pass, the room off: %d %s", b, a.Status, a.Raw)
		}
		delete(passes, b)
		if n++; n == 2 {
			break
		}
	}
	patch("true")
	// The other three with the room on again.
	for b, p := range passes {
		if a := orderWithPass(t, c, base, "oo", b, p, ""); a.Status != 202 {
			t.Fatalf("%s's order with a valid pass, the room on again: %d %s", b, a.Status, a.Raw)
		}
	}
	if a := gatetest.Get(t, c, base+"/v1/sales/oo"); a.Body["admitted"] != float64(stock) {
		t.Fatalf("admitted %v, want %d", a.Body["admitted"], stock)
	}
}

// With the room off, an item comes free for orders without a pass when
// its pass expires unused, and not before; a pass used meanwhile keeps
// its item.
func TestRoomOffFreesExpiredPasses(t *testing.T) {
	const stock = 3
	cfg := gatetest.Config(t, ledger.Sale{Name: "ex", Stock: stock, StartsAt: time.Now().Add(2 * time.Second),
		WaitingRoom: true, LineOpens: ledger.Duration(time.Hour), PassTTL: ledger.Duration(5 * time.Second)})
	cfg.AdminToken = "admin-token-for-tests"
	cfg.Gate.PublishTimeout = time.Second // the pass's grace after its expiry: the publish timeout and clock skew
	g := startAt(t, cfg)
	defer func() { stop(t, g) }()
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("ex") != nil })
	var tickets []string
	for i := range stock {
		a := joinBuyer(t, c, base, "ex", fmt.Sprint("buyer-", i))
		if a.Status != 201 {
			t.Fatalf("join %d: %d %s", i, a.Status, a.Raw)
		}
		tickets = append(tickets, a.Str("ticket_id"))
	}
	passes := map[string]string{}
	var expires time.Time
	gatetest.Eventually(t, 15*time.Second, "every turn claimed", func() bool {
		for _, id := range tickets {
			if tk := gatetest.Get(t, c, base+"/v1/tickets/"+id); tk.Str("state") == "your_turn" {
				passes[tk.Str("buyer_id")] = tk.Str("pass")
				exp, _ := time.Parse(time.RFC3339Nano, tk.Str("pass_expires_at"))
				if exp.After(expires) {
					expires = exp
				}
			}
		}
		return len(passes) == stock
	})
	if a := gatetest.Admin(t, c, g.OpsAddr(), "PATCH", "/admin/sales/ex", cfg.AdminToken, `{"waiting_room":false}`); a.Status != 200 {
		t.Fatalf("PATCH: %d %s", a.Status, a.Raw)
	}
	if a := orderWithPass(t, c, base, "ex", "buyer-0", passes["buyer-0"], ""); a.Status != 202 {
		t.Fatalf("buyer-0's order with a valid pass, the room off: %d %s", a.Status, a.Raw)
	}
	wantProblem(t, "an order without a pass while the passes hold the stock",
		gatetest.Order(t, c, base, "ex", "walk-in-0", ""), 409, "stock_held")
	// The two other passes expire unused; after their grace (publish
	// timeout 1 s + clock skew 2 s) their items are free.
	time.Sleep(time.Until(expires.Add(3*time.Second + 500*time.Millisecond)))
	for i := 1; i <= 2; i++ {
		if a := gatetest.Order(t, c, base, "ex", fmt.Sprint("walk-in-", i), ""); a.Status != 202 {
			t.Fatalf("walk-in-%d after the passes expired: %d %s", i, a.Status, a.Raw)
		}
	}
	wantProblem(t, "a fourth order", gatetest.Order(t, c, base, "ex", "walk-in-3", ""), 410, "sold_out")
}
