package serve_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sluice/admission"
	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/browsertest"
	"sluice/internal/testkit/gatetest"
)

// GET /status is the console's data: every sale's figures, JetStream's
// and the process's, and the answers per second of the last minute.
func TestStatusJSON(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 5, QueueBound: 100})
	s := gatetest.Start(t, cfg)
	c := gatetest.Client()
	for i := range 8 {
		gatetest.Order(t, c, "http://"+s.APIAddr(), "s1", fmt.Sprint("b", i), "")
	}
	var st serve.Status
	gatetest.Eventually(t, 10*time.Second, "two samples with the orders", func() bool {
		st = readStatus(t, c, s)
		return len(st.Sales) == 1 && len(st.Sales[0].AnswersAt) >= 2 && st.Sales[0].Confirmed != nil && *st.Sales[0].Confirmed == 5
	})
	sale := st.Sales[0]
	if sale.Sale != "s1" || sale.Admitted != 5 || sale.Answers["admitted"] != 5 || sale.Answers["sold_out"] != 3 || sale.QueueBound != 100 {
		t.Fatalf("sale %+v", sale)
	}
	if !sale.DrainAttached || !sale.KeepingUp || sale.State != "sold_out" ||
		(sale.DrainState != serve.DrainKeepingUp && sale.DrainState != serve.DrainIdle) {
		t.Fatalf("drain attached %v, keeping up %v (%s), state %s", sale.DrainAttached, sale.KeepingUp, sale.DrainState, sale.State)
	}
	// Three buyers told "sold out" are answered, not failed.
	if st.ServerErrors != 0 || st.ServerErrorsLastMinute != 0 {
		t.Fatalf("%d server errors (%d in the last minute) after refusals only", st.ServerErrors, st.ServerErrorsLastMinute)
	}
	var sum float64
	for _, v := range sale.AnswersPerSecond["admitted"] {
		sum += v
	}
	if len(sale.AnswersPerSecond["admitted"]) != len(sale.AnswersAt) || sum <= 0 {
		t.Fatalf("admitted per second %v at %v", sale.AnswersPerSecond["admitted"], sale.AnswersAt)
	}
	if !st.JetStream.Connected || !st.JetStream.Embedded || st.JetStream.Streams < 1 || !st.Ready || st.Admin {
		t.Fatalf("jetstream %+v ready %v admin %v", st.JetStream, st.Ready, st.Admin)
	}
	// The start's look-ups of streams not made yet count as JetStream API
	// errors; the console counts from the start, where a gate that works
	// has none.
	if j := st.JetStream; j.APIErrorsSinceStart != 0 || j.APIErrorsSinceStart > j.APIErrors || j.APITotalSinceStart > j.APITotal {
		t.Fatalf("API errors %d of %d since the start, %d of %d in all", j.APIErrorsSinceStart, j.APITotalSinceStart, j.APIErrors, j.APITotal)
	}
	if st.Waiters != 0 || st.MaxWaiters != admission.DefaultMaxWaiters {
		t.Fatalf("waiters %d of %d", st.Waiters, st.MaxWaiters)
	}
	if p := st.Process; p.Goroutines <= 0 || p.HeapBytes == 0 || p.Role != "gate+drain" || p.API != s.APIAddr() {
		t.Fatalf("process %+v", p)
	}
	// The text index stays for clients that do not ask for HTML.
	if a := gatetest.Get(t, c, "http://"+s.OpsAddr()+"/"); !strings.Contains(a.Raw, "GET /status") {
		t.Fatalf("index: %s", a.Raw)
	}
}

