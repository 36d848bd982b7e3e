package main

import (
	"fmt"
	"strings"
)

var ds = datasource{Type: "prometheus", UID: dsVar}

// builder lays panels out on Grafana's 24-column grid, left to right,
// wrapping to a new line when a panel would not fit.
type builder struct {
	d      *dashboard
	x, y   int
	lineH  int
	nextID int
}

func newDashboard(uid, title, desc string, vars ...variable) *builder {
	d := &dashboard{
		UID: uid, Title: title, Description: desc,
		Tags: []string{"sluice"}, Editable: true, GraphTooltip: 1,
		Refresh: "5s", SchemaVersion: schemaVersion, Version: 1,
		Time: timeRange{From: "now-15m", To: "now"}, Timezone: "browser",
		Links: []link{{Title: "sluice", Type: "dashboards", Tags: []string{"sluice"},
			AsDropdown: true, IncludeVars: true, KeepTime: true}},
		Annotations: annotations{List: []annotation{{
			BuiltIn: 1, Datasource: datasource{Type: "grafana", UID: "-- Grafana --"},
			Enable: true, Hide: true, IconColor: "rgba(0, 211, 255, 1)",
			Name: "Annotations & Alerts", Type: "dashboard",
		}}},
	}
	d.Templating.List = append([]variable{{
		Name: "datasource", Label: "Data source", Type: "datasource", Query: "prometheus",
		Refresh: 1, Current: map[string]any{}, Options: []any{},
	}}, vars...)
	return &builder{d: d, nextID: 1}
}

// queryVar is a multi-value variable over a label's values, "All" by default.
func queryVar(name, label, query, desc string) variable {
	return variable{
		Name: name, Label: label, Description: desc, Type: "query", Datasource: &ds,
		Query: map[string]any{
			"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery",
		},
		Definition: query, Refresh: 2, Sort: 1, Multi: true, IncludeAll: true, AllValue: ".*",
		Current: map[string]any{"selected": true, "text": []string{"All"}, "value": []string{"$__all"}},
		Options: []any{},
	}
}

func (b *builder) newline() {
	if b.x > 0 {
		b.y += b.lineH
		b.x, b.lineH = 0, 0
	}
}

// row starts a titled row on a new line.
func (b *builder) row(title string) {
	b.newline()
	collapsed := false
	b.d.Panels = append(b.d.Panels, &panel{
		ID: b.id(), Type: "row", Title: title, Collapsed: &collapsed, Panels: []*panel{},
		GridPos: gridPos{H: 1, W: 24, X: 0, Y: b.y},
	})
	b.y++
}

func (b *builder) id() int { b.nextID++; return b.nextID - 1 }

// add places p, w columns wide and h high.
func (b *builder) add(w, h int, p *panel) {
	if b.x+w > 24 {
		b.newline()
	}
	p.ID = b.id()
	p.GridPos = gridPos{H: h, W: w, X: b.x, Y: b.y}
	b.x += w
	b.lineH = max(b.lineH, h)
	b.d.Panels = append(b.d.Panels, p)
}

// q is a query and its legend.
type q struct{ expr, legend string }

func targets(qs []q, format string) []target {
	var ts []target
	for i, x := range qs {
		ts = append(ts, target{
			RefID: string(rune('A' + i)), Datasource: ds, Expr: strings.TrimSpace(x.expr),
			LegendFormat: x.legend, Range: true, Format: format, EditorMode: "code",
		})
	}
	return ts
}

func defaults(unit string) fieldDefaults {
	return fieldDefaults{
		Unit:       unit,
		Color:      map[string]any{"mode": "palette-classic"},
		Thresholds: thresholds{Mode: "absolute", Steps: []step{{Color: "green"}}},
		Mappings:   []any{},
	}
}

type seriesOpt func(*panel)

// stacked stacks the series (answers that add up to a whole).
func stacked(p *panel) {
	p.FieldConfig.Defaults.Custom["stacking"] = map[string]any{"mode": "normal", "group": "A"}
	p.FieldConfig.Defaults.Custom["fillOpacity"] = 60
}

// minZero pins the y axis at zero.
func minZero(p *panel) { z := 0.0; p.FieldConfig.Defaults.Min = &z }

// colors fixes the colour of series whose name matches a regexp.
func colors(pairs ...string) seriesOpt {
	return func(p *panel) {
		for i := 0; i+1 < len(pairs); i += 2 {
			p.FieldConfig.Overrides = append(p.FieldConfig.Overrides, override{
				Matcher: matcher{ID: "byRegexp", Options: pairs[i]},
				Properties: []property{{ID: "color", Value: map[string]any{
					"mode": "fixed", "fixedColor": pairs[i+1]}}},
			})
		}
	}
}

