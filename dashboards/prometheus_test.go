package dashboards_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
	"sluice/loadtest"
)

// needBinary finds a Prometheus binary. Without it the test skips, unless
// SLUICE_REQUIRE_PROMETHEUS=1 (as .ci/run sets, after installing the
// Debian package "prometheus") makes that a failure.
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Missing(t, name+" is not installed (apt-get install prometheus)", "SLUICE_REQUIRE_PROMETHEUS")
	}
	return p
}

func runTool(t *testing.T, stdin []byte, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}

// TestPromtool: the shipped Prometheus config and rules are valid, the
// alerts' unit tests pass, and promtool finds nothing wrong with the
// metrics a real gate and the generator expose.
func TestPromtool(t *testing.T) {
	promtool := needBinary(t, "promtool")
	runTool(t, nil, promtool, "check", "config", "prometheus.yml")
	runTool(t, nil, promtool, "check", "rules", "alerts.yml")
	runTool(t, nil, promtool, "test", "rules", "alerts_test.yml")

	gate := startGate(t)
	c := gatetest.Client()
	gatetest.Order(t, c, "http://"+gate.APIAddr(), "s1", "b1", "")
	text := gatetest.Get(t, c, "http://"+gate.OpsAddr()+"/metrics").Raw
	runTool(t, []byte(text), promtool, "check", "metrics")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, srv := loadtest.ServeMetrics(ln)
	defer srv.Close()
	runTool(t, []byte(gatetest.Get(t, c, "http://"+ln.Addr().String()+"/metrics").Raw), promtool, "check", "metrics")
}

