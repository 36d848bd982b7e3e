package admission

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/internal/ledger"
	"sluice/internal/waitingroom"
	"sluice/internal/waitingroom/line"
	"sluice/overflow"
)

// drawView is GET /v1/sales/{sale}/draw.
type drawView struct {
	Sale       string `json:"sale"`
	Commitment string `json:"commitment"`
	// Seed is revealed once the draw is sealed and the sale started.
	Seed    *string   `json:"seed"`
	Sealed  bool      `json:"sealed"`
	Tickets int64     `json:"tickets"`
	DrawnAt time.Time `json:"drawn_at,omitzero"`
	// TicketsURL lists the drawn tickets in position order.
	TicketsURL string `json:"tickets_url"`
}

func (g *Gate) saleRoom(rc *fasthttp.RequestCtx, saleName string) (*sale, *waitingroom.Room, bool) {
	html := overflow.AcceptsHTML(&rc.Request.Header)
	s := g.lookupSale(saleName)
	if s == nil {
		g.unknownSale.Respond(rc, html)
		return nil, nil, false
	}
	if !s.hasLine.Load() {
		g.render.Render(overflow.Problem{Reason: overflow.NoWaitingRoom, Sale: s.name}).Respond(rc, html)
		return nil, nil, false
	}
	room := g.room(s)
	if room == nil {
		// Not the order's "could not learn whether it was stored": the
		// line is being read (a gate that started or lost JetStream).
		g.render.Render(overflow.Problem{Reason: overflow.Unavailable, Sale: s.name, RetryAfter: time.Second,
			Detail: "The line is being read; try again shortly."}).Respond(rc, html)
		return nil, nil, false
	}
	return s, room, true
}

func (g *Gate) getDraw(rc *fasthttp.RequestCtx, saleName string) {
	s, room, ok := g.saleRoom(rc, saleName)
	if !ok {
		return
	}
	cfg := s.cfg.Load()
	now := g.now()
	st := g.lineState(s, room, cfg, now)
	v := drawView{Sale: s.name, Commitment: room.Keys.Seed.Commitment(), Sealed: st.Sealed,
		TicketsURL: "/v1/sales/" + s.name + "/draw/tickets"}
	if st.Sealed {
		v.Tickets = st.Drawn
		v.DrawnAt = cfg.StartsAt
		if !now.Before(cfg.StartsAt) {
			h := room.Keys.Seed.Hex()
			v.Seed = &h
		}
	}
	respondJSON(rc, http.StatusOK, v)
}

// lineState is the line as the pace saw it last (each refresh), so that
// a flood of GETs costs no walk of the passes; before the pace's first
// look, the line itself.
func (g *Gate) lineState(s *sale, room *waitingroom.Room, cfg *ledger.Sale, now time.Time) line.State {
	if snap := room.Snapshot(); snap != nil {
		st := snap.State
		if !st.Sealed {
			// The seal is the one figure read live: the seed is revealed
			// the moment this gate holds the draw.
			if _, sealing := room.Book.Sealing(); sealing {
				return room.Book.StateWith(now, g.passGrace(), waitingroom.ClaimGrace)
			}
		}
		return st
	}
	return room.Book.StateWith(now, g.passGrace(), waitingroom.ClaimGrace)
}

// drawTicketsPage bounds one page of GET /v1/sales/{sale}/draw/tickets.
const drawTicketsPage = 10_000

type drawTicketsView struct {
	Sale   string `json:"sale"`
	Total  int    `json:"total"`
	Offset int    `json:"offset"`
	// Hashes are the drawn tickets' public identities, SHA-256 of their
	// ids, in position order: Hashes[i] holds position Offset+i+1. Never
	// the ids: an id is its holder's secret, which reads the ticket and
	// its pass.
	Hashes []string `json:"ticket_hashes"`
	Next   string   `json:"next,omitempty"`
}

