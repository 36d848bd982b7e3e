package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/browsertest"
	"sluice/internal/testkit/gatetest"
)

// sluice pages export writes the built-in pages; edited, they are a
// gate's pages with --pages; a custom waiting page that keeps {{script .}}
// keeps the page's behaviour, in Chromium: it follows its ticket to the
// buyer's turn and buys; a page that does not parse stops the start.
func TestOwnPages(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"pages", "export", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"waiting.html", "join.html", "problem.html"} {
		if !strings.Contains(out.String(), filepath.Join(dir, f)) {
			t.Errorf("export did not write %s: %s", f, out.String())
		}
	}
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sold-out.html", `<!doctype html><title>Gone</title><h1>{{.Sale}}: all gone, see you next drop</h1>`)
	write("waiting.html", `<!doctype html><html><head><title>Queue · {{.Sale}}</title>{{style}}</head><body>
<h1 class="brand">The Example Shop queue</h1>
<p>You are number <span id="position">{{.Position}}</span>.</p>
<p id="turn" hidden><button id="buy">Buy now</button></p>
<p id="result"></p>
{{script .}}
</body></html>`)

	b := browsertest.New(t)
	cfg := gatetest.Config(t, ledger.Sale{Name: "gone", Stock: 1},
		ledger.Sale{Name: "drop", Stock: 3, StartsAt: time.Now().Add(3 * time.Second), WaitingRoom: true, LineOpens: ledger.Duration(time.Hour)})
	cfg.Pages = dir
	g := gatetest.Start(t, cfg)
	api, c := "http://"+g.APIAddr(), gatetest.Client()

	gatetest.Order(t, c, api, "gone", "first", "")
	req, _ := http.NewRequest("POST", api+"/v1/sales/gone/orders", strings.NewReader(`{"buyer_id":"late"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/html")
	if a := gatetest.Do(t, c, req); a.Status != 410 || !strings.Contains(a.Raw, "gone: all gone, see you next drop") {
		t.Errorf("own sold-out page: %d %s", a.Status, a.Raw)
	}

	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room("drop") != nil })
	req, _ = http.NewRequest("POST", api+"/v1/sales/drop/line", strings.NewReader(`{"buyer_id":"web-buyer"}`))
	req.Header.Set("Content-Type", "application/json")
	j := gatetest.Do(t, c, req)
	if j.Status != 201 {
		t.Fatalf("join: %d %s", j.Status, j.Raw)
	}
	b.Do(t, "open the own waiting page", chromedp.Navigate(api+j.Header.Get("Location")))
	if h := browsertest.Eval[string](t, b, `document.querySelector("h1.brand").textContent`); h != "The Example Shop queue" {
		t.Fatalf("not the own page: %q", h)
	}
	b.WaitFor(t, "the turn", `!document.getElementById("turn").hidden`, 30*time.Second)
	b.Do(t, "buy", chromedp.Click("#buy"))
	b.WaitFor(t, "the order", `document.getElementById("result").dataset.status === "confirmed"`, 20*time.Second)
	if errs := b.Errors(); len(errs) > 0 {
		t.Fatalf("the page logged errors: %v", errs)
	}

	// A page that does not parse: the gate does not start, and says where.
	write("waiting.html", "<p>\n{{.Position}\n")
	bad := gatetest.Config(t)
	bad.Pages = dir
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := serve.Start(ctx, bad)
	if err == nil {
		_ = s.Shutdown(ctx)
		t.Fatal("a gate started with a page that does not parse")
	}
	if !strings.Contains(err.Error(), "waiting.html:2") {
		t.Errorf("the refusal does not name the line: %v", err)
	}
}