func readStatus(t *testing.T, c *http.Client, s *serve.Server) serve.Status {
	t.Helper()
	resp, err := c.Get("http://" + s.OpsAddr() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/json" {
		t.Fatalf("status: %d %s", resp.StatusCode, ct)
	}
	var st serve.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// The console in a real browser: it loads with no error, shows a sale's
// numbers moving during a burst, and changes the sale from the page with
// the admin token, only after the operator confirms; without the token,
// or when the operator cancels, nothing changes.
// SLUICE_SCREENSHOT_DIR=docs writes docs/console.png, taken mid-burst.
func TestConsoleInChromium(t *testing.T) {
	b := browsertest.New(t)
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: 150, QueueBound: 400})
	cfg.AdminToken = "console-secret"
	s := gatetest.Start(t, cfg)
	c := gatetest.Client()
	api := "http://" + s.APIAddr()
	field := func(name string) string {
		return `(document.querySelector('[data-sale="drop"] [data-field="` + name + `"]') || {}).textContent`
	}

	b.Do(t, "open the console", chromedp.Navigate("http://"+s.OpsAddr()+"/"))
	b.WaitFor(t, "the sale's card", field("admitted")+` === "0"`, 10*time.Second)

	// A burst paced over about three seconds: 200 buyers for 150 pairs.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var inner sync.WaitGroup
		for i := range 200 {
			inner.Add(1)
			go func() {
				defer inner.Done()
				gatetest.Order(t, c, api, "drop", fmt.Sprint("buyer-", i), "")
			}()
			time.Sleep(15 * time.Millisecond)
		}
		inner.Wait()
	}()
	b.WaitFor(t, "admitted moving", `Number(`+field("admitted")+`.replace(/,/g, "")) > 20`, 10*time.Second)
	b.WaitFor(t, "the answers chart", `Number(document.getElementById("chart-drop").dataset.points) > 0`, 5*time.Second)
	if dir := os.Getenv("SLUICE_SCREENSHOT_DIR"); dir != "" {
		time.Sleep(1200 * time.Millisecond) // a second sample into the burst
		b.Screenshot(t, filepath.Join(dir, "console.png"))
	}
	wg.Wait()
	b.WaitFor(t, "sold out", field("state")+` === "sold out" && `+field("admitted")+` === "150"`, 10*time.Second)
	b.WaitFor(t, "confirmed", field("confirmed")+` === "150"`, 10*time.Second)
	b.WaitFor(t, "the answers by reason", field("answers")+`.includes("sold_out 50")`, 5*time.Second)

	saleState := func() map[string]any { return gatetest.Get(t, c, api+"/v1/sales/drop").Body }
	msg := `document.getElementById("msg").textContent`

	// Without the token the admin API refuses, and the page says so.
	b.Do(t, "close without a token", chromedp.Click(`[data-sale="drop"] [data-action="close"]`))
	b.WaitFor(t, "the refusal", msg+`.startsWith("401 unauthorized")`, 5*time.Second)
	if st := saleState(); st["ends_at"] != nil || st["stock"] != 150.0 {
		t.Fatalf("changed without the token: %v", st)
	}

	b.Do(t, "type the token", chromedp.SendKeys("#token", "console-secret"))
	// Cancelling the confirmation changes nothing.
	b.Accept(false)
	b.Do(t, "raise the stock, then cancel",
		chromedp.SendKeys(`[data-sale="drop"] input[name="stock"]`, "160"),
		chromedp.Click(`[data-sale="drop"] [data-action="change"]`))
	b.WaitFor(t, "cancelled", msg+` === "Cancelled: nothing changed."`, 5*time.Second)
	if st := saleState(); st["stock"] != 150.0 {
		t.Fatalf("changed although cancelled: %v", st)
	}
	b.Accept(true)
	b.Do(t, "raise the stock", chromedp.Click(`[data-sale="drop"] [data-action="change"]`))
	b.WaitFor(t, "the stock raised", field("stock")+` === "160" && `+field("state")+` === "open"`, 5*time.Second)
	if st := saleState(); st["stock"] != 160.0 || st["state"] != "open" {
		t.Fatalf("after the change: %v", st)
	}
	b.Do(t, "close the sale", chromedp.Click(`[data-sale="drop"] [data-action="close"]`))
	b.WaitFor(t, "closed", field("state")+` === "closed"`, 5*time.Second)
	if a := gatetest.Order(t, c, api, "drop", "late-buyer", ""); a.Status != http.StatusForbidden || a.Str("reason") != "closed" {
		t.Fatalf("an order after closing from the console: %d %s", a.Status, a.Raw)
	}
	ds := b.Dialogs()
	if len(ds) != 4 || !strings.Contains(ds[3], "Close sale drop now?") {
		t.Fatalf("dialogs %q: each action asks first", ds)
	}
	for _, e := range b.Errors() {
		if !strings.Contains(e, "status of 401") { // the refusal the test asked for
			t.Fatalf("console error: %s", e)
		}
	}
}

