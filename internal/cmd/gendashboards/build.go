package main

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// The dashboards are built with Grafana's own typed builders (the
// foundation SDK); what is here is sluice's conventions on top of them:
// every query names the datasource variable, every panel gets its place on
// the grid, series are coloured and dashed by name.

// ds is the datasource of every panel and query: the dashboard's
// datasource variable, so one import works with any Prometheus.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// builder is a dashboard under construction and where its next panel
// goes. The SDK places a panel after the last one and starts a new line
// only once a line is full or over-full; sluice's layout starts a new line
// when a panel would not fit, so each panel's place is computed here.
type builder struct {
	uid string
	//lint:ignore SA1019 sluice ships the classic dashboard JSON (schema v1): it is what file provisioning and every Grafana before 12 load; v2 is not.
	d      *dashboard.DashboardBuilder
	x, y   int
	lineH  int
	nextID uint32
}

func newDashboard(uid, title, desc string, vars ...cog.Builder[dashboard.VariableModel]) *builder {
	//lint:ignore SA1019 see builder.d
	d := dashboard.NewDashboardBuilder(title).
		Uid(uid).Description(desc).
		Tags([]string{"sluice"}).Editable().Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("5s").Version(1).Time("now-15m", "now").Timezone(common.TimeZoneBrowser).
		Link(dashboard.NewDashboardLinkBuilder("sluice").Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"sluice"}).AsDropdown(true).IncludeVars(true).KeepTime(true)).
		Annotation(dashboard.NewAnnotationQueryBuilder().Name("Annotations & Alerts").BuiltIn(1).Type("dashboard").
			Datasource(common.DataSourceRef{Type: cog.ToPtr("grafana"), Uid: cog.ToPtr("-- Grafana --")}).
			Enable(true).Hide(true).IconColor("rgba(0, 211, 255, 1)")).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus"))
	for _, v := range vars {
		d.WithVariable(v)
	}
	return &builder{uid: uid, d: d, nextID: 1}
}

// queryVar is a multi-value variable over a label's values, "All" by default.
func queryVar(name, label, query, desc string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).Label(label).Description(desc).Datasource(ds).
		Query(dashboard.StringOrMap{Map: map[string]any{
			"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery",
		}}).
		Definition(query).Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).IncludeAll(true).AllValue(".*").
		Current(dashboard.VariableOption{Selected: cog.ToPtr(true),
			Text:  dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
			Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}}})
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
	b.d.WithRow(dashboard.NewRowBuilder(title).Id(b.id()).
		GridPos(dashboard.GridPos{H: 1, W: 24, X: 0, Y: uint32(b.y)}))
	b.y++
}

func (b *builder) id() uint32 { b.nextID++; return b.nextID - 1 }

// add places p, w columns wide and h high.
func (b *builder) add(w, h int, p cog.Builder[dashboard.Panel]) {
	if b.x+w > 24 {
		b.newline()
	}
	b.d.WithPanel(placed{p, b.id(), dashboard.GridPos{H: uint32(h), W: uint32(w), X: uint32(b.x), Y: uint32(b.y)}})
	b.x += w
	b.lineH = max(b.lineH, h)
}

//lint:ignore SA1019 see builder.d
func (b *builder) build() (dashboard.Dashboard, error) { return b.d.Build() }

// placed gives a panel its id and place whatever its type.
type placed struct {
	p   cog.Builder[dashboard.Panel]
	id  uint32
	pos dashboard.GridPos
}

func (p placed) Build() (dashboard.Panel, error) {
	panel, err := p.p.Build()
	panel.Id = &p.id
	panel.GridPos = &p.pos
	return panel, err
}

// q is a query and its legend.
type q struct{ expr, legend string }

