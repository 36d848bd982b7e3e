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
// buyer id (a gate whose proxy or token names the buyer asks nothing);
// proof solves the line's proof of work in the browser before the form
// is sent (see joinProofScript).
func JoinPage(w io.Writer, sale string, withBuyer, proof bool) {
	_ = joinPage.Execute(w, struct {
		Sale      string
		WithBuyer bool
		Proof     bool
	}{sale, withBuyer, proof})
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
{{if .Proof}}<input type="hidden" name="altcha" id="altcha">
<p id="proving" hidden><progress id="proof" max="1" value="0"></progress> <span class="muted">Checking this browser: a second's work, once.</span></p>{{end}}
</form>{{if .Proof}}` + joinProofScript + `{{end}}</body></html>
`))

// joinProofScript solves the line's ALTCHA challenge before the join is
// sent: SHA-256(salt + n) for n = 0, 1, … until it is the challenge,
// with WebCrypto in a Web Worker (the page stays responsive and shows
// the progress), then posts the form with the solution in the altcha
// field. Nothing is loaded from elsewhere: the worker is this function's
// own source. The solve time is left in sessionStorage (sluice-solve-ms)
// for tests and the README's figure.
const joinProofScript = `<script>
"use strict";
function altchaWorker() {
  onmessage = async (e) => {
    const c = e.data, enc = new TextEncoder();
    const want = new Uint8Array(c.challenge.match(/../g).map((h) => parseInt(h, 16)));
    for (let n = 0; n <= c.maxnumber; n++) {
      const d = new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(c.salt + n)));
      let i = 0;
      while (i < 32 && d[i] === want[i]) i++;
      if (i === 32) { postMessage({number: n}); return; }
      if (n % 1000 === 0) postMessage({progress: n / c.maxnumber});
    }
    postMessage({number: null});
  };
}
const form = document.querySelector("form");
form.addEventListener("submit", async (ev) => {
  if (document.getElementById("altcha").value) return;
  ev.preventDefault();
  document.getElementById("join").disabled = true;
  document.getElementById("proving").hidden = false;
  const t0 = performance.now();
  const r = await fetch(form.action + "/challenge", {headers: {Accept: "application/json"}, cache: "no-store"});
  const c = await r.json();
  const url = URL.createObjectURL(new Blob(["(" + altchaWorker.toString() + ")()"], {type: "text/javascript"}));
  const w = new Worker(url);
  w.onmessage = (m) => {
    if (m.data.progress !== undefined) { document.getElementById("proof").value = m.data.progress; return; }
    w.terminate();
    URL.revokeObjectURL(url);
    try { sessionStorage.setItem("sluice-solve-ms", String(Math.round(performance.now() - t0))); } catch (e) { /* private mode */ }
    document.getElementById("altcha").value = btoa(JSON.stringify({algorithm: c.algorithm, challenge: c.challenge,
      number: m.data.number, salt: c.salt, signature: c.signature}));
    document.getElementById("proof").value = 1;
    form.submit();
  };
  w.postMessage(c);
});
</script>`

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
