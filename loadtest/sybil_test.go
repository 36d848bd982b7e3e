package loadtest_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
	"sluice/loadtest"
)

// --sybil: one client joins many ids, solving the line's proofs of work;
// the report counts its tickets, its share of the line and of the stock,
// and the CPU its proofs cost, and the outcome check still holds.
func TestRehearseSybil(t *testing.T) {
	testenv.Exclusive(t)
	const buyers, sybils, stock = 150, 150, 30
	cfg := gatetest.Config(t, ledger.Sale{Name: "room", Stock: stock, StartsAt: time.Now().Add(4 * time.Second),
		WaitingRoom: true, BackendRate: 100, PassTTL: ledger.Duration(10 * time.Second),
		JoinProof: ledger.JoinProofAltcha, ProofMaxNumber: 5000})
	g := gatetest.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := loadtest.RehearseRoom(ctx, loadtest.RoomOptions{Target: "http://" + g.APIAddr(), Sale: "room",
		Buyers: buyers, Before: 3 * time.Second, Connections: 64, Seed: 7, Sybil: sybils, SybilWorkers: 2})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Log("\n" + text.String())
	s := rep.Sybil
	if s == nil || !s.Proof || s.IDs != sybils || s.Joined == 0 || s.Joined > sybils || s.CPUSeconds <= 0 || s.CPUPerTicket <= 0 || s.HonestProofMedianMs <= 0 {
		t.Fatalf("sybil report: %+v", s)
	}
	if want := float64(s.Joined) / float64(rep.Joined); s.ShareOfLine != want || s.Served > stock || s.ShareOfStock != float64(s.Served)/stock {
		t.Fatalf("shares: %+v with %d drawn", s, rep.Joined)
	}
	if rep.Served != stock || !rep.Passed {
		t.Fatalf("served %d of %d, passed %v", rep.Served, stock, rep.Passed)
	}
	if !strings.Contains(text.String(), "sybil: one client joined") || !strings.Contains(text.String(), "CPU s") {
		t.Errorf("the text report lacks the sybil's lines")
	}
	if n := gatetest.Counter(t, g.Registry(), "sluice_line_proofs_total", "outcome", "ok"); int(n) != rep.Joined {
		t.Errorf("the gate took %v proofs for %d tickets", n, rep.Joined)
	}
}
