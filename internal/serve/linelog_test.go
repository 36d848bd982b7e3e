package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/waitingroom/line"
	"sluice/internal/waitingroom/linelog"
)

// readLog reads a sale's whole public line log from a gate, page by
// page (asked again while the gate answers 503: its first read opens
// it), every answer checked against the OpenAPI document. It returns
// each record as the gate wrote it.
func readLog(t testing.TB, c *http.Client, api, sale string, limit int) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	deadline := time.Now().Add(20 * time.Second)
	for {
		a := gatetest.Get(t, c, fmt.Sprintf("%s/v1/sales/%s/line/log?from=%d&limit=%d", api, sale, len(out)+1, limit))
		if a.Status == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var page struct {
			From    int               `json:"from"`
			Total   int               `json:"total"`
			Records []json.RawMessage `json:"records"`
			Next    string            `json:"next"`
		}
		if a.Status != 200 || json.Unmarshal([]byte(a.Raw), &page) != nil || page.From != len(out)+1 {
			t.Fatalf("GET the log from %d: %d %s", len(out)+1, a.Status, a.Raw)
		}
		full := len(page.Records) == limit
		if cc := a.Header.Get("Cache-Control"); full != (cc == "public, max-age=60") || (!full && cc != "no-store") {
			t.Errorf("a page of %d records of %d: Cache-Control %q", len(page.Records), limit, cc)
		}
		out = append(out, page.Records...)
		if !full {
			return out
		}
	}
}

func decodeLog(t testing.TB, raw []json.RawMessage) []linelog.Entry {
	t.Helper()
	out := make([]linelog.Entry, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			t.Fatalf("record %d: %v: %s", i+1, err, r)
		}
	}
	return out
}

