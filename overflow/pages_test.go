package overflow_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"sluice/overflow"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestOwnPages(t *testing.T) {
	p, err := overflow.LoadPages(fstest.MapFS{
		"sold-out.html": file(`<h1>{{.Sale}} is gone</h1><p>{{.Detail}}</p>`),
		"waiting.html":  file(`<title>{{.Sale}}</title><b id="position">{{.Position}}</b> of {{.LineLength}}, about {{duration .EstimatedWaitSeconds}}; <a href="{{.Links.Ticket}}">t</a>{{script .}}`),
		"README.txt":    file(`not a page`),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &overflow.Renderer{Pages: p}
	var html bytes.Buffer
	r.Render(overflow.Problem{Reason: overflow.SoldOut, Sale: "tee"}).Write(recorder{&html}, true)
	if !strings.Contains(html.String(), "<h1>tee is gone</h1>") {
		t.Errorf("own sold-out page: %s", html.String())
	}
	html.Reset()
	r.Render(overflow.Problem{Reason: overflow.NotStarted, Sale: "tee"}).Write(recorder{&html}, true)
	if !strings.Contains(html.String(), "<h1>Not started</h1>") {
		t.Errorf("a reason without its own page gets the built-in one: %s", html.String())
	}
	html.Reset()
	wait := 130.0
	r.WaitingPage(&html, map[string]any{"sale": "tee", "ticket_id": "abc", "position": 12, "line_length": 40,
		"estimated_wait_seconds": wait, "state": "waiting", "order_url": "/v1/sales/tee/orders"})
	got := html.String()
	for _, want := range []string{"<title>tee</title>", `<b id="position">12</b> of 40, about 2 min`, `href="/v1/tickets/abc"`,
		`let t = {"estimated_wait_seconds":130`, "async function poll()", "</script>"} {
		if !strings.Contains(got, want) {
			t.Errorf("own waiting page lacks %q:\n%s", want, got)
		}
	}
}

func TestOwnPagesRefused(t *testing.T) {
	for name, c := range map[string]struct {
		fs   fstest.MapFS
		want string
	}{
		"parse error":   {fstest.MapFS{"waiting.html": file("<p>\n{{.Position}\n")}, "waiting.html:2"},
		"unknown field": {fstest.MapFS{"problem.html": file("<p>{{.Nope}}</p>")}, "problem.html"},
		"a typo'd name": {fstest.MapFS{"sold_out.html": file("<p></p>")}, "sold_out.html names no page"},
		"bad function":  {fstest.MapFS{"join.html": file("{{nope}}")}, "join.html:1"},
	} {
		_, err := overflow.LoadPages(c.fs)
		if !errors.Is(err, overflow.ErrBadPages) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrBadPages saying %q", name, err, c.want)
		}
	}
}

// The exported pages are the built-in ones: loaded as an operator's,
// they render the same bytes.
func TestDefaultPagesAreTheBuiltIn(t *testing.T) {
	p, err := overflow.LoadPages(overflow.DefaultPageFiles())
	if err != nil {
		t.Fatal(err)
	}
	own, builtin := &overflow.Renderer{Pages: p}, &overflow.Renderer{}
	for _, r := range overflow.Reasons() {
		var a, b bytes.Buffer
		own.Render(overflow.Problem{Reason: r, Sale: "s"}).Write(recorder{&a}, true)
		builtin.Render(overflow.Problem{Reason: r, Sale: "s"}).Write(recorder{&b}, true)
		if a.String() != b.String() || a.Len() == 0 {
			t.Errorf("%s: exported page renders otherwise", r)
		}
	}
	var a, b bytes.Buffer
	ticket := map[string]any{"sale": "s", "ticket_id": "x", "state": "waiting"}
	own.WaitingPage(&a, ticket)
	builtin.WaitingPage(&b, ticket)
	if a.String() != b.String() || !strings.Contains(a.String(), "You are in the line") {
		t.Errorf("exported waiting page renders otherwise")
	}
}

// recorder is an http.ResponseWriter that keeps the body.
type recorder struct{ body *bytes.Buffer }

func (r recorder) Header() http.Header         { return http.Header{} }
func (r recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r recorder) WriteHeader(int)             {}

// Before the draw the waiting page says the place is drawn at the start,
// not "Position drawn at the start of 3"; after it, "Position 2".
func TestWaitingPageBeforeAndAfterTheDraw(t *testing.T) {
	r := &overflow.Renderer{}
	var before, after bytes.Buffer
	r.WaitingPage(&before, map[string]any{"sale": "s", "ticket_id": "x", "state": "waiting", "position": nil, "line_length": 3})
	r.WaitingPage(&after, map[string]any{"sale": "s", "ticket_id": "x", "state": "waiting", "position": 2, "line_length": 3})
	if b := before.String(); !strings.Contains(b, `<span id="position-label" hidden>Position </span><span class="big" id="position">Your place is drawn at the start</span>`) {
		t.Errorf("before the draw:\n%s", b)
	}
	if a := after.String(); !strings.Contains(a, `<span id="position-label">Position </span><span class="big" id="position">2</span>`) {
		t.Errorf("after the draw:\n%s", a)
	}
}

// The waiting page links to the line's public log, says how to check it,
// and shows the ticket's hash to look for there (never its id in the
// log's link).
func TestWaitingPageLinksToTheLineLog(t *testing.T) {
	r := &overflow.Renderer{}
	var b bytes.Buffer
	hash := strings.Repeat("ab", 32)
	r.WaitingPage(&b, map[string]any{"sale": "drop", "ticket_id": "secretticketid", "ticket_hash": hash, "state": "waiting", "position": 2})
	page := b.String()
	for _, want := range []string{`<a href="/v1/sales/drop/line/log">the line's log</a>`, `<code>sluice line verify drop</code>`, `<code>` + hash + `</code>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page has no %s:\n%s", want, page)
		}
	}
}
