package loadtest

import (
	"bytes"
	"encoding/json"
	"html/template"
	"io"
)

// WriteHTML writes the report as one self-contained page: the data and
// the code that draws its charts are inline, nothing is fetched.
//
// The charts, each with a marker at T0 and at each phase of the schedule:
// answers per second stacked by outcome, with the offered rate (the
// schedule) laid over the achieved one (answers received per second); the
// same in 100 ms buckets around T0; latency p50 and p99 per second; and
// the sale's stock remaining, queue depth and confirmed orders over time,
// as read from the gate during the run. Thresholds and a comparison with
// a previous run follow, when the run had them.
func (r Report) WriteHTML(w io.Writer) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var text bytes.Buffer
	r.WriteText(&text)
	return page.Execute(w, struct {
		Report  Report
		Data    template.JS
		Summary string
	}{r, template.JS(data), text.String()})
}

var page = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>sluice loadtest: {{.Report.Sale}} ({{.Report.Profile}})</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}
canvas{width:100%;height:260px;border:1px solid #ddd}
.legend span{display:inline-block;margin-right:1.2em}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
.pass{color:#070}.fail{color:#b00}.better{color:#070}.worse{color:#b00}
table{border-collapse:collapse}td,th{padding:2px 14px 2px 0;text-align:left}th{font-weight:600;color:#555}
</style></head>
<body>
<h1>sluice loadtest — sale <code>{{.Report.Sale}}</code>, profile {{.Report.Profile}}</h1>
<p>{{.Report.Requests}} requests to {{.Report.Target}} at {{printf "%.0f" .Report.AchievedRate}}/s (target {{printf "%.0f" .Report.TargetRate}}/s);
{{.Report.Late}} late, {{.Report.Dropped}} dropped.
{{with .Report.Verification}}Outcome check: {{if .Passed}}<b class="pass">passed</b>{{else}}<b class="fail">FAILED</b>{{end}}
({{.Confirmed}} confirmed of stock {{.Stock}}).{{end}}</p>
{{with .Report.Thresholds}}<h2>Thresholds</h2>
<table id="thresholds"><tr><th></th><th>threshold</th><th>measured</th></tr>
{{range .}}<tr class="{{if .Passed}}pass{{else}}fail{{end}}"><td>{{if .Passed}}✓{{else}}✗{{end}}</td><td><code>{{.Expr}}</code></td><td>{{.Text}}{{with .Error}} ({{.}}){{end}}</td></tr>
{{end}}</table>{{end}}
<h2>Answers per second, by outcome; offered and achieved</h2>
<div class="legend" id="legend-answers"></div>
<canvas id="answers" width="1100" height="260"></canvas>
<h2>Around T0, per 100 ms (as a rate per second)</h2>
<div class="legend" id="legend-fine"></div>
<canvas id="fine" width="1100" height="260"></canvas>
<h2>Latency per second, from the intended send time</h2>
<div class="legend" id="legend-latency"></div>
<canvas id="latency" width="1100" height="260"></canvas>
<h2>The sale during the run: stock remaining, queue depth, confirmed</h2>
<div class="legend" id="legend-sale"></div>
<canvas id="sale" width="1100" height="260"></canvas>
{{with .Report.Comparison}}<h2>Compared with {{.Against}} (run of {{.Started.Format "2006-01-02 15:04:05 MST"}})</h2>
<table id="comparison"><tr><th>figure</th><th>before</th><th>now</th><th>change</th><th></th></tr>
{{range .Changes}}<tr><td>{{.Figure}}</td><td>{{.BeforeText}}</td><td>{{.NowText}}</td><td>{{.ChangeText}}</td><td class="{{.Verdict}}">{{.Verdict}}</td></tr>
{{end}}</table>{{end}}
<h2>Summary</h2>
<pre>{{.Summary}}</pre>
<script>
"use strict";
const report = {{.Data}};
const colors = {admitted:"#2a9d3f", diverted:"#e9a23b", rejected:"#8e6cc9", failed:"#d1372b",
  offered:"#1f5fbf", achieved:"#111", p50:"#2f6db5", p99:"#d1372b", remaining:"#2a9d3f", queue:"#e9a23b", confirmed:"#2f6db5"};
const outs = ["admitted", "diverted", "rejected", "failed"];
function legend(id, names) {
  document.getElementById(id).innerHTML = names.map(n => '<span><i style="background:' + colors[n] + '"></i>' + n + '</span>').join("") +
    '<span><i style="background:repeating-linear-gradient(90deg,#999 0 3px,transparent 3px 6px)"></i>T0 and phases</span>';
}
// chart sets up a canvas over [x0, x1] × [0, maxY]: grid, axes, and the
// markers for T0 and each phase's start.
function chart(id, x0, x1, maxY, unit) {
  const c = document.getElementById(id), ctx = c.getContext("2d"), w = c.width, h = c.height;
  maxY = Math.max(maxY, 1e-9);
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#ccc"; ctx.fillStyle = "#555"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = h - 20 - (h - 30) * i / 4;
    ctx.beginPath(); ctx.moveTo(50, y); ctx.lineTo(w - 10, y); ctx.stroke();
    ctx.fillText((maxY * i / 4).toFixed(maxY < 10 ? 1 : 0) + unit, 2, y + 4);
  }
  ctx.fillText(x0.toFixed(1) + "s", 50, h - 5); ctx.fillText(x1.toFixed(1) + "s", w - 45, h - 5);
  const p = (x, y) => [50 + (w - 60) * (x - x0) / Math.max(x1 - x0, 1e-9), h - 20 - (h - 30) * y / maxY];
  const marks = [{t: report.t0, label: "T0"}].concat((report.phases || []).slice(1).map(ph => ({t: ph.start, label: ph.name})));
  ctx.save(); ctx.setLineDash([4, 4]); ctx.strokeStyle = "#888";
  marks.forEach((m, i) => {
    if (m.t < x0 || m.t > x1) return;
    const [x] = p(m.t, 0);
    ctx.beginPath(); ctx.moveTo(x, 8); ctx.lineTo(x, h - 20); ctx.stroke();
    ctx.fillText(m.label, x + 3, 12 + 12 * (i % 2));
  });
  ctx.restore();
  return {c, ctx, w, h, p};
}
function line(g, name, points) {
  // The offered rate is drawn wide and pale, so the achieved rate drawn
  // over it shows where they part.
  g.ctx.strokeStyle = colors[name]; g.ctx.lineWidth = name === "offered" ? 5 : 2;
  g.ctx.globalAlpha = name === "offered" ? 0.45 : 1; g.ctx.beginPath();
  points.forEach((pt, i) => { const [x, y] = g.p(pt[0], pt[1]); i ? g.ctx.lineTo(x, y) : g.ctx.moveTo(x, y); });
  g.ctx.stroke(); g.ctx.globalAlpha = 1;
  return points.length;
}
// bars draws counts stacked by outcome; scale turns a bucket's count into
// a rate per second.
function bars(id, buckets, width, x0, x1, scale) {
  const total = b => outs.reduce((a, o) => a + ((b.by_outcome || {})[o] || 0), 0);
  const maxY = Math.max(1, ...buckets.map(b => Math.max(total(b), b.offered || 0, b.answered || 0) * scale));
  const g = chart(id, x0, x1, maxY, "/s");
  const bw = (g.w - 60) * width / Math.max(x1 - x0, 1e-9) * 0.9;
  let n = 0;
  buckets.forEach(b => {
    let base = 0;
    outs.forEach(o => {
      const v = ((b.by_outcome || {})[o] || 0) * scale;
      if (!v) return;
      const [x, y0] = g.p(b.t, base), [, y1] = g.p(b.t, base + v);
      g.ctx.fillStyle = colors[o]; g.ctx.fillRect(x, y1, bw, y0 - y1); base += v; n++;
    });
  });
  n += line(g, "offered", buckets.map(b => [b.t + width / 2, (b.offered || 0) * scale]));
  n += line(g, "achieved", buckets.map(b => [b.t + width / 2, (b.answered || 0) * scale]));
  legend("legend-" + id, outs.concat(["offered", "achieved"]));
  g.c.dataset.points = n;
}
function lines(id, series, x1, unit) {
  const maxY = Math.max(1e-9, ...series.flatMap(s => s.points.map(pt => pt[1])));
  const g = chart(id, 0, x1, maxY, unit);
  let n = 0;
  series.forEach(s => { n += line(g, s.name, s.points); });
  legend("legend-" + id, series.map(s => s.name));
  g.c.dataset.points = n;
}
function draw() {
  const t = report.timeline || [];
  bars("answers", t, 1, 0, Math.max(1, t.length), 1);
  const f = report.fine || [];
  bars("fine", f, 0.1, f.length ? f[0].t : 0, f.length ? f[f.length - 1].t + 0.1 : 1, 10);
  lines("latency", [
    {name: "p50", points: t.map(s => [s.t + 0.5, s.p50 / 1e6])},
    {name: "p99", points: t.map(s => [s.t + 0.5, s.p99 / 1e6])},
  ], Math.max(1, t.length), "ms");
  const ss = report.sale_samples || [];
  lines("sale", [
    {name: "remaining", points: ss.map(s => [s.t, s.remaining])},
    {name: "queue", points: ss.map(s => [s.t, s.queue_depth])},
    {name: "confirmed", points: ss.map(s => [s.t, s.confirmed])},
  ], Math.max(1, ...ss.map(s => s.t)), "");
  document.body.dataset.rendered = document.querySelectorAll("canvas[data-points]").length;
}
draw();
</script>
</body></html>
`))
