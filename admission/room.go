package admission

// The waiting room's HTTP surface; the room itself, its records, its
// followers and its pace, is internal/waitingroom, and its pure parts
// (the draw, positions, turns, passes) internal/waitingroom/line. Here:
// room_join.go joins the line, room_ticket.go answers a ticket's polls
// (and claims its turn), room_pass.go checks an order's pass,
// room_draw.go shows the draw and the line as a whole, and who may join:
// room_proof.go (proof of work), room_address.go (tickets per address),
// room_cap.go (the line's and the gate's bounds).

import (
	"context"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/waitingroom"
	"sluice/internal/waitingroom/line"
)

// Rooms gives the waiting room a gate follows for a sale
// (waitingroom.Rooms), nil while it is not open. A sale's room is
// followed while the sale has a line, the room on or off.
type Rooms interface {
	Room(sale string) *waitingroom.Room
	// Open opens the rooms of these sales, the sales with a line.
	Open(ctx context.Context, sales []string)
	// Log is the sale's public line log (waitingroom.LineLog), nil while
	// it is being opened: the first read opens it.
	Log(sale string) *waitingroom.LineLog
}

// RoomStore is what the waiting room's handlers write to JetStream
// (waitingroom.Store).
type RoomStore interface {
	Join(ctx context.Context, sale, buyer string) (waitingroom.Joined, bool, error)
	// HeldTicket reads the ticket a buyer holds, if any.
	HeldTicket(ctx context.Context, sale, buyer string) (waitingroom.Joined, bool, error)
	// Seal writes the draw mark and waits until the room is sealed.
	Seal(ctx context.Context, s ledger.Sale, r *waitingroom.Room) error
	// ClaimTurn records a claim of the turn of position pos, returning
	// once it is stored.
	ClaimTurn(ctx context.Context, sale, ticket string, pos int64) error
	// RejoinLine puts a ticket whose turn lapsed at the back of the
	// line, once, returning the record's line sequence.
	RejoinLine(ctx context.Context, sale, buyer, ticket string) (uint64, error)
	UsePass(sale, ticket string)
	// SpendProof records a proof of work's solution as spent (room_proof.go).
	SpendProof(ctx context.Context, sale, challenge, buyer string) error
	// TakeAddressSlot counts a ticket against its address (room_address.go).
	TakeAddressSlot(ctx context.Context, sale, addr, buyer string, limit int64) error
}

// hPass is the header an order of a waiting-room sale carries its pass in.
const hPass = "Sluice-Pass"

func (g *Gate) room(s *sale) *waitingroom.Room {
	if g.rooms == nil {
		return nil
	}
	return g.rooms.Room(s.name)
}

// lineURL is the path of a sale's line.
func lineURL(sale string) string { return "/v1/sales/" + sale + "/line" }

// findTicket looks a ticket up in every open waiting room: ticket ids are
// random, so at most one holds it.
func (g *Gate) findTicket(key line.TicketKey) (*sale, *waitingroom.Room, line.Ticket, bool) {
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

// passGrace is how long after its expiry a pass still holds its item:
// an order checked just before the expiry may take the publish timeout
// to reach the ledger.
func (g *Gate) passGrace() time.Duration { return waitingroom.PassGrace(g.cfg.PublishTimeout) }

// PaceSales lists the sales with a line and what the waiting room's
// pacer needs of each (waitingroom.Pacer): the gate's last refresh of
// their orders; known is false until a refresh reached JetStream (and
// while the last one did not). Its type is internal: the pacer is
// sluice's own.
func (g *Gate) PaceSales() (sales []waitingroom.PaceSale, known bool) {
	var out []waitingroom.PaceSale
	for _, s := range *g.sales.Load() {
		if !s.hasLine.Load() {
			continue
		}
		cfg := s.cfg.Load()
		rate := 0.0
		if r, ok := s.drainCapacity(); ok {
			rate = r
		}
		out = append(out, waitingroom.PaceSale{Sale: *cfg, Queued: s.pending.Load(), Budget: lineBudget(s, cfg),
			DrainRate: rate, StockGuess: cfg.Capacity() + s.released.Load() - s.admitted.Load()})
	}
	return out, g.ready.Load()
}

// lineBudget is how many orders the line plans the backend to take soon:
// passes outstanding plus orders queued stay within it. The sale's queue
// bound (or max_wait's), else five seconds of what the drain has shown
// it takes (drainCapacity: not its rate of the moment, which falls with
// the orders that come), else of backend_rate, else minDerivedBound.
func lineBudget(s *sale, cfg *ledger.Sale) int64 {
	if b := s.queueBound(cfg); b > 0 {
		return b
	}
	if r, ok := s.drainCapacity(); ok {
		return max(1, int64(r*5))
	}
	if cfg.BackendRate > 0 {
		return max(1, int64(cfg.BackendRate*5))
	}
	return minDerivedBound
}