// getDrawTickets is GET /v1/sales/{sale}/draw/tickets?offset=&limit=:
// the drawn tickets' hashes in position order, no ids, no buyer ids,
// paged.
func (g *Gate) getDrawTickets(rc *fasthttp.RequestCtx, saleName string) {
	s, room, ok := g.saleRoom(rc, saleName)
	if !ok {
		return
	}
	args := rc.QueryArgs()
	offset, limit := 0, 1000
	for _, a := range []struct {
		name string
		dst  *int
		max  int
	}{{"offset", &offset, ledger.MaxLineLimit}, {"limit", &limit, drawTicketsPage}} {
		if raw := args.Peek(a.name); raw != nil {
			n, err := strconv.Atoi(string(raw))
			if err != nil || n < 0 || n > a.max || (a.name == "limit" && n == 0) {
				g.render.Respond(rc, overflow.Problem{Reason: overflow.BadRequest,
					Detail: "offset is 0 or more, limit 1 to " + strconv.Itoa(drawTicketsPage) + "."})
				return
			}
			*a.dst = n
		}
	}
	cfg := s.cfg.Load()
	keys, total, sealed := room.Book.Drawn(offset, limit, nil)
	if !sealed || g.now().Before(cfg.StartsAt) {
		g.render.Respond(rc, overflow.Problem{Reason: overflow.NotStarted, Sale: s.name,
			RetryAfter: max(time.Second, cfg.StartsAt.Sub(g.now())),
			Detail:     "The draw is made at the start of the sale."})
		return
	}
	v := drawTicketsView{Sale: s.name, Total: total, Offset: offset, Hashes: make([]string, len(keys))}
	for i, k := range keys {
		h := k.Hash()
		v.Hashes[i] = hex.EncodeToString(h[:])
	}
	if end := offset + len(keys); end < total {
		v.Next = "/v1/sales/" + s.name + "/draw/tickets?offset=" + strconv.Itoa(end) + "&limit=" + strconv.Itoa(limit)
	}
	respondJSON(rc, http.StatusOK, v)
}

// lineView is GET /v1/sales/{sale}/line: the line as a whole (and, in a
// browser, the form to join it).
type lineView struct {
	Sale        string    `json:"sale"`
	LineOpensAt time.Time `json:"line_opens_at,omitzero"`
	StartsAt    time.Time `json:"starts_at,omitzero"`
	Tickets     int64     `json:"line_length"`
	LineLimit   int64     `json:"line_limit"`
	Sealed      bool      `json:"drawn"`
	Drawn       int64     `json:"drawn_tickets"`
	LetIn       int64     `json:"let_in"`
	Offered     int64     `json:"offered"`
	Outstanding int64     `json:"passes_outstanding"`
	Lapsed      int64     `json:"lapsed"`
	Claimed     int64     `json:"claimed"`
	Rate        estimate  `json:"let_in_rate"`
	PassTTL     float64   `json:"pass_ttl_seconds"`
	ClaimWindow float64   `json:"claim_window_seconds"`
}

func (g *Gate) getLine(rc *fasthttp.RequestCtx, saleName string) {
	s, room, ok := g.saleRoom(rc, saleName)
	if !ok {
		return
	}
	cfg := s.cfg.Load()
	st := g.lineState(s, room, cfg, g.now())
	v := lineView{Sale: s.name, LineOpensAt: cfg.LineOpensAt(), StartsAt: cfg.StartsAt, Tickets: st.Tickets,
		LineLimit: cfg.LineCap(), Sealed: st.Sealed, Drawn: st.Drawn, LetIn: st.LetIn, Outstanding: st.Outstanding,
		Rate: estimateOf(st.Rate, st.LetIn > 0), PassTTL: cfg.PassLifetime().Seconds(),
		Offered: st.Offered, Lapsed: st.Lapsed, Claimed: st.Claimed, ClaimWindow: cfg.ClaimLifetime().Seconds()}
	if overflow.AcceptsHTML(&rc.Request.Header) {
		rc.Response.Header.SetContentType("text/html; charset=utf-8")
		var buf bytes.Buffer
		g.render.JoinPage(&buf, s.name, g.cfg.BuyerHeader == "" && g.cfg.BuyerTokens == nil, cfg.JoinProof != "")
		rc.Response.SetBodyRaw(buf.Bytes())
		return
	}
	respondJSON(rc, http.StatusOK, v)
}
