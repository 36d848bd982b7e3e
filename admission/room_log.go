package admission

import (
	"bytes"
	"io"
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
	// The records are the log's own bytes, shared by every read: the
	// answer streams them, with a head and a tail of its own, and copies
	// nothing (a page is a megabyte or more, and its readers many).
	records, n, total := lg.Page(from-1, limit)
	head := make([]byte, 0, 64+len(s.name))
	head = append(head, `{"sale":"`...)
	head = append(head, s.name...)
	head = append(head, `","from":`...)
	head = strconv.AppendInt(head, int64(from), 10)
	head = append(head, `,"records":[`...)
	tail := make([]byte, 0, 96+len(s.name))
	tail = append(tail, `],"total":`...)
	tail = strconv.AppendInt(tail, int64(total), 10)
	if full := n == limit; full || from-1+n < total {
		// More, or more to come: a full page is followed by the next.
		tail = append(tail, `,"next":"/v1/sales/`...)
		tail = append(tail, s.name...)
		tail = append(tail, "/line/log?from="...)
		tail = strconv.AppendInt(tail, int64(from+n), 10)
		tail = append(tail, "&limit="...)
		tail = strconv.AppendInt(tail, int64(limit), 10)
		tail = append(tail, '"')
	}
	tail = append(tail, "}\n"...)
	h := &rc.Response.Header
	h.SetContentTypeBytes(ctJSONb)
	if n == limit {
		h.SetCanonical(hCache, vLogCached)
	} else {
		h.SetCanonical(hCache, vNoStore)
	}
	rc.SetStatusCode(fasthttp.StatusOK)
	rc.Response.SetBodyStream(io.MultiReader(bytes.NewReader(head), bytes.NewReader(records), bytes.NewReader(tail)),
		len(head)+len(records)+len(tail))
}

// lineLog is what the handler reads of a sale's log
// (waitingroom.LineLog).
type lineLog interface {
	Ready() bool
	Page(from, limit int) ([]byte, int, int)
}
