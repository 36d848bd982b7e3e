package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/chromedp/chromedp"

	"sluice/internal/testkit/browsertest"
)

func sampleReport(t *testing.T) Report {
	t.Helper()
	srv := gateLike(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case "GET":
			w.Write([]byte(`{"sale":"s1","state":"open","stock":100,"remaining":40,"admitted":60,"confirmed":50,"queue_depth":10}`))
		default:
			w.WriteHeader(410)
			w.Write([]byte(`{"reason":"sold_out"}`))
		}
	})
	rep, err := Rehearse(context.Background(), Options{Config: Config{Target: srv.URL, Sale: "s1",
		Profile: Steps([]float64{100, 300}, time.Second)}, SampleEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestHTMLReportIsValidAndSelfContained(t *testing.T) {
	rep := sampleReport(t)
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var canvases int
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			if n.Data == "canvas" {
				canvases++
			}
			if n.Data == "link" || n.Data == "iframe" || n.Data == "img" {
				t.Errorf("<%s> in a self-contained report", n.Data)
			}
			for _, a := range n.Attr {
				if (a.Key == "src" || a.Key == "href") && a.Val != "" {
					t.Errorf("<%s %s=%q>: the report must fetch nothing", n.Data, a.Key, a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if canvases != 4 {
		t.Fatalf("%d charts, want 4", canvases)
	}
	if regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/`).Match(buf.Bytes()) {
		t.Fatal("the page names an outside address")
	}
	// The charts' data is in the page.
	m := regexp.MustCompile(`const report = (\{.*\});`).FindSubmatch(buf.Bytes())
	if m == nil {
		t.Fatal("no embedded data")
	}
	var back Report
	if err := json.Unmarshal(m[1], &back); err != nil {
		t.Fatalf("embedded data: %v", err)
	}
	// Two seconds of sends, and a third when the last answers came in it.
	if n := len(back.Timeline); n < 2 || n > 3 || back.Timeline[1].Sent != 300 || len(back.SaleSamples) == 0 {
		t.Fatalf("embedded timeline %+v, %d sale samples", back.Timeline, len(back.SaleSamples))
	}
}

// The charts render in a real browser: headless Chromium loads the page
// with the network off, logs no error, and each chart draws its points.
// SLUICE_SCREENSHOT_DIR=docs writes docs/loadreport-sample.png.
func TestHTMLReportRendersInChromium(t *testing.T) {
	b := browsertest.New(t)
	rep := sampleReport(t)
	ts := []Threshold{}
	for _, expr := range []string{"p99<10s", "dropped==0", "failed_ratio<1%", "admitted.p99<1us"} {
		th, err := ParseThreshold(expr)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, th)
	}
	rep.Thresholds = rep.Check(ts)
	rep.Compare(rep, "previous.json")
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteHTML(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b.Do(t, "open the report", chromedp.Navigate("file://"+file))
	b.WaitFor(t, "every chart", `document.body.dataset.rendered === "4"`, 10*time.Second)
	for _, id := range []string{"answers", "fine", "latency", "sale"} {
		if n := browsertest.Eval[string](t, b, `document.getElementById("`+id+`").dataset.points`); n == "" || n == "0" {
			t.Errorf("chart %s drew nothing", id)
		}
	}
	rows := browsertest.Eval[int](t, b, `document.querySelectorAll("#thresholds tr.fail").length`)
	if rows != 1 {
		t.Errorf("%d failed thresholds shown, want 1 (admitted.p99<1us)", rows)
	}
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll("#comparison tr").length`); n < 5 {
		t.Errorf("comparison has %d rows", n)
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Fatalf("console errors: %q", errs)
	}
	if dir := os.Getenv("SLUICE_SCREENSHOT_DIR"); dir != "" {
		b.Screenshot(t, filepath.Join(dir, "loadreport-sample.png"))
	}
}