// prom is a real Prometheus on loopback.
type prom struct {
	base string
	c    *http.Client
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startPrometheus runs Prometheus with the shipped prometheus.yml, each
// job's targets pointed at the given addresses, and the shipped alerts.
func startPrometheus(t *testing.T, bin string, targets map[string][]string) *prom {
	t.Helper()
	raw, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	rules, _ := filepath.Abs("alerts.yml")
	cfg["rule_files"] = []string{rules}
	seen := map[string]bool{}
	for _, sc := range cfg["scrape_configs"].([]any) {
		sc := sc.(map[string]any)
		job := sc["job_name"].(string)
		addrs, ok := targets[job]
		if !ok {
			t.Fatalf("prometheus.yml: unexpected job %q", job)
		}
		seen[job] = true
		sc["static_configs"] = []any{map[string]any{"targets": addrs}}
	}
	for job := range targets {
		if !seen[job] {
			t.Fatalf("prometheus.yml has no job %q", job)
		}
	}
	dir := t.TempDir()
	out, _ := yaml.Marshal(cfg)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, out, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	var log bytes.Buffer
	var logMu sync.Mutex
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	w := lockedWriter{&logMu, &log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			logMu.Lock()
			t.Logf("prometheus log:\n%s", log.String())
			logMu.Unlock()
		}
	})
	p := &prom{base: "http://" + addr, c: &http.Client{Timeout: 10 * time.Second}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			logMu.Lock()
			defer logMu.Unlock()
			t.Fatalf("prometheus exited: %v\n%s", err, log.String())
		default:
		}
		if resp, err := p.c.Get(p.base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("prometheus not ready after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type series struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
	Value  [2]any            `json:"value"`
}

func (p *prom) api(t *testing.T, path string, params url.Values, out any) {
	t.Helper()
	resp, err := p.c.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status != "success" {
		t.Fatalf("%s %v: %d %s %s", path, params, resp.StatusCode, env.Error, body)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func (p *prom) instant(t *testing.T, expr string) []series {
	var d struct{ Result []series }
	p.api(t, "/api/v1/query", url.Values{"query": {expr}}, &d)
	return d.Result
}

func (p *prom) rangeQuery(t *testing.T, expr string, start, end time.Time) []series {
	var d struct{ Result []series }
	p.api(t, "/api/v1/query_range", url.Values{
		"query": {expr}, "step": {"1"},
		"start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix()+1, 10)},
	}, &d)
	return d.Result
}

// shown summarises what a panel query showed: its series and, over the
// run, the last and the largest value among them (NaN samples ignored).
type shown struct {
	series    int
	samples   int
	last, top float64
}

func summarise(ss []series) shown {
	s := shown{series: len(ss), top: math.Inf(-1)}
	for _, x := range ss {
		for _, v := range x.Values {
			f, err := strconv.ParseFloat(fmt.Sprint(v[1]), 64)
			if err != nil || math.IsNaN(f) {
				continue
			}
			s.samples++
			s.top = math.Max(s.top, f)
		}
		if n := len(x.Values); n > 0 {
			if f, err := strconv.ParseFloat(fmt.Sprint(x.Values[n-1][1]), 64); err == nil && !math.IsNaN(f) {
				s.last = f
			}
		}
	}
	return s
}

// TestPrometheusEndToEnd starts a gate, a real Prometheus scraping it and
// the load generator every second, fires a short drop, then runs every
// panel's query (and every variable's) through Prometheus's HTTP API as
// Grafana would, and requires each to show data.
func TestPrometheusEndToEnd(t *testing.T) {
	bin := needBinary(t, "prometheus") // before the lock: a skip need not wait minutes for it
	testenv.Exclusive(t)               // a gate, Prometheus and two rehearsals: both cores
	gate := startGate(t)

	// The generator's metrics served as `sluice loadtest --metrics-listen` serves them.
	ltLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m, lt := loadtest.ServeMetrics(ltLn)
	t.Cleanup(func() { lt.Close() })

	// A second gate serves TLS: only such a gate has the TLS panels'
	// series.
	tlsGate := startTLSGate(t)
	p := startPrometheus(t, bin, map[string][]string{"sluice": {gate.OpsAddr(), tlsGate.OpsAddr()}, "sluice-loadtest": {ltLn.Addr().String()}})
	gatetest.Eventually(t, 30*time.Second, "the three targets scraped", func() bool {
		return len(p.instant(t, `up == 1`)) == 3
	})

	start := time.Now()
	// A few buyers wait for their answer (Prefer: wait), for the waiters' panels.
	c := gatetest.Client()
	for i := range 5 {
		req, _ := http.NewRequest("POST", "http://"+gate.APIAddr()+"/v1/sales/"+e2eSale.Name+"/orders",
			strings.NewReader(fmt.Sprintf(`{"buyer_id":"patient-%d"}`, i)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "wait=5")
		if a := gatetest.Do(t, c, req); a.Status != http.StatusCreated {
			t.Fatalf("a waiting order: %d %s", a.Status, a.Raw)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := loadtest.Rehearse(ctx, loadtest.Options{
		Config: loadtest.Config{
			Target:      "http://" + gate.APIAddr(),
			Sale:        e2eSale.Name,
			Profile:     loadtest.Spike(50, time.Second, 1500, 2*time.Second, time.Second),
			Connections: 64,
			Mix:         loadtest.Mix{Buyers: 3000, Impatient: 0.05, Greedy: 0.05, Bad: 0.02, Seed: 1},
		},
		Verify:  true,
		Metrics: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := rep.Verification; v == nil || !v.Passed {
		t.Fatalf("the drop did not end right: %+v", v)
	}
	// A waiting-room drop too, for the waiting room's panels.
	room := ledger.Sale{Name: "room", Stock: 20, StartsAt: time.Now().Add(3 * time.Second), WaitingRoom: true,
		QueueBound: 5, LineLimit: 1000, PassTTL: ledger.Duration(10 * time.Second)}
	if _, err := gate.Ledger().EnsureSale(ctx, room); err != nil {
		t.Fatal(err)
	}
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return gate.Rooms().Room("room") != nil })
	roomRep, err := loadtest.RehearseRoom(ctx, loadtest.RoomOptions{Target: "http://" + gate.APIAddr(), Sale: "room",
		Buyers: 300, Late: 10, Before: 2 * time.Second, Connections: 32, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !roomRep.Passed || int64(roomRep.Served) != room.Stock {
		t.Fatalf("the waiting-room drop did not end right: %+v", roomRep)
	}
	time.Sleep(4 * time.Second) // a few more scrapes, and rules evaluated
	end := time.Now()
	rng := fmt.Sprintf("%ds", int(end.Sub(start).Seconds())+5)
	from := start.Add(-5 * time.Second)

	type row struct {
		where, expr string
		s           shown
	}
	var rows []row
	for _, q := range dashboardQueries(t) {
		expr := substitute(q.expr, "4s", rng)
		if q.panel == "" { // a variable: label_values(selector, label) must find series
			var ss []map[string]string
			p.api(t, "/api/v1/series", url.Values{"match[]": {expr},
				"start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)}}, &ss)
			if len(ss) == 0 {
				t.Errorf("%s: variable query %s finds no series", q.where, expr)
			}
			continue
		}
		s := summarise(p.rangeQuery(t, expr, from, end))
		if s.samples == 0 {
			t.Errorf("%s: empty result for %s", q.where, expr)
		}
		rows = append(rows, row{q.where, expr, s})
	}

	// The alerting rules loaded and evaluate without error.
	var rules struct {
		Groups []struct {
			Rules []struct {
				Name, Health, LastError string
			}
		}
	}
	p.api(t, "/api/v1/rules", url.Values{}, &rules)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if want := len(alertQueries(t)); n != want {
		t.Errorf("prometheus loaded %d rules, want %d", n, want)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "| panel · query | series | last | max |\n|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", r.where, r.s.series, num(r.s.last), num(r.s.top))
	}
	t.Logf("every panel query over the run (rate interval 4s, step 1s):\n%s", b.String())
	if f := os.Getenv("SLUICE_E2E_REPORT"); f != "" {
		var full strings.Builder
		for _, r := range rows {
			fmt.Fprintf(&full, "### %s\n```\n%s\n```\nseries %d, last %s, max %s\n\n", r.where, r.expr, r.s.series, num(r.s.last), num(r.s.top))
		}
		_ = os.WriteFile(f, []byte(full.String()), 0o644)
	}
}

func num(f float64) string {
	switch {
	case math.IsInf(f, 0):
		return fmt.Sprint(f)
	case f == math.Trunc(f) && math.Abs(f) < 1e9:
		return strconv.FormatInt(int64(f), 10)
	case math.Abs(f) < 0.01:
		return strconv.FormatFloat(f, 'g', 3, 64)
	}
	return strconv.FormatFloat(f, 'f', 3, 64)
}
