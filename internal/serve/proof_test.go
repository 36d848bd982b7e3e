package serve_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
)

// altchaSolve solves a challenge as ALTCHA's protocol describes it,
// without the gate's code: SHA-256 of salt + the decimal number, for 0,
// 1, 2, … until it is the challenge; the payload is base64 of the JSON
// the widget sends.
func altchaSolve(t testing.TB, c gatetest.Answer) string {
	t.Helper()
	salt, challenge := c.Str("salt"), c.Str("challenge")
	maxN := int(c.Body["maxnumber"].(float64))
	for n := 0; n <= maxN; n++ {
		sum := sha256.Sum256([]byte(salt + strconv.Itoa(n)))
		if hex.EncodeToString(sum[:]) == challenge {
			b, _ := json.Marshal(map[string]any{"algorithm": c.Str("algorithm"), "challenge": challenge, "number": n,
				"salt": salt, "signature": c.Str("signature")})
			return base64.StdEncoding.EncodeToString(b)
		}
	}
	t.Fatalf("no number up to %d solves the challenge %s", maxN, c.Raw)
	return ""
}

func joinWithProof(t testing.TB, c *http.Client, base, sale, buyer, payload string) gatetest.Answer {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/sales/"+sale+"/line", strings.NewReader(`{"buyer_id":"`+buyer+`"}`))
	req.Header.Set("Content-Type", "application/json")
	if payload != "" {
		req.Header.Set("Sluice-Proof", payload)
	}
	return gatetest.Do(t, c, req)
}

// A line with join_proof: altcha takes a ticket only with a solved
// challenge: none is 428, a wrong, forged, another sale's or spent one
// 403, nothing stored; a solution buys one ticket on whichever gate it
// is shown to (two gates sharing one JetStream), and the same buyer's
// retry with it gets that ticket back.
func TestJoinProof(t *testing.T) {
	sale := ledger.Sale{Name: "drop", Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true,
		LineOpens: ledger.Duration(2 * time.Hour), JoinProof: "altcha", ProofMaxNumber: 3000}
	other := ledger.Sale{Name: "other", Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true,
		LineOpens: ledger.Duration(2 * time.Hour), JoinProof: "altcha", ProofMaxNumber: 3000}
	plain := ledger.Sale{Name: "free", Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)}
	cfgA := gatetest.Config(t, sale, other, plain)
	cfgA.NATSListen = "127.0.0.1:0"
	a := gatetest.Start(t, cfgA)
	cfgB := gatetest.Config(t)
	cfgB.NATSURL = a.NATSURL()
	cfgB.NoDrain = true
	b := gatetest.Start(t, cfgB)
	for _, g := range []*serve.Server{a, b} {
		gatetest.Eventually(t, 10*time.Second, "the rooms to open", func() bool {
			return g.Rooms().Room("drop") != nil && g.Rooms().Room("other") != nil
		})
	}
	baseA, baseB, c := "http://"+a.APIAddr(), "http://"+b.APIAddr(), gatetest.Client()

	ch := gatetest.Get(t, c, baseB+"/v1/sales/drop/line/challenge")
	if ch.Status != 200 || ch.Str("algorithm") != "SHA-256" || ch.Body["maxnumber"] != float64(3000) ||
		len(ch.Str("challenge")) != 64 || len(ch.Str("signature")) != 64 || !strings.Contains(ch.Str("salt"), "expires=") {
		t.Fatalf("challenge: %d %s", ch.Status, ch.Raw)
	}
	if v := gatetest.Get(t, c, baseA+"/v1/sales/drop"); !strings.Contains(v.Raw, `"join_proof":"altcha"`) || !strings.Contains(v.Raw, `"challenge_url":"/v1/sales/drop/line/challenge"`) {
		t.Fatalf("the sale does not tell its proof: %s", v.Raw)
	}
	wantProblem(t, "the challenge of a line without proof", gatetest.Get(t, c, baseA+"/v1/sales/free/line/challenge"), 404, "not_found")
	if a := joinBuyer(t, c, baseA, "free", "anyone"); a.Status != 201 {
		t.Fatalf("a line without proof: %d %s", a.Status, a.Raw)
	}

	good := altchaSolve(t, ch) // made by gate B, shown to gate A: one key for the sale
	raw, _ := base64.StdEncoding.DecodeString(good)
	var p map[string]any
	json.Unmarshal(raw, &p)
	edit := func(k string, v any) string {
		q := map[string]any{}
		for kk, vv := range p {
			q[kk] = vv
		}
		q[k] = v
		b, _ := json.Marshal(q)
		return base64.StdEncoding.EncodeToString(b)
	}
	otherCh := gatetest.Get(t, c, baseA+"/v1/sales/other/line/challenge")
	wantProblem(t, "no proof", joinWithProof(t, c, baseA, "drop", "alice", ""), 428, "proof_required")
	wantProblem(t, "a wrong number", joinWithProof(t, c, baseA, "drop", "alice", edit("number", p["number"].(float64)+1)), 403, "bad_proof")
	wantProblem(t, "a forged signature", joinWithProof(t, c, baseA, "drop", "alice", edit("signature", strings.Repeat("0", 64))), 403, "bad_proof")
	wantProblem(t, "another sale's proof", joinWithProof(t, c, baseA, "drop", "alice", altchaSolve(t, otherCh)), 403, "bad_proof")
	wantProblem(t, "garbage", joinWithProof(t, c, baseA, "drop", "alice", "bm90IGEgcHJvb2Y="), 403, "bad_proof")
	if n := lineMsgs(t, a.RoomStore(), "drop"); n != 0 {
		t.Fatalf("refused joins stored %d tickets", n)
	}

	alice := joinWithProof(t, c, baseA, "drop", "alice", good)
	if alice.Status != 201 {
		t.Fatalf("a join with a good proof: %d %s", alice.Status, alice.Raw)
	}
	if again := joinWithProof(t, c, baseB, "drop", "alice", good); again.Status != 200 || again.Str("ticket_id") != alice.Str("ticket_id") {
		t.Fatalf("alice's retry with her proof, on the other gate: %d %s", again.Status, again.Raw)
	}
	wantProblem(t, "the proof spent, shown to the other gate", joinWithProof(t, c, baseB, "drop", "mallory", good), 403, "bad_proof")
	wantProblem(t, "the proof spent, shown to the same gate", joinWithProof(t, c, baseA, "drop", "mallory", good), 403, "bad_proof")

	// The join form's field, as ALTCHA's widget posts it.
	form := url.Values{"buyer_id": {"bob"}, "altcha": {altchaSolve(t, gatetest.Get(t, c, baseA+"/v1/sales/drop/line/challenge"))}}
	if a := join(t, c, baseA, "drop", form.Encode(), "application/x-www-form-urlencoded"); a.Status != 201 || a.Str("buyer_id") != "bob" {
		t.Fatalf("a form join with the altcha field: %d %s", a.Status, a.Raw)
	}
	if n := lineMsgs(t, a.RoomStore(), "drop"); n != 2 {
		t.Fatalf("the line holds %d tickets, want alice's and bob's", n)
	}
	if v := gatetest.Counter(t, a.Registry(), "sluice_line_proofs_total", "outcome", "used"); v != 1 {
		t.Fatalf("gate A counted %v spent proofs shown again, want 1", v)
	}
}

