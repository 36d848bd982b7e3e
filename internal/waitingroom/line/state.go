package line

import (
	"slices"
	"time"
)

// State is the line as a whole at one moment.
type State struct {
	// Sealed: the draw is made; Drawn tickets were in it.
	Sealed bool
	Drawn  int64
	// Tickets in the line, drawn and after; Positions the places they
	// hold, a ticket put at the back holding two (Rejoined of them).
	Tickets, Positions, Rejoined int64
	// LetIn: positions 1..LetIn have had their turn; LastAdvance is the
	// last record of the pace's let-in subject (0: none yet), for a
	// compare-and-set.
	LetIn       int64
	LastAdvance uint64
	// Closed: the room is off by its last mark (Book.Mark): the pace
	// lets nobody in until a mark turns it on.
	Closed bool
	// Offered: positions 1..Offered have been offered their turn.
	Offered int64
	// Used passes, of all issued.
	Used int64
	// Outstanding passes at the moment asked: claimed, let in, unused,
	// unexpired.
	Outstanding int64
	// Expired passes, claimed, let in and unused, at that moment.
	Expired int64
	// Claimed turns, offered and claimed; Waiting those of them not let
	// in yet (and unused). Lapsed turns were offered and not claimed in
	// their window (plus the grace asked for); Undecided turns are
	// offered, unclaimed, unused and may still be claimed.
	Claimed, Waiting, Lapsed, Undecided int64
	// Pending: the undecided turns let in (they hold an item until they
	// are claimed or lapse).
	Pending int64
	// Held is what the pace counts against the stock: Outstanding, plus
	// the passes expired within the grace asked for, whose order may
	// still be on its way to the ledger, plus the turns let in that may
	// still be claimed (Undecided among the let in).
	Held int64
	// Rate is how many positions a second the line let in over the last
	// RateWindow (0 before its first step); Moving is how long since the
	// first step.
	Rate   float64
	Moving time.Duration
}

// RateWindow is the span over which State.Rate is measured.
const RateWindow = 30 * time.Second

// State is the line at now: a function of the records applied and of
// now alone, which changes nothing (every gate, every restart and every
// replay that has applied the same records answers the same). A pass
// counts as held until grace after its expiry, an unclaimed turn until
// grace after its window closed. It walks the offered positions (the
// sold, the lapsed and those offered ahead), never the rest of the line.
//
// The invariants it reports, with Book's records applied in any order:
//   - LetIn = the used let in + Outstanding + Expired + the unclaimed
//     let in (lapsed or undecided);
//   - positions are let in in order: LetIn is a prefix, and Offered >=
//     LetIn;
//   - Expired never counts a pass before its expiry, Outstanding never
//     one after it, Lapsed never a turn before its window closed;
//   - Held >= Outstanding.
func (b *Book) State(now time.Time, grace time.Duration) State {
	return b.StateWith(now, grace, grace)
}

// StateWith is State with a grace of its own for the claims: an
// unclaimed turn is held until claimGrace after its window closed (a
// claim stored in time may still be on its way to this book), a pass
// until grace after its expiry (an order checked in time may still be
// on its way to the ledger).
func (b *Book) StateWith(now time.Time, grace, claimGrace time.Duration) State {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.state(now, grace, claimGrace)
}

// StateAhead is StateWith and Ahead read at once, for the pace: no
// record applied between the two.
func (b *Book) StateAhead(now time.Time, grace, claimGrace time.Duration, dst []Fate) (State, []Fate) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.state(now, grace, claimGrace), b.ahead(now, claimGrace, dst)
}

// state is StateWith; b.mu is held.
func (b *Book) state(now time.Time, grace, claimGrace time.Duration) State {
	st := State{Sealed: b.sealed, Drawn: int64(b.drawn), Tickets: int64(len(b.tickets)), Used: b.used,
		Rejoined: int64(len(b.rejoined)), LastAdvance: b.paceSeq, Closed: b.closed}
	st.Positions = st.Tickets
	if b.sealed {
		st.Positions = b.positions()
	}
	n := len(b.advances)
	if n == 0 || !b.sealed {
		return st
	}
	last := b.advances[n-1]
	st.LetIn, st.Offered = min(last.Through, st.Positions), min(last.Offered, st.Positions)
	oi, gi := 0, 0
	for p := int64(1); p <= st.Offered; p++ {
		for b.advances[oi].Offered < p {
			oi++
		}
		g := -1
		if p <= st.LetIn {
			for b.advances[gi].Through < p {
				gi++
			}
			g = gi
		}
		t, used, void := b.slotTurn(p, b.indexAt(p), oi, g)
		switch {
		case void:
			continue
		case t.Claimed:
			st.Claimed++
		case used:
		case t.Lapsed(now, claimGrace):
			st.Lapsed++
		default:
			st.Undecided++
			if t.LetIn {
				st.Pending++
				st.Held++
			}
		}
		if used || !t.Claimed {
			continue
		}
		switch {
		case !t.LetIn:
			st.Waiting++
		case now.Before(t.PassExpires):
			st.Outstanding++
			st.Held++
		default:
			st.Expired++
			if now.Before(t.PassExpires.Add(grace)) {
				st.Held++
			}
		}
	}
	// The rate: positions let in within the window, over the window (or
	// the time since the first step, when shorter).
	from := now.Add(-RateWindow)
	st.Moving = now.Sub(b.advances[0].At)
	if first := b.advances[0].At; first.After(from) {
		from = first
	}
	j, _ := slices.BinarySearchFunc(b.advances, from, func(a Advance, t time.Time) int {
		if a.At.Before(t) {
			return -1
		}
		return 1
	})
	base := int64(0)
	if j > 0 {
		base = b.advances[j-1].Through
	}
	st.Rate = float64(last.Through-base) / max(1, now.Sub(from).Seconds())
	return st
}

// Ahead appends the fates of the turns offered and not let in yet
// (positions LetIn+1..Offered, in order) at now, for the pace
// (Pace.Ahead): what letting each in would cost. A turn lapses
// claimGrace after its window closed.
func (b *Book) Ahead(now time.Time, claimGrace time.Duration, dst []Fate) []Fate {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.ahead(now, claimGrace, dst)
}

// ahead is Ahead; b.mu is held.
func (b *Book) ahead(now time.Time, claimGrace time.Duration, dst []Fate) []Fate {
	n := len(b.advances)
	if n == 0 || !b.sealed {
		return dst
	}
	last := b.advances[n-1]
	positions := b.positions()
	oi := 0
	for p := min(last.Through, positions) + 1; p <= min(last.Offered, positions); p++ {
		for b.advances[oi].Offered < p {
			oi++
		}
		t, used, void := b.slotTurn(p, b.indexAt(p), oi, -1)
		switch {
		case void || used || t.Lapsed(now, claimGrace):
			dst = append(dst, FateSettled)
		case t.Claimed:
			dst = append(dst, FateClaimed)
		default:
			dst = append(dst, FateUndecided)
		}
	}
	return dst
}

// Fate is what an offered turn is to the pace.
type Fate uint8

// The fates of an offered turn.
const (
	// FateUndecided: offered, not claimed yet, the window open.
	FateUndecided Fate = iota
	// FateClaimed: claimed; its holder is there.
	FateClaimed
	// FateSettled: lapsed (or used): letting it in costs nothing.
	FateSettled
)
