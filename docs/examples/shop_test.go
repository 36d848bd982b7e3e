package examples_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sluice/admission"
	"sluice/internal/ledger"
	"sluice/internal/testkit/browsertest"
	"sluice/internal/testkit/gatetest"
)

// serveShop serves shop.html at / on its own loopback origin.
func serveShop(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, "shop.html")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return "http://" + ln.Addr().String()
}

// The example page, served from the shop's origin, joins a gate's line on
// another origin, waits for its turn and buys with the pass and its
// payload: CORS for real, in Chromium. A gate that does not allow the
// shop's origin is unreachable to the same page.
func TestShopPageAcrossOrigins(t *testing.T) {
	b := browsertest.New(t)
	shop := serveShop(t)
	sale := ledger.Sale{Name: "drop", Stock: 3, StartsAt: time.Now().Add(4 * time.Second), WaitingRoom: true, LineOpens: ledger.Duration(time.Hour)}
	cfg := gatetest.Config(t, sale)
	cfg.Gate.CORS = admission.CORS{Origins: []string{shop}}
	g := gatetest.Start(t, cfg)
	api := "http://" + g.APIAddr()
	c := gatetest.Client()
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })

	page := shop + "/?" + url.Values{"gate": {api}, "sale": {"drop"}, "buyer": {"web-buyer"}}.Encode()
	b.Do(t, "open the shop's page", chromedp.Navigate(page), chromedp.SetValue("#size", "L"), chromedp.Click("#go"))
	b.WaitFor(t, "the page in line", `["waiting", "ordered"].includes(document.getElementById("status").dataset.state)`, 10*time.Second)
	// The start: the draw lets the page's buyer in, and it buys. (The
	// page polls as the ticket says: before the draw, at the start.)
	b.WaitFor(t, "the order", `document.getElementById("status").dataset.state === "ordered"`, 30*time.Second)
	id := browsertest.Eval[string](t, b, `document.getElementById("status").dataset.order`)
	if loc := browsertest.Eval[string](t, b, `document.getElementById("status").dataset.orderUrl`); loc != "/v1/orders/"+id {
		t.Errorf("the page read Location %q: not exposed across origins?", loc)
	}
	// The order and its payload, as the ledger keeps them (the public
	// API shows the payload to a buyer proven by a token or a trusted
	// header only; this page's buyer is the body's).
	if o := gatetest.Get(t, c, api+"/v1/orders/"+id); o.Status != 200 || o.Str("order_id") != id {
		t.Fatalf("the page's order: %d %s", o.Status, o.Raw)
	}
	oid, err := ledger.ParseOrderID(id)
	if err != nil {
		t.Fatal(err)
	}
	o, err := g.Ledger().Lookup(context.Background(), oid)
	if err != nil || o.BuyerID != "web-buyer" {
		t.Fatalf("the page's order in the ledger: %+v %v", o, err)
	}
	var p map[string]any
	if err := json.Unmarshal(o.Payload, &p); err != nil || p["size"] != "L" || p["sku"] != "TEE-DROP-1" {
		t.Errorf("the page's payload: %s", o.Payload)
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Fatalf("the page logged errors: %v", errs)
	}

	// The same page against a gate that does not allow the shop's origin:
	// the browser refuses the answers, and nothing is joined.
	closed := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: 3})
	closed.Gate.CORS = admission.CORS{Origins: []string{"https://elsewhere.example"}}
	g2 := gatetest.Start(t, closed)
	page = shop + "/?" + url.Values{"gate": {"http://" + g2.APIAddr()}, "sale": {"drop"}, "buyer": {"web-buyer"}}.Encode()
	b.Do(t, "open the page against the closed gate", chromedp.Navigate(page), chromedp.Click("#go"))
	b.WaitFor(t, "the page to fail", `document.getElementById("status").dataset.state === "unreachable"`, 10*time.Second)
	if n := gatetest.StreamMsgs(t, g2.Ledger(), "drop"); n != 0 {
		t.Errorf("a page the gate does not allow placed %d orders", n)
	}
}
