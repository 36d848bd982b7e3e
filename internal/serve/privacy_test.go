package serve_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/admission"
	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// secretPayload is what a buyer's order carries and nobody else may read.
const secretPayload = `{"sku":"TEE-1","address":"7 Hidden Lane"}`

// call sends a request with a body and header name, value pairs.
func call(t testing.TB, method, url, body string, hdr ...string) gatetest.Answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return gatetest.Do(t, gatetest.Client(), req)
}

// tellsNothing fails when an answer to someone who is not the buyer names
// the buyer's order or shows what it holds: order_id, a Location, the
// payload or the buyer id.
func tellsNothing(t testing.TB, what string, a gatetest.Answer, orderID, buyer string) {
	t.Helper()
	for _, secret := range []string{orderID, "Hidden Lane", `"buyer_id":"` + buyer + `"`} {
		if strings.Contains(a.Raw, secret) {
			t.Errorf("%s: the answer shows %s: %d %s", what, secret, a.Status, a.Raw)
		}
	}
	if _, ok := a.Body["order_id"]; ok && a.Status >= 400 {
		t.Errorf("%s: a refusal names an order: %s", what, a.Raw)
	}
	if l := a.Header.Get("Location"); l != "" {
		t.Errorf("%s: Location %s", what, l)
	}
}

