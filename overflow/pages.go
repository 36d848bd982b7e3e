package overflow

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"math"
	"path"
	"strings"
	"time"
)

// The built-in pages, the documented starting point of an operator's own
// (sluice pages export DIR writes them out).
//
//go:embed pages/*.html
var builtinFiles embed.FS

// DefaultPageFiles are the built-in page templates: problem.html,
// waiting.html and join.html.
func DefaultPageFiles() fs.FS {
	sub, _ := fs.Sub(builtinFiles, "pages") // the directory is embedded
	return sub
}

// ErrBadPages is returned by LoadPages for a directory it refuses.
var ErrBadPages = errors.New("overflow: bad pages")

// Pages are the HTML answers' templates. The zero value and nil are the
// built-in pages. It is immutable and safe for concurrent use.
type Pages struct {
	problem  *template.Template
	byReason map[Reason]*template.Template
	waiting  *template.Template
	join     *template.Template
}

// builtin are the built-in pages, parsed once: immutable.
var builtin = mustParseBuiltin()

func mustParseBuiltin() *Pages {
	p, err := parsePages(DefaultPageFiles(), nil)
	if err != nil {
		panic(err) // the embedded files are tested
	}
	return p
}

// pageName is the file a reason's own page is read from: sold-out.html.
func pageName(r Reason) string { return strings.ReplaceAll(string(r), "_", "-") + ".html" }

// LoadPages reads an operator's pages from dir, each a Go html/template:
// waiting.html, join.html, problem.html (every diverted answer), and
// <reason>.html for one reason's answer (sold-out.html, not-started.html…,
// the reason with dashes). A page not there is the built-in one. A file
// that fails to parse, or to execute over sample data, is refused with
// its name and line; so is an .html file that names no page, which would
// otherwise be ignored for a typo.
func LoadPages(dir fs.FS) (*Pages, error) {
	return parsePages(dir, builtin)
}

func parsePages(dir fs.FS, base *Pages) (*Pages, error) {
	p := &Pages{byReason: map[Reason]*template.Template{}}
	if base != nil {
		*p = Pages{problem: base.problem, waiting: base.waiting, join: base.join, byReason: map[Reason]*template.Template{}}
	}
	reasons := map[string]Reason{}
	for r := range catalog {
		reasons[pageName(r)] = r
	}
	entries, err := fs.ReadDir(dir, ".")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPages, err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || path.Ext(name) != ".html" {
			continue
		}
		raw, err := fs.ReadFile(dir, name)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadPages, err)
		}
		t, err := template.New(name).Funcs(pageFuncs).Parse(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadPages, err) // "template: waiting.html:12: …"
		}
		var sample any
		switch name {
		case "problem.html":
			p.problem, sample = t, sampleProblem
		case "waiting.html":
			p.waiting, sample = t, sampleTicket
		case "join.html":
			p.join, sample = t, sampleJoin
		default:
			r, ok := reasons[name]
			if !ok {
				return nil, fmt.Errorf("%w: %s names no page: waiting.html, join.html, problem.html or a reason's page like sold-out.html", ErrBadPages, name)
			}
			p.byReason[r], sample = t, sampleProblem
		}
		if err := t.Execute(io.Discard, sample); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadPages, err)
		}
	}
	if p.problem == nil || p.waiting == nil || p.join == nil {
		return nil, fmt.Errorf("%w: problem.html, waiting.html and join.html are all needed", ErrBadPages)
	}
	return p, nil
}

func (p *Pages) orBuiltin() *Pages {
	if p == nil || p.problem == nil {
		return builtin
	}
	return p
}

// ProblemPage is what problem.html and a reason's page are executed with.
type ProblemPage struct {
	Title, Detail string
	Status        int
	Reason        Reason
	Sale, OrderID string
	// RetryAfter is in whole seconds; 0 when the answer has none.
	RetryAfter int
	// Line is the sale's line to join (pass_required).
	Line          string
	BackendReason string
	// Path points at the value at fault in the request body (bad_payload).
	Path string
	// Variants are the variants still on sale (variant_sold_out), or the
	// sale's variants (variant_required, unknown_variant).
	Variants []string
}

// problemHTML renders a problem's page; a template that fails now (it
// ran over sample data at load) falls back to the built-in page.
func (p *Pages) problemHTML(doc ProblemPage) []byte {
	p = p.orBuiltin()
	t := p.byReason[doc.Reason]
	if t == nil {
		t = p.problem
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, doc); err != nil {
		buf.Reset()
		_ = builtin.problem.Execute(&buf, doc)
	}
	return buf.Bytes()
}

