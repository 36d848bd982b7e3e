package serve_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// A flood of ids before the start fills line_limit many times over and
// shuts nobody out: honest buyers joining after it get their tickets, in
// the draw. After the start line_limit answers the tail 410 line_full.
// The gate's own cap (--line-max-tickets) answers 503 past it.
func TestFloodBeforeStartShutsNobodyOut(t *testing.T) {
	sale := ledger.Sale{Name: "drop", Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true,
		LineOpens: ledger.Duration(2 * time.Hour), LineLimit: 20}
	cfg := gatetest.Config(t, sale)
	cfg.AdminToken = "admin-token-for-tests"
	cfg.Gate.LineMaxTickets = 130
	g := gatetest.Start(t, cfg)
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })

	const flood = 100 // five times line_limit
	var wg sync.WaitGroup
	errs := make(chan string, flood)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < flood; i += 4 {
				if a := joinBuyer(t, c, base, "drop", fmt.Sprintf("sybil-%d", i)); a.Status != 201 {
					errs <- fmt.Sprintf("flood join %d: %d %s", i, a.Status, a.Raw)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	var honest []string
	for i := range 10 {
		a := joinBuyer(t, c, base, "drop", fmt.Sprintf("honest-%d", i))
		if a.Status != 201 {
			t.Fatalf("an honest buyer after the flood: %d %s", a.Status, a.Raw)
		}
		honest = append(honest, a.Str("ticket_id"))
	}
	// The start: the draw holds every one of the 110.
	gatetest.Admin(t, c, g.OpsAddr(), "PATCH", "/admin/sales/drop", cfg.AdminToken,
		`{"starts_at":"`+time.Now().Add(300*time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`)
	gatetest.Eventually(t, 10*time.Second, "the draw", func() bool {
		return gatetest.Get(t, c, base+"/v1/sales/drop/draw").Body["sealed"] == true
	})
	if d := gatetest.Get(t, c, base+"/v1/sales/drop/draw"); d.Body["tickets"] != float64(flood+10) {
		t.Fatalf("the draw: %s, want %d tickets", d.Raw, flood+10)
	}
	for _, id := range honest {
		if a := gatetest.Get(t, c, base+"/v1/tickets/"+id); a.Body["drawn"] != true || a.Body["position"] == nil {
			t.Fatalf("an honest ticket is not in the draw: %s", a.Raw)
		}
	}
	wantProblem(t, "a join after the start past line_limit", joinBuyer(t, c, base, "drop", "late"), 410, "line_full")
	if n := lineMsgs(t, g.RoomStore(), "drop"); n != flood+10+1 { // and the draw mark
		t.Fatalf("the line stream holds %d records, want %d", n, flood+10+1)
	}
}

// Past --line-max-tickets, over every line, a join is answered 503 and
// stores nothing, before the start too: the line lives in memory.
func TestLineMaxTickets(t *testing.T) {
	mk := func(name string) ledger.Sale {
		return ledger.Sale{Name: name, Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)}
	}
	cfg := gatetest.Config(t, mk("a"), mk("b"))
	cfg.Gate.LineMaxTickets = 6
	g := gatetest.Start(t, cfg)
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	gatetest.Eventually(t, 10*time.Second, "the rooms to open", func() bool { return g.Rooms().Room("a") != nil && g.Rooms().Room("b") != nil })
	for i := range 6 {
		if a := joinBuyer(t, c, base, []string{"a", "b"}[i%2], fmt.Sprintf("x%d", i)); a.Status != 201 {
			t.Fatalf("join %d: %d %s", i, a.Status, a.Raw)
		}
	}
	wantProblem(t, "a join past the gate's cap", joinBuyer(t, c, base, "a", "y"), 503, "unavailable")
	if n := lineMsgs(t, g.RoomStore(), "a"); n != 3 {
		t.Fatalf("line a holds %d tickets, want 3", n)
	}
	gatetest.Eventually(t, 5*time.Second, "sluice_line_held_tickets to read 6", func() bool {
		return gatetest.Counter(t, g.Registry(), "sluice_line_held_tickets") == 6 && gatetest.Counter(t, g.Registry(), "sluice_line_max_tickets") == 6
	})
	if v := gatetest.Counter(t, g.Registry(), "sluice_line_joins_total", "sale", "a", "outcome", "at_capacity"); v != 1 {
		t.Fatalf("at_capacity joins counted %v, want 1", v)
	}
}