// Where the buyer is only the body's buyer_id, anyone can claim to be
// anyone: no answer names an existing order's id to the claimant, and
// the order's status, asked by its id, shows neither its payload nor its
// buyer. Checked on every path that answers with an earlier order: the
// derived key's duplicate and the per-buyer refusal (409), a reused
// Idempotency-Key (422), the sold-out sale's answers from memory, a used
// pass. The one who placed the order keeps its id (the 202 gave it) and
// a retry with its own key and body gets it again.
func TestOrdersOfAnonymousBuyersStayTheirs(t *testing.T) {
	start := time.Now().Add(2 * time.Second)
	cfg := gatetest.Config(t,
		ledger.Sale{Name: "plain", Stock: 5},
		ledger.Sale{Name: "two", Stock: 5, PerBuyer: 2},
		ledger.Sale{Name: "tiny", Stock: 1},
		ledger.Sale{Name: "drop", Stock: 3, StartsAt: start, WaitingRoom: true, LineOpens: ledger.Duration(time.Hour),
			PassTTL: ledger.Duration(time.Minute)})
	g := gatetest.Start(t, cfg)
	base := "http://" + g.APIAddr()
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })
	// Alice's ticket, taken before the start; her pass comes at the start.
	ticket := joinBuyer(t, gatetest.Client(), base, "drop", "alice")
	if ticket.Status != 201 {
		t.Fatalf("join: %d %s", ticket.Status, ticket.Raw)
	}
	body := `{"buyer_id":"alice","payload":` + secretPayload + `}`
	other := `{"buyer_id":"alice","payload":{"sku":"TEE-1"}}`
	order := func(sale, body string, hdr ...string) gatetest.Answer {
		t.Helper()
		return call(t, "POST", base+"/v1/sales/"+sale+"/orders", body, hdr...)
	}

	// Alice orders, with a key, in a one-per-buyer sale and in a sale
	// of two per buyer.
	placed := map[string]string{}
	for _, sale := range []string{"plain", "two", "tiny"} {
		a := order(sale, body, "Idempotency-Key", "alice-"+sale)
		if a.Status != 202 {
			t.Fatalf("%s: alice's order: %d %s", sale, a.Status, a.Raw)
		}
		placed[sale] = a.Str("order_id")
	}
	if a := order("two", `{"buyer_id":"alice"}`); a.Status != 202 {
		t.Fatalf("two: alice's second order: %d %s", a.Status, a.Raw)
	}

	// Mallory claims to be alice.
	for _, tc := range []struct {
		what, sale, body string
		hdr              []string
		status           int
		reason           string
	}{
		{"the derived key's duplicate", "plain", `{"buyer_id":"alice"}`, nil, 409, "already_ordered"},
		{"with Prefer: wait", "plain", `{"buyer_id":"alice"}`, []string{"Prefer", "wait=2"}, 409, "already_ordered"},
		{"a new key: the per-buyer refusal", "plain", other, []string{"Idempotency-Key", "mallory-1"}, 409, "already_ordered"},
		{"per_buyer 2, both held", "two", `{"buyer_id":"alice"}`, nil, 409, "already_ordered"},
		{"alice's key, another payload", "plain", other, []string{"Idempotency-Key", "alice-plain"}, 422, "idempotency_key_reused"},
		{"alice's key, no payload", "plain", `{"buyer_id":"alice"}`, []string{"Idempotency-Key", "alice-plain"}, 422, "idempotency_key_reused"},
	} {
		a := order(tc.sale, tc.body, tc.hdr...)
		wantProblem(t, tc.what, a, tc.status, tc.reason)
		tellsNothing(t, tc.what, a, placed[tc.sale], "alice")
	}

	// The order's status by its id: no payload, no buyer.
	for _, sale := range []string{"plain", "two"} {
		a := call(t, "GET", base+"/v1/orders/"+placed[sale], "")
		if a.Status != 200 || a.Str("order_id") != placed[sale] || a.Str("status") == "" {
			t.Fatalf("GET %s: %d %s", placed[sale], a.Status, a.Raw)
		}
		if _, ok := a.Body["payload"]; ok {
			t.Errorf("GET %s shows the payload: %s", placed[sale], a.Raw)
		}
		if _, ok := a.Body["buyer_id"]; ok {
			t.Errorf("GET %s shows the buyer: %s", placed[sale], a.Raw)
		}
		a = call(t, "GET", base+"/v1/orders/"+placed[sale], "", "Prefer", "wait=1")
		if _, ok := a.Body["payload"]; ok || a.Status != 200 {
			t.Errorf("GET %s with Prefer: wait: %d %s", placed[sale], a.Status, a.Raw)
		}
	}

	// A sold-out sale answers keyed orders from memory once it holds
	// every order: the same answers.
	gatetest.Eventually(t, 10*time.Second, "tiny sold out", func() bool {
		return call(t, "GET", base+"/v1/sales/tiny", "").Str("state") == "sold_out"
	})
	for range 3 { // before and after the gate's copy is complete
		a := order("tiny", other, "Idempotency-Key", "alice-tiny")
		wantProblem(t, "sold out: alice's key, another payload", a, 422, "idempotency_key_reused")
		tellsNothing(t, "sold out: alice's key, another payload", a, placed["tiny"], "alice")
		// The ledger says sold out (410), the copy in memory that alice
		// holds her order (409): either, naming nothing.
		a = order("tiny", other, "Idempotency-Key", "mallory-2")
		if a.Status != 409 && a.Status != 410 {
			t.Errorf("sold out: a new key: %d %s", a.Status, a.Raw)
		}
		tellsNothing(t, "sold out: a new key", a, placed["tiny"], "alice")
		time.Sleep(200 * time.Millisecond)
	}

	// Alice's own retry, with her key and her body, is a replay: the same
	// order id, as the 202 gave it; still no payload in it.
	for _, sale := range []string{"plain", "tiny"} {
		a := order(sale, body, "Idempotency-Key", "alice-"+sale)
		if (a.Status != 202 && a.Status != 201) || a.Str("order_id") != placed[sale] || a.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("%s: alice's retry: %d %s", sale, a.Status, a.Raw)
		}
		if strings.Contains(a.Raw, "Hidden Lane") {
			t.Errorf("%s: the replay shows the payload: %s", sale, a.Raw)
		}
	}

	// A waiting room: alice's pass admits her order; the pass again, with
	// another key or her key and another body, names nothing.
	var pass string
	gatetest.Eventually(t, 15*time.Second, "alice's turn", func() bool {
		pass = call(t, "GET", base+"/v1/tickets/"+ticket.Str("ticket_id"), "").Str("pass")
		return pass != ""
	})
	first := order("drop", body, "Sluice-Pass", pass, "Idempotency-Key", "alice-drop")
	if first.Status != 202 {
		t.Fatalf("drop: alice's order with her pass: %d %s", first.Status, first.Raw)
	}
	for _, tc := range []struct {
		what, body, key string
		status          int
		reason          string
	}{
		{"the pass again, another key", body, "mallory-3", 403, "bad_pass"},
		{"the pass again, no key", body, "", 403, "bad_pass"},
		{"the pass again, alice's key, another payload", other, "alice-drop", 422, "idempotency_key_reused"},
	} {
		hdr := []string{"Sluice-Pass", pass}
		if tc.key != "" {
			hdr = append(hdr, "Idempotency-Key", tc.key)
		}
		a := order("drop", tc.body, hdr...)
		wantProblem(t, tc.what, a, tc.status, tc.reason)
		tellsNothing(t, tc.what, a, first.Str("order_id"), "alice")
	}
}

