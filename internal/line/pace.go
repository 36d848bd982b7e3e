package line

import (
	"math"
	"time"
)

// Pace is what the line knows when it lets buyers in. Every count comes
// from durable records (the line and ledger streams), so every gate that
// computes Next from them gets the same position.
type Pace struct {
	// LetIn: positions 1..LetIn have been given a pass.
	LetIn int64
	// Tickets in the line, drawn and joined after the start.
	Tickets int64
	// Outstanding passes: issued, not yet used for an order, not expired.
	Outstanding int64
	// Queued orders: admitted, not yet decided by the backend.
	Queued int64
	// Budget is how many orders the backend can take in the window the
	// line plans for (the sale's queue bound, or its drain rate times a
	// few seconds): passes outstanding and orders queued stay within it.
	Budget int64
	// StockLeft is the stock no order holds yet.
	StockLeft int64
}

// Next is the position the line lets in through now: LetIn moved on so
// that outstanding passes plus queued orders stay within Budget, the
// outstanding passes never exceed the stock left (a line that lets in
// 50,000 people for 1,000 items is lying to them), and never past the
// last ticket. It never moves back: an expired pass lowers Outstanding,
// and its room goes to the next positions.
func (p Pace) Next() int64 {
	room := min(p.Budget-p.Outstanding-p.Queued, p.StockLeft-p.Outstanding)
	if room <= 0 {
		return p.LetIn
	}
	return max(p.LetIn, min(p.Tickets, p.LetIn+room))
}

// SoldOut says no ticket still waiting can be served.
func (p Pace) SoldOut() bool { return p.StockLeft <= 0 }

// Wait estimates how long the ticket at position pos waits for its pass
// when the line lets in rate positions a second; false when no rate is
// known. A ticket already let in waits nothing.
func Wait(pos, letIn int64, rate float64) (time.Duration, bool) {
	ahead := pos - letIn
	if ahead <= 0 {
		return 0, true
	}
	if rate <= 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return 0, false
	}
	secs := float64(ahead) / rate
	if secs > float64(math.MaxInt64)/float64(time.Second) {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}

// The bounds of PollAfter.
const (
	MinPoll = time.Second
	MaxPoll = 60 * time.Second
)

// PollAfter is when a ticket's holder should ask again: a tenth of its
// estimated wait, between MinPoll and MaxPoll (MinPoll near the front,
// rarer further back), so that polling a long line costs about what its
// front costs; 5 s when no rate is known.
func PollAfter(pos, letIn int64, rate float64) time.Duration {
	w, ok := Wait(pos, letIn, rate)
	if !ok {
		return 5 * time.Second
	}
	return min(MaxPoll, max(MinPoll, (w/10).Round(time.Second)))
}