func targets(qs []q, format prometheus.PromQueryFormat) []cog.Builder[variants.Dataquery] {
	var ts []cog.Builder[variants.Dataquery]
	for i, x := range qs {
		ts = append(ts, prometheus.NewDataqueryBuilder().RefId(string(rune('A'+i))).Datasource(ds).
			Expr(strings.TrimSpace(x.expr)).LegendFormat(x.legend).Range().Format(format).
			EditorMode(prometheus.QueryEditorModeCode))
	}
	return ts
}

type seriesOpt func(*timeseries.PanelBuilder)

// stacked stacks the series (answers that add up to a whole).
func stacked(p *timeseries.PanelBuilder) {
	p.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal).Group("A")).FillOpacity(60)
}

// minZero pins the y axis at zero.
func minZero(p *timeseries.PanelBuilder) { p.Min(0) }

// repeated repeats the panel for each value of a variable, side by
// side, perRow to a row.
func repeated(variable string, perRow float64) seriesOpt {
	return func(p *timeseries.PanelBuilder) {
		p.Repeat(variable).RepeatDirection(dashboard.PanelRepeatDirectionH).MaxPerRow(perRow)
	}
}

// colors fixes the colour of series whose name matches a regexp.
func colors(pairs ...string) seriesOpt {
	return func(p *timeseries.PanelBuilder) {
		for i := 0; i+1 < len(pairs); i += 2 {
			p.OverrideByRegexp(pairs[i], []dashboard.DynamicConfigValue{{Id: "color",
				Value: map[string]any{"mode": "fixed", "fixedColor": pairs[i+1]}}})
		}
	}
}

// dashed draws series matching a regexp as dashed lines without fill:
// bounds and limits drawn over the values they bound.
func dashed(re string) seriesOpt {
	return func(p *timeseries.PanelBuilder) {
		p.OverrideByRegexp(re, []dashboard.DynamicConfigValue{
			{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
			{Id: "custom.fillOpacity", Value: 0},
			{Id: "custom.stacking", Value: map[string]any{"mode": "none", "group": "A"}},
		})
	}
}

func thresholds(steps ...dashboard.Threshold) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps)
}

var green = thresholds(dashboard.Threshold{Color: "green"})

func seriesPanel(title, desc, unit string, qs []q, opts ...seriesOpt) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Description(desc).Datasource(ds).Unit(unit).
		Targets(targets(qs, prometheus.PromQueryFormatTimeSeries)).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdPaletteClassic)).
		Thresholds(green).Mappings([]dashboard.ValueMapping{}).
		DrawStyle(common.GraphDrawStyleLine).LineWidth(1).FillOpacity(10).ShowPoints(common.VisibilityModeNever).
		SpanNulls(common.BoolOrFloat64{Bool: cog.ToPtr(false)}).AxisSoftMin(0).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNone).Group("A")).
		Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).ShowLegend(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
	for _, o := range opts {
		o(p)
	}
	return p
}

type statOpt func(*stat.PanelBuilder)

func statPanel(title, desc, unit string, qs []q, opts ...statOpt) *stat.PanelBuilder {
	p := stat.NewPanelBuilder().Title(title).Description(desc).Datasource(ds).Unit(unit).
		Targets(targets(qs, prometheus.PromQueryFormatTimeSeries)).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
		Thresholds(green).Mappings([]dashboard.ValueMapping{}).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Fields("").Values(false)).
		ColorMode(common.BigValueColorModeValue).GraphMode(common.BigValueGraphModeArea).
		JustifyMode(common.BigValueJustifyModeAuto).Orientation(common.VizOrientationAuto).
		TextMode(common.BigValueTextModeValueAndName).WideLayout(true)
	for _, o := range opts {
		o(p)
	}
	return p
}

// warnAbove colours a stat orange, then red, past two thresholds.
func warnAbove(orange, red float64) statOpt {
	return func(p *stat.PanelBuilder) {
		p.Thresholds(thresholds(dashboard.Threshold{Color: "green"},
			dashboard.Threshold{Color: "orange", Value: &orange}, dashboard.Threshold{Color: "red", Value: &red}))
	}
}

