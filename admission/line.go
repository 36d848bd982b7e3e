package admission

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/valyala/fasthttp"

	"sluice/internal/ledger"
	"sluice/internal/room/line"
	"sluice/overflow"
)

// Rooms gives the waiting room a gate follows for a sale (ledger.Rooms),
// nil while it is not open. A sale's room is followed while the sale has
// a line, the room on or off.
type Rooms interface {
	Room(sale string) *ledger.Room
	// Open opens the rooms of these sales, the sales with a line.
	Open(ctx context.Context, sales []string)
}

// LineLedger is what the waiting room writes to JetStream (ledger.Ledger).
type LineLedger interface {
	Join(ctx context.Context, sale, buyer string) (ledger.Joined, bool, error)
	// HeldTicket reads the ticket a buyer holds, if any.
	HeldTicket(ctx context.Context, sale, buyer string) (ledger.Joined, bool, error)
	SealDraw(ctx context.Context, sale string) (bool, error)
	LineLastSeq(ctx context.Context, sale string) (uint64, error)
	AdvanceLine(ctx context.Context, sale string, step ledger.Step, after uint64) error
	// ClaimTurn records a claim of the turn of position pos, returning
	// once it is stored.
	ClaimTurn(ctx context.Context, sale, ticket string, pos int64) error
	// RejoinLine puts a ticket whose turn lapsed at the back of the
	// line, once, returning the record's line sequence.
	RejoinLine(ctx context.Context, sale, buyer, ticket string) (uint64, error)
	UsePass(sale, ticket string)
	// StockLeft is the orders the sale's stream still takes, read at
	// the call.
	StockLeft(ctx context.Context, sale string) (int64, error)
	// PlaceBeyond places an order that takes only the stock beyond
	// what held says the line holds (ledger.PlaceBeyond).
	PlaceBeyond(ctx context.Context, o ledger.Order, msgID string, held func() int64) (ledger.OrderID, bool, error)
	// SpendProof records a proof of work's solution as spent (proof.go).
	SpendProof(ctx context.Context, sale, challenge, buyer string) error
	// TakeAddressSlot counts a ticket against its address (address.go).
	TakeAddressSlot(ctx context.Context, sale, addr, buyer string, limit int64) error
}

// SetRooms makes the gate serve waiting rooms: rooms are followed in
// memory, ll writes tickets, the draw mark and the pace. Call it before
// serving.
func (g *Gate) SetRooms(rooms Rooms, ll LineLedger) {
	g.rooms, g.lineLedger = rooms, ll
}

// hPass is the header an order of a waiting-room sale carries its pass in.
const hPass = "Sluice-Pass"

// lineSnap is a sale's line as the pace saw it last (every refresh): a
// poll reads it instead of walking the line.
type lineSnap struct {
	line.State
	rate float64 // positions/s the estimates use; 0 when none is known
	// spare is the stock no order and no outstanding pass holds: a
	// ticket further back than that waits for passes to expire or
	// orders to be given back, which no rate foretells.
	spare int64
}

func (g *Gate) room(s *sale) *ledger.Room {
	if g.rooms == nil {
		return nil
	}
	return g.rooms.Room(s.name)
}

// lineURL is the path of a sale's line.
func lineURL(sale string) string { return "/v1/sales/" + sale + "/line" }

// checkPass is the waiting room's part of an order: the pass in the
// Sluice-Pass header, signed for this sale and buyer and not expired. It
// answers and returns false when the order may not go on.
func (g *Gate) checkPass(ctx *fasthttp.RequestCtx, s *sale, buyer string, start time.Time) (line.Pass, bool) {
	room := g.room(s)
	if room == nil {
		g.finish(ctx, s, overflow.Unavailable, g.unavailable, start)
		return line.Pass{}, false
	}
	tok := ctx.Request.Header.Peek(hPass)
	p, err := line.Verify(room.Keys.Secret, string(tok), s.name, buyer, start)
	if err != nil {
		g.finishProblem(ctx, s, overflow.Problem{Reason: overflow.BadPass, Sale: s.name, Line: lineURL(s.name),
			Detail: passDetail(err)}, start)
		return line.Pass{}, false
	}
	return p, true
}

func passDetail(err error) string {
	switch {
	case errors.Is(err, line.ErrPassExpired):
		return "The pass has expired: its turn went to the next in line."
	case errors.Is(err, line.ErrPassBuyer):
		return "The pass was issued to another buyer."
	case errors.Is(err, line.ErrPassSale):
		return "The pass was issued for another sale."
	}
	return "The pass is not one this sale's gates signed."
}

