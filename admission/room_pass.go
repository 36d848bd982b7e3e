package admission

import (
	"context"
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/internal/ledger"
	"sluice/internal/waitingroom"
	"sluice/internal/waitingroom/line"
	"sluice/overflow"
)

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

var (
	// errRoomTurning: the sale's room was turned on or off and this
	// gate's line has not applied the mark that says so yet.
	errRoomTurning = errors.New("admission: the waiting room is being turned on or off")
	// errLineUnread: the sale's line is being read (a gate that started
	// or lost JetStream).
	errLineUnread = errors.New("admission: the line is being read")
)

// placeBeside places an order without a pass in a sale that has a line
// and whose room is off: it takes only the stock that the line's turns
// and passes do not hold (package line, invariant 7). While the room is
// off by its mark, what they hold only falls; while they hold nothing
// the order is placed as any other, and otherwise each order is a
// compare-and-set on the sale's stream (ledger.PlaceBeyond), so that
// orders placed at once on every gate never take a held item.
func (g *Gate) placeBeside(ctx context.Context, s *sale, o ledger.Order, msgID string) (ledger.OrderID, bool, error) {
	room := g.room(s)
	if room == nil {
		return ledger.OrderID{}, false, errLineUnread
	}
	held := func() int64 { return room.Book.StateWith(g.now(), g.passGrace(), waitingroom.ClaimGrace).Held }
	st := room.Book.StateWith(g.now(), g.passGrace(), waitingroom.ClaimGrace)
	switch {
	case !st.Closed:
		// The sale says off, the line not yet: a step may still let
		// someone in.
		return ledger.OrderID{}, false, errRoomTurning
	case st.Held == 0:
		return g.ledger.Place(ctx, o, msgID)
	}
	return g.ledger.PlaceBeyond(ctx, o, msgID, held)
}

// stockHeld answers an order without a pass for which only stock the
// line holds is left: it may come free as passes expire unused.
func (g *Gate) stockHeld(s *sale) overflow.Problem {
	return overflow.Problem{Reason: overflow.StockHeld, Sale: s.name, RetryAfter: 5 * time.Second}
}
