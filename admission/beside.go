package admission

import (
	"context"
	"errors"
	"time"

	"sluice/internal/ledger"
	"sluice/overflow"
)

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
	held := func() int64 { return room.Book.StateWith(g.now(), g.passGrace(), claimGrace).Held }
	st := room.Book.StateWith(g.now(), g.passGrace(), claimGrace)
	switch {
	case !st.Closed:
		// The sale says off, the line not yet: a step may still let
		// someone in.
		return ledger.OrderID{}, false, errRoomTurning
	case st.Held == 0:
		return g.ledger.Place(ctx, o, msgID)
	}
	return g.lineLedger.PlaceBeyond(ctx, o, msgID, held)
}

// stockHeld answers an order without a pass for which only stock the
// line holds is left: it may come free as passes expire unused.
func (g *Gate) stockHeld(s *sale) overflow.Problem {
	return overflow.Problem{Reason: overflow.StockHeld, Sale: s.name, RetryAfter: 5 * time.Second}
}
