package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"sluice/internal/testenv"
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
	if canvases != 3 {
		t.Fatalf("%d charts, want 3", canvases)
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
	if len(back.Timeline) != 2 || back.Timeline[1].Sent != 300 || len(back.SaleSamples) == 0 {
		t.Fatalf("embedded timeline %+v, %d sale samples", back.Timeline, len(back.SaleSamples))
	}
}

// The charts render in a real browser: headless Chromium loads the page
// (with the network off) and the script marks each chart it drew.
func TestHTMLReportRendersInChromium(t *testing.T) {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		testenv.Missing(t, "Chromium is not installed (apt-get install chromium)", "SLUICE_REQUIRE_CHROMIUM")
	}
	rep := sampleReport(t)
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--virtual-time-budget=3000", "--dump-dom", "file://"+file)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	if !strings.Contains(dom, `data-rendered="3"`) {
		t.Fatalf("the charts did not render: %.500s", dom)
	}
	for _, id := range []string{"answers", "latency", "sale"} {
		m := regexp.MustCompile(`<canvas id="` + id + `"[^>]*data-points="([0-9]+)"`).FindStringSubmatch(dom)
		if m == nil || m[1] == "0" {
			t.Fatalf("chart %s drew nothing", id)
		}
	}
}
