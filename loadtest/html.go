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
// The charts: answers per second stacked by outcome; latency p50 and p99
// per second; and the sale's stock remaining, queue depth and confirmed
// orders over time, as read from the gate during the run.
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
.pass{color:#070}.fail{color:#b00}
</style></head>
<body>
<h1>sluice loadtest — sale <code>{{.Report.Sale}}</code>, profile {{.Report.Profile}}</h1>
<p>{{.Report.Requests}} requests to {{.Report.Target}} at {{printf "%.0f" .Report.AchievedRate}}/s (target {{printf "%.0f" .Report.TargetRate}}/s);
{{.Report.Late}} late, {{.Report.Dropped}} dropped.
{{with .Report.Verification}}Outcome check: {{if .Passed}}<b class="pass">passed</b>{{else}}<b class="fail">FAILED</b>{{end}}
({{.Confirmed}} confirmed of stock {{.Stock}}).{{end}}</p>
<h2>Answers per second, by outcome</h2>
<div class="legend" id="legend-answers"></div>
<canvas id="answers" width="1100" height="260"></canvas>
<h2>Latency per second, from the intended send time</h2>
<div class="legend" id="legend-latency"></div>
<canvas id="latency" width="1100" height="260"></canvas>
<h2>The sale during the run: stock remaining, queue depth, confirmed</h2>
<div class="legend" id="legend-sale"></div>
<canvas id="sale" width="1100" height="260"></canvas>
<h2>Summary</h2>
<pre>{{.Summary}}</pre>
<script>
"use strict";
const report = {{.Data}};
const colors = {admitted:"#2a9d3f", diverted:"#e9a23b", rejected:"#8e6cc9", failed:"#d1372b",
  p50:"#2f6db5", p99:"#d1372b", remaining:"#2a9d3f", queue:"#e9a23b", confirmed:"#2f6db5"};
function legend(id, names) {
  document.getElementById(id).innerHTML = names.map(n => '<span><i style="background:' + colors[n] + '"></i>' + n + '</span>').join("");
}
function frame(ctx, w, h, maxX, maxY, unit) {
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#ccc"; ctx.fillStyle = "#555"; ctx.font = "11px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = h - 20 - (h - 30) * i / 4;
    ctx.beginPath(); ctx.moveTo(50, y); ctx.lineTo(w - 10, y); ctx.stroke();
    ctx.fillText((maxY * i / 4).toFixed(maxY < 10 ? 1 : 0) + unit, 2, y + 4);
  }
  ctx.fillText("0s", 50, h - 5); ctx.fillText(maxX.toFixed(1) + "s", w - 45, h - 5);
}
function xy(w, h, maxX, maxY) {
  return (x, y) => [50 + (w - 60) * x / Math.max(maxX, 1e-9), h - 20 - (h - 30) * y / Math.max(maxY, 1e-9)];
}
function drawAnswers() {
  const c = document.getElementById("answers"), ctx = c.getContext("2d"), w = c.width, h = c.height;
  const t = report.timeline || [], outs = ["admitted", "diverted", "rejected", "failed"];
  const maxY = Math.max(1, ...t.map(s => outs.reduce((a, o) => a + ((s.by_outcome || {})[o] || 0), 0)));
  const maxX = Math.max(1, t.length);
  frame(ctx, w, h, maxX, maxY, "/s");
  const p = xy(w, h, maxX, maxY), bw = (w - 60) / maxX * 0.9;
  let bars = 0;
  t.forEach(s => {
    let base = 0;
    outs.forEach(o => {
      const v = (s.by_outcome || {})[o] || 0;
      if (!v) return;
      const [x, y0] = p(s.t, base), [, y1] = p(s.t, base + v);
      ctx.fillStyle = colors[o]; ctx.fillRect(x, y1, bw, y0 - y1); base += v; bars++;
    });
  });
  legend("legend-answers", outs);
  c.dataset.points = bars;
}
function lines(id, series, maxX, unit) {
  const c = document.getElementById(id), ctx = c.getContext("2d"), w = c.width, h = c.height;
  const maxY = Math.max(1e-9, ...series.flatMap(s => s.points.map(pt => pt[1])));
  frame(ctx, w, h, maxX, maxY, unit);
  const p = xy(w, h, maxX, maxY);
  let n = 0;
  series.forEach(s => {
    ctx.strokeStyle = colors[s.name]; ctx.lineWidth = 2; ctx.beginPath();
    s.points.forEach((pt, i) => { const [x, y] = p(pt[0], pt[1]); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); n++; });
    ctx.stroke();
  });
  legend("legend-" + id, series.map(s => s.name));
  c.dataset.points = n;
}
function draw() {
  drawAnswers();
  const t = report.timeline || [];
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
