package admission

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/internal/ledger"
	"sluice/internal/waitingroom"
	"sluice/internal/waitingroom/line"
	"sluice/overflow"
)

// ticketView is a ticket as GET /v1/tickets/{id} and the join answer it.
type ticketView struct {
	// TicketID is the holder's secret; appendJSON writes beside it
	// ticket_hash, SHA-256 of it, the ticket's public identity: what to
	// look for in the draw and the line's log.
	TicketID string `json:"ticket_id"`
	Sale     string `json:"sale"`
	BuyerID  string `json:"buyer_id"`
	// State: waiting, offered, your_turn, ordered, expired, lapsed,
	// sold_out, closed.
	State string `json:"state"`
	// Claimed: the holder claimed the turn (asked for the ticket while
	// it was offered); the pass comes once the stock covers everyone
	// ahead.
	Claimed bool `json:"claimed"`
	// ClaimBy is when an offered turn lapses unless claimed.
	ClaimBy time.Time `json:"claim_by,omitzero"`
	// Rejoined: the turn lapsed and the ticket was put at the back, at
	// Position (once).
	Rejoined bool `json:"rejoined"`
	// Drawn: taken before the start, so in the draw.
	Drawn bool `json:"drawn"`
	// Position in the line, null (0 here) until the draw is made at the start.
	Position int64 `json:"position"`
	// LetIn: positions 1..let_in have had their turn; Tickets in line.
	LetIn          int64    `json:"let_in"`
	Tickets        int64    `json:"line_length"`
	EstimatedWaitS estimate `json:"estimated_wait_seconds"`
	// Reachable: the stock left, beyond what the turns ahead hold,
	// covers this position now (a waiting ticket after the draw); nil
	// otherwise. A ticket out of reach may come within it as passes
	// expire unused, turns lapse and orders are given back.
	Reachable     *bool     `json:"reachable,omitempty"`
	PollAfterS    int       `json:"poll_after_seconds"`
	Pass          string    `json:"pass,omitempty"`
	PassExpiresAt time.Time `json:"pass_expires_at,omitzero"`
	JoinedAt      time.Time `json:"joined_at"`
	StartsAt      time.Time `json:"starts_at,omitzero"`
	// OrderURL is where to order with the pass.
	OrderURL string `json:"order_url"`
	// VariantsLeft are a sale with variants' variants still on sale: a
	// pass is good for any of them (variantsLeft).
	VariantsLeft []string `json:"variants_left,omitempty"`
}

// Ticket states.
const (
	TicketWaiting  = "waiting"
	TicketOffered  = "offered" // the turn is offered: claim it (a GET does)
	TicketYourTurn = "your_turn"
	TicketOrdered  = "ordered"
	TicketExpired  = "expired"
	TicketLapsed   = "lapsed" // the turn was not claimed in time
	TicketSoldOut  = "sold_out"
	TicketClosed   = "closed"
)

