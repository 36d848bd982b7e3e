package admission

import (
	"time"

	"sluice/internal/ledger"
	"sluice/internal/waitingroom"
	"sluice/overflow"
)

// DefaultLineMaxTickets is the most tickets a gate holds over every line
// unless Config.LineMaxTickets says otherwise: about 1.3 GB at the 128
// bytes a ticket the README documents.
const DefaultLineMaxTickets = ledger.MaxLineLimit

// lineRoom says whether the line takes one more ticket at now.
//
// Before the start every joiner is in the draw: line_limit does not
// apply, so that a flood of ids can dilute the draw but never close it
// to those who come later. After the start a ticket queues behind the
// draw, and line_limit is the honest "you would not get one" for the
// tail. The count is this gate's copy of the line, so gates that take
// joins at once may each let a few more in than line_limit: it is a
// courtesy to buyers, not a bound the stock depends on.
//
// Whenever, the gate holds at most LineMaxTickets over every line: the
// line lives in each gate's memory.
func (g *Gate) lineRoom(s *sale, cfg *ledger.Sale, room *waitingroom.Room, now time.Time) overflow.Problem {
	if g.heldTickets() >= g.cfg.LineMaxTickets {
		return g.atCapacity()
	}
	if cfg.StartsAt.IsZero() || !now.Before(cfg.StartsAt) {
		if room.Book.Len() >= cfg.LineCap() {
			return overflow.Problem{Reason: overflow.LineFull}
		}
	}
	return overflow.Problem{}
}

func lineRoomOutcome(p overflow.Problem) string {
	if p.Reason == overflow.LineFull {
		return "line_full"
	}
	return "at_capacity"
}

func (g *Gate) atCapacity() overflow.Problem {
	return overflow.Problem{Reason: overflow.Unavailable, RetryAfter: time.Minute,
		Detail: "This gate holds as many tickets as it has room for (--line-max-tickets); the line takes no more."}
}

// heldTickets is the tickets this gate holds over every open line.
func (g *Gate) heldTickets() int64 {
	if g.rooms == nil {
		return 0
	}
	var n int64
	for name, s := range *g.sales.Load() {
		if !s.hasLine.Load() {
			continue
		}
		if r := g.rooms.Room(name); r != nil {
			n += r.Book.Len()
		}
	}
	return n
}

var proofOutcomes = [...]string{"ok", "missing", "bad", "used", "held"}
