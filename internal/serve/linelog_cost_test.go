package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testbin"
	"sluice/internal/testkit/testenv"
	"sluice/internal/waitingroom"
	"sluice/internal/waitingroom/line"
	"sluice/internal/waitingroom/linelog"
)

// What the line's public log costs: a line of tickets joined before the
// start (20,000 here; SLUICE_LINELOG_TICKETS=300000 for the figures of
// docs/performance.md), drawn, its first stock of turns claimed and
// ordered with their passes; then the time a gate takes to open the
// sale's log at its first read, to download it page by page, to verify
// it, and the memory the gate holds for it.
func TestLineLogCost(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a line of thousands of tickets: not in -short")
	}
	n := 20_000
	if v := os.Getenv("SLUICE_LINELOG_TICKETS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			t.Fatalf("SLUICE_LINELOG_TICKETS=%q", v)
		}
	}
	testenv.Exclusive(t) // fills a big line, and measures time
	stock := int64(max(20, n/300))
	const token = "admin-token-for-tests"
	cfg := gatetest.Config(t, ledger.Sale{Name: "big", Stock: stock, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true,
		LineOpens: ledger.Duration(2 * time.Hour), LineLimit: int64(n), ClaimWindow: ledger.Duration(time.Minute)})
	cfg.NATSListen, cfg.AdminToken = "127.0.0.1:0", token
	s := gatetest.Start(t, cfg)
	c := gatetest.Client()
	api := "http://" + s.APIAddr()
	fillLine(t, s.NATSURL(), "big", n)
	gatetest.Admin(t, c, s.OpsAddr(), "PATCH", "/admin/sales/big", token,
		`{"starts_at":"`+time.Now().Add(200*time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`)
	room := s.Rooms().Room("big")
	gatetest.Eventually(t, 60*time.Second, "the line drawn and offered", func() bool {
		return room.Book.State(time.Now(), 0).Offered >= stock
	})
	for p := int64(1); p <= stock; p++ {
		buyer, key, _ := room.Book.BuyerAt(p)
		var tk gatetest.Answer
		gatetest.Eventually(t, 30*time.Second, "a pass", func() bool {
			tk = ticketOf(t, c, api, key.String(), buyer)
			return tk.Str("state") == "your_turn"
		})
		if o := orderWithPass(t, c, api, "big", buyer, tk.Str("pass"), ""); o.Status != 202 {
			t.Fatalf("order at %d: %d %s", p, o.Status, o.Raw)
		}
	}
	gatetest.Eventually(t, 30*time.Second, "the orders placed in the log", func() bool {
		return room.Placed().Covers.OrderSeq >= uint64(stock)
	})

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	start := time.Now()
	gatetest.Eventually(t, 5*time.Minute, "the gate to open the log", func() bool {
		return gatetest.Get(t, c, api+"/v1/sales/big/line/log?limit=1").Status == 200
	})
	opened := time.Since(start)
	held := int64(heap()) - int64(before)

	start = time.Now()
	raw := downloadLog(t, c, api, "big")
	downloaded := time.Since(start)
	size := 0
	for _, r := range raw {
		size += len(r)
	}
	start = time.Now()
	entries := decodeLog(t, raw)
	sum, err := linelog.Verify(entries, nil)
	verified := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Tickets != int64(n) || sum.PassOrders != stock {
		t.Fatalf("the log says %+v; want %d tickets and %d orders with a pass", sum, n, stock)
	}
	t.Logf("a line of %d tickets, %d sold with passes: a log of %d records, %.1f MB of JSON (%d B a record)", n, stock, len(raw),
		float64(size)/1e6, size/len(raw))
	t.Logf("the gate opens it (first read until ready) in %v, holding %.1f MB for it (%d B a ticket)", opened.Round(time.Millisecond),
		float64(held)/1e6, held/int64(n))
	t.Logf("downloaded in %v (pages of 10,000), decoded and verified in %v: %v in all", downloaded.Round(time.Millisecond),
		verified.Round(time.Millisecond), (opened + downloaded + verified).Round(time.Millisecond))
	// As a buyer runs it: the binary, reading the log and the draw.
	bin := testbin.Path(t)
	start = time.Now()
	cmd := exec.Command(bin, "line", "verify", "big", "--target", api)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("sluice line verify: %v\n%s", err, out.String())
	}
	t.Logf("sluice line verify big --target %s: %v\n%s", api, time.Since(start).Round(time.Millisecond), out.String())
}

// downloadLog reads a sale's whole log as a client does, page by page,
// without the OpenAPI checks of gatetest.Get.
func downloadLog(t *testing.T, c *http.Client, api, sale string) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for {
		resp, err := c.Get(fmt.Sprintf("%s/v1/sales/%s/line/log?from=%d&limit=10000", api, sale, len(out)+1))
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Records []json.RawMessage `json:"records"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("a page from %d: %d %v", len(out)+1, resp.StatusCode, err)
		}
		out = append(out, page.Records...)
		if len(page.Records) < 10000 {
			return out
		}
	}
}

// fillLine joins n buyers to a sale's line as Join writes tickets, fast.
func fillLine(t *testing.T, natsURL, sale string, n int) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id, _ := line.NewTicketID()
		buyer := fmt.Sprint("buyer-", i)
		data, _ := json.Marshal(struct {
			Ticket string `json:"ticket"`
			Buyer  string `json:"buyer"`
		}{id, buyer})
		if _, err := js.PublishAsync(waitingroom.LineBuyerSubject(sale, buyer), data); err != nil {
			t.Fatal(err)
		}
		if i%4000 == 3999 {
			<-js.PublishAsyncComplete()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("the line's tickets were not all stored")
	}
}
