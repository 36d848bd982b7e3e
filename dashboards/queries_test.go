package dashboards_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"sluice/dashboards"
)

// The parts of Grafana's dashboard model the tests read.
type dashboard struct {
	UID        string   `json:"uid"`
	Title      string   `json:"title"`
	Schema     int      `json:"schemaVersion"`
	Panels     []*panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	GridPos     struct{ X, Y, W, H int } `json:"gridPos"`
	FieldConfig *struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Options struct {
		YAxis      *struct{ Unit string } `json:"yAxis"`
		CellValues *struct{ Unit string } `json:"cellValues"`
	} `json:"options"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []*panel `json:"panels"` // a collapsed row's
}

type loaded struct {
	file string
	raw  []byte
	d    dashboard
}

func loadDashboards(t *testing.T) []loaded {
	t.Helper()
	names := dashboards.Dashboards()
	if len(names) < 4 {
		t.Fatalf("want at least 4 dashboards, have %v", names)
	}
	var out []loaded
	for _, n := range names {
		raw, err := fs.ReadFile(dashboards.FS(), n)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: not valid JSON: %v", n, err)
		}
		out = append(out, loaded{n, raw, d})
	}
	return out
}

// allPanels flattens rows, collapsed ones included.
func allPanels(ps []*panel) []*panel {
	var out []*panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// query is one PromQL expression and where it comes from.
type query struct {
	where string // e.g. overview.json "Stock left" A
	panel string
	expr  string
}

var labelValues = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

// dashboardQueries is every panel target and every query variable's
// selector, as written (Grafana variables not substituted).
func dashboardQueries(t *testing.T) []query {
	var qs []query
	for _, l := range loadDashboards(t) {
		for _, p := range allPanels(l.d.Panels) {
			for _, tg := range p.Targets {
				qs = append(qs, query{fmt.Sprintf("%s %q %s", l.file, p.Title, tg.RefID), l.file + ": " + p.Title, tg.Expr})
			}
		}
		for _, v := range l.d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := labelValues.FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("%s: variable %s: want label_values(selector, label), have %q", l.file, v.Name, v.Definition)
				continue
			}
			qs = append(qs, query{fmt.Sprintf("%s variable %s", l.file, v.Name), "", m[1]})
		}
	}
	return qs
}

// alertQueries is every expression in alerts.yml.
func alertQueries(t *testing.T) []query {
	raw, err := fs.ReadFile(dashboards.FS(), "alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var qs []query
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{"alerts.yml " + r.Alert, "", r.Expr})
		}
	}
	if len(qs) == 0 {
		t.Fatal("alerts.yml has no rules")
	}
	return qs
}

// substitute replaces Grafana's variables the way Grafana would before
// sending the query: multi-value variables as regexps, intervals as
// durations.
func substitute(expr, rateInterval, rng string) string {
	r := strings.NewReplacer(
		"$__rate_interval", rateInterval,
		"${__rate_interval}", rateInterval,
		"$__interval", "1s",
		"$__range", rng,
		"${instance:regex}", ".*", "${instance}", ".*", "$instance", ".*",
		"${sale:regex}", ".*", "${sale}", ".*", "$sale", ".*",
		"${variant:regex}", ".*", "${variant}", ".*", "$variant", ".*",
	)
	return r.Replace(expr)
}
