package admission

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/internal/ledger"
	"sluice/internal/waitingroom"
	"sluice/internal/waitingroom/line"
	"sluice/overflow"
)

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
		if err := g.roomStore.Seal(ctx, *cfg, room); err != nil {
			g.log.Warn("cannot seal the draw", "sale", s.name, "err", err)
			fail("unavailable", overflow.Problem{Reason: overflow.Unavailable, RetryAfter: time.Second})
			return
		}
	}
	j, created, err := held, false, error(nil)
	if !holds {
		j, created, err = g.roomStore.Join(ctx, s.name, buyer)
	}
	switch {
	case errors.Is(err, waitingroom.ErrLineFull):
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
func (g *Gate) heldTicket(ctx context.Context, s *sale, cfg *ledger.Sale, challenge, buyer string) (waitingroom.Joined, bool, overflow.Problem) {
	if challenge == noProof && cfg.LinePerAddress <= 0 {
		return waitingroom.Joined{}, false, overflow.Problem{}
	}
	j, ok, err := g.roomStore.HeldTicket(ctx, s.name, buyer)
	if err != nil {
		g.log.Warn("cannot read a buyer's ticket", "sale", s.name, "err", err)
		return waitingroom.Joined{}, false, overflow.Problem{Reason: overflow.Unavailable, RetryAfter: time.Second,
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