// A buyer the gate knows (the shop's token, or a trusted proxy's header)
// sees their own order: the 409 and 422 name it, and its status shows its
// payload and buyer. Another buyer, or a caller without a token, asking
// by the same id, sees its status only; a token presented and refused is
// refused, as on an order.
func TestKnownBuyersSeeTheirOwnOrders(t *testing.T) {
	shop := newShop(t)
	cfg := gatetest.Config(t, ledger.Sale{Name: "plain", Stock: 5})
	cfg.BuyerToken.JWKSURL = shop.jwks.URL
	cfg.BuyerToken.Cookie = "shop_session"
	g := gatetest.Start(t, cfg)

	hcfg := gatetest.Config(t, ledger.Sale{Name: "plain", Stock: 5})
	hcfg.Gate.BuyerHeader = "X-User-Id"
	hcfg.Gate.TrustedProxies, _ = admission.ParseTrustedProxies([]string{"127.0.0.1"})
	h := gatetest.Start(t, hcfg)

	alice, bob := shop.token(t, "alice", false, time.Hour), shop.token(t, "bob", true, time.Hour)
	for _, gate := range []struct {
		name          string
		base          string
		as            func(buyer string) []string // the headers that make a request buyer's
		refused       []string                    // a credential presented and refused
		refusedStatus int
		refusedReason string
	}{
		{"token", "http://" + g.APIAddr(), func(b string) []string {
			return []string{"Authorization", "Bearer " + map[string]string{"alice": alice, "bob": bob}[b]}
		}, []string{"Authorization", "Bearer garbage"}, 401, "bad_buyer_token"},
		{"header", "http://" + h.APIAddr(), func(b string) []string { return []string{"X-User-Id", b} },
			[]string{"X-User-Id", "not a buyer id"}, 400, "bad_buyer_id"},
	} {
		t.Run(gate.name, func(t *testing.T) {
			base := gate.base
			orders := base + "/v1/sales/plain/orders"
			first := call(t, "POST", orders, `{"payload":`+secretPayload+`}`, append(gate.as("alice"), "Idempotency-Key", "k1")...)
			if first.Status != 202 || first.Str("buyer_id") != "alice" {
				t.Fatalf("alice's order: %d %s", first.Status, first.Raw)
			}
			id := first.Str("order_id")
			// Alice herself: the 409 and the 422 name her order.
			a := call(t, "POST", orders, `{}`, gate.as("alice")...)
			if wantProblem(t, "alice again", a, 409, "already_ordered"); a.Str("order_id") != id {
				t.Errorf("alice again: the 409 does not name her order: %s", a.Raw)
			}
			a = call(t, "POST", orders, `{"payload":{"sku":"X"}}`, append(gate.as("alice"), "Idempotency-Key", "k1")...)
			if wantProblem(t, "alice's key, another payload", a, 422, "idempotency_key_reused"); a.Str("order_id") != id {
				t.Errorf("alice's key, another payload: the 422 does not name her order: %s", a.Raw)
			}
			// Her order's status: its payload and buyer, to her.
			mine := call(t, "GET", base+"/v1/orders/"+id, "", gate.as("alice")...)
			if mine.Status != 200 || mine.Str("buyer_id") != "alice" || !strings.Contains(mine.Raw, "7 Hidden Lane") {
				t.Errorf("alice's own order: %d %s", mine.Status, mine.Raw)
			}
			// Bob, and a caller without credentials: the status only.
			for what, hdr := range map[string][]string{"bob": gate.as("bob"), "no credentials": nil} {
				a := call(t, "GET", base+"/v1/orders/"+id, "", hdr...)
				if a.Status != 200 || a.Str("status") == "" || a.Str("order_id") != id {
					t.Errorf("%s asks alice's order: %d %s", what, a.Status, a.Raw)
				}
				if strings.Contains(a.Raw, "Hidden Lane") || strings.Contains(a.Raw, "alice") {
					t.Errorf("%s sees alice's order: %s", what, a.Raw)
				}
			}
			wantProblem(t, "a refused credential", call(t, "GET", base+"/v1/orders/"+id, "", gate.refused...), gate.refusedStatus, gate.refusedReason)
		})
	}
}

