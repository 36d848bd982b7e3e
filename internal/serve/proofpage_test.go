package serve_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"sluice/internal/ledger"
	"sluice/internal/proof"
	"sluice/internal/testkit/browsertest"
	"sluice/internal/testkit/gatetest"
)

// The join page of a line with a proof of work solves it in headless
// Chromium (WebCrypto in a Web Worker, with a progress bar) and joins;
// the gate takes the solution. At the default difficulty, so that the
// solve time it logs is the one a buyer's browser spends: the README's
// figure is the median of SLUICE_PROOF_SOLVES of them (default 3).
func TestJoinProofInChromium(t *testing.T) {
	b := browsertest.New(t)
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: 4, StartsAt: time.Now().Add(time.Hour),
		WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour), JoinProof: "altcha"})
	s := gatetest.Start(t, cfg)
	api := "http://" + s.APIAddr()
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return s.Rooms().Room("drop") != nil })
	solves := 3
	if n, err := strconv.Atoi(os.Getenv("SLUICE_PROOF_SOLVES")); err == nil && n > 0 {
		solves = n
	}
	var ms []float64
	for i := range solves {
		buyer := fmt.Sprint("web-", i)
		b.Do(t, "open the line", chromedp.Navigate(api+"/v1/sales/drop/line"))
		b.Do(t, "join", chromedp.SendKeys("#buyer_id", buyer), chromedp.Click("#join"))
		waitAcrossNavigation(t, b, `document.getElementById("position") !== null`, 60*time.Second)
		v := browsertest.Eval[string](t, b, `sessionStorage.getItem("sluice-solve-ms") || ""`)
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("no solve time in the page: %q", v)
		}
		ms = append(ms, f)
		tk := gatetest.Get(t, gatetest.Client(), api+"/v1/sales/drop/line")
		if tk.Body["line_length"] == nil {
			t.Fatalf("the line: %s", tk.Raw)
		}
	}
	if n := lineMsgs(t, s.RoomStore(), "drop"); n != uint64(solves) {
		t.Fatalf("the line holds %d tickets after %d joins from the page", n, solves)
	}
	if v := gatetest.Counter(t, s.Registry(), "sluice_line_proofs_total", "outcome", "ok"); v != float64(solves) {
		t.Fatalf("proofs taken: %v, want %d", v, solves)
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Fatalf("the page logged errors: %v", errs)
	}
	slices.Sort(ms)
	t.Logf("proof of work at proof_max_number %d in headless Chromium: median %.0f ms over %d solves (min %.0f, max %.0f)",
		proof.DefaultMaxNumber, ms[len(ms)/2], len(ms), ms[0], ms[len(ms)-1])
}

// waitAcrossNavigation waits until expr is true in the page, through the
// navigations that end an evaluation (the form's submit).
func waitAcrossNavigation(t testing.TB, b *browsertest.Browser, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(b.Ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: %v", expr, last)
}

// A browser signed in to the shop (its token in an HttpOnly cookie) joins
// from the join page, which asks no buyer id, waits, and buys: the form
// and the waiting page's order carry the cookie, and the buyer is the
// token's sub. Without the cookie the join is refused.
func TestTokenCookieInChromium(t *testing.T) {
	b := browsertest.New(t)
	shop := newShop(t)
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: 1, StartsAt: time.Now().Add(time.Hour),
		WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)})
	cfg.AdminToken = "admin-token-for-tests"
	cfg.BuyerToken.JWKSURL = shop.jwks.URL
	cfg.BuyerToken.Cookie = "shop_session"
	s := gatetest.Start(t, cfg)
	api, c := "http://"+s.APIAddr(), gatetest.Client()
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return s.Rooms().Room("drop") != nil })

	b.Do(t, "open the line", chromedp.Navigate(api+"/v1/sales/drop/line"))
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll("#buyer_id").length`); n != 0 {
		t.Fatalf("the join page asks a buyer id where the token names the buyer")
	}
	b.Do(t, "join signed out", chromedp.Click("#join"))
	waitAcrossNavigation(t, b, `document.body.innerText.includes("Sign in")`, 20*time.Second)

	httpOnly := true
	token := shop.token(t, "signed-in-buyer", true, time.Hour)
	if _, err := chromedp.Call(b.Ctx, network.SetCookie, network.SetCookieParams{Name: "shop_session",
		Value: token, URL: api, HTTPOnly: &httpOnly}); err != nil {
		t.Fatal(err)
	}
	// The start comes soon after the join: the page polls at the start.
	gatetest.Admin(t, c, s.OpsAddr(), "PATCH", "/admin/sales/drop", cfg.AdminToken,
		`{"starts_at":"`+time.Now().Add(3*time.Second).UTC().Format(time.RFC3339Nano)+`"}`)
	b.Do(t, "open the line", chromedp.Navigate(api+"/v1/sales/drop/line"))
	b.Do(t, "join signed in", chromedp.Click("#join"))
	waitAcrossNavigation(t, b, `document.getElementById("position") !== null`, 20*time.Second)
	b.WaitFor(t, "the turn", `!document.getElementById("turn").hidden`, 30*time.Second)
	b.Do(t, "buy", chromedp.Click("#buy"))
	b.WaitFor(t, "the order", `document.getElementById("result").dataset.order !== undefined`, 20*time.Second)
	order := browsertest.Eval[string](t, b, `document.getElementById("result").dataset.order`)
	// The order is the token's buyer's: shown whole with the token (in
	// the cookie, as the page sends it), its status only without.
	req, _ := http.NewRequest("GET", api+"/v1/orders/"+order, nil)
	req.AddCookie(&http.Cookie{Name: "shop_session", Value: token})
	if st := gatetest.Do(t, c, req); st.Status != 200 || st.Str("buyer_id") != "signed-in-buyer" {
		t.Fatalf("the page's order, with the buyer's token: %s", st.Raw)
	}
	if st := gatetest.Get(t, c, api+"/v1/orders/"+order); st.Status != 200 || st.Str("status") == "" || st.Str("buyer_id") != "" {
		t.Fatalf("the page's order, without a token: %s", st.Raw)
	}
	if v := gatetest.Counter(t, s.Registry(), "sluice_line_joins_total", "sale", "drop", "outcome", "unauthorized"); v != 1 {
		t.Fatalf("signed-out joins counted %v, want 1", v)
	}
}