// The console's alarms in a real browser. The drain is judged by the
// queue's trend: while the gate admits three times what the backend's
// pace drains, from the first seconds after the start, it says "falling
// behind", never "keeping up"; once the burst ends and the queue
// shrinks, "keeping up". Only the gate's own failures are errors: sold
// out, already ordered and busy answers are not, a join answered 503
// (the gate holds no more tickets) is, in red; JetStream's API errors
// ("not found" answers the gate asks for) are a figure, not an alarm.
func TestConsoleJudgesTheDrainAndCountsOnlyFailures(t *testing.T) {
	b := browsertest.New(t)
	cfg := gatetest.Config(t, ledger.Sale{Name: "paced", Stock: 1000, BackendRate: 20},
		ledger.Sale{Name: "tiny", Stock: 1, QueueBound: 1},
		ledger.Sale{Name: "line", Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)})
	cfg.AdminToken = "console-secret"
	cfg.Gate.LineMaxTickets = 1
	s := gatetest.Start(t, cfg)
	c := gatetest.Client()
	api, ops := "http://"+s.APIAddr(), s.OpsAddr()
	field := func(sale, name string) string {
		return `((document.querySelector('[data-sale="` + sale + `"] [data-field="` + name + `"]') || {}).textContent || "")`
	}
	b.Do(t, "open the console", chromedp.Navigate("http://"+ops+"/"))
	b.WaitFor(t, "the sale's card", field("paced", "admitted")+` === "0"`, 10*time.Second)

	// 60 orders a second for five seconds, the drain paced at 20.
	burst := make(chan struct{})
	go func() {
		defer close(burst)
		tick := time.NewTicker(time.Second / 60)
		defer tick.Stop()
		for i := range 300 {
			<-tick.C
			go gatetest.Order(t, c, api, "paced", fmt.Sprint("buyer-", i), "")
		}
	}()
	var seen []string
	drain := `document.querySelector('[data-sale="paced"] [data-field="drain"]')`
	for done := false; !done; {
		select {
		case <-burst:
			done = true
		case <-time.After(200 * time.Millisecond):
		}
		text := browsertest.Eval[string](t, b, `(`+drain+` || {}).textContent || ""`)
		if len(seen) == 0 || seen[len(seen)-1] != text {
			seen = append(seen, text)
		}
	}
	t.Logf("the drain during the burst: %q", seen)
	behind := false
	for _, text := range seen {
		if strings.HasPrefix(text, "keeping up") {
			t.Errorf("the console said %q while the queue grew", text)
		}
		behind = behind || strings.HasPrefix(text, "falling behind: queue +")
	}
	if !behind {
		t.Errorf("the console never said the drain was falling behind during the burst: %q", seen)
	}
	b.WaitFor(t, "the queue shrinking judged as keeping up", field("paced", "drain")+`.startsWith("keeping up: queue \u2212")`, 15*time.Second)

	// Refusals are answers, not errors.
	for _, buyer := range []string{"ann", "bob", "ann"} {
		gatetest.Order(t, c, api, "tiny", buyer, "") // 202, 410 sold out, 409 already ordered
	}
	wantProblem(t, "a join past --line-max-tickets", func() gatetest.Answer {
		joinBuyer(t, c, api, "line", "first")
		return joinBuyer(t, c, api, "line", "second")
	}(), 503, "unavailable")
	// A sale made from the admin API: its look-ups of what is not made
	// yet are JetStream API errors.
	gatetest.Admin(t, c, ops, "PUT", "/admin/sales/later", cfg.AdminToken, `{"stock":5}`)
	b.WaitFor(t, "the failure counted", `document.querySelector('[data-field="server_errors"]').textContent === "1 in the last minute, 1 since the start"`, 10*time.Second)
	if cls := browsertest.Eval[string](t, b, `document.querySelector('[data-field="server_errors"]').className`); cls != "bad" {
		t.Errorf("a 5xx in the last minute shows as %q, want bad", cls)
	}
	st := readStatus(t, c, s)
	if st.ServerErrors != 1 || st.ServerErrorsLastMinute != 1 {
		t.Errorf("status: %d server errors, %d in the last minute; want the one 503", st.ServerErrors, st.ServerErrorsLastMinute)
	}
	if st.JetStream.APIErrorsSinceStart == 0 {
		t.Fatalf("no JetStream API error since the start (%+v): this test cannot tell an alarm from a figure", st.JetStream)
	}
	b.WaitFor(t, "JetStream's API figures", `document.querySelector('[data-field="jetstream_api"]').textContent.includes("answered with an error")`, 5*time.Second)
	if cls := browsertest.Eval[string](t, b, `document.querySelector('[data-field="jetstream_api"]').className`); cls != "" {
		t.Errorf("JetStream's API errors (%d, not-found look-ups) shown as %q: not an alarm", st.JetStream.APIErrorsSinceStart, cls)
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Fatalf("console errors: %v", errs)
	}
}

// The console shows a sale with variants' left of each variant's stock,
// a sold-out one marked.
func TestConsoleShowsVariants(t *testing.T) {
	b := browsertest.New(t)
	s := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "drop", Variants: map[string]int64{"us9": 1, "us10": 3}}))
	api := "http://" + s.APIAddr()
	for i, v := range []string{"us9", "us10"} {
		if a := gatetest.OrderVariant(t, gatetest.Client(), api, "drop", fmt.Sprint("b", i), v, ""); a.Status != 202 {
			t.Fatalf("order %s: %d %s", v, a.Status, a.Raw)
		}
	}
	field := func(name string) string {
		return `((document.querySelector('[data-sale="drop"] [data-field="` + name + `"]') || {}).textContent || "")`
	}
	b.Do(t, "open the console", chromedp.Navigate("http://"+s.OpsAddr()+"/"))
	b.WaitFor(t, "each variant's left of its stock", field("variant-us9")+` === "0 of 1 left" && `+field("variant-us10")+` === "2 of 3 left"`, 10*time.Second)
	b.WaitFor(t, "the sold-out variant marked", `document.querySelector('[data-sale="drop"] [data-field="variant-us9"]').className === "warn" && `+
		`document.querySelector('[data-sale="drop"] [data-field="variant-us10"]').className === ""`, 5*time.Second)
}
