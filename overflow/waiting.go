package overflow

import (
	"encoding/json"
	"html/template"
	"io"
)

// WaitingPage writes the waiting room's page for a ticket: its position,
// a progress bar and the estimated wait, kept fresh by polling the ticket
// (as poll_after_seconds says), and once it is the buyer's turn a button
// that places the order with the pass. ticket is the ticket's JSON view
// (GET /v1/tickets/{id}). The page loads nothing from elsewhere.
func WaitingPage(w io.Writer, ticket any) {
	b, _ := json.Marshal(ticket)
	_ = waitingPage.Execute(w, template.JS(b)) // the view is JSON: a JS value
}

// JoinPage writes the form that joins a sale's line; withBuyer asks the
// buyer id (a gate whose proxy sets it asks nothing).
func JoinPage(w io.Writer, sale string, withBuyer bool) {
	_ = joinPage.Execute(w, struct {
		Sale      string
		WithBuyer bool
	}{sale, withBuyer})
}

const pageStyle = `<link rel="icon" href="data:,"><style>
body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1d1d1f}
h1{font-size:1.6rem}.big{font-size:2.4rem;font-weight:700}
.bar{height:14px;background:#e5e5ea;border-radius:7px;overflow:hidden;margin:1rem 0}
.bar div{height:100%;background:#0a7;width:0;transition:width .5s}
button,input{font-size:1.1rem;padding:.6rem 1rem;border-radius:8px;border:1px solid #999}
button{background:#0a7;color:#fff;border:0;cursor:pointer}.muted{color:#666}
</style>`

var joinPage = template.Must(template.New("join").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Join the line · {{.Sale}}</title>` + pageStyle + `</head><body>
<h1>Join the line for {{.Sale}}</h1>
<p class="muted">Everyone who joins before the start gets a place drawn at random; later arrivals queue behind in arrival order.</p>
<form method="post" action="/v1/sales/{{.Sale}}/line">
{{if .WithBuyer}}<p><label>Buyer id <input name="buyer_id" id="buyer_id" required maxlength="128"></label></p>{{end}}
<p><button type="submit" id="join">Join the line</button></p>
</form></body></html>
`))

var waitingPage = template.Must(template.New("waiting").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Waiting room</title>` + pageStyle + `</head><body>
<h1 id="title">You are in the line</h1>
<p>Position <span class="big" id="position">…</span> <span class="muted" id="of"></span></p>
<div class="bar"><div id="progress"></div></div>
<p id="wait" class="muted"></p>
<p id="turn" hidden><button id="buy">Your turn — buy now</button> <span class="muted" id="expires"></span></p>
<p id="result" role="status"></p>
<noscript><p>This page updates itself with JavaScript; without it, reload it to see your place.</p></noscript>
<script>
"use strict";
let t = {{.}};
let timer = null;
const $ = (id) => document.getElementById(id);
function secs(s) {
  if (s === null || s === undefined) return "unknown";
  if (s < 60) return Math.round(s) + " s";
  if (s < 3600) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function render() {
  const pos = t.position;
  $("position").textContent = pos === null ? "drawn at the start" : pos;
  $("of").textContent = t.line_length ? "of " + t.line_length + (t.let_in ? " · " + t.let_in + " let in" : "") : "";
  let pct = 0;
  if (pos) pct = t.let_in >= pos ? 100 : Math.max(2, Math.round(100 * t.let_in / pos));
  $("progress").style.width = pct + "%";
  const words = {
    waiting: "Estimated wait: " + secs(t.estimated_wait_seconds) + ". Keep this page open.",
    your_turn: "It is your turn.",
    ordered: "You ordered with your pass.",
    expired: "Your turn came and went: the pass expired unused.",
    sold_out: "Sold out: every item is taken.",
    closed: "The sale has ended.",
  };
  $("wait").textContent = words[t.state] || t.state;
  $("title").textContent = t.state === "your_turn" ? "Your turn" : "You are in the line";
  $("turn").hidden = t.state !== "your_turn";
  if (t.pass_expires_at) $("expires").textContent = "until " + new Date(t.pass_expires_at).toLocaleTimeString();
}
function schedule() {
  clearTimeout(timer);
  if (t.state !== "waiting" && t.state !== "your_turn") return;
  timer = setTimeout(poll, 1000 * Math.max(1, t.poll_after_seconds || 5));
}
async function poll() {
  try {
    const r = await fetch("/v1/tickets/" + t.ticket_id, {headers: {Accept: "application/json"}, cache: "no-store"});
    if (r.ok) { t = await r.json(); render(); }
  } catch (e) { /* the next poll tries again */ }
  schedule();
}
$("buy").addEventListener("click", async () => {
  $("buy").disabled = true;
  $("result").textContent = "Ordering…";
  try {
    // The shop's cookie (its buyer token, with --buyer-token-cookie) goes
    // with the order: the gate and the shop share the page's origin.
    const r = await fetch(t.order_url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", Accept: "application/json",
        "Sluice-Pass": t.pass, "Idempotency-Key": "ticket-" + t.ticket_id, Prefer: "wait=10"},
      body: JSON.stringify({buyer_id: t.buyer_id}),
    });
    const b = await r.json();
    if (r.ok) {
      $("result").textContent = "Order " + b.order_id + ": " + b.status + ".";
      $("result").dataset.order = b.order_id;
      $("result").dataset.status = b.status;
      t.state = "ordered"; render();
    } else {
      $("result").textContent = b.title + ": " + b.detail;
      $("buy").disabled = false;
    }
  } catch (e) {
    $("result").textContent = "The order did not reach the shop; try again.";
    $("buy").disabled = false;
  }
});
render();
schedule();
</script>
</body></html>
`))