// WaitingTicket is what waiting.html is executed with: the ticket's JSON
// view (GET /v1/tickets/{id}) in fields.
type WaitingTicket struct {
	Sale     string `json:"sale"`
	TicketID string `json:"ticket_id"`
	// TicketHash is the ticket's public identity, SHA-256 of its id: what
	// to look for in the draw and the line's log.
	TicketHash string `json:"ticket_hash"`
	BuyerID    string `json:"buyer_id"`
	State      string `json:"state"`
	Position   int64  `json:"position"`
	LetIn      int64  `json:"let_in"`
	LineLength int64  `json:"line_length"`
	// EstimatedWaitSeconds is nil while the wait is unknown.
	EstimatedWaitSeconds *float64  `json:"estimated_wait_seconds"`
	PollAfterSeconds     int       `json:"poll_after_seconds"`
	PassExpiresAt        time.Time `json:"pass_expires_at"`
	OrderURL             string    `json:"order_url"`
	Links                Links     `json:"-"`
	// view is the ticket's JSON, which the page's script starts from.
	view template.JS
}

// Links are the URLs a waiting page may point at; Log is the line's
// public log, which anyone may check (sluice line verify).
type Links struct {
	Ticket, Order, Line, Draw, Sale, Log string
}

// WaitingPage writes the waiting room's page for a ticket, ticket being
// its JSON view (GET /v1/tickets/{id}): position, progress and the
// estimated wait, kept fresh by polling the ticket (as
// poll_after_seconds says), and at the buyer's turn a button that places
// the order with the pass. The built-in page loads nothing from elsewhere.
func (r *Renderer) WaitingPage(w io.Writer, ticket any) {
	b, _ := json.Marshal(ticket)
	var t WaitingTicket
	_ = json.Unmarshal(b, &t) // the view marshals to these fields
	t.view = template.JS(b)   // JSON is a JS value
	t.Links = Links{Ticket: "/v1/tickets/" + t.TicketID, Order: t.OrderURL,
		Line: "/v1/sales/" + t.Sale + "/line", Draw: "/v1/sales/" + t.Sale + "/draw", Sale: "/v1/sales/" + t.Sale,
		Log: "/v1/sales/" + t.Sale + "/line/log"}
	p := r.pages().orBuiltin()
	if err := p.waiting.Execute(w, t); err != nil {
		_ = builtin.waiting.Execute(w, t)
	}
}

// JoinPage writes the form that joins a sale's line; withBuyer asks the
// buyer id (a gate whose proxy or token names the buyer asks nothing);
// proof solves the line's proof of work in the browser before the form
// is sent ({{proofScript}}).
func (r *Renderer) JoinPage(w io.Writer, sale string, withBuyer, proof bool) {
	d := joinData{Sale: sale, Action: "/v1/sales/" + sale + "/line", WithBuyer: withBuyer, Proof: proof}
	if err := r.pages().orBuiltin().join.Execute(w, d); err != nil {
		_ = builtin.join.Execute(w, d)
	}
}

type joinData struct {
	Sale, Action     string
	WithBuyer, Proof bool
}

func (r *Renderer) pages() *Pages {
	if r == nil {
		return nil
	}
	return r.Pages
}

// Sample data a page is executed with at load, so that a field that does
// not exist is found at start and not at a buyer's request.
var (
	sampleProblem = ProblemPage{Title: "Sold out", Detail: "Every item of this sale is taken.", Status: 410,
		Reason: SoldOut, Sale: "sample", OrderID: "sample-1-0000000000000", RetryAfter: 5, Line: "/v1/sales/sample/line",
		Variants: []string{"us9", "us10"}}
	sampleWait   = 42.0
	sampleTicket = WaitingTicket{Sale: "sample", TicketID: "aaaaaaaaaaaaaaaaaaaaaaaaaa", BuyerID: "buyer", State: "waiting",
		Position: 7, LetIn: 3, LineLength: 10, EstimatedWaitSeconds: &sampleWait, PollAfterSeconds: 5,
		Links: Links{Ticket: "/v1/tickets/aaaaaaaaaaaaaaaaaaaaaaaaaa", Order: "/v1/sales/sample/orders"}, view: `{}`}
	sampleJoin = joinData{Sale: "sample", Action: "/v1/sales/sample/line", WithBuyer: true}
)

// pageFuncs are the functions every page may call.
var pageFuncs = template.FuncMap{
	// script is the waiting page's behaviour, for the ticket given.
	"script": func(t WaitingTicket) template.HTML {
		return template.HTML("<script>\n\"use strict\";\nlet t = " + string(t.view) + ";\n" + waitingScript + "</script>")
	},
	"style": func() template.HTML { return template.HTML(pageStyle) },
	// proofScript solves the line's proof of work before the join form
	// is sent (the join page, when .Proof).
	"proofScript": func() template.HTML { return template.HTML(joinProofScript) },
	"duration": func(v any) string {
		var s float64
		switch x := v.(type) {
		case float64:
			s = x
		case *float64:
			if x == nil {
				return "unknown"
			}
			s = *x
		case int:
			s = float64(x)
		case int64:
			s = float64(x)
		}
		switch {
		case s < 60:
			return fmt.Sprintf("%d s", int(math.Round(s)))
		case s < 3600:
			return fmt.Sprintf("%d min", int(math.Round(s/60)))
		}
		return fmt.Sprintf("%.1f h", s/3600)
	},
}