// The line's public log is the same on every gate and on a gate
// restarted, grows only at its end, and verifies: a sale with a turn
// that lapses and its holder back at the end of the line, an order
// cancelled and its item offered again, the room turned off while an
// order without a pass takes stock nobody was promised. No record names
// a ticket id or a buyer.
func TestLineLogIsTheSameOnEveryGate(t *testing.T) {
	const token = "admin-token-for-tests"
	cfgA := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: 3, StartsAt: time.Now().Add(time.Hour),
		WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour), ClaimWindow: ledger.Duration(3 * time.Second)})
	cfgA.NATSListen = "127.0.0.1:0"
	cfgA.AdminToken = token
	a := gatetest.Start(t, cfgA)
	gateB := func() *serve.Server {
		cfg := gatetest.Config(t)
		cfg.NATSURL, cfg.NoDrain = a.NATSURL(), true
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		g, err := serve.Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })
		return g
	}
	b := gateB()
	c := gatetest.Client()
	apiA, apiB := "http://"+a.APIAddr(), "http://"+b.APIAddr()
	ids := map[string]string{}
	for i := range 5 {
		buyer := fmt.Sprint("buyer-", i)
		j := joinBuyer(t, c, []string{apiA, apiB}[i%2], "drop", buyer)
		ids[buyer] = j.Str("ticket_id")
		if j.Str("ticket_hash") != line.TicketHash(ids[buyer]) {
			t.Fatalf("the ticket's answer says its hash is %q, not SHA-256 of its id: %s", j.Str("ticket_hash"), j.Raw)
		}
	}
	gatetest.Admin(t, c, a.OpsAddr(), "PATCH", "/admin/sales/drop", token,
		`{"starts_at":"`+time.Now().Add(200*time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`)
	room := a.Rooms().Room("drop")
	gatetest.Eventually(t, 10*time.Second, "the first turns", func() bool { return room.Book.State(time.Now(), 0).Offered >= 3 })
	early := readLog(t, c, apiA, "drop", 1000)
	holder := func(pos int64) string { buyer, _, _ := room.Book.BuyerAt(pos); return buyer }
	buy := func(pos int64, api string) string {
		buyer := holder(pos)
		var tk gatetest.Answer
		gatetest.Eventually(t, 20*time.Second, fmt.Sprint("the pass at position ", pos), func() bool {
			tk = ticketOf(t, c, api, ids[buyer], buyer)
			return tk.Str("state") == "your_turn"
		})
		o := orderWithPass(t, c, api, "drop", buyer, tk.Str("pass"), "")
		if o.Status != 202 {
			t.Fatalf("order at position %d: %d %s", pos, o.Status, o.Raw)
		}
		return o.Str("order_id")
	}
	first := buy(1, apiA)
	buy(2, apiB)
	away := holder(3) // does not come in time: the turn lapses
	awayKey, _ := line.KeyOf(ids[away])
	gatetest.Eventually(t, 20*time.Second, "the turn at position 3 to lapse", func() bool {
		tk, _ := room.Book.Lookup(awayKey)
		return tk.Lapsed(time.Now(), 3*time.Second)
	})
	gatetest.Eventually(t, 20*time.Second, "the first order confirmed", func() bool {
		return gatetest.Get(t, c, apiA+"/v1/orders/"+first).Str("status") == "confirmed"
	})
	if r := gatetest.Admin(t, c, a.OpsAddr(), "POST", "/admin/orders/"+first+"/cancel", token, ""); r.Status != 200 {
		t.Fatalf("cancel: %d %s", r.Status, r.Raw)
	}
	buy(4, apiA) // the item given back, to the next in line
	if tk := ticketOf(t, c, apiB, ids[away], away); tk.Body["rejoined"] != true {
		t.Fatalf("the holder back after the lapse: %s", tk.Raw)
	}
	// Gate B restarts; the room goes off while a buyer without a pass
	// orders, and on again.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	b = gateB()
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	apiB = "http://" + b.APIAddr()
	// Two more items while it is off: nobody was promised them.
	gatetest.Admin(t, c, a.OpsAddr(), "PATCH", "/admin/sales/drop", token, `{"waiting_room":false,"stock":5}`)
	gatetest.Eventually(t, 10*time.Second, "an order without a pass taken", func() bool {
		return gatetest.Order(t, c, apiA, "drop", "walk-in", "walk-in").Status == 202
	})
	gatetest.Admin(t, c, a.OpsAddr(), "PATCH", "/admin/sales/drop", token, `{"waiting_room":true}`)

	// Every gate ends with the same log, record for record, of which the
	// early one is the start.
	var logA []json.RawMessage
	gatetest.Eventually(t, 20*time.Second, "the gates to serve the same log", func() bool {
		logA = readLog(t, c, apiA, "drop", 7)
		logB := readLog(t, c, apiB, "drop", 1000)
		return len(logA) == len(logB) && slices.EqualFunc(logA, logB, func(x, y json.RawMessage) bool { return string(x) == string(y) })
	})
	if len(logA) < len(early) || !slices.EqualFunc(early, logA[:len(early)], func(x, y json.RawMessage) bool { return string(x) == string(y) }) {
		t.Fatalf("the log of %d records is not the start of the later one", len(early))
	}
	for i, r := range logA {
		for id := range ids {
			if strings.Contains(string(r), ids[id]) || strings.Contains(string(r), `"buyer`) {
				t.Fatalf("record %d names a ticket id or a buyer: %s", i+1, r)
			}
		}
	}
	d := gatetest.Get(t, c, apiA+"/v1/sales/drop/draw")
	hashes := gatetest.Get(t, c, apiA+"/v1/sales/drop/draw/tickets?limit=100").Body["ticket_hashes"].([]any)
	draw := &linelog.Draw{Commitment: d.Str("commitment"), Seed: d.Str("seed")}
	for _, h := range hashes {
		draw.Hashes = append(draw.Hashes, h.(string))
	}
	sum, err := linelog.Verify(decodeLog(t, logA), draw)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records: %+v", len(logA), sum)
	if sum.Lapses < 1 || sum.Rejoins != 1 || sum.Released != 1 || sum.PassOrders != 3 || sum.Passless != 1 || sum.Unchecked != 0 || sum.Drawn != 5 {
		t.Errorf("the log says %+v; want a lapse, a return to the back, an item given back, three orders with a pass and one without, five drawn", sum)
	}
	stocks := 0
	for _, e := range decodeLog(t, logA) {
		if e.Kind == linelog.KindStock {
			stocks++
		}
	}
	if stocks != 2 {
		t.Errorf("%d stock records; want the first stock and its change", stocks)
	}
}