// passUsed answers an order whose pass was used already for another order
// (a retry with the order's own Idempotency-Key is a replay instead); it
// names that order to a proven buyer only (ownOrder).
func (g *Gate) passUsed(ctx *fasthttp.RequestCtx, s *sale, id ledger.OrderID, start time.Time) {
	g.finishProblem(ctx, s, overflow.Problem{Reason: overflow.BadPass, Sale: s.name, OrderID: g.ownOrder(id),
		Detail: "The pass was used for an order already; a pass admits one order."}, start)
}

// ticketView is a ticket as GET /v1/tickets/{id} and the join answer it.
type ticketView struct {
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
	LetIn          int64     `json:"let_in"`
	Tickets        int64     `json:"line_length"`
	EstimatedWaitS estimate  `json:"estimated_wait_seconds"`
	PollAfterS     int       `json:"poll_after_seconds"`
	Pass           string    `json:"pass,omitempty"`
	PassExpiresAt  time.Time `json:"pass_expires_at,omitzero"`
	JoinedAt       time.Time `json:"joined_at"`
	StartsAt       time.Time `json:"starts_at,omitzero"`
	// OrderURL is where to order with the pass.
	OrderURL string `json:"order_url"`
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
func (g *Gate) viewTicket(s *sale, cfg *ledger.Sale, room *ledger.Room, t line.Ticket, id string, now time.Time) ticketView {
	snap := s.line.Load()
	if snap == nil {
		snap = &lineSnap{}
	}
	v := ticketView{TicketID: id, Sale: s.name, BuyerID: t.Buyer, Drawn: t.Drawn, Claimed: t.Claimed, Rejoined: t.Rejoined,
		LetIn: snap.LetIn, Tickets: max(snap.Tickets, int64(t.Position)), JoinedAt: t.Joined.UTC(),
		StartsAt: cfg.StartsAt, OrderURL: s.orderURL}
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
			// Before the draw: the start, and a spread so that the whole
			// line does not ask at the same second.
			until := max(0, cfg.StartsAt.Sub(now))
			spread := time.Duration(1+int(t.ID[0])%5) * time.Second
			// No honest estimate yet: the position is drawn at random.
			v.PollAfterS = int(min(line.MaxPoll, until+spread) / time.Second)
			v.EstimatedWaitS = estimateOf(0, false)
			break
		}
		w, ok := line.Wait(t.Position, snap.LetIn, snap.rate)
		if t.Position-snap.LetIn > snap.spare {
			ok = false // the stock left is promised to those ahead
		}
		v.EstimatedWaitS = estimateOf(w.Seconds(), ok)
		// Never so rare that a turn could come and go between two polls,
		// whatever the estimate says.
		poll := min(line.PollAfter(t.Position, snap.LetIn, snap.rate), soon)
		if t.Claimed || t.Position <= max(snap.Offered, snap.LetIn)+maxOffersAhead*cfg.Capacity() {
			poll = min(poll, claimSoon)
		}
		v.PollAfterS = int(poll / time.Second)
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
			v.PollAfterS = int(max(line.MinPoll, t.ClaimBy.Add(claimGrace).Sub(now).Round(time.Second)) / time.Second)
		}
	case TicketSoldOut:
		// Stock given back (a cancel, a rejected order) reopens the line
		// until the sale closes: the next in line must see its turn.
		v.EstimatedWaitS = estimateOf(0, false)
		v.PollAfterS = int(min(line.MaxPoll, soon) / time.Second)
	default:
		v.EstimatedWaitS = estimateOf(0, false)
		v.PollAfterS = int(line.MaxPoll / time.Second)
	}
	return v
}