// A buyer holding a ticket who joins again with a freshly solved proof (a
// reload, a second tab) gets the ticket back and keeps the solution: it
// was not spent, so it still buys another buyer's ticket.
func TestRejoinWithAFreshProofKeepsIt(t *testing.T) {
	sale := ledger.Sale{Name: "drop", Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true,
		LineOpens: ledger.Duration(2 * time.Hour), JoinProof: "altcha", ProofMaxNumber: 3000}
	g := gatetest.Start(t, gatetest.Config(t, sale))
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	solve := func() string { return altchaSolve(t, gatetest.Get(t, c, base+"/v1/sales/drop/line/challenge")) }

	alice := joinWithProof(t, c, base, "drop", "alice", solve())
	if alice.Status != 201 {
		t.Fatalf("alice's join: %d %s", alice.Status, alice.Raw)
	}
	fresh := solve()
	again := joinWithProof(t, c, base, "drop", "alice", fresh)
	if again.Status != 200 || again.Str("ticket_id") != alice.Str("ticket_id") {
		t.Fatalf("alice's join with a fresh proof: %d %s, want 200 and her ticket", again.Status, again.Raw)
	}
	wantProblem(t, "alice's join with no proof", joinWithProof(t, c, base, "drop", "alice", ""), 428, "proof_required")
	bob := joinWithProof(t, c, base, "drop", "bob", fresh)
	if bob.Status != 201 || bob.Str("ticket_id") == alice.Str("ticket_id") {
		t.Fatalf("bob's join with the solution alice showed while holding a ticket: %d %s, want 201 and a ticket: it was not spent", bob.Status, bob.Raw)
	}
	wantProblem(t, "the solution, spent by bob, shown by carol", joinWithProof(t, c, base, "drop", "carol", fresh), 403, "bad_proof")
	if n := lineMsgs(t, g.RoomStore(), "drop"); n != 2 {
		t.Fatalf("the line holds %d records, want alice's and bob's tickets", n)
	}
	for outcome, want := range map[string]float64{"ok": 2, "held": 1, "used": 1} {
		if v := gatetest.Counter(t, g.Registry(), "sluice_line_proofs_total", "outcome", outcome); v != want {
			t.Errorf("sluice_line_proofs_total{outcome=%q} = %v, want %v", outcome, v, want)
		}
	}
}
