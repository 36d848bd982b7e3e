package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/waitingroom/line"
	"sluice/internal/waitingroom/linelog"
)

// A gate that serves a line's log whose draw is made, and will not give
// the draw list, does not have the log verified without it: sluice line
// verify says it cannot read the list and exits 1. The same gate giving
// the list has the log verify (exit 0), so what is refused is the
// missing list alone.
func TestLineVerifyWantsTheDrawListOnceDrawn(t *testing.T) {
	seed, log, hashes := drawnLog(t)
	n := len(hashes)
	var giveDraw atomic.Bool
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch req.URL.Path {
		case "/v1/sales/drop/line/log":
			_ = json.NewEncoder(w).Encode(logPage{Sale: "drop", From: 1, Total: len(log), Records: log})
		case "/v1/sales/drop/draw":
			if !giveDraw.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"reason":"unavailable"}`)
				return
			}
			fmt.Fprintf(w, `{"commitment":%q,"seed":%q,"sealed":true,"tickets":%d}`, seed.Commitment(), seed.Hex(), n)
		case "/v1/sales/drop/draw/tickets":
			b, _ := json.Marshal(hashes)
			fmt.Fprintf(w, `{"total":%d,"offset":0,"ticket_hashes":%s}`, n, b)
		default:
			http.NotFound(w, req)
		}
	}))
	defer gate.Close()
	dir := t.TempDir()
	code, out, errOut := runBinary(t, dir, nil, "line", "verify", "drop", "--target", gate.URL, "--timeout", "20s")
	if code != 1 || !strings.Contains(errOut, "the draw list cannot be read") || strings.Contains(out, "verifies") {
		t.Fatalf("without the draw list: exit %d, want 1 and why:\n%s%s", code, out, errOut)
	}
	t.Logf("without the draw list: %s", strings.TrimSpace(errOut))
	giveDraw.Store(true)
	code, out, errOut = runBinary(t, dir, nil, "line", "verify", "drop", "--target", gate.URL, "--timeout", "20s")
	if code != 0 || !strings.Contains(out, "the draw list is the log's") {
		t.Fatalf("with the draw list: exit %d\n%s%s", code, out, errOut)
	}
}

// A log saved from one sale and checked as another's is refused: its
// page names its sale (a buyer handed a clean log of another sale would
// otherwise read that their sale verifies).
func TestLineVerifyRefusesAnotherSalesLog(t *testing.T) {
	_, log, _ := drawnLog(t)
	dir := t.TempDir()
	saved := filepath.Join(dir, "log.json")
	b, _ := json.Marshal(logPage{Sale: "drop", From: 1, Total: len(log), Records: log})
	if err := os.WriteFile(saved, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runBinary(t, dir, nil, "line", "verify", "drop", "--log", saved)
	if code != 0 || !strings.Contains(out, "line of drop verifies") {
		t.Fatalf("drop's log checked as drop's: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runBinary(t, dir, nil, "line", "verify", "sale-b", "--log", saved)
	if code != 1 || !strings.Contains(errOut, `is the log of sale "drop", not of sale-b`) || strings.Contains(out, "verifies") {
		t.Fatalf("drop's log checked as sale-b's: exit %d\n%s%s", code, out, errOut)
	}
}

// drawnLog is a line's log as a gate writes it: three tickets and the
// draw; with its seed and the drawn tickets' hashes in position order.
func drawnLog(t *testing.T) (line.Seed, []linelog.Entry, []string) {
	t.Helper()
	seed, err := line.NewSeed()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	r := linelog.NewReplay(seed)
	var log []linelog.Entry
	apply := func(e linelog.Entry) { log = r.Apply(log, e) }
	apply(linelog.Entry{At: t0, Kind: linelog.KindCommitment, Commitment: seed.Commitment()})
	for i := range 3 {
		id, _ := line.NewTicketID()
		apply(linelog.Entry{At: t0.Add(time.Second), Kind: linelog.KindJoin, LineSeq: uint64(i + 1), Ticket: line.TicketHash(id)})
	}
	apply(linelog.Entry{At: t0.Add(2 * time.Second), Kind: linelog.KindCover, PaceSeq: 1, Covers: &linelog.Covers{LineSeq: 3}})
	apply(linelog.Entry{At: t0.Add(3 * time.Second), Kind: linelog.KindDraw, LineSeq: 4, Seed: seed.Hex()})
	apply(linelog.Entry{At: t0.Add(4 * time.Second), Kind: linelog.KindCover, PaceSeq: 2, Covers: &linelog.Covers{LineSeq: 4}})
	if v := r.Violation(); v != nil {
		t.Fatal(v)
	}
	keys, _, _ := r.Book().Drawn(0, 10, nil)
	var hashes []string
	for _, k := range keys {
		hashes = append(hashes, linelog.HashString(r.Book().HashOf(k)))
	}
	return seed, log, hashes
}
