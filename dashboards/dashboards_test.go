package dashboards_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql/parser"

	"sluice/dashboards"
)

// grafanaUnits are unit ids from Grafana's value formats
// (packages/grafana-data/src/valueFormats/categories.ts): the ones a
// dashboard about requests, time, data and counts can use.
var grafanaUnits = map[string]bool{
	// Misc
	"none": true, "string": true, "short": true, "percent": true, "percentunit": true,
	"hex0x": true, "hex": true, "sci": true, "locale": true,
	// Data
	"bits": true, "bytes": true, "kbytes": true, "mbytes": true, "gbytes": true,
	"decbits": true, "decbytes": true, "deckbytes": true, "decmbytes": true, "decgbytes": true,
	// Data rate
	"pps": true, "bps": true, "Bps": true, "KBs": true, "Kbits": true, "MBs": true, "Mbits": true,
	// Time
	"hertz": true, "ns": true, "µs": true, "ms": true, "s": true, "m": true, "h": true, "d": true,
	"dtdurationms": true, "dtdurations": true, "dthms": true, "dtdhms": true,
	"timeticks": true, "clockms": true, "clocks": true,
	// Date & time
	"dateTimeAsIso": true, "dateTimeAsUS": true, "dateTimeFromNow": true,
	// Throughput
	"cps": true, "ops": true, "reqps": true, "rps": true, "wps": true, "iops": true,
	"cpm": true, "opm": true, "rpm": true, "wpm": true,
}

// knownUnit also accepts Grafana's custom units (suffix:, prefix:, si:, count:).
func knownUnit(u string) bool {
	for _, p := range []string{"suffix:", "prefix:", "si:", "count:"} {
		if strings.HasPrefix(u, p) && len(u) > len(p) {
			return true
		}
	}
	return grafanaUnits[u]
}

func TestDashboardStructure(t *testing.T) {
	uids := map[string]string{}
	for _, l := range loadDashboards(t) {
		d := l.d
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid %q, title %q", l.file, d.UID, d.Title)
		}
		if prev, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %q also used by %s", l.file, d.UID, prev)
		}
		uids[d.UID] = l.file
		if d.Schema < 39 {
			t.Errorf("%s: schemaVersion %d is not current", l.file, d.Schema)
		}
		if bytes.Contains(l.raw, []byte("${DS_")) || bytes.Contains(l.raw, []byte(`"__inputs"`)) {
			t.Errorf("%s: uses import-only ${DS_...} inputs; use the datasource variable", l.file)
		}
		checkVariables(t, l)
		checkDatasources(t, l)

		ids := map[int]bool{}
		panels := allPanels(d.Panels)
		for _, p := range panels {
			where := fmt.Sprintf("%s panel %d %q", l.file, p.ID, p.Title)
			if ids[p.ID] || p.ID <= 0 {
				t.Errorf("%s: id not unique and positive", where)
			}
			ids[p.ID] = true
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
				t.Errorf("%s: gridPos %+v does not fit the 24-column grid", where, g)
			}
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no queries", where)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("%s: refId %q missing or repeated", where, tg.RefID)
				}
				refs[tg.RefID] = true
			}
			if p.FieldConfig == nil || !knownUnit(p.FieldConfig.Defaults.Unit) {
				unit := "(none set)"
				if p.FieldConfig != nil {
					unit = p.FieldConfig.Defaults.Unit
				}
				t.Errorf("%s: unit %q is not a Grafana unit", where, unit)
			}
			for _, u := range []*struct{ Unit string }{p.Options.YAxis, p.Options.CellValues} {
				if u != nil && !knownUnit(u.Unit) {
					t.Errorf("%s: axis unit %q is not a Grafana unit", where, u.Unit)
				}
			}
			if p.Type == "heatmap" && (p.Options.YAxis == nil || p.Options.YAxis.Unit == "") {
				t.Errorf("%s: heatmap without a y axis unit", where)
			}
		}
		// No two panels overlap (rows are one unit high and full width).
		for i, a := range panels {
			for _, b := range panels[i+1:] {
				if overlap(a, b) {
					t.Errorf("%s: panels %q %+v and %q %+v overlap", l.file, a.Title, a.GridPos, b.Title, b.GridPos)
				}
			}
		}
	}
}

func overlap(a, b *panel) bool {
	p, q := a.GridPos, b.GridPos
	return p.X < q.X+q.W && q.X < p.X+p.W && p.Y < q.Y+q.H && q.Y < p.Y+p.H
}

