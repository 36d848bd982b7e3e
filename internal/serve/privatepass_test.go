package serve_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/waitingroom/line"
)

// A ticket id is its holder's secret: from the public endpoints alone
// (the sale, the line, the draw and its list, the sales, the OpenAPI)
// nobody learns a ticket id or a buyer id, so nobody polls another's
// ticket or reads their pass. The draw lists hashes, which poll nothing
// and pass for nothing; the holders themselves get their passes.
func TestPublicEndpointsGiveNoPass(t *testing.T) {
	const stock, buyers = 3, 12
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: stock, StartsAt: time.Now().Add(2 * time.Second),
		WaitingRoom: true, LineOpens: ledger.Duration(time.Hour), PassTTL: ledger.Duration(time.Minute)})
	g := gatetest.Start(t, cfg)
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })
	secrets := map[string]string{} // ticket id → buyer
	for i := range buyers {
		buyer := fmt.Sprintf("buyer-%02d", i)
		a := joinBuyer(t, c, base, "drop", buyer)
		if a.Status != 201 {
			t.Fatalf("join %s: %d %s", buyer, a.Status, a.Raw)
		}
		secrets[a.Str("ticket_id")] = buyer
	}
	gatetest.Eventually(t, 15*time.Second, "the first turns", func() bool {
		letIn, _ := lineFigures(t, c, base, "drop")
		return letIn >= stock
	})

	// Everything a stranger can read.
	var public strings.Builder
	for _, path := range []string{"/v1/sales", "/v1/sales/drop", "/v1/sales/drop/line", "/v1/sales/drop/draw",
		"/v1/sales/drop/draw/tickets?limit=10000", "/openapi.yaml"} {
		for _, accept := range []string{"application/json", "text/html"} {
			req, _ := http.NewRequest("GET", base+path, nil)
			req.Header.Set("Accept", accept)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			public.Write(body)
		}
	}
	for id, buyer := range secrets {
		if strings.Contains(public.String(), id) {
			t.Errorf("ticket id %s is public", id)
		}
		if strings.Contains(public.String(), buyer) {
			t.Errorf("buyer id %s is public", buyer)
		}
	}
	hashes := drawTickets(t, c, base, "drop")
	if len(hashes) != buyers {
		t.Fatalf("%d hashes in the draw, want %d", len(hashes), buyers)
	}
	// The hashes are the tickets' (each holder finds their own) and read
	// nothing: no ticket, no pass.
	byHash := map[string]string{}
	for id := range secrets {
		byHash[line.TicketHash(id)] = id
	}
	for pos, h := range hashes {
		if byHash[h] == "" {
			t.Fatalf("position %d: hash %s is no ticket's", pos+1, h)
		}
		if a := gatetest.Get(t, c, base+"/v1/tickets/"+h); a.Status != 404 {
			t.Errorf("GET /v1/tickets/{hash}: %d %s", a.Status, a.Raw)
		}
		if a := orderWithPass(t, c, base, "drop", "mallory", h, ""); a.Status != 403 || a.Str("reason") != "bad_pass" {
			t.Errorf("an order with a hash as its pass: %d %s", a.Status, a.Raw)
		}
	}
	// The holders, with their secret, get their turn and buy.
	served := 0
	for pos := range stock {
		id := byHash[hashes[pos]]
		tk := ticketOf(t, c, base, id, secrets[id])
		if tk.Str("pass") == "" {
			t.Fatalf("position %d: no pass for its holder: %s", pos+1, tk.Raw)
		}
		if a := orderWithPass(t, c, base, "drop", secrets[id], tk.Str("pass"), ""); a.Status == 202 {
			served++
		}
	}
	if served != stock {
		t.Fatalf("%d of the %d holders at the front bought", served, stock)
	}
}

// ticketOf polls a ticket as its holder and checks it is theirs.
func ticketOf(t testing.TB, c *http.Client, base, id, buyer string) gatetest.Answer {
	t.Helper()
	a := gatetest.Get(t, c, base+"/v1/tickets/"+id)
	if a.Status != 200 || a.Str("buyer_id") != buyer {
		t.Fatalf("GET /v1/tickets/%s: %d %s (want buyer %s)", id, a.Status, a.Raw, buyer)
	}
	return a
}