// viewTicket is what a ticket's holder sees at now.
// id is the ticket's id as the client wrote it (KeyOf accepted it).
func (g *Gate) viewTicket(s *sale, cfg *ledger.Sale, room *waitingroom.Room, t line.Ticket, id string, now time.Time) ticketView {
	snap := room.Snapshot()
	if snap == nil {
		snap = &waitingroom.Snapshot{}
	}
	v := ticketView{TicketID: id, Sale: s.name, BuyerID: t.Buyer, Drawn: t.Drawn, Claimed: t.Claimed, Rejoined: t.Rejoined,
		LetIn: snap.LetIn, Tickets: max(snap.Tickets, int64(t.Position)), JoinedAt: t.Joined.UTC(),
		StartsAt: cfg.StartsAt, OrderURL: s.orderURL, VariantsLeft: variantsLeft(s)}
	ttl := cfg.PassLifetime()
	v.Position = t.Position // 0: not drawn yet, written null
	if t.LetIn && t.Position > v.LetIn {
		v.LetIn = t.Position // the book is ahead of the pace's last look
	}
	switch {
	case t.Used:
		v.State = TicketOrdered
	case cfg.PhaseAt(now) == ledger.Closed:
		v.State = TicketClosed
	case t.HasPass() && now.Before(t.PassExpires):
		// Before sold_out: a pass is given only while the stock covers
		// it, so its holder is served whatever this gate's sold-out
		// flag says (it may be a refresh behind returned stock).
		v.State = TicketYourTurn
		exp := t.PassExpires
		tok, err := line.Sign(room.Keys.Secret, line.Pass{Sale: s.name, Buyer: t.Buyer, Ticket: v.TicketID, Expires: exp})
		if err == nil {
			v.Pass, v.PassExpiresAt = tok, time.UnixMilli(exp.UnixMilli()).UTC()
		}
	case t.HasPass():
		v.State = TicketExpired
	case t.Offered && !t.Claimed && !now.Before(t.ClaimBy):
		v.State = TicketLapsed
	case t.Offered && !t.Claimed:
		// Before sold_out too: the turn is offered only while the stock
		// may still cover it.
		v.State, v.ClaimBy = TicketOffered, time.UnixMilli(t.ClaimBy.UnixMilli()).UTC()
	case s.soldOut.Load():
		v.State = TicketSoldOut
	default:
		v.State = TicketWaiting
	}
	// Never so rare that a turn could come and go between two polls:
	// every state that can still change is asked again within a third
	// of the pass's life, and a ticket the next offers may reach within
	// a third of the claim window (the waiting page holds a long poll
	// instead). Further back, where no one step of the pace reaches, the
	// estimate spreads the polls.
	soon := max(line.MinPoll, ttl/3)
	claimSoon := max(line.MinPoll, min(ttl, cfg.ClaimLifetime())/3)
	switch v.State {
	case TicketWaiting:
		if t.Position == 0 {
			// Before the draw: no honest estimate yet (the position is
			// drawn at random), and the first look after it.
			v.EstimatedWaitS = estimateOf(0, false)
			v.PollAfterS = secondsUp(g.untilFirstLook(cfg, room, t, now))
			break
		}
		w, ok := line.Wait(t.Position, snap.LetIn, snap.Rate)
		reachable := t.Position-snap.LetIn <= snap.Spare
		if !reachable {
			ok = false // the stock left is promised to those ahead
		}
		v.Reachable = &reachable
		v.EstimatedWaitS = estimateOf(w.Seconds(), ok)
		// Never so rare that a turn could come and go between two polls,
		// whatever the estimate says.
		poll := min(line.PollAfter(t.Position, snap.LetIn, snap.Rate), soon)
		switch {
		case t.Claimed:
			// Its pass comes when the stock covers everyone ahead, and
			// lives pass_ttl from then.
			poll = min(poll, claimSoon)
		case !t.Slot.IsZero() && !t.Rejoined:
			// A drawn ticket at its drawn place comes at its looks at the
			// latest: its turn's claim window starts at the first after
			// the offer (line.Opening), so coming no later than each look
			// it cannot miss it, and the line's load is the gates' poll
			// rate, not its length. Within the pace's reach it asks
			// sooner, to claim soon.
			poll = max(line.MinPoll, line.NextLook(t.Slot, t.Period, now).Sub(now))
			if t.Position <= snap.Reach {
				poll = min(poll, claimSoon)
			}
		case t.Position <= max(snap.Offered, snap.LetIn)+waitingroom.MaxOffersAhead*cfg.Capacity():
			poll = min(poll, claimSoon)
		}
		v.PollAfterS = secondsUp(poll)
	case TicketOffered:
		// Claim it now: asking is claiming.
		v.EstimatedWaitS = estimateOf(0, true)
		v.PollAfterS = int(line.MinPoll / time.Second)
	case TicketYourTurn:
		// Until the pass expires (the holder orders meanwhile), and within
		// soon: an order placed elsewhere turns it to ordered.
		v.EstimatedWaitS = estimateOf(0, true)
		v.PollAfterS = int(min(soon, max(line.MinPoll, v.PassExpiresAt.Sub(now).Round(time.Second))) / time.Second)
	case TicketLapsed:
		// Asked again once the lapse is final, the ticket goes to the
		// back of the line (once, while stock remains: rejoinLine).
		v.EstimatedWaitS = estimateOf(0, false)
		v.PollAfterS = int(line.MaxPoll / time.Second)
		if !t.Rejoined {
			v.PollAfterS = int(max(line.MinPoll, t.ClaimBy.Add(waitingroom.ClaimGrace).Sub(now).Round(time.Second)) / time.Second)
		}
	case TicketSoldOut:
		// Stock given back (a cancel, a rejected order) reopens the line
		// until the sale closes: the next in line must see its turn (at
		// its looks, for a drawn ticket: its window starts at one).
		v.EstimatedWaitS = estimateOf(0, false)
		poll := min(line.MaxPoll, soon)
		if !t.Slot.IsZero() && !t.Rejoined {
			poll = max(line.MinPoll, line.NextLook(t.Slot, t.Period, now).Sub(now))
		}
		v.PollAfterS = secondsUp(poll)
	default:
		v.EstimatedWaitS = estimateOf(0, false)
		v.PollAfterS = int(line.MaxPoll / time.Second)
	}
	return v
}