// dashed draws series matching a regexp as dashed lines without fill:
// bounds and limits drawn over the values they bound.
func dashed(re string) seriesOpt {
	return func(p *panel) {
		p.FieldConfig.Overrides = append(p.FieldConfig.Overrides, override{
			Matcher: matcher{ID: "byRegexp", Options: re},
			Properties: []property{
				{ID: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
				{ID: "custom.fillOpacity", Value: 0},
				{ID: "custom.stacking", Value: map[string]any{"mode": "none", "group": "A"}},
			},
		})
	}
}

func timeseries(title, desc, unit string, qs []q, opts ...seriesOpt) *panel {
	fd := defaults(unit)
	fd.Custom = map[string]any{
		"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
		"spanNulls": false, "axisSoftMin": 0,
		"stacking": map[string]any{"mode": "none", "group": "A"},
	}
	return viz("timeseries", title, desc, fd, map[string]any{
		"legend":  map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": true},
		"tooltip": map[string]any{"mode": "multi", "sort": "desc"},
	}, targets(qs, "time_series"), opts)
}

// viz is a panel of type typ querying the datasource variable, with
// opts applied last.
func viz(typ, title, desc string, fd fieldDefaults, options map[string]any, ts []target, opts []seriesOpt) *panel {
	p := &panel{
		Type: typ, Title: title, Description: desc, Datasource: &ds,
		FieldConfig: &fieldConfig{Defaults: fd, Overrides: []override{}},
		Options:     options,
		Targets:     ts,
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func stat(title, desc, unit string, qs []q, opts ...seriesOpt) *panel {
	fd := defaults(unit)
	fd.Color = map[string]any{"mode": "thresholds"}
	return viz("stat", title, desc, fd, map[string]any{
		"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
		"colorMode":     "value", "graphMode": "area", "justifyMode": "auto",
		"orientation": "auto", "textMode": "value_and_name", "wideLayout": true,
	}, targets(qs, "time_series"), opts)
}

// warnAbove colours a stat orange, then red, past two thresholds.
func warnAbove(orange, red float64) seriesOpt {
	return func(p *panel) {
		p.FieldConfig.Defaults.Thresholds.Steps = []step{
			{Color: "green"}, {Color: "orange", Value: &orange}, {Color: "red", Value: &red},
		}
	}
}

// valueText maps numbers to words and colours (states, up/down).
func valueText(pairs ...any) seriesOpt {
	return func(p *panel) {
		opts := map[string]any{}
		for i := 0; i+2 < len(pairs); i += 3 {
			opts[fmt.Sprint(pairs[i])] = map[string]any{"text": pairs[i+1], "color": pairs[i+2], "index": i / 3}
		}
		p.FieldConfig.Defaults.Mappings = []any{map[string]any{"type": "value", "options": opts}}
	}
}

func stateTimeline(title, desc string, qs []q, opts ...seriesOpt) *panel {
	fd := defaults("none")
	fd.Color = map[string]any{"mode": "thresholds"}
	fd.Custom = map[string]any{"fillOpacity": 80, "lineWidth": 0}
	return viz("state-timeline", title, desc, fd, map[string]any{
		"mergeValues": true, "showValue": "auto", "alignValue": "left", "rowHeight": 0.9,
		"legend":  map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": false},
		"tooltip": map[string]any{"mode": "single", "sort": "none"},
	}, targets(qs, "time_series"), opts)
}

// heatmap shows a Prometheus histogram's buckets over time; yUnit is the
// unit of the buckets' upper bounds, the cells are requests per second.
func heatmap(title, desc, yUnit string, expr string) *panel {
	fd := defaults("reqps")
	fd.Custom = map[string]any{
		"hideFrom":          map[string]any{"legend": false, "tooltip": false, "viz": false},
		"scaleDistribution": map[string]any{"type": "linear"},
	}
	return viz("heatmap", title, desc, fd, map[string]any{
		"calculate": false, "cellGap": 1,
		"color": map[string]any{"mode": "scheme", "scheme": "Oranges", "steps": 64,
			"exponent": 0.5, "fill": "dark-orange", "reverse": false, "scale": "exponential"},
		"yAxis":        map[string]any{"unit": yUnit, "axisPlacement": "left", "reverse": false},
		"rowsFrame":    map[string]any{"layout": "auto"},
		"filterValues": map[string]any{"le": 1e-9},
		"tooltip":      map[string]any{"mode": "single", "yHistogram": false, "showColorScale": false},
		"legend":       map[string]any{"show": true},
		"cellValues":   map[string]any{"unit": "reqps"},
	}, targets([]q{{expr, "{{le}}"}}, "heatmap"), nil)
}