const pageStyle = `<link rel="icon" href="data:,"><style>
body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1d1d1f}
h1{font-size:1.6rem}.big{font-size:2.4rem;font-weight:700}
.bar{height:14px;background:#e5e5ea;border-radius:7px;overflow:hidden;margin:1rem 0}
.bar div{height:100%;background:#0a7;width:0;transition:width .5s}
button,input{font-size:1.1rem;padding:.6rem 1rem;border-radius:8px;border:1px solid #999}
button{background:#0a7;color:#fff;border:0;cursor:pointer}.muted{color:#666}
</style>`

// waitingScript follows `t`, the ticket's JSON view. Every element it
// touches is optional, so that an operator's page keeps only those it
// shows.
const waitingScript = `let timer = null;
const $ = (id) => document.getElementById(id) || {style: {}, dataset: {}, addEventListener() {}};
function secs(s) {
  if (s === null || s === undefined) return "unknown";
  if (s < 60) return Math.round(s) + " s";
  if (s < 3600) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function render() {
  const pos = t.position;
  // Before the draw there is no position: say so, not "Position … of 3".
  $("position-label").hidden = !pos;
  $("position").textContent = pos ? pos : "Your place is drawn at the start";
  $("of").textContent = !t.line_length ? "" : pos ? "of " + t.line_length + (t.let_in ? " · " + t.let_in + " let in" : "") : "(" + t.line_length + " in line)";
  let pct = 0;
  if (pos) pct = t.let_in >= pos ? 100 : Math.max(2, Math.round(100 * t.let_in / pos));
  $("progress").style.width = pct + "%";
  const words = {
    waiting: t.claimed ? "You claimed your turn: your pass comes the moment the stock covers everyone ahead. Keep this page open."
      : "Estimated wait: " + secs(t.estimated_wait_seconds) + ". Keep this page open, even in the background.",
    offered: "Your turn is offered: claiming it…",
    your_turn: "It is your turn.",
    ordered: "You ordered with your pass.",
    expired: "Your turn came and went: the pass expired unused.",
    lapsed: "Your turn lapsed: nobody claimed it in time.",
    sold_out: "Sold out: every item is taken.",
    closed: "The sale has ended.",
  };
  $("wait").textContent = words[t.state] || t.state;
  $("title").textContent = t.state === "your_turn" ? "Your turn" : "You are in the line";
  $("turn").hidden = t.state !== "your_turn";
  // "Notify me when it is my turn" only while the turn is to come, and
  // while the browser can still ask: not at the turn, nor once the order
  // is made, the line closed or the item sold out.
  $("notify").hidden = !(t.state === "waiting" || t.state === "offered") || !canAsk();
  if (t.pass_expires_at) $("expires").textContent = "until " + new Date(t.pass_expires_at).toLocaleTimeString();
  document.documentElement.dataset.state = t.state;
  // The tab's title tells a person in another tab; a notification too,
  // where they allowed it.
  document.title = t.state === "your_turn" ? "Your turn — buy now · " + t.sale
    : (pos ? "#" + pos + " in line · " : "") + "Waiting room · " + t.sale;
  if (t.state === "your_turn" && !told) {
    told = true;
    try {
      if (window.Notification && Notification.permission === "granted")
        new Notification("Your turn — buy now", {body: t.sale + ": your pass is ready until " +
          new Date(t.pass_expires_at).toLocaleTimeString() + ".", tag: "sluice-" + t.ticket_id});
    } catch (e) { /* a browser without notifications */ }
  }
}
let told = false;
const canAsk = () => !!window.Notification && Notification.permission === "default";
// A state that waits for the line is followed by a long poll (Prefer:
// wait): the gate answers the moment it changes, and claims the turn the
// moment it is offered, so a background tab, whose timers the browser
// throttles to a minute, still claims within the window. Timers pace only
// the rest (a turn's pass, a failed request).
const held = (s) => s === "waiting" || s === "sold_out" || s === "offered";
function schedule(after) {
  clearTimeout(timer);
  if (!held(t.state) && t.state !== "your_turn") return;
  if (held(t.state) && after === undefined) { poll(); return; }
  timer = setTimeout(poll, 1000 * Math.max(1, after || t.poll_after_seconds || 5));
}
async function poll() {
  let again;
  try {
    const r = await fetch("/v1/tickets/" + t.ticket_id, {cache: "no-store",
      headers: held(t.state) ? {Accept: "application/json", Prefer: "wait=25"} : {Accept: "application/json"}});
    if (r.ok) {
      t = await r.json(); render();
      // A gate that held no request (its waiters are full) is asked
      // again when it says.
      if (held(t.state) && !r.headers.get("Preference-Applied")) again = t.poll_after_seconds;
    } else again = Number(r.headers.get("Retry-After")) || 2;
  } catch (e) { again = 2; /* the next poll tries again */ }
  schedule(again);
}
$("notify").addEventListener("click", async () => {
  try { await Notification.requestPermission(); } catch (e) { /* not offered */ }
  $("notify").hidden = true;
});
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
`

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