// untilFirstLook is how long a ticket not drawn yet waits before it asks
// again: until its slot in the opening (line.Opening), which the gate
// knows before the draw (its share of the opening is its draw key's; the
// opening's length the line's length over the sale's poll rate, which
// only grows until the draw, so the slot told is never after the slot
// the draw gives). Far from the start it asks at half the time left, so
// that a start moved earlier reaches it.
func (g *Gate) untilFirstLook(cfg *ledger.Sale, room *waitingroom.Room, t line.Ticket, now time.Time) time.Duration {
	length := line.OpeningLength(room.Book.Len(), cfg.LinePollRate())
	slot := cfg.StartsAt.Add(time.Duration(line.SlotShare(room.Keys.Seed, t.ID) * float64(length)))
	until := slot.Sub(now)
	if until > 2*time.Minute {
		until = min(until/2, maxEarlyPoll)
	}
	return max(line.MinPoll, until)
}

// secondsUp is d in whole seconds, rounded up: a ticket told to come at
// a look (line.Opening) comes at it or within a second after (its claim
// window starts there), never a second before it, to be told to come
// again.
func secondsUp(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// maxEarlyPoll bounds the wait of a ticket asking long before the start.
const maxEarlyPoll = 5 * time.Minute

// getTicket is GET /v1/tickets/{id}, answered from memory.
func (g *Gate) getTicket(rc *fasthttp.RequestCtx, rawID string) {
	html := overflow.AcceptsHTML(&rc.Request.Header)
	key, ok := line.KeyOf(rawID)
	s, room, t := (*sale)(nil), (*waitingroom.Room)(nil), line.Ticket{}
	if ok {
		s, room, t, ok = g.findTicket(key)
	}
	if !ok {
		g.m.linePolls.WithLabelValues(unknownSaleLabel).Inc()
		g.render.Render(overflow.Problem{Reason: overflow.TicketNotFound}).Respond(rc, html)
		return
	}
	s.linePolls.Inc()
	// Asking for the ticket claims its turn when it is offered, and puts
	// it at the back when its turn lapsed.
	t, err := g.claimTurn(s, room, t, rawID, g.now())
	if err == nil {
		t, err = g.rejoinLine(s, room, t, rawID, g.now())
	}
	if err != nil {
		g.lineWarn.Note(g.now(), func(n int) {
			g.log.Warn("cannot record a claim", "sale", s.name, "tries", n, "err", err)
		})
		g.render.Render(overflow.Problem{Reason: overflow.Unavailable, Sale: s.name, RetryAfter: time.Second,
			Detail: "The line could not record your claim or your return: ask again at once."}).Respond(rc, html)
		return
	}
	v := g.viewTicket(s, s.cfg.Load(), room, t, rawID, g.now())
	if wait := preferWait(&rc.Request.Header); wait > 0 && isPending(v.State) {
		var held bool
		v, held, err = g.holdTicket(s, room, key, rawID, v, wait)
		if held {
			setPreferenceApplied(rc, wait)
		}
		if err != nil {
			g.render.Render(overflow.Problem{Reason: overflow.Unavailable, Sale: s.name, RetryAfter: time.Second,
				Detail: "Your turn is offered, and the claim could not be recorded: ask again at once."}).Respond(rc, html)
			return
		}
	}
	g.writeTicket(rc, http.StatusOK, &v, html)
}

// isPending says a ticket in this state waits for something to happen:
// a long poll holds it until its state changes.
func isPending(state string) bool {
	return state == TicketWaiting || state == TicketSoldOut
}

// claimKey is a turn being claimed: a ticket and its position.
type claimKey struct {
	ticket line.TicketKey
	pos    int64
}

// claimTurn is the poll's one write: when the ticket's turn is offered,
// unclaimed and its window open, it records the claim and returns the
// ticket as the book then shows it. It writes nothing once the book
// shows the claim, nor while this gate's own write of it is in flight,
// so a claimed turn costs one write per gate at most, never one per
// poll; the record's message id makes the gates' writes one record.
func (g *Gate) claimTurn(s *sale, room *waitingroom.Room, t line.Ticket, id string, now time.Time) (line.Ticket, error) {
	if t.Used || !t.Offered || t.Claimed || !now.Before(t.ClaimBy) {
		return t, nil
	}
	k := claimKey{t.ID, t.Position}
	if _, busy := s.claiming.LoadOrStore(k, struct{}{}); busy {
		return t, nil
	}
	defer s.claiming.Delete(k)
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.PublishTimeout)
	defer cancel()
	if err := g.roomStore.ClaimTurn(ctx, s.name, id, t.Position); err != nil {
		return t, err
	}
	g.m.lineClaimWrites.WithLabelValues(s.name).Inc()
	// The claim counts once the book applies it (it may come too late
	// to count: then the turn reads lapsed): wait for it a moment, so
	// that this answer shows it.
	ctx, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	for {
		_, more := room.Book.Applied()
		if nt, ok := room.Book.Lookup(t.ID); ok && (nt.Claimed || nt.Position != t.Position) {
			return nt, nil
		}
		select {
		case <-more:
		case <-ctx.Done():
			nt, _ := room.Book.Lookup(t.ID)
			return nt, nil
		}
	}
}