// warnBelow colours a stat red below one threshold, orange below a
// second, higher one, and green above: time left, where less is worse.
func warnBelow(red, orange float64) statOpt {
	return func(p *stat.PanelBuilder) {
		p.Thresholds(thresholds(dashboard.Threshold{Color: "red"},
			dashboard.Threshold{Color: "orange", Value: &red}, dashboard.Threshold{Color: "green", Value: &orange}))
	}
}

// noValue is what a stat says when its query has no series.
func noValue(text string) statOpt {
	return func(p *stat.PanelBuilder) { p.NoValue(text) }
}

// valueText maps numbers to words and colours (states, up/down).
func valueText(pairs ...any) []dashboard.ValueMapping {
	m := dashboard.NewValueMap()
	for i := 0; i+2 < len(pairs); i += 3 {
		m.Options[fmt.Sprint(pairs[i])] = dashboard.ValueMappingResult{
			Text: cog.ToPtr(fmt.Sprint(pairs[i+1])), Color: cog.ToPtr(fmt.Sprint(pairs[i+2])), Index: cog.ToPtr(int32(i / 3))}
	}
	return []dashboard.ValueMapping{{ValueMap: m}}
}

// mapped shows a stat's numbers as words.
func mapped(m []dashboard.ValueMapping) statOpt {
	return func(p *stat.PanelBuilder) { p.Mappings(m) }
}

func stateTimeline(title, desc string, qs []q, m []dashboard.ValueMapping) *statetimeline.PanelBuilder {
	return statetimeline.NewPanelBuilder().Title(title).Description(desc).Datasource(ds).Unit("none").
		Targets(targets(qs, prometheus.PromQueryFormatTimeSeries)).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
		Thresholds(green).Mappings(m).FillOpacity(80).LineWidth(0).
		MergeValues(true).ShowValue(common.VisibilityModeAuto).AlignValue(common.TimelineValueAlignmentLeft).RowHeight(0.9).
		Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).ShowLegend(false)).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeSingle).Sort(common.SortOrderNone))
}

// heatmapPanel shows a Prometheus histogram's buckets over time; yUnit is the
// unit of the buckets' upper bounds, the cells are requests per second.
func heatmapPanel(title, desc, yUnit string, expr string) *heatmap.PanelBuilder {
	return heatmap.NewPanelBuilder().Title(title).Description(desc).Datasource(ds).Unit("reqps").
		Targets(targets([]q{{expr, "{{le}}"}}, prometheus.PromQueryFormatHeatmap)).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdPaletteClassic)).
		Thresholds(green).Mappings([]dashboard.ValueMapping{}).
		HideFrom(common.NewHideSeriesConfigBuilder().Legend(false).Tooltip(false).Viz(false)).
		ScaleDistribution(common.NewScaleDistributionConfigBuilder().Type(common.ScaleDistributionLinear)).
		Calculate(false).CellGap(1).
		Color(heatmap.NewHeatmapColorOptionsBuilder().Mode(heatmap.HeatmapColorModeScheme).Scheme("Oranges").Steps(64).
			Exponent(0.5).Fill("dark-orange").Reverse(false).Scale(heatmap.HeatmapColorScaleExponential)).
		YAxis(heatmap.NewYAxisConfigBuilder().Unit(yUnit).AxisPlacement(common.AxisPlacementLeft).Reverse(false)).
		RowsFrame(heatmap.NewRowsHeatmapOptionsBuilder().Layout(common.HeatmapCellLayoutAuto)).
		FilterValues(heatmap.NewFilterValueRangeBuilder().Le(1e-9)).
		Tooltip(heatmap.NewHeatmapTooltipBuilder().Mode(common.TooltipDisplayModeSingle).YHistogram(false).ShowColorScale(false)).
		ShowLegend().
		CellValues(heatmap.NewCellValuesBuilder().Unit("reqps"))
}
