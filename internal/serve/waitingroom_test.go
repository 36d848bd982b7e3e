package serve_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"sluice/admission"
	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/browsertest"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
	"sluice/internal/waitingroom"
	"sluice/internal/waitingroom/line"
)

// join asks a gate for a ticket in a sale's line.
func join(t testing.TB, c *http.Client, base, sale, body, contentType string) gatetest.Answer {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/sales/"+sale+"/line", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	return gatetest.Do(t, c, req)
}

func joinBuyer(t testing.TB, c *http.Client, base, sale, buyer string) gatetest.Answer {
	t.Helper()
	return join(t, c, base, sale, `{"buyer_id":"`+buyer+`"}`, "application/json")
}

// orderWithPass places an order carrying a pass.
func orderWithPass(t testing.TB, c *http.Client, base, sale, buyer, pass, key string) gatetest.Answer {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/sales/"+sale+"/orders", strings.NewReader(`{"buyer_id":"`+buyer+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sluice-Pass", pass)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return gatetest.Do(t, c, req)
}

func lineMsgs(t testing.TB, l *waitingroom.Store, sale string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seq, err := l.LineLastSeq(ctx, sale)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func wantProblem(t testing.TB, what string, a gatetest.Answer, status int, reason string) {
	t.Helper()
	if a.Status != status || a.Str("reason") != reason || a.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s: %d %v %s, want %d %s as problem+json", what, a.Status, a.Header.Get("Content-Type"), a.Raw, status, reason)
	}
}

// Behind an authenticating proxy (--buyer-header) the line and the orders
// take the buyer from the header, and only on a connection from a trusted
// proxy: a peer that bypasses the proxy is refused, with or without the
// header, and never falls back to its body; the header twice, or a body
// naming another buyer, is refused; nothing is stored by a refusal.
func TestWaitingRoomBuyerHeader(t *testing.T) {
	sale := ledger.Sale{Name: "drop", Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)}
	plain := ledger.Sale{Name: "plain", Stock: 5}

	// Without a trusted proxy, --buyer-header is a mistake: refused at start.
	cfg := gatetest.Config(t, sale)
	cfg.Gate.BuyerHeader = "X-User-Id"
	if _, err := serve.Start(context.Background(), cfg); !errors.Is(err, admission.ErrBuyerHeaderUntrusted) {
		t.Fatalf("start with --buyer-header and no trusted proxy: %v, want ErrBuyerHeaderUntrusted", err)
	}

	// The proxy is elsewhere: this test's loopback connections bypass it.
	cfg = gatetest.Config(t, sale, plain)
	cfg.Gate.BuyerHeader = "X-User-Id"
	cfg.Gate.TrustedProxies, _ = admission.ParseTrustedProxies([]string{"10.1.2.3"})
	g := gatetest.Start(t, cfg)
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	post := func(path, body, ct string, users ...string) gatetest.Answer {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		for _, u := range users {
			req.Header.Add("X-User-Id", u)
		}
		return gatetest.Do(t, c, req)
	}
	wantProblem(t, "the header from an untrusted peer", post("/v1/sales/drop/line", "", "", "victim"), 403, "untrusted_buyer_header")
	wantProblem(t, "no header from an untrusted peer", post("/v1/sales/drop/line", `{"buyer_id":"mallory"}`, "application/json"), 403, "untrusted_buyer_header")
	wantProblem(t, "an order with the header from an untrusted peer", post("/v1/sales/plain/orders", `{"buyer_id":"victim"}`, "application/json", "victim"), 403, "untrusted_buyer_header")
	if n := lineMsgs(t, g.RoomStore(), "drop"); n != 0 {
		t.Fatalf("refused joins stored %d tickets", n)
	}
	if n := gatetest.StreamMsgs(t, g.Ledger(), "plain"); n != 0 {
		t.Fatalf("refused orders stored %d orders", n)
	}

	// The proxy is this loopback address.
	cfg = gatetest.Config(t, sale, plain)
	cfg.Gate.BuyerHeader = "X-User-Id"
	cfg.Gate.TrustedProxies, _ = admission.ParseTrustedProxies([]string{"127.0.0.0/8"})
	g = gatetest.Start(t, cfg)
	base = "http://" + g.APIAddr()
	if a := post("/v1/sales/drop/line", "", "", "alice"); a.Status != 201 || a.Str("buyer_id") != "alice" {
		t.Fatalf("join behind the proxy: %d %s", a.Status, a.Raw)
	}
	if a := post("/v1/sales/drop/line", `{"buyer_id":"bob"}`, "application/json", "bob"); a.Status != 201 || a.Str("buyer_id") != "bob" {
		t.Fatalf("join behind the proxy with the same buyer in the body: %d %s", a.Status, a.Raw)
	}
	wantProblem(t, "no header", post("/v1/sales/drop/line", `{"buyer_id":"mallory"}`, "application/json"), 400, "bad_buyer_id")
	wantProblem(t, "two headers", post("/v1/sales/drop/line", "", "", "carol", "victim"), 400, "bad_buyer_header")
	wantProblem(t, "a body naming another buyer", post("/v1/sales/drop/line", `{"buyer_id":"victim"}`, "application/json", "mallory"), 400, "buyer_mismatch")
	wantProblem(t, "a form naming another buyer", post("/v1/sales/drop/line", `buyer_id=victim`, "application/x-www-form-urlencoded", "mallory"), 400, "buyer_mismatch")
	wantProblem(t, "an order naming another buyer", post("/v1/sales/plain/orders", `{"buyer_id":"victim"}`, "application/json", "mallory"), 400, "buyer_mismatch")
	wantProblem(t, "an order with two headers", post("/v1/sales/plain/orders", `{}`, "application/json", "mallory", "victim"), 400, "bad_buyer_header")
	if n := lineMsgs(t, g.RoomStore(), "drop"); n != 2 {
		t.Fatalf("the line holds %d records, want alice's and bob's", n)
	}
	if a := post("/v1/sales/plain/orders", `{}`, "application/json", "alice"); a.Status != 202 || a.Str("buyer_id") != "alice" {
		t.Fatalf("order behind the proxy: %d %s", a.Status, a.Raw)
	}
	if n := gatetest.StreamMsgs(t, g.Ledger(), "plain"); n != 1 {
		t.Fatalf("the sale holds %d orders, want alice's", n)
	}
}

// A form body gives each field once, as a JSON body does: the first of
// two buyer_ids is not taken.
func TestJoinFormRefusesDuplicates(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)})
	g := gatetest.Start(t, cfg)
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	const form = "application/x-www-form-urlencoded"
	wantProblem(t, "buyer_id twice", join(t, c, base, "drop", "buyer_id=f1&buyer_id=f2", form), 400, "bad_form")
	wantProblem(t, "buyer_id twice, same value", join(t, c, base, "drop", "buyer_id=f1&buyer_id=f1", form), 400, "bad_form")
	wantProblem(t, "Buyer_Id beside buyer_id", join(t, c, base, "drop", "buyer_id=f1&Buyer_Id=f2", form), 400, "bad_form")
	wantProblem(t, "a bad escape", join(t, c, base, "drop", "buyer_id=%zz", form), 400, "bad_form")
	wantProblem(t, "no buyer", join(t, c, base, "drop", "x=1", form), 400, "bad_buyer_id")
	if n := lineMsgs(t, g.RoomStore(), "drop"); n != 0 {
		t.Fatalf("refused joins stored %d tickets", n)
	}
	if a := join(t, c, base, "drop", "buyer_id=f1", form); a.Status != 201 || a.Str("buyer_id") != "f1" {
		t.Fatalf("a good form: %d %s", a.Status, a.Raw)
	}
}

// A waiting-room sale refuses every order without a good pass, and every
// bad request to the new endpoints, with its problem and nothing stored.
func TestWaitingRoomRefusals(t *testing.T) {
	start := time.Now().Add(time.Hour)
	room := ledger.Sale{Name: "drop", Stock: 5, StartsAt: start, WaitingRoom: true, PassTTL: ledger.Duration(5 * time.Second),
		LineOpens: ledger.Duration(2 * time.Hour)}
	other := ledger.Sale{Name: "other", Stock: 5, StartsAt: start, WaitingRoom: true}
	plain := ledger.Sale{Name: "plain", Stock: 5}
	cfg := gatetest.Config(t, room, other, plain)
	cfg.AdminToken = "admin-token-for-tests"
	g := gatetest.Start(t, cfg)
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	gatetest.Eventually(t, 10*time.Second, "the rooms to open", func() bool {
		return g.Rooms().Room("drop") != nil && g.Rooms().Room("other") != nil
	})
	// PATCH turns a waiting room on and sets it; the sale shows it, and
	// its line answers at once.
	p := gatetest.Admin(t, c, g.OpsAddr(), "PATCH", "/admin/sales/late", cfg.AdminToken, `{"waiting_room":true}`)
	if p.Status != 404 {
		t.Fatalf("PATCH of no sale: %d %s", p.Status, p.Raw)
	}
	gatetest.Admin(t, c, g.OpsAddr(), "PUT", "/admin/sales/late", cfg.AdminToken, `{"stock":3}`)
	p = gatetest.Admin(t, c, g.OpsAddr(), "PATCH", "/admin/sales/late", cfg.AdminToken,
		`{"waiting_room":true,"line_opens":"1h","pass_ttl":"45s","line_limit":50}`)
	if p.Status != 200 {
		t.Fatalf("PATCH the waiting room on: %d %s", p.Status, p.Raw)
	}
	if a := gatetest.Get(t, c, base+"/v1/sales/late"); !strings.Contains(a.Raw, `"pass_ttl_seconds":45,"claim_window_seconds":15,"line_limit":50`) {
		t.Fatalf("the sale does not show its waiting room: %s", a.Raw)
	}
	if a := joinBuyer(t, c, base, "late", "zoe"); a.Status != 201 {
		t.Fatalf("joining right after the PATCH: %d %s", a.Status, a.Raw)
	}
	wantProblem(t, "a PATCH with a bad pass_ttl", gatetest.Admin(t, c, g.OpsAddr(), "PATCH", "/admin/sales/late", cfg.AdminToken, `{"pass_ttl":"1s"}`), 400, "bad_request")

	// Bad input on the new endpoints: each its 4xx, the line unchanged.
	before := lineMsgs(t, g.RoomStore(), "drop")
	wantProblem(t, "bad JSON", join(t, c, base, "drop", `{"buyer_id":`, "application/json"), 400, "bad_json")
	wantProblem(t, "bad buyer", joinBuyer(t, c, base, "drop", "a b"), 400, "bad_buyer_id")
	wantProblem(t, "bad content type", join(t, c, base, "drop", `{"buyer_id":"x"}`, "text/plain"), 415, "bad_content_type")
	wantProblem(t, "unknown sale", joinBuyer(t, c, base, "nope", "alice"), 404, "unknown_sale")
	wantProblem(t, "no waiting room", joinBuyer(t, c, base, "plain", "alice"), 409, "no_waiting_room")
	wantProblem(t, "unknown ticket", gatetest.Get(t, c, base+"/v1/tickets/aaaaaaaaaaaaaaaaaaaaaaaaaa"), 404, "ticket_not_found")
	wantProblem(t, "malformed ticket", gatetest.Get(t, c, base+"/v1/tickets/../x"), 404, "not_found")
	wantProblem(t, "malformed ticket id", gatetest.Get(t, c, base+"/v1/tickets/0123"), 404, "ticket_not_found")
	wantProblem(t, "draw of a plain sale", gatetest.Get(t, c, base+"/v1/sales/plain/draw"), 409, "no_waiting_room")
	wantProblem(t, "draw of no sale", gatetest.Get(t, c, base+"/v1/sales/nope/draw"), 404, "unknown_sale")
	wantProblem(t, "draw tickets before the start", gatetest.Get(t, c, base+"/v1/sales/drop/draw/tickets"), 425, "not_started")
	wantProblem(t, "draw tickets, bad limit", gatetest.Get(t, c, base+"/v1/sales/drop/draw/tickets?limit=0"), 400, "bad_request")
	wantProblem(t, "draw tickets, bad offset", gatetest.Get(t, c, base+"/v1/sales/drop/draw/tickets?offset=-1"), 400, "bad_request")
	req, _ := http.NewRequest("DELETE", base+"/v1/sales/drop/line", nil)
	wantProblem(t, "DELETE the line", gatetest.Do(t, c, req), 405, "method_not_allowed")
	if after := lineMsgs(t, g.RoomStore(), "drop"); after != before {
		t.Fatalf("bad requests changed the line: %d records, then %d", before, after)
	}

	// Joining: 201, then 200 with the same ticket; the draw's commitment
	// is public, its seed not yet.
	alice := joinBuyer(t, c, base, "drop", "alice")
	if alice.Status != 201 || alice.Header.Get("Location") != "/v1/tickets/"+alice.Str("ticket_id") || !line.ValidTicketID(alice.Str("ticket_id")) {
		t.Fatalf("join: %d %v %s", alice.Status, alice.Header, alice.Raw)
	}
	again := joinBuyer(t, c, base, "drop", "alice")
	if again.Status != 200 || again.Str("ticket_id") != alice.Str("ticket_id") {
		t.Fatalf("joining again: %d %s, want 200 with ticket %s", again.Status, again.Raw, alice.Str("ticket_id"))
	}
	bob := joinBuyer(t, c, base, "drop", "bob")
	// The other sale's line opens 15 minutes before its start, an hour away.
	if a := joinBuyer(t, c, base, "other", "alice"); a.Status != 425 || a.Str("reason") != "not_started" || a.Header.Get("Retry-After") == "" {
		t.Errorf("joining before the line opens: %d %s", a.Status, a.Raw)
	}
	draw := gatetest.Get(t, c, base+"/v1/sales/drop/draw")
	if draw.Status != 200 || draw.Body["seed"] != nil || len(draw.Str("commitment")) != 64 {
		t.Fatalf("draw before the start: %s", draw.Raw)
	}
	keys, err := g.RoomStore().Keys(context.Background(), "drop")
	if err != nil || keys.Seed.Commitment() != draw.Str("commitment") {
		t.Fatalf("the commitment is not the stored seed's: %v", err)
	}

	// The start: the draw is made, both get their turn (stock 5).
	gatetest.Admin(t, c, g.OpsAddr(), "PATCH", "/admin/sales/drop", cfg.AdminToken, `{"starts_at":"`+time.Now().Add(500*time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`)
	var aliceT, bobT gatetest.Answer
	gatetest.Eventually(t, 10*time.Second, "both turns", func() bool {
		aliceT = gatetest.Get(t, c, base+"/v1/tickets/"+alice.Str("ticket_id"))
		bobT = gatetest.Get(t, c, base+"/v1/tickets/"+bob.Str("ticket_id"))
		return aliceT.Str("state") == "your_turn" && bobT.Str("state") == "your_turn"
	})
	if aliceT.Header.Get("Retry-After") == "" || aliceT.Str("pass_expires_at") == "" {
		t.Fatalf("a ticket whose turn came: %v %s", aliceT.Header, aliceT.Raw)
	}
	pass := aliceT.Str("pass")
	orders := func() uint64 { return gatetest.StreamMsgs(t, g.Ledger(), "drop") }
	n0 := orders()

	// Refused, nothing published.
	wantProblem(t, "no pass", gatetest.Order(t, c, base, "drop", "alice", ""), 428, "pass_required")
	if a := gatetest.Order(t, c, base, "drop", "alice", ""); a.Str("line") != "/v1/sales/drop/line" {
		t.Errorf("428 does not name the line: %s", a.Raw)
	}
	wantProblem(t, "forged pass", orderWithPass(t, c, base, "drop", "alice", pass[:len(pass)-2]+"xx", ""), 403, "bad_pass")
	wantProblem(t, "garbage pass", orderWithPass(t, c, base, "drop", "alice", "hello", ""), 403, "bad_pass")
	wantProblem(t, "another buyer's pass", orderWithPass(t, c, base, "drop", "bob", pass, ""), 403, "bad_pass")
	otherKeys, _ := g.RoomStore().Keys(context.Background(), "other")
	otherPass, _ := line.Sign(otherKeys.Secret, line.Pass{Sale: "other", Buyer: "alice", Ticket: alice.Str("ticket_id"), Expires: time.Now().Add(time.Minute)})
	wantProblem(t, "another sale's pass", orderWithPass(t, c, base, "drop", "alice", otherPass, ""), 403, "bad_pass")
	// Signed with this sale's secret for another sale: still refused.
	crossPass, _ := line.Sign(keys.Secret, line.Pass{Sale: "other", Buyer: "alice", Ticket: alice.Str("ticket_id"), Expires: time.Now().Add(time.Minute)})
	wantProblem(t, "a pass naming another sale", orderWithPass(t, c, base, "drop", "alice", crossPass, ""), 403, "bad_pass")
	expired, _ := line.Sign(keys.Secret, line.Pass{Sale: "drop", Buyer: "alice", Ticket: alice.Str("ticket_id"), Expires: time.Now().Add(-time.Second)})
	wantProblem(t, "expired pass", orderWithPass(t, c, base, "drop", "alice", expired, ""), 403, "bad_pass")
	if n := orders(); n != n0 {
		t.Fatalf("refused orders were published: %d orders, then %d", n0, n)
	}

	// The pass admits one order; its retry is a replay, a second order
	// with it is refused.
	first := orderWithPass(t, c, base, "drop", "alice", pass, "k1")
	if first.Status != 202 {
		t.Fatalf("order with the pass: %d %s", first.Status, first.Raw)
	}
	replay := orderWithPass(t, c, base, "drop", "alice", pass, "k1")
	// A replay answers what the order is: still queued, or confirmed.
	replayOK := replay.Status == 202 && replay.Str("status") == "queued" || replay.Status == 201 && replay.Str("status") == "confirmed"
	if !replayOK || replay.Str("order_id") != first.Str("order_id") || replay.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry with the same key: %d %v %s", replay.Status, replay.Header, replay.Raw)
	}
	wantProblem(t, "second order with the pass", orderWithPass(t, c, base, "drop", "alice", pass, "k2"), 403, "bad_pass")
	wantProblem(t, "second order with the pass, no key", orderWithPass(t, c, base, "drop", "alice", pass, ""), 403, "bad_pass")
	if n := orders(); n != n0+1 {
		t.Fatalf("a pass admitted %d orders, want 1", n-n0)
	}
	gatetest.Eventually(t, 5*time.Second, "the ticket to read ordered", func() bool {
		return gatetest.Get(t, c, base+"/v1/tickets/"+alice.Str("ticket_id")).Str("state") == "ordered"
	})
	// Bob's pass expires unused (pass_ttl 5s), and his ticket says so.
	gatetest.Eventually(t, 10*time.Second, "bob's pass to expire", func() bool {
		return gatetest.Get(t, c, base+"/v1/tickets/"+bob.Str("ticket_id")).Str("state") == "expired"
	})
	wantProblem(t, "an expired turn's pass", orderWithPass(t, c, base, "drop", "bob", bobT.Str("pass"), ""), 403, "bad_pass")
}

// Twenty thousand buyers join before the start, through three gates
// sharing one JetStream; stock 500. Exactly 500 orders are confirmed,
// each by a buyer who was issued a pass; the served buyers are spread
// over the join times like the drawn ones; those who joined after the
// start get nothing; every gate has the same draw, and it verifies.
func TestWaitingRoomThreeGatesTwentyThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 joins: not in -short")
	}
	testenv.Exclusive(t)
	const joiners, stock, lateJoiners = 20_000, 500, 200
	sale := ledger.Sale{Name: "drop", Stock: stock, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true,
		LineOpens: ledger.Duration(2 * time.Hour), LineLimit: 100_000}
	cfgA := gatetest.Config(t, sale)
	cfgA.NATSListen = "127.0.0.1:0"
	cfgA.AdminToken = "admin-token-for-tests"
	a := gatetest.Start(t, cfgA)
	gates := []*serve.Server{a}
	for range 2 {
		cfg := gatetest.Config(t)
		cfg.NATSURL = a.NATSURL()
		cfg.NoDrain = true
		gates = append(gates, gatetest.Start(t, cfg))
	}
	for _, g := range gates {
		gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })
	}
	c := gatetest.Client()
	base := func(i int) string { return "http://" + gates[i%len(gates)].APIAddr() }

	// Join, 48 at a time, round robin over the gates.
	type joinedT struct {
		buyer, ticket string
		order         int // join order
	}
	tickets := make([]joinedT, joiners)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= joiners || t.Failed() {
					return
				}
				buyer := fmt.Sprintf("b%05d", i)
				ans := joinBuyer(t, c, base(i+w), "drop", buyer)
				if ans.Status != 201 {
					t.Errorf("join %s: %d %s", buyer, ans.Status, ans.Raw)
					return
				}
				tickets[i] = joinedT{buyer, ans.Str("ticket_id"), i}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	gatetest.Admin(t, c, a.OpsAddr(), "PATCH", "/admin/sales/drop", cfgA.AdminToken,
		`{"starts_at":"`+time.Now().Add(300*time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`)
	byTicket := make(map[string]joinedT, joiners+lateJoiners)
	for _, j := range tickets {
		byTicket[line.TicketHash(j.ticket)] = j
	}
	gatetest.Eventually(t, 10*time.Second, "the draw", func() bool {
		return gatetest.Get(t, c, base(0)+"/v1/sales/drop/draw").Body["seed"] != nil
	})
	late := map[string]bool{}
	for i := range lateJoiners {
		buyer := fmt.Sprintf("late%03d", i)
		ans := joinBuyer(t, c, base(i), "drop", buyer)
		if ans.Status != 201 || ans.Body["drawn"] != false || ans.Body["position"].(float64) <= joiners {
			t.Fatalf("late join: %d %s", ans.Status, ans.Raw)
		}
		late[buyer] = true
	}

	// The draw is the same on every gate, and verifies.
	var seed, commitment string
	var drawn []string
	for i := range gates {
		d := gatetest.Get(t, c, base(i)+"/v1/sales/drop/draw")
		ids := drawTickets(t, c, base(i), "drop")
		if i == 0 {
			seed, commitment, drawn = d.Str("seed"), d.Str("commitment"), ids
			continue
		}
		if d.Str("seed") != seed || d.Str("commitment") != commitment || strings.Join(ids, ",") != strings.Join(drawn, ",") {
			t.Fatalf("gate %d has another draw", i)
		}
	}
	if len(drawn) != joiners {
		t.Fatalf("%d tickets drawn, want %d", len(drawn), joiners)
	}
	if err := line.VerifyDraw(seed, commitment, drawn); err != nil {
		t.Fatal(err)
	}

	// Buyers: each polls its ticket when the line nears it and orders
	// with its pass on any gate, as a real client would.
	var served sync.Map // buyer → pass
	deadline := time.Now().Add(2 * time.Minute)
	for pos := 0; pos < len(drawn) && time.Now().Before(deadline); {
		letIn := int(gatetest.Get(t, c, base(pos)+"/v1/sales/drop/line").Body["let_in"].(float64))
		if letIn <= pos {
			if gatetest.Get(t, c, base(0)+"/v1/sales/drop").Str("state") == "sold_out" {
				break
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		// On a loaded machine the turns of buyers asked too late lapse,
		// and the line lets in past the drawn, to the late joiners (who
		// never order here).
		letIn = min(letIn, len(drawn))
		var owg sync.WaitGroup
		for p := pos; p < letIn; p++ {
			owg.Add(1)
			go func() {
				defer owg.Done()
				j := byTicket[drawn[p]]
				tk := gatetest.Get(t, c, base(p)+"/v1/tickets/"+j.ticket)
				if tk.Str("state") != "your_turn" {
					return // sold out meanwhile
				}
				if tk.Str("buyer_id") != j.buyer {
					t.Errorf("ticket %s shows buyer %s, joined by %s", j.ticket, tk.Str("buyer_id"), j.buyer)
				}
				ans := orderWithPass(t, c, base(p+1), "drop", j.buyer, tk.Str("pass"), "")
				if ans.Status == 202 {
					served.Store(j.buyer, tk.Str("pass"))
				}
			}()
		}
		owg.Wait()
		pos = letIn
	}
	gatetest.Eventually(t, time.Minute, "500 confirmed", func() bool {
		v := gatetest.Get(t, c, base(0)+"/v1/sales/drop")
		return v.Body["confirmed"] == float64(stock)
	})
	if n := gatetest.StreamMsgs(t, a.Ledger(), "drop"); n != stock {
		t.Fatalf("%d orders in the ledger, want %d", n, stock)
	}
	// Every order in the ledger is a served buyer's, made with their pass.
	orders := ledgerBuyers(t, a.Ledger(), "drop", stock)
	var servedN int
	secret := keysOf(t, a, "drop").Secret
	served.Range(func(k, v any) bool {
		servedN++
		// Checked as of an hour ago, before any pass expired: signed by
		// the gates, for this buyer, for the ticket the buyer joined with.
		p, err := line.Verify(secret, v.(string), "drop", k.(string), time.Now().Add(-time.Hour))
		var i int
		fmt.Sscanf(k.(string), "b%05d", &i)
		if err != nil || p.Ticket != tickets[i].ticket {
			t.Errorf("pass of %s: %v, for ticket %s (the buyer's is %s)", k, err, p.Ticket, tickets[i].ticket)
		}
		return true
	})
	if servedN != stock || len(orders) != stock {
		t.Fatalf("%d buyers served, %d orders; want %d", servedN, len(orders), stock)
	}
	deciles := make([]float64, 10)
	for _, b := range orders {
		if late[b] {
			t.Errorf("%s joined after the start and was served while drawn tickets remained", b)
		}
		if _, ok := served.Load(b); !ok {
			t.Errorf("an order of %s, who was never issued a pass", b)
		}
		var i int
		fmt.Sscanf(b, "b%05d", &i)
		deciles[i*10/joiners]++
	}
	chi, p := chiSquareUniform(deciles)
	t.Logf("served per decile of join time: %v (chi-square %.1f, p %.3f)", deciles, chi, p)
	for i, n := range deciles {
		if n > 2*stock/10 {
			t.Errorf("decile %d holds %v of %d served, over twice its share", i+1, n, stock)
		}
	}
	if p < 0.001 {
		t.Errorf("served buyers are not spread over join times like the drawn: chi-square %.1f, p %.4f", chi, p)
	}
}

func keysOf(t testing.TB, s *serve.Server, sale string) waitingroom.Keys {
	t.Helper()
	k, err := s.RoomStore().Keys(context.Background(), sale)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// drawTickets pages through a gate's list of the drawn tickets.
func drawTickets(t testing.TB, c *http.Client, base, sale string) []string {
	t.Helper()
	var ids []string
	url := base + "/v1/sales/" + sale + "/draw/tickets?limit=5000"
	for url != "" {
		a := gatetest.Get(t, c, url)
		if a.Status != 200 {
			t.Fatalf("draw tickets: %d %s", a.Status, a.Raw)
		}
		for _, id := range a.Body["ticket_hashes"].([]any) {
			ids = append(ids, id.(string))
		}
		url = ""
		if n := a.Str("next"); n != "" {
			url = base + n
		}
	}
	return ids
}

// ledgerBuyers reads the buyers of a sale's n orders.
func ledgerBuyers(t testing.TB, l *ledger.Ledger, sale string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	for seq := uint64(1); seq <= uint64(n); seq++ {
		str, err := l.JetStream().Stream(ctx, ledger.StreamName(sale))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := str.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		o, err := ledger.DecodeOrder(raw.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o.BuyerID)
	}
	return out
}

// chiSquareUniform is the chi-square statistic of counts against equal
// shares and its p-value (k-1 degrees of freedom).
func chiSquareUniform(counts []float64) (chi, p float64) {
	var total float64
	for _, c := range counts {
		total += c
	}
	exp := total / float64(len(counts))
	for _, c := range counts {
		chi += (c - exp) * (c - exp) / exp
	}
	return chi, line.ChiSquareP(chi, len(counts)-1)
}

// The waiting page in a real browser: join through the form after the
// start, watch the position and the progress bar while the buyers drawn
// before take their turns, get the turn, buy with the button, see the
// order confirmed. SLUICE_SCREENSHOT_DIR=docs writes docs/waiting-room.png.
func TestWaitingPageInChromium(t *testing.T) {
	b := browsertest.New(t)
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: 4, QueueBound: 1, StartsAt: time.Now().Add(time.Hour),
		WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)})
	cfg.AdminToken = "admin-token-for-tests"
	s := gatetest.Start(t, cfg)
	c := gatetest.Client()
	api := "http://" + s.APIAddr()
	var early []gatetest.Answer
	for i := range 3 {
		early = append(early, joinBuyer(t, c, api, "drop", fmt.Sprint("early-", i)))
	}
	gatetest.Admin(t, c, s.OpsAddr(), "PATCH", "/admin/sales/drop", cfg.AdminToken,
		`{"starts_at":"`+time.Now().Add(200*time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`)
	gatetest.Eventually(t, 10*time.Second, "the draw", func() bool {
		return gatetest.Get(t, c, api+"/v1/sales/drop/draw").Body["seed"] != nil
	})

	// Notifications not decided yet, as for a visitor: the page may ask.
	if _, err := chromedp.Call(b.Ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "notifications"}, Setting: browser.PermissionSettingPrompt, Origin: api}); err != nil {
		t.Fatalf("set the notifications permission: %v", err)
	}
	notifyShown := `!document.getElementById("notify").hidden`
	b.Do(t, "open the line", chromedp.Navigate(api+"/v1/sales/drop/line"))
	b.Do(t, "join", chromedp.SendKeys("#buyer_id", "web-buyer"), chromedp.Click("#join"), chromedp.WaitVisible("#position"))
	b.WaitFor(t, "the waiting page", `document.getElementById("position") && document.getElementById("position").textContent === "4"`, 10*time.Second)
	if p := browsertest.Eval[string](t, b, `Notification.permission`); p != "default" {
		t.Fatalf("Notification.permission %q: this test needs the page able to ask", p)
	}
	if st := browsertest.Eval[string](t, b, `t.state`); (st == "waiting" || st == "offered") != browsertest.Eval[bool](t, b, notifyShown) {
		t.Errorf("in state %s the page shows Notify me: %v", st, browsertest.Eval[bool](t, b, notifyShown))
	}
	// Waiting: with an estimate, or, when the pace offered this position
	// (stock 4 covers it) before the page loaded and the page claimed
	// it, for the pass that comes once the stock covers those ahead.
	if st := browsertest.Eval[string](t, b, `document.getElementById("wait").textContent`); !strings.Contains(st, "Keep this page open") {
		t.Errorf("the page says %q while waiting", st)
	}
	if dir := os.Getenv("SLUICE_SCREENSHOT_DIR"); dir != "" {
		b.Screenshot(t, filepath.Join(dir, "waiting-room.png"))
	}
	// The drawn buyers take their turns, one at a time (queue bound 1).
	for served := 0; served < 3; {
		for _, e := range early {
			tk := gatetest.Get(t, c, api+"/v1/tickets/"+e.Str("ticket_id"))
			if tk.Str("state") == "your_turn" {
				if a := orderWithPass(t, c, api, "drop", tk.Str("buyer_id"), tk.Str("pass"), ""); a.Status != 202 {
					t.Fatalf("order of %s: %d %s", tk.Str("buyer_id"), a.Status, a.Raw)
				}
				served++
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.WaitFor(t, "the turn", `!document.getElementById("turn").hidden`, 20*time.Second)
	if w := browsertest.Eval[string](t, b, `document.getElementById("progress").style.width`); w != "100%" {
		t.Errorf("the progress bar at the turn: %s", w)
	}
	if browsertest.Eval[bool](t, b, notifyShown) {
		t.Error("the page offers to notify of a turn that has come")
	}
	b.Do(t, "buy", chromedp.Click("#buy"))
	b.WaitFor(t, "the confirmation", `document.getElementById("result").dataset.status === "confirmed"`, 20*time.Second)
	order := browsertest.Eval[string](t, b, `document.getElementById("result").dataset.order`)
	if st := gatetest.Get(t, c, api+"/v1/orders/"+order); st.Str("status") != "confirmed" {
		t.Fatalf("the page's order: %s", st.Raw)
	}
	if oid, err := ledger.ParseOrderID(order); err != nil {
		t.Fatal(err)
	} else if o, err := s.Ledger().Lookup(context.Background(), oid); err != nil || o.BuyerID != "web-buyer" {
		t.Fatalf("the page's order in the ledger: %+v %v", o, err)
	}
	if browsertest.Eval[bool](t, b, notifyShown) {
		t.Error("the page offers Notify me after the order is confirmed")
	}
	// And the ticket's page opened again after the order, as the gate
	// renders it.
	b.Do(t, "open the ticket's page again", chromedp.Navigate(api+"/v1/tickets/"+browsertest.Eval[string](t, b, `t.ticket_id`)))
	b.WaitFor(t, "the ordered ticket", `document.documentElement.dataset.state === "ordered"`, 10*time.Second)
	if browsertest.Eval[bool](t, b, notifyShown) {
		t.Error("the ticket's page, reloaded after the order, offers Notify me")
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Fatalf("the page logged errors: %v", errs)
	}
	// The operator's console shows the line.
	b.Do(t, "open the console", chromedp.Navigate("http://"+s.OpsAddr()+"/"))
	b.WaitFor(t, "the line on the sale's card",
		`((document.querySelector('[data-sale="drop"] [data-field="line"]') || {}).textContent || "").startsWith("4 in line, let in 4")`, 10*time.Second)
}

// The waiting page in a background tab keeps its place: the page is
// hidden (document.visibilityState "hidden") and its timers throttled to
// one a minute, as Chrome does to a tab hidden for five minutes, while
// the turns of three absent holders ahead of it lapse one after another
// (a claim window of 3 s). Its held long poll claims the turn the moment
// it is offered, the title says so and a notification is shown, and the
// order goes through.
func TestWaitingPageHiddenStillClaims(t *testing.T) {
	b := browsertest.New(t)
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: 1, StartsAt: time.Now().Add(time.Hour),
		WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour), ClaimWindow: ledger.Duration(3 * time.Second)})
	cfg.AdminToken = "admin-token-for-tests"
	s := gatetest.Start(t, cfg)
	c := gatetest.Client()
	api := "http://" + s.APIAddr()
	for i := range 3 { // joined, and never came back
		if a := joinBuyer(t, c, api, "drop", fmt.Sprint("absent-", i)); a.Status != 201 {
			t.Fatalf("join: %d %s", a.Status, a.Raw)
		}
	}
	gatetest.Admin(t, c, s.OpsAddr(), "PATCH", "/admin/sales/drop", cfg.AdminToken,
		`{"starts_at":"`+time.Now().Add(200*time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`)
	gatetest.Eventually(t, 10*time.Second, "the draw", func() bool {
		return gatetest.Get(t, c, api+"/v1/sales/drop/draw").Body["seed"] != nil
	})
	b.Do(t, "open the line", chromedp.Navigate(api+"/v1/sales/drop/line"))
	b.Do(t, "join", chromedp.SendKeys("#buyer_id", "web-buyer"), chromedp.Click("#join"), chromedp.WaitVisible("#position"))
	b.WaitFor(t, "the waiting page", `document.getElementById("position") && document.getElementById("position").textContent === "4"`, 10*time.Second)
	key, ok := line.KeyOf(browsertest.Eval[string](t, b, `t.ticket_id`))
	if !ok {
		t.Fatal("the page holds no ticket id")
	}
	// Hidden, timers throttled; notifications allowed (and recorded).
	browsertest.Eval[bool](t, b, `(() => {
		Object.defineProperty(document, "visibilityState", {get: () => "hidden"});
		Object.defineProperty(document, "hidden", {get: () => true});
		const st = window.setTimeout.bind(window), si = window.setInterval.bind(window);
		window.setTimeout = (f, d, ...a) => st(f, Math.max(d || 0, 60000), ...a);
		window.setInterval = (f, d, ...a) => si(f, Math.max(d || 0, 60000), ...a);
		window.__notified = [];
		window.Notification = function (title) { window.__notified.push(title); };
		window.Notification.permission = "granted";
		document.dispatchEvent(new Event("visibilitychange"));
		return document.hidden;
	})()`)
	room := s.Rooms().Room("drop")
	// Polled from here, not by the page's own timers (which are throttled
	// now); nothing here asks the gate for the ticket, which would claim it.
	deadline := time.Now().Add(60 * time.Second)
	for {
		tk, _ := room.Book.Lookup(key)
		if tk.Claimed {
			t.Logf("claimed %v after its offer, %d turns lapsed before it", tk.ClaimedAt.Sub(tk.OfferedAt), room.Book.State(time.Now(), 0).Lapsed)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hidden page did not claim its turn: %+v", tk)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitEval := func(what, expr string) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); !browsertest.Eval[bool](t, b, expr); {
			if time.Now().After(end) {
				t.Fatalf("waiting for %s (%s)", what, expr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitEval("the title", `document.title.startsWith("Your turn")`)
	waitEval("the notification", `window.__notified.length === 1 && window.__notified[0].startsWith("Your turn")`)
	b.Do(t, "buy", chromedp.Click("#buy"))
	waitEval("the confirmation", `document.getElementById("result").dataset.status === "confirmed"`)
	if errs := b.Errors(); len(errs) > 0 {
		t.Fatalf("the page logged errors: %v", errs)
	}
}

// A holder whose turn lapsed and who comes back while stock remains is
// put at the back of the line, once: after everyone who stayed, and
// served after them.
func TestLapsedHolderGoesToTheBack(t *testing.T) {
	const stock = 4
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: stock, StartsAt: time.Now().Add(time.Hour),
		WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour), ClaimWindow: ledger.Duration(3 * time.Second)})
	cfg.AdminToken = "admin-token-for-tests"
	s := gatetest.Start(t, cfg)
	c := gatetest.Client()
	api := "http://" + s.APIAddr()
	secret := map[string]string{} // buyer → ticket id
	for i := range stock {
		buyer := fmt.Sprint("buyer-", i)
		a := joinBuyer(t, c, api, "drop", buyer)
		if a.Status != 201 {
			t.Fatalf("join: %d %s", a.Status, a.Raw)
		}
		secret[buyer] = a.Str("ticket_id")
	}
	gatetest.Admin(t, c, s.OpsAddr(), "PATCH", "/admin/sales/drop", cfg.AdminToken,
		`{"starts_at":"`+time.Now().Add(200*time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`)
	room := s.Rooms().Room("drop")
	gatetest.Eventually(t, 10*time.Second, "the first turns", func() bool { return room.Book.State(time.Now(), 0).Offered == stock })
	away, awayKey, _ := room.Book.BuyerAt(1) // the holder at position 1 is away
	var order []string                       // buyers in the order they were served
	for p := int64(2); p <= stock; p++ {
		buyer, _, _ := room.Book.BuyerAt(p)
		tk := ticketOf(t, c, api, secret[buyer], buyer)
		if tk.Str("state") != "your_turn" {
			t.Fatalf("position %d, there: %s", p, tk.Raw)
		}
		if a := orderWithPass(t, c, api, "drop", buyer, tk.Str("pass"), ""); a.Status != 202 {
			t.Fatalf("order at position %d: %d %s", p, a.Status, a.Raw)
		}
		order = append(order, buyer)
	}
	gatetest.Eventually(t, 20*time.Second, "the turn at position 1 to lapse", func() bool {
		tk, _ := room.Book.Lookup(awayKey)
		return tk.Lapsed(time.Now(), 3*time.Second)
	})
	// Back: at the back of the line, after the three who stayed.
	tk := ticketOf(t, c, api, secret[away], away)
	if tk.Body["rejoined"] != true || tk.Body["position"].(float64) != stock+1 {
		t.Fatalf("the holder back after the lapse: %s", tk.Raw)
	}
	gatetest.Eventually(t, 20*time.Second, "the turn at the back", func() bool {
		tk = ticketOf(t, c, api, secret[away], away)
		return tk.Str("state") == "your_turn"
	})
	if a := orderWithPass(t, c, api, "drop", away, tk.Str("pass"), ""); a.Status != 202 {
		t.Fatalf("order from the back: %d %s", a.Status, a.Raw)
	}
	order = append(order, away)
	t.Logf("served in order: %v", order)
	if st := room.Book.State(time.Now(), 0); st.Rejoined != 1 || st.Lapsed != 1 || st.Positions != stock+1 {
		t.Fatalf("the line: %+v; want one rejoin, one lapse, %d positions", st, stock+1)
	}
}

// A ticket's long poll (Prefer: wait=N) is held until its state changes:
// the ticket behind the last item waits, and hears sold_out the moment
// the holder ahead buys it; one whose state does not change is answered
// after N seconds. Both say Preference-Applied.
func TestTicketLongPoll(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: 1, StartsAt: time.Now().Add(time.Hour),
		WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)})
	cfg.AdminToken = "admin-token-for-tests"
	s := gatetest.Start(t, cfg)
	c := gatetest.Client()
	api := "http://" + s.APIAddr()
	ids := map[string]string{}
	for _, b := range []string{"ann", "bob", "cid"} {
		ids[b] = joinBuyer(t, c, api, "drop", b).Str("ticket_id")
	}
	gatetest.Admin(t, c, s.OpsAddr(), "PATCH", "/admin/sales/drop", cfg.AdminToken,
		`{"starts_at":"`+time.Now().Add(200*time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`)
	room := s.Rooms().Room("drop")
	gatetest.Eventually(t, 10*time.Second, "the first turn", func() bool { return room.Book.State(time.Now(), 0).Offered >= 1 })
	first, _, _ := room.Book.BuyerAt(1)
	var behind []string
	for b := range ids {
		if b != first {
			behind = append(behind, b)
		}
	}
	held := func(buyer string, wait int) (state, applied string) {
		req, _ := http.NewRequest("GET", api+"/v1/tickets/"+ids[buyer], nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Prefer", fmt.Sprintf("wait=%d", wait))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ State string }
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v.State, resp.Header.Get("Preference-Applied")
	}
	// Nothing changes for the one behind: answered after the wait.
	start := time.Now()
	if state, applied := held(behind[0], 1); applied != "wait=1" || time.Since(start) < time.Second || state != "waiting" {
		t.Fatalf("an unchanged ticket's long poll: %s %q after %v", state, applied, time.Since(start))
	}
	// The holder ahead buys the last item while the one behind waits: it
	// hears sold_out then, not before.
	bought := make(chan time.Time, 1)
	go func() {
		time.Sleep(700 * time.Millisecond)
		tk := gatetest.Get(t, c, api+"/v1/tickets/"+ids[first])
		bought <- time.Now() // the order is sent now
		orderWithPass(t, c, api, "drop", first, tk.Str("pass"), "")
	}()
	state, applied := held(behind[1], 20)
	answered := time.Now()
	if at := <-bought; applied != "wait=20" || state != "sold_out" || answered.Before(at) {
		t.Fatalf("the long poll behind the last item: %s %q, answered %v after the order was sent", state, applied, answered.Sub(at))
	}
}

// A turn claimed on one gate and its pass used on another: the claim is
// one durable record every gate reads, a poll at the other gate writes
// no second one, and the other gate takes the order with the pass.
func TestClaimOnOneGateOrderOnAnother(t *testing.T) {
	cfgA := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: 2, StartsAt: time.Now().Add(time.Hour),
		WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)})
	cfgA.NATSListen = "127.0.0.1:0"
	cfgA.AdminToken = "admin-token-for-tests"
	a := gatetest.Start(t, cfgA)
	cfgB := gatetest.Config(t)
	cfgB.NATSURL = a.NATSURL()
	cfgB.NoDrain = true
	b := gatetest.Start(t, cfgB)
	for _, g := range []*serve.Server{a, b} {
		gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })
	}
	c := gatetest.Client()
	apiA, apiB := "http://"+a.APIAddr(), "http://"+b.APIAddr()
	ids := map[string]string{}
	for _, buyer := range []string{"ann", "bob"} {
		ids[buyer] = joinBuyer(t, c, apiA, "drop", buyer).Str("ticket_id")
	}
	gatetest.Admin(t, c, a.OpsAddr(), "PATCH", "/admin/sales/drop", cfgA.AdminToken,
		`{"starts_at":"`+time.Now().Add(200*time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`)
	gatetest.Eventually(t, 10*time.Second, "the turns", func() bool {
		return b.Rooms().Room("drop").Book.State(time.Now(), 0).Offered == 2
	})
	for buyer, id := range ids {
		tk := ticketOf(t, c, apiA, id, buyer) // claimed at gate A
		if tk.Str("state") != "your_turn" || tk.Body["claimed"] != true {
			t.Fatalf("%s at gate A: %s", buyer, tk.Raw)
		}
		key, _ := line.KeyOf(id)
		gatetest.Eventually(t, 5*time.Second, "gate B to read the claim", func() bool {
			tk, _ := b.Rooms().Room("drop").Book.Lookup(key)
			return tk.Claimed
		})
		again := ticketOf(t, c, apiB, id, buyer) // polled at gate B: no second claim
		if again.Str("pass") != tk.Str("pass") {
			t.Fatalf("%s: gate B gives another pass: %s", buyer, again.Raw)
		}
		if o := orderWithPass(t, c, apiB, "drop", buyer, tk.Str("pass"), ""); o.Status != 202 {
			t.Fatalf("%s's order at gate B with the pass from gate A: %d %s", buyer, o.Status, o.Raw)
		}
	}
	gatetest.Eventually(t, 5*time.Second, "the uses to be recorded", func() bool {
		return a.Rooms().Room("drop").Book.State(time.Now(), 0).Used == 2
	})
	writesA := gatetest.Counter(t, a.Registry(), "sluice_line_claim_writes_total", "sale", "drop")
	writesB := gatetest.Counter(t, b.Registry(), "sluice_line_claim_writes_total", "sale", "drop")
	if st := a.Rooms().Room("drop").Book.State(time.Now(), 0); writesA != 2 || writesB != 0 || st.Claimed != 2 || st.Used != 2 {
		t.Fatalf("claim writes: gate A %v, gate B %v; the line %+v", writesA, writesB, st)
	}
}