// rejoinLine is the poll's other write: a holder whose turn lapsed (its
// window closed, and the claim grace passed, unclaimed and unused) who
// asks for the ticket while the sale is open and not sold out is put at
// the back of the line, once (the broker keeps one rejoin per buyer): no
// better off than anyone who stayed, and not lost.
func (g *Gate) rejoinLine(s *sale, room *waitingroom.Room, t line.Ticket, id string, now time.Time) (line.Ticket, error) {
	if t.Used || t.Rejoined || !t.Lapsed(now, waitingroom.ClaimGrace) || s.soldOut.Load() || s.cfg.Load().PhaseAt(now) != ledger.Open {
		return t, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.PublishTimeout)
	defer cancel()
	seq, err := g.roomStore.RejoinLine(ctx, s.name, t.Buyer, id)
	if errors.Is(err, waitingroom.ErrLineFull) {
		return t, nil // no room at the back: it stays lapsed
	}
	if err != nil {
		return t, err
	}
	if err := room.WaitApplied(ctx, seq); err != nil {
		return t, err
	}
	nt, _ := room.Book.Lookup(t.ID)
	return nt, nil
}

// holdTicket holds a poll (Prefer: wait) until the ticket's state
// changes or d passes, and claims its turn the moment it is offered: a
// page in a background tab, whose timers the browser throttles, keeps
// its place. A held poll counts against MaxWaiters with the held orders,
// and costs a channel and a timer: the book's records wake it, no
// JetStream call. With MaxWaiters held, it answers at once (held false).
func (g *Gate) holdTicket(s *sale, room *waitingroom.Room, key line.TicketKey, id string, v ticketView, d time.Duration) (_ ticketView, held bool, _ error) {
	if !g.takeWaiter() {
		return v, false, nil
	}
	g.m.waiters.Inc()
	defer func() {
		g.waiting.Add(-1)
		g.m.waiters.Dec()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	// Times at which the state changes with no record: the claim window
	// closing (nothing to do then but the holder should know), so a
	// timer tick of a second at most re-reads it.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	state, pos, claimed := v.State, v.Position, v.Claimed
	for {
		_, more := room.Book.Applied()
		select {
		case <-more:
		case <-tick.C:
		case <-timer.C:
			return v, true, nil
		case <-g.stopping:
			return v, true, nil
		}
		t, ok := room.Book.Lookup(key)
		if !ok {
			return v, true, nil
		}
		t, err := g.claimTurn(s, room, t, id, g.now())
		if err == nil {
			t, err = g.rejoinLine(s, room, t, id, g.now())
		}
		if err != nil {
			return v, true, err
		}
		v = g.viewTicket(s, s.cfg.Load(), room, t, id, g.now())
		if v.State != state || v.Position != pos || v.Claimed != claimed {
			return v, true, nil
		}
	}
}

var hRetryAfter = []byte("Retry-After")

func (g *Gate) writeTicket(rc *fasthttp.RequestCtx, status int, v *ticketView, html bool) {
	h := &rc.Response.Header
	var n [20]byte
	h.SetCanonical(hRetryAfter, strconv.AppendInt(n[:0], int64(v.PollAfterS), 10))
	h.SetCanonical(hCache, vNoStore)
	rc.SetStatusCode(status)
	if html {
		h.SetContentType("text/html; charset=utf-8")
		var buf bytes.Buffer
		g.render.WaitingPage(&buf, v)
		rc.Response.SetBodyRaw(buf.Bytes())
		return
	}
	h.SetContentTypeBytes(ctJSONb)
	bp := ticketBufs.Get().(*[]byte)
	*bp = v.appendJSON((*bp)[:0])
	rc.Response.AppendBody(*bp) // copied into the response's own buffer
	ticketBufs.Put(bp)
}

// ticketBufs are scratch buffers a poll's answer is written in.
var ticketBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// MarshalJSON writes the view as appendJSON does.
func (v ticketView) MarshalJSON() ([]byte, error) { return v.appendJSON(nil), nil }

// appendJSON writes the view as JSON without reflection: every string in
// it is of a validated alphabet (sale names, buyer ids, ticket ids,
// passes, paths), which JSON writes as it is.
func (v *ticketView) appendJSON(b []byte) []byte {
	str := func(b []byte, k, s string) []byte {
		b = append(b, `,"`...)
		b = append(b, k...)
		b = append(b, `":"`...)
		b = append(b, s...)
		return append(b, '"')
	}
	num := func(b []byte, k string, n int64) []byte {
		b = append(b, `,"`...)
		b = append(b, k...)
		b = append(b, `":`...)
		return strconv.AppendInt(b, n, 10)
	}
	tm := func(b []byte, k string, t time.Time) []byte {
		b = append(b, `,"`...)
		b = append(b, k...)
		b = append(b, `":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	}
	b = append(b, `{"ticket_id":"`...)
	b = append(b, v.TicketID...)
	b = append(b, `","ticket_hash":"`...)
	var id [line.TicketIDLen]byte
	h := sha256.Sum256(id[:copy(id[:], v.TicketID)])
	b = hex.AppendEncode(b, h[:])
	b = append(b, '"')
	b = str(b, "sale", v.Sale)
	b = str(b, "buyer_id", v.BuyerID)
	b = str(b, "state", v.State)
	b = append(b, `,"claimed":`...)
	b = strconv.AppendBool(b, v.Claimed)
	b = append(b, `,"rejoined":`...)
	b = strconv.AppendBool(b, v.Rejoined)
	if !v.ClaimBy.IsZero() {
		b = tm(b, "claim_by", v.ClaimBy)
	}
	b = append(b, `,"drawn":`...)
	b = strconv.AppendBool(b, v.Drawn)
	if v.Position > 0 {
		b = num(b, "position", v.Position)
	} else {
		b = append(b, `,"position":null`...)
	}
	b = num(b, "let_in", v.LetIn)
	b = num(b, "line_length", v.Tickets)
	if v.Reachable != nil {
		b = append(b, `,"reachable":`...)
		b = strconv.AppendBool(b, *v.Reachable)
	}
	b = append(b, `,"estimated_wait_seconds":`...)
	if w, ok := v.EstimatedWaitS.Value(); ok && !math.IsNaN(w) && !math.IsInf(w, 0) {
		b = strconv.AppendFloat(b, math.Round(w*1000)/1000, 'f', -1, 64)
	} else {
		b = append(b, "null"...)
	}
	b = num(b, "poll_after_seconds", int64(v.PollAfterS))
	if v.Pass != "" {
		b = str(b, "pass", v.Pass)
		b = tm(b, "pass_expires_at", v.PassExpiresAt)
	}
	b = tm(b, "joined_at", v.JoinedAt)
	if !v.StartsAt.IsZero() {
		b = tm(b, "starts_at", v.StartsAt)
	}
	b = str(b, "order_url", v.OrderURL)
	return append(b, "}\n"...)
}