// A keyed retry that reaches JetStream after its duplicate window (the
// order is then refused by the one-per-buyer limit, not deduplicated) is
// still a replay: the key and the body are the retry's proof, inside
// the window or out. Without this, a buyer on a gate that does not know
// its buyers could not learn its own order's id again, since the 409
// names none. The same key with another body is 422, another key 409,
// neither naming the order.
func TestKeyedRetryPastTheDuplicateWindow(t *testing.T) {
	g := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "plain", Stock: 5}))
	base := "http://" + g.APIAddr()
	// The first order, stored under a message id no request makes: as
	// JetStream sees a retry once the window has passed.
	ctx := context.Background()
	id, dup, err := g.Ledger().Place(ctx, ledger.Order{Sale: "plain", BuyerID: "alice", Token: ledger.NewToken(),
		AdmittedAt: time.Now().UTC(), IdempotencyKey: "alice-1", Payload: json.RawMessage(`{"sku":"TEE-1"}`)}, "stored-before")
	if err != nil || dup {
		t.Fatalf("place: %v %v", err, dup)
	}
	retry := call(t, "POST", base+"/v1/sales/plain/orders", `{"buyer_id":"alice","payload":{"sku":"TEE-1"}}`, "Idempotency-Key", "alice-1")
	if (retry.Status != 202 && retry.Status != 201) || retry.Str("order_id") != id.String() || retry.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the retry: %d %v %s, want the order %s replayed", retry.Status, retry.Header, retry.Raw, id)
	}
	a := call(t, "POST", base+"/v1/sales/plain/orders", `{"buyer_id":"alice","payload":{"sku":"OTHER"}}`, "Idempotency-Key", "alice-1")
	wantProblem(t, "the key, another body", a, 422, "idempotency_key_reused")
	tellsNothing(t, "the key, another body", a, id.String(), "alice")
	a = call(t, "POST", base+"/v1/sales/plain/orders", `{"buyer_id":"alice","payload":{"sku":"TEE-1"}}`, "Idempotency-Key", "mallory")
	wantProblem(t, "another key", a, 409, "already_ordered")
	tellsNothing(t, "another key", a, id.String(), "alice")
	if n := gatetest.StreamMsgs(t, g.Ledger(), "plain"); n != 1 {
		t.Fatalf("the stream holds %d orders, want 1", n)
	}
}