func checkVariables(t *testing.T, l loaded) {
	t.Helper()
	byName := map[string]string{}
	for _, v := range l.d.Templating.List {
		byName[v.Name] = v.Type
	}
	if byName["datasource"] != "datasource" {
		t.Errorf("%s: no datasource variable", l.file)
	}
	for _, v := range l.d.Templating.List {
		if v.Name == "datasource" {
			var q string
			if json.Unmarshal(v.Query, &q) != nil || q != "prometheus" {
				t.Errorf("%s: datasource variable is not of type prometheus: %s", l.file, v.Query)
			}
		}
	}
	for _, want := range []string{"instance", "sale"} {
		if byName[want] != "query" {
			t.Errorf("%s: no %s query variable", l.file, want)
		}
	}
}

// checkDatasources walks the whole JSON: every "datasource" is the
// template variable (or Grafana's built-in annotation source).
func checkDatasources(t *testing.T, l loaded) {
	t.Helper()
	var doc any
	if err := json.Unmarshal(l.raw, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "datasource" {
					ds, _ := x.(map[string]any)
					builtin := ds != nil && ds["type"] == "grafana" && ds["uid"] == "-- Grafana --" &&
						strings.Contains(path, "annotations")
					if !builtin && (ds == nil || ds["type"] != "prometheus" || ds["uid"] != "${datasource}") {
						t.Errorf("%s: %s.datasource = %v, want the ${datasource} variable", l.file, path, x)
					}
				}
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		}
	}
	walk("", doc)
	// Every panel and target names it (not only inherits it).
	for _, p := range allPanels(l.d.Panels) {
		if p.Type == "row" {
			continue
		}
		if len(p.Datasource) == 0 {
			t.Errorf("%s: panel %q has no datasource", l.file, p.Title)
		}
		for _, tg := range p.Targets {
			if len(tg.Datasource) == 0 {
				t.Errorf("%s: panel %q target %s has no datasource", l.file, p.Title, tg.RefID)
			}
		}
	}
	if n := bytes.Count(l.raw, []byte(`"uid": "${datasource}"`)); n == 0 {
		t.Errorf("%s: nothing uses the datasource variable", l.file)
	}
}

// TestPromQL parses every dashboard and alert expression, checks each
// metric name against a running gate's and the generator's registries and
// that counters appear only inside rate, irate or increase.
func TestPromQL(t *testing.T) {
	gate := startGate(t)
	known, _ := realMetrics(t, gate)
	qs := append(dashboardQueries(t), alertQueries(t)...)
	p := parser.NewParser(parser.Options{})
	for _, q := range qs {
		expr := substitute(q.expr, "1m", "15m")
		if strings.Contains(expr, "$") {
			t.Errorf("%s: a Grafana variable is left after substitution: %s", q.where, expr)
			continue
		}
		ast, err := p.ParseExpr(expr)
		if err != nil {
			t.Errorf("%s: does not parse: %v\n%s", q.where, err, expr)
			continue
		}
		names := 0
		parser.Inspect(ast, func(n parser.Node, path []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			names++
			name := vs.Name
			if name == "" {
				t.Errorf("%s: a selector without a metric name: %s", q.where, vs)
				return nil
			}
			if _, ok := known[name]; !ok {
				t.Errorf("%s: metric %s is not exposed by the gate or the generator", q.where, name)
				return nil
			}
			if known.counter(name) && !insideRate(path) {
				t.Errorf("%s: counter %s outside rate/irate/increase", q.where, name)
			}
			return nil
		})
		if names == 0 {
			t.Errorf("%s: no metric in %s", q.where, expr)
		}
	}
	if len(qs) < 40 {
		t.Errorf("only %d queries found; the dashboards lost panels?", len(qs))
	}
}

// insideRate: the selector's nearest enclosing range is the argument of
// rate, irate or increase.
func insideRate(path []parser.Node) bool {
	for i := len(path) - 1; i > 0; i-- {
		if _, ok := path[i].(*parser.MatrixSelector); ok {
			c, ok := path[i-1].(*parser.Call)
			return ok && slices.Contains([]string{"rate", "irate", "increase"}, c.Func.Name)
		}
	}
	return false
}

// TestMetricsLint: the gates' and the generator's metrics follow
// Prometheus's naming conventions.
func TestMetricsLint(t *testing.T) {
	gate := startGate(t)
	_, gs := realMetrics(t, gate)
	for what, g := range gs {
		problems, err := testutil.GatherAndLint(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s: %s", what, p.Metric, p.Text)
		}
	}
}

// TestExport: what the binary exports is what is in the tree.
func TestExport(t *testing.T) {
	dir := t.TempDir()
	written, err := dashboards.Export(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"overview.json", "admission.json", "drain.json", "loadtest.json",
		"alerts.yml", "alerts_test.yml", "prometheus.yml",
		"provisioning/datasources/prometheus.yaml", "provisioning/dashboards/sluice.yaml"}
	if len(written) != len(want) {
		t.Errorf("wrote %d files, want %d: %v", len(written), len(want), written)
	}
	for _, f := range want {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("export lacks %s: %v", f, err)
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, src) {
			t.Errorf("exported %s differs from dashboards/%s", f, f)
		}
	}
}