// getTicket is GET /v1/tickets/{id}, answered from memory.
func (g *Gate) getTicket(rc *fasthttp.RequestCtx, rawID string) {
	html := overflow.AcceptsHTML(&rc.Request.Header)
	key, ok := line.KeyOf(rawID)
	s, room, t := (*sale)(nil), (*ledger.Room)(nil), line.Ticket{}
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
		g.lineWarn.note(g.now(), func(n int) {
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
func (g *Gate) claimTurn(s *sale, room *ledger.Room, t line.Ticket, id string, now time.Time) (line.Ticket, error) {
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
	if err := g.lineLedger.ClaimTurn(ctx, s.name, id, t.Position); err != nil {
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
func (g *Gate) rejoinLine(s *sale, room *ledger.Room, t line.Ticket, id string, now time.Time) (line.Ticket, error) {
	if t.Used || t.Rejoined || !t.Lapsed(now, claimGrace) || s.soldOut.Load() || s.cfg.Load().PhaseAt(now) != ledger.Open {
		return t, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.PublishTimeout)
	defer cancel()
	seq, err := g.lineLedger.RejoinLine(ctx, s.name, t.Buyer, id)
	if errors.Is(err, ledger.ErrLineFull) {
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
func (g *Gate) holdTicket(s *sale, room *ledger.Room, key line.TicketKey, id string, v ticketView, d time.Duration) (_ ticketView, held bool, _ error) {
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

// findTicket looks a ticket up in every open waiting room: ticket ids are
// random, so at most one holds it.
func (g *Gate) findTicket(key line.TicketKey) (*sale, *ledger.Room, line.Ticket, bool) {
	if g.rooms == nil {
		return nil, nil, line.Ticket{}, false
	}
	for name, s := range *g.sales.Load() {
		if !s.hasLine.Load() {
			continue
		}
		room := g.rooms.Room(name)
		if room == nil {
			continue
		}
		if t, ok := room.Book.Lookup(key); ok {
			return s, room, t, true
		}
	}
	return nil, nil, line.Ticket{}, false
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

// Join outcomes, the outcome label of sluice_line_joins_total.
var joinOutcomes = [...]string{"joined", "rejoined", "line_full", "sold_out", "not_started", "closed",
	"bad_request", "no_waiting_room", "unavailable", "rate_limited",
	"unauthorized", "proof_required", "bad_proof", "address_limit", "at_capacity"}

// joinLine is POST /v1/sales/{sale}/line.
func (g *Gate) joinLine(rc *fasthttp.RequestCtx, saleName string) {
	html := overflow.AcceptsHTML(&rc.Request.Header)
	start := g.now()
	s := g.lookupSale(saleName)
	if s == nil {
		g.joinCount(nil, "bad_request")
		g.unknownSale.Respond(rc, html)
		return
	}
	fail := func(outcome string, p overflow.Problem) {
		g.joinCount(s, outcome)
		p.Sale = s.name
		g.render.Render(p).Respond(rc, html)
	}
	cfg := s.cfg.Load()
	if !cfg.WaitingRoom {
		fail("no_waiting_room", overflow.Problem{Reason: overflow.NoWaitingRoom})
		return
	}
	if opens := cfg.LineOpensAt(); !opens.IsZero() && start.Before(opens) {
		fail("not_started", overflow.Problem{Reason: overflow.NotStarted, RetryAfter: opens.Sub(start),
			Detail: "The line opens at " + opens.UTC().Format(time.RFC3339) + "."})
		return
	}
	if cfg.PhaseAt(start) == ledger.Closed {
		fail("closed", overflow.Problem{Reason: overflow.Closed})
		return
	}
	if s.soldOut.Load() {
		fail("sold_out", overflow.Problem{Reason: overflow.SoldOut})
		return
	}
	room := g.room(s)
	if room == nil {
		fail("unavailable", overflow.Problem{Reason: overflow.Unavailable, RetryAfter: time.Second,
			Detail: "The line is being read; try again shortly."})
		return
	}
	if g.ipLim != nil && !g.ipLim.AllowAt(start, limiterKey(g.clientIP(rc))) {
		g.joinCount(s, "rate_limited")
		g.ipLimited.Respond(rc, html)
		return
	}
	buyer, fields, p := g.readBuyer(rc, true)
	if p.Reason == overflow.BuyerKeysUnavailable {
		g.joinCount(s, joinOutcomeOf(p.Reason))
		g.keysUnavailable.Respond(rc, html)
		return
	}
	if p.Reason != "" {
		challenge(rc, p)
		fail(joinOutcomeOf(p.Reason), p)
		return
	}
	if p := g.lineRoom(s, cfg, room, start); p.Reason != "" {
		fail(lineRoomOutcome(p), p)
		return
	}
	// Who may join: the proof checked without I/O, then the address
	// counted and the proof spent, durably (identity.go, proof.go,
	// address.go) — unless the buyer holds a ticket already: their join
	// returns it and spends nothing.
	challenge, p := g.verifyProof(rc, s, cfg, room, fields)
	if p.Reason != "" {
		fail(joinOutcomeOf(p.Reason), p)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.PublishTimeout)
	defer cancel()
	held, holds, p := g.heldTicket(ctx, s, cfg, challenge, buyer)
	if p.Reason == "" && !holds {
		p = g.checkAddress(rc, s, cfg, buyer)
		if p.Reason == "" {
			p = g.spendProof(s, challenge, buyer)
		}
	}
	if p.Reason != "" {
		fail(joinOutcomeOf(p.Reason), p)
		return
	}
	// A ticket taken after the start goes behind the draw: the mark that
	// seals it is written first, by whichever gate sees the start first.
	if _, sealing := room.Book.Sealing(); !sealing && !cfg.StartsAt.IsZero() && !start.Before(cfg.StartsAt) {
		if err := g.sealDraw(ctx, s.name, room); err != nil {
			g.log.Warn("cannot seal the draw", "sale", s.name, "err", err)
			fail("unavailable", overflow.Problem{Reason: overflow.Unavailable, RetryAfter: time.Second})
			return
		}
	}
	j, created, err := held, false, error(nil)
	if !holds {
		j, created, err = g.lineLedger.Join(ctx, s.name, buyer)
	}
	switch {
	case errors.Is(err, ledger.ErrLineFull):
		fail("at_capacity", g.atCapacity())
		return
	case err != nil:
		g.log.Warn("join failed", "sale", s.name, "err", err)
		fail("unavailable", overflow.Problem{Reason: overflow.Unavailable, RetryAfter: time.Second,
			Detail: "The line did not take the ticket; joining again is safe."})
		return
	}
	key, _ := line.KeyOf(j.Ticket)
	if err := room.WaitApplied(ctx, j.Seq); err != nil {
		fail("unavailable", overflow.Problem{Reason: overflow.Unavailable, RetryAfter: time.Second,
			Detail: "The ticket is taken; joining again returns it."})
		return
	}
	t, ok := room.Book.Lookup(key)
	if !ok {
		fail("unavailable", overflow.Problem{Reason: overflow.Unavailable, RetryAfter: time.Second})
		return
	}
	status, outcome := http.StatusOK, "rejoined"
	if created {
		status, outcome = http.StatusCreated, "joined"
	}
	g.joinCount(s, outcome)
	rc.Response.Header.SetCanonical(hLocation, []byte("/v1/tickets/"+j.Ticket))
	v := g.viewTicket(s, cfg, room, t, j.Ticket, g.now())
	v.Tickets = max(v.Tickets, room.Book.Len())
	g.writeTicket(rc, status, &v, html)
}

// heldTicket is the ticket the buyer holds, read before a join spends
// anything that buys one (a proof, an address slot): a join by a holder
// (a reload, a second tab, a page that solved a new proof) returns the
// ticket and leaves the solution unspent. A line that spends nothing
// asks nothing here: its join returns a holder's ticket by itself.
func (g *Gate) heldTicket(ctx context.Context, s *sale, cfg *ledger.Sale, challenge, buyer string) (ledger.Joined, bool, overflow.Problem) {
	if challenge == noProof && cfg.LinePerAddress <= 0 {
		return ledger.Joined{}, false, overflow.Problem{}
	}
	j, ok, err := g.lineLedger.HeldTicket(ctx, s.name, buyer)
	if err != nil {
		g.log.Warn("cannot read a buyer's ticket", "sale", s.name, "err", err)
		return ledger.Joined{}, false, overflow.Problem{Reason: overflow.Unavailable, RetryAfter: time.Second,
			Detail: "The line could not be read; joining again is safe."}
	}
	if ok && challenge != noProof {
		g.m.proofs.WithLabelValues("held").Inc()
	}
	return j, ok, overflow.Problem{}
}

func (g *Gate) joinCount(s *sale, outcome string) {
	name := unknownSaleLabel
	if s != nil {
		name = s.name
	}
	g.m.lineJoins.WithLabelValues(name, outcome).Inc()
}

// sealDraw writes the draw mark and waits until this gate's copy of the
// line is sealed: a line full to its limit has no room for the mark, and
// is sealed after its last ticket.
func (g *Gate) sealDraw(ctx context.Context, sale string, room *ledger.Room) error {
	full, err := g.lineLedger.SealDraw(ctx, sale)
	if err != nil {
		return err
	}
	if full {
		last, err := g.lineLedger.LineLastSeq(ctx, sale)
		if err != nil {
			return err
		}
		room.Book.SealBefore(last + 1)
	}
	for {
		seq, sealing := room.Book.Sealing()
		if sealing {
			return room.WaitApplied(ctx, seq-1)
		}
		_, more := room.Book.Applied()
		select {
		case <-more:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// PaceLines is the pace of every waiting room, run at each refresh by
// every gate: it seals the draw at the start, and moves "let in through
// position N" on as far as line.Pace says, by a compare-and-set on the
// pace stream, so that whichever gate runs it first moves it, and a
// gate's death leaves the others to go on.
func (g *Gate) PaceLines(ctx context.Context) {
	if g.rooms == nil {
		return
	}
	now := g.now()
	warm := true
	for _, s := range *g.sales.Load() {
		cfg := s.cfg.Load()
		if !s.hasLine.Load() {
			continue
		}
		room := g.rooms.Room(s.name)
		if room == nil {
			warm = false
			continue
		}
		g.paceLine(ctx, s, cfg, room, now)
	}
	// Ready once every room is read and its metrics set: a gate just
	// restarted does not say ready while its line counters read zero.
	if warm && !g.warm.Load() && g.ready.Load() {
		g.warm.Store(true)
	}
}

func (g *Gate) paceLine(ctx context.Context, s *sale, cfg *ledger.Sale, room *ledger.Room, now time.Time) {
	// The line first, the stock after: every order whose pass this look
	// no longer holds (used, or expired more than passGrace ago) was in
	// the ledger before the stock is read, so the two never count one
	// item twice as free (an order counted neither as held nor as sold).
	st, ahead := room.Book.StateAhead(now, g.passGrace(), claimGrace, nil)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	stockLeft, err := g.lineLedger.StockLeft(rctx, s.name)
	cancel()
	fresh := err == nil
	if !fresh {
		stockLeft = cfg.Capacity() + s.released.Load() - s.admitted.Load() // for the estimates only
	}
	snap := &lineSnap{State: st, rate: g.lineRate(s, cfg, st), spare: stockLeft - st.Outstanding}
	s.line.Store(snap)
	g.lineMetrics(s, snap)
	if !cfg.WaitingRoom || st.Closed {
		// The room is off (or its mark says so while this gate's sale is
		// a refresh behind): the line is followed and answers, and moves
		// nobody on until a mark turns it on (line.Book.Mark).
		return
	}
	if !st.Sealed {
		if cfg.StartsAt.IsZero() || !now.Before(cfg.StartsAt) {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := g.sealDraw(sctx, s.name, room); err != nil {
				g.log.Warn("cannot seal the draw yet", "sale", s.name, "err", err)
			} else {
				g.log.Info("draw sealed", "sale", s.name, "drawn", room.Book.State(now, 0).Drawn)
			}
			cancel()
		}
		return
	}
	if !fresh || cfg.PhaseAt(now) != ledger.Open {
		return
	}
	// The invariant the pace keeps, on every gate at once (each step a
	// compare-and-set on the last): orders in the ledger plus what the
	// turns let in hold never exceed what the sale's stream takes, so
	// whoever holds a valid pass finds an item. Offers run ahead by as
	// many turns as are expected to be claimed (line.Pace.Next).
	p := line.Pace{
		LetIn:       st.LetIn,
		Offered:     st.Offered,
		Tickets:     st.Positions,
		Outstanding: st.Held,
		Pending:     st.Pending,
		Queued:      s.pending.Load(),
		Budget:      lineBudget(s, cfg),
		StockLeft:   stockLeft,
		Ahead:       ahead,
		Claimed:     st.Claimed,
		Lapsed:      st.Lapsed,
		MaxAhead:    maxOffersAhead * cfg.Capacity(),
	}
	through, offered := p.Next()
	if through <= st.LetIn && offered <= st.Offered {
		return
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = g.lineLedger.AdvanceLine(actx, s.name, ledger.Step{Through: through, Offered: offered,
		TTL: cfg.PassLifetime(), Window: cfg.ClaimLifetime()}, st.LastAdvance)
	cancel()
	switch {
	case err == nil, errors.Is(err, ledger.ErrPaceMoved):
	default:
		g.lineWarn.note(now, func(n int) {
			g.log.Warn("cannot move the line on", "sale", s.name, "tries", n, "err", err)
		})
	}
}

// maxOffersAhead bounds the turns offered beyond the let-in, in stocks:
// a line whose holders almost all left is offered ten stocks at once, no
// more.
const maxOffersAhead = 10

// clockSkew is how far apart the gates' clocks may be: a pass checked on
// one gate's clock, its expiry dated by JetStream's.
const clockSkew = 2 * time.Second

// claimGrace is how long after its window closed an unclaimed turn still
// holds its item for the pace: a claim JetStream stored in time (its
// timestamp decides) may reach this gate's book that much later, and
// the clocks may differ by clockSkew.
const claimGrace = clockSkew + time.Second

// passGrace is how long after its expiry a pass still holds its item for
// the pace: an order checked just before the expiry may take the publish
// timeout to reach the ledger.
func (g *Gate) passGrace() time.Duration { return g.cfg.PublishTimeout + clockSkew }

// lineBudget is how many orders the line plans the backend to take soon:
// passes outstanding plus orders queued stay within it. The sale's queue
// bound (or max_wait's), else five seconds of the drain's observed rate,
// else of backend_rate, else minDerivedBound.
func lineBudget(s *sale, cfg *ledger.Sale) int64 {
	if b := s.queueBound(cfg); b > 0 {
		return b
	}
	if r, ok := s.drainRateKnown(); ok {
		return max(1, int64(r*5))
	}
	if cfg.BackendRate > 0 {
		return max(1, int64(cfg.BackendRate*5))
	}
	return minDerivedBound
}

// lineRate is the pace the estimates assume, positions/s. The line moves
// on as orders drain (and passes expire), so: what it let in over the
// last RateWindow once it has moved that long; before, the drain's rate
// (the first step lets a whole budget in at once, which says nothing of
// the pace); else what it let in, else backend_rate; 0 unknown.
func (g *Gate) lineRate(s *sale, cfg *ledger.Sale, st line.State) float64 {
	if st.Rate > 0 && st.Moving >= line.RateWindow {
		return st.Rate
	}
	if r, ok := s.drainRateKnown(); ok {
		return r
	}
	if st.Rate > 0 {
		return st.Rate
	}
	return cfg.BackendRate
}

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

func (g *Gate) saleRoom(rc *fasthttp.RequestCtx, saleName string) (*sale, *ledger.Room, bool) {
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
func (g *Gate) lineState(s *sale, room *ledger.Room, cfg *ledger.Sale, now time.Time) line.State {
	if snap := s.line.Load(); snap != nil {
		st := snap.State
		if !st.Sealed {
			// The seal is the one figure read live: the seed is revealed
			// the moment this gate holds the draw.
			if _, sealing := room.Book.Sealing(); sealing {
				return room.Book.StateWith(now, g.passGrace(), claimGrace)
			}
		}
		return st
	}
	return room.Book.StateWith(now, g.passGrace(), claimGrace)
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

// lineMetrics sets a sale's waiting-room gauges from the pace's look.
func (g *Gate) lineMetrics(s *sale, snap *lineSnap) {
	m, name := g.m, s.name
	if s.lineSeries.CompareAndSwap(false, true) {
		for _, o := range joinOutcomes {
			m.lineJoins.WithLabelValues(name, o)
		}
		m.lineIssued.WithLabelValues(name)
		m.lineClaims.WithLabelValues(name)
		m.lineRejoins.WithLabelValues(name)
		m.lineClaimWrites.WithLabelValues(name)
	}
	m.lineOffered.WithLabelValues(name).Set(float64(snap.Offered))
	m.lineTickets.WithLabelValues(name).Set(float64(snap.Tickets))
	m.lineDrawn.WithLabelValues(name).Set(float64(snap.Drawn))
	m.lineLetIn.WithLabelValues(name).Set(float64(snap.LetIn))
	m.lineOutstanding.WithLabelValues(name).Set(float64(snap.Outstanding))
	m.lineRate.WithLabelValues(name).Set(snap.rate)
	m.lineExpired.WithLabelValues(name).Set(float64(snap.Expired))
	m.lineLapsed.WithLabelValues(name).Set(float64(snap.Lapsed))
	// The counters follow the durable line: every gate reports the same.
	if d := snap.LetIn - s.lineIssued.Swap(snap.LetIn); d > 0 {
		m.lineIssued.WithLabelValues(name).Add(float64(d))
	}
	// Claims and rejoins only grow with the records applied; the
	// counters follow them.
	follow := func(c *prometheus.CounterVec, seen *atomic.Int64, v int64) {
		for {
			was := seen.Load()
			if v <= was {
				return
			}
			if seen.CompareAndSwap(was, v) {
				c.WithLabelValues(name).Add(float64(v - was))
				return
			}
		}
	}
	follow(m.lineClaims, &s.lineClaims, snap.Claimed)
	follow(m.lineRejoins, &s.lineRejoins, snap.Rejoined)
}
