package serve_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// scrape reads /metrics over HTTP, as Prometheus does, and returns the
// value of each series of the named metrics, keyed by the series as the
// page writes it (name{labels}).
func scrape(t testing.TB, c *http.Client, ops string, names ...string) map[string]float64 {
	t.Helper()
	resp, err := c.Get("http://" + ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, n := range names {
			if strings.HasPrefix(line, n+"{") || strings.HasPrefix(line, n+" ") {
				i := strings.LastIndexByte(line, ' ')
				v, err := strconv.ParseFloat(line[i+1:], 64)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				got[line[:i]] = v
			}
		}
	}
	return got
}

// A gate restarted on its store says ready only once its waiting rooms
// are read and their gauges and counters show them: the first scrape
// after /readyz answers 200 has the passes issued, the claims and the
// tickets the durable records hold, not zeros until the first pace.
func TestRestartReadyWithTheLineCounted(t *testing.T) {
	const stock = 3
	dir := t.TempDir()
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: stock, StartsAt: time.Now().Add(time.Hour),
		WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)})
	cfg.DataDir = dir
	cfg.AdminToken = "admin-token-for-tests"
	first := gatetest.Start(t, cfg)
	c := gatetest.Client()
	api := "http://" + first.APIAddr()
	ids := map[string]string{}
	for i := range stock + 1 {
		buyer := fmt.Sprint("buyer-", i)
		a := joinBuyer(t, c, api, "drop", buyer)
		if a.Status != 201 {
			t.Fatalf("join: %d %s", a.Status, a.Raw)
		}
		ids[buyer] = a.Str("ticket_id")
	}
	gatetest.Admin(t, c, first.OpsAddr(), "PATCH", "/admin/sales/drop", cfg.AdminToken,
		`{"starts_at":"`+time.Now().Add(200*time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`)
	room := first.Rooms().Room("drop")
	gatetest.Eventually(t, 10*time.Second, "the turns", func() bool { return room.Book.State(time.Now(), 0).Offered >= stock })
	for p := int64(1); p <= stock; p++ { // each holder asks for the ticket: claims it
		buyer, _, _ := room.Book.BuyerAt(p)
		if tk := ticketOf(t, c, api, ids[buyer], buyer); tk.Str("state") != "your_turn" {
			t.Fatalf("position %d: %s", p, tk.Raw)
		}
	}
	series := []string{"sluice_line_passes_issued_total", "sluice_line_claims_total", "sluice_line_tickets"}
	var want map[string]float64
	gatetest.Eventually(t, 10*time.Second, "the counts on the first gate", func() bool {
		want = scrape(t, c, first.OpsAddr(), series...)
		return want[`sluice_line_claims_total{sale="drop"}`] == stock && want[`sluice_line_passes_issued_total{sale="drop"}`] == stock
	})
	if want[`sluice_line_tickets{sale="drop"}`] != stock+1 {
		t.Fatalf("before the restart: %v", want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// The same store, the sales from it; a refresh slow enough that a
	// gate which waited for its first pace to count would be seen.
	again := gatetest.Config(t)
	again.DataDir = dir
	again.Refresh = 3 * time.Second
	second := gatetest.Start(t, again)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get("http://" + second.OpsAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restarted gate never said ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := scrape(t, c, second.OpsAddr(), series...)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("first scrape after /readyz said 200: %s = %v, want %v as before the restart", k, got[k], v)
		}
	}
}
