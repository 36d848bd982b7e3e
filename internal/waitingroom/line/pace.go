package line

import (
	"math"
	"time"
)

// Pace is what the line knows when it lets buyers in. Every count comes
// from durable records (the line, pace and ledger streams), so every
// gate that computes Next from them gets the same marks.
type Pace struct {
	// LetIn: positions 1..LetIn have been let in; Offered: 1..Offered
	// have been offered their turn.
	LetIn, Offered int64
	// Tickets is how many positions the line holds (State.Positions):
	// the drawn, the joined after the start and those put at the back.
	Tickets int64
	// Outstanding is what the turns let in hold against the stock
	// (State.Held): passes unused and unexpired, and turns let in that
	// may still be claimed.
	Outstanding int64
	// Pending are the turns let in that may still be claimed, of
	// Outstanding (State.Pending).
	Pending int64
	// Queued orders: admitted, not yet decided by the backend.
	Queued int64
	// Budget is how many orders the backend can take in the window the
	// line plans for (the sale's queue bound, or its drain rate times a
	// few seconds): passes outstanding and orders queued stay within it.
	Budget int64
	// StockLeft is the stock no order holds yet.
	StockLeft int64
	// Ahead are the fates of the turns offered and not let in
	// (positions LetIn+1..Offered), as Book.Ahead gives them.
	Ahead []Fate
	// Claimed and Lapsed turns so far: the share of holders who come
	// for their turn, which the offers ahead are sized by.
	Claimed, Lapsed int64
	// MaxAhead bounds how far offers run ahead of the let-in (10 x the
	// stock, say); 0: no offers ahead, as many turns offered as let in.
	MaxAhead int64
}

// Next is where the line lets in through, and offers through, now.
//
// Let-in moves on in order so that the turns it holds (passes out and
// turns that may still be claimed) plus the orders queued stay within
// Budget, and never exceed the stock left: a line that lets in 50,000
// people for 1,000 items is lying to them. A lapsed turn holds nothing
// and is passed over free. It never moves back: an expired pass or a
// lapsed turn frees room for the next positions.
//
// Offers run ahead of the let-in by as many turns as are expected to be
// claimed: with c = (Claimed+1)/(Claimed+Lapsed+1) the share of holders
// who came so far, the turns offered and not let in are sized so that
// the claimed + c x the undecided (let in or not) cover the stock left
// beyond the passes held, with a margin of two standard deviations,
// within MaxAhead and the line. So those there claim early and get
// their pass the moment the stock covers everyone ahead of them (nobody
// there is overtaken by someone behind), and the absent lapse together,
// within one window, instead of one window per halving of the stock.
func (p Pace) Next() (through, offered int64) {
	room := min(p.Budget-p.Outstanding-p.Queued, p.StockLeft-p.Outstanding)
	c := float64(p.Claimed+1) / float64(p.Claimed+p.Lapsed+1)
	// expected: the items the turns let in and offered are expected to
	// take, those undecided at the share c.
	expected := float64(p.Outstanding-p.Pending) + c*float64(p.Pending)
	undecided := float64(p.Pending) // turns each claimed with chance c
	g := p.LetIn
	i := 0 // p.Ahead[i] is position g+1 while g < Offered
	for g < p.Tickets {
		f := FateUndecided // a position not offered yet is offered as it is let in
		if i < len(p.Ahead) {
			f = p.Ahead[i]
		}
		if f != FateSettled && room < 1 {
			break
		}
		switch f {
		case FateClaimed:
			room--
			expected++
		case FateUndecided:
			room--
			expected += c
			undecided++
		}
		g++
		i++
	}
	for ; i < len(p.Ahead); i++ {
		switch p.Ahead[i] {
		case FateClaimed:
			expected++
		case FateUndecided:
			expected += c
			undecided++
		}
	}
	o := max(p.Offered, g)
	if p.MaxAhead <= 0 || p.StockLeft <= 0 {
		return g, o
	}
	if need := float64(p.StockLeft) - expected; need > 0 {
		// Enough turns that the claimers cover need but for a shortfall
		// of two standard deviations (of every undecided turn, each
		// claimed with chance c): offering just the expected number
		// falls short half the time, and a shortfall costs everyone
		// behind a window.
		n := (need + 2*math.Sqrt((undecided+need/c)*c*(1-c)) + 1) / c
		o += int64(math.Ceil(n))
	}
	return g, max(p.Offered, g, min(o, p.Tickets, g+p.MaxAhead))
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
