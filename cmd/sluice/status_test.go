package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
)

// sluice status reads a running gate's ops listener and prints one line
// per sale; --json passes the gate's JSON through; a listener that is not
// there is an error, not an empty table.
func TestStatusCommand(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "alpha", Stock: 3, QueueBound: 50},
		ledger.Sale{Name: "beta", Stock: 10, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)})
	s := gatetest.Start(t, cfg)
	c := gatetest.Client()
	req, _ := http.NewRequest("POST", "http://"+s.APIAddr()+"/v1/sales/beta/line", strings.NewReader(`{"buyer_id":"early"}`))
	req.Header.Set("Content-Type", "application/json")
	if a := gatetest.Do(t, c, req); a.Status != http.StatusCreated {
		t.Fatalf("join beta's line: %d %s", a.Status, a.Raw)
	}
	for i := range 5 {
		gatetest.Order(t, c, "http://"+s.APIAddr(), "alpha", fmt.Sprint("b", i), "")
	}
	var out bytes.Buffer
	gatetest.Eventually(t, 10*time.Second, "alpha sold out and confirmed", func() bool {
		out.Reset()
		if err := run(context.Background(), []string{"status", "--ops", s.OpsAddr()}, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		return regexp.MustCompile(`(?m)^alpha +sold_out +- +3 +3 +3 +0 +0/50 `).MatchString(out.String()) &&
			strings.Contains(out.String(), "beta: waiting room, 1 of 1000 in line (drawn at the start), let in through 0, 0 passes out")
	})
	text := out.String()
	if !regexp.MustCompile(`(?m)^beta +upcoming +opens in (59m[0-9]+s|1h0m0s) +10 +0 +0 +10 +0 `).MatchString(text) {
		t.Fatalf("beta's line:\n%s", text)
	}
	if !strings.Contains(text, "sluice serve (gate+drain)") || !strings.Contains(text, "JetStream connected (embedded)") {
		t.Fatalf("header:\n%s", text)
	}
	if !regexp.MustCompile(`(?m)^alpha .*\((admitted|sold_out) [0-9]+, (admitted|sold_out) [0-9]+\)$|^alpha .* 0$`).MatchString(text) {
		t.Fatalf("alpha's answers:\n%s", text)
	}

	out.Reset()
	if err := run(context.Background(), []string{"status", "--json", "--ops", "http://" + s.OpsAddr()}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Sales []struct {
			Sale    string           `json:"sale"`
			Answers map[string]int64 `json:"answers"`
		} `json:"sales"`
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || len(st.Sales) != 2 || st.Sales[0].Answers["sold_out"] != 2 {
		t.Fatalf("--json: %v %s", err, out.String())
	}

	// --watch redraws until interrupted.
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	out.Reset()
	if err := run(ctx, []string{"status", "--watch", "--interval", "200ms", "--ops", s.OpsAddr()}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "SALE  "); n < 2 {
		t.Fatalf("--watch drew %d tables:\n%s", n, out.String())
	}

	err := run(context.Background(), []string{"status", "--ops", "127.0.0.1:1"}, io.Discard, io.Discard)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "is a gate running?") {
		t.Fatalf("no gate: %v", err)
	}
	if err := run(context.Background(), []string{"status", "extra"}, io.Discard, io.Discard); exitCode(err) != 2 {
		t.Fatalf("an extra argument: %v", err)
	}
}

// Requests held for a decision show in the header while there are any.
func TestStatusHeaderShowsHeldRequests(t *testing.T) {
	var buf bytes.Buffer
	writeStatus(&buf, serve.Status{Ready: true, Waiters: 3, MaxWaiters: 20000}, "127.0.0.1:9464")
	if !strings.Contains(buf.String(), "ready, 3 of 20000 requests held for a decision (Prefer: wait)") {
		t.Fatalf("header:\n%s", buf.String())
	}
	buf.Reset()
	writeStatus(&buf, serve.Status{Ready: true, MaxWaiters: 20000}, "127.0.0.1:9464")
	if strings.Contains(buf.String(), "held") {
		t.Fatalf("no request held, yet:\n%s", buf.String())
	}
}
