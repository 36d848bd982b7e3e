package admission

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/overflow"
)

// lineLogPage bounds one page of GET /v1/sales/{sale}/line/log.
const lineLogPage = 10_000

var vLogCached = []byte("public, max-age=60")

// getLineLog is GET /v1/sales/{sale}/line/log?from=&limit=: the sale's
// public line log (waitingroom.LineLog), records from..from+limit-1,
// answered from the gate's memory with no JetStream call, the same on
// every gate. A full page never changes but for its total (the log grows
// only at its end), so a proxy may keep it a minute; the last one grows.
func (g *Gate) getLineLog(rc *fasthttp.RequestCtx, saleName string) {
	s, _, ok := g.saleRoom(rc, saleName)
	if !ok {
		return
	}
	args := rc.QueryArgs()
	from, limit := 1, 1000
	for _, a := range []struct {
		name     string
		dst      *int
		min, max int
	}{{"from", &from, 1, 1 << 40}, {"limit", &limit, 1, lineLogPage}} {
		if raw := args.Peek(a.name); raw != nil {
			n, err := strconv.Atoi(string(raw))
			if err != nil || n < a.min || n > a.max {
				g.render.Respond(rc, overflow.Problem{Reason: overflow.BadRequest,
					Detail: "from is 1 or more, limit 1 to " + strconv.Itoa(lineLogPage) + "."})
				return
			}
			*a.dst = n
		}
	}
	var lg lineLog
	if g.rooms != nil {
		if l := g.rooms.Log(s.name); l != nil {
			lg = l
		}
	}
	if lg == nil || !lg.Ready() {
		g.render.Respond(rc, overflow.Problem{Reason: overflow.Unavailable, Sale: s.name, RetryAfter: time.Second,
			Detail: "The line's log is being read; try again shortly."})
		return
	}
	b := make([]byte, 0, 64*min(limit, 256))
	b = append(b, `{"sale":"`...)
	b = append(b, s.name...)
	b = append(b, `","from":`...)
	b = strconv.AppendInt(b, int64(from), 10)
	b = append(b, `,"records":[`...)
	b, n, total := lg.Page(b, from-1, limit)
	b = append(b, `],"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	if full := n == limit; full || from-1+n < total {
		// More, or more to come: a full page is followed by the next.
		b = append(b, `,"next":"/v1/sales/`...)
		b = append(b, s.name...)
		b = append(b, "/line/log?from="...)
		b = strconv.AppendInt(b, int64(from+n), 10)
		b = append(b, "&limit="...)
		b = strconv.AppendInt(b, int64(limit), 10)
		b = append(b, '"')
	}
	b = append(b, "}\n"...)
	h := &rc.Response.Header
	h.SetContentTypeBytes(ctJSONb)
	if n == limit {
		h.SetCanonical(hCache, vLogCached)
	} else {
		h.SetCanonical(hCache, vNoStore)
	}
	rc.SetStatusCode(fasthttp.StatusOK)
	rc.Response.SetBodyRaw(b)
}

// lineLog is what the handler reads of a sale's log
// (waitingroom.LineLog).
type lineLog interface {
	Ready() bool
	Page(dst []byte, from, limit int) ([]byte, int, int)
}
