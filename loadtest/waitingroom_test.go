package loadtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
	"sluice/loadtest"
)

// A waiting-room rehearsal against a real gate: every drawn ticket holds
// the draw's position, the stock is served with passes and confirmed,
// nobody who joined after the start is served, and the report has its
// figures in text, JSON and HTML.
func TestRehearseWaitingRoom(t *testing.T) {
	testenv.Exclusive(t) // 1,500 buyers' goroutines and a gate: both cores
	const buyers, stock = 1500, 60
	cfg := gatetest.Config(t, ledger.Sale{Name: "room", Stock: stock, StartsAt: time.Now().Add(4 * time.Second),
		WaitingRoom: true, BackendRate: 40, QueueBound: 10, PassTTL: ledger.Duration(10 * time.Second), LineLimit: 5000})
	g := gatetest.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := loadtest.RehearseRoom(ctx, loadtest.RoomOptions{Target: "http://" + g.APIAddr(), Sale: "room",
		Buyers: buyers, Late: 30, Before: 3 * time.Second, Connections: 64, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Log("\n" + text.String())
	if !rep.Passed {
		t.Fatalf("the outcome check failed")
	}
	if rep.Joined != buyers || rep.Late != 30 || rep.Served != stock || rep.Confirmed != stock {
		t.Fatalf("joined %d late %d served %d confirmed %d; want %d, 30, %d, %d", rep.Joined, rep.Late, rep.Served, rep.Confirmed, buyers, stock, stock)
	}
	joined := 0
	for _, d := range rep.Deciles {
		joined += d.Joined
	}
	if joined != buyers || rep.ETAPoll.N == 0 || rep.TimeInLineP99 < rep.TimeInLineP50 || rep.ChiP <= 0 || rep.ChiP > 1 {
		t.Fatalf("figures: deciles hold %d joiners, %d poll estimates, time in line %v/%v, p %v", joined, rep.ETAPoll.N, rep.TimeInLineP50, rep.TimeInLineP99, rep.ChiP)
	}
	for _, want := range []string{"fairness among the drawn", "ETA accuracy at polls", "ok   draw verifies", "outcome check: passed"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the text report lacks %q", want)
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back["passed"] != true || back["fairness_deciles"] == nil {
		t.Fatalf("JSON report: %v %s", err, js.String())
	}
	var html bytes.Buffer
	if err := rep.WriteHTML(&html); err != nil || !strings.Contains(html.String(), `<svg id="fairness"`) {
		t.Fatalf("HTML report: %v", err)
	}
}
