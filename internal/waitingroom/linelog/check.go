package linelog

import (
	"fmt"
	"time"

	"sluice/internal/waitingroom/line"
)

// The rules a log is checked by; a Violation names the one broken.
const (
	// RuleSequence: the records are numbered from 1 without gaps.
	RuleSequence = "sequence"
	// RuleOrder: the records come in the log's one order (the pace's
	// records in theirs, each record of another stream before the first
	// record of the pace that covers it), none of a stream left out.
	RuleOrder = "order"
	// RuleRecord: every record reads, and every derived record (an
	// offer, a grant, a lapse, an expiry, a position, a step's state) is
	// the one the records before it give.
	RuleRecord = "record"
	// RuleDraw: the seed is the one committed to, and the draw list is
	// the draw the log's records give.
	RuleDraw = "draw"
	// RuleRejoin: a ticket goes to the back only after its turn lapsed.
	RuleRejoin = "rejoin"
	// RuleStock: at every step, passes outstanding + claimable turns +
	// orders never exceed what the sale takes.
	RuleStock = "stock"
	// RuleLimit: what the sale takes is its largest stock recorded plus
	// the orders given back, no more.
	RuleLimit = "limit"
	// RulePass: an order placed with a pass has the pass granted to that
	// ticket, unexpired when the order was placed, once.
	RulePass = "pass"
	// RulePassless: an order without a pass took only stock the line did
	// not hold.
	RulePassless = "passless"
)

// Violation is the first record of a log that breaks a rule.
type Violation struct {
	// Seq is the record's number in the log.
	Seq    int64
	Kind   Kind
	Rule   string
	Detail string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("record %d (%s) breaks the rule %q: %s", v.Seq, v.Kind, v.Rule, v.Detail)
}

// fail notes the first violation.
func (r *Replay) fail(seq int64, e Entry, rule, detail string) {
	if r.bad == nil {
		r.bad = &Violation{Seq: seq, Kind: e.Kind, Rule: rule, Detail: detail}
	}
}

// Summary is what a log's records come to.
type Summary struct {
	Records, Tickets, Drawn               int64
	Steps, Offers, Claims, Grants, Lapses int64
	Expiries, Rejoins                     int64
	Orders, PassOrders, Passless          int64
	// Released are the orders that gave their item back.
	Released int64
	// LeastRoom is the least stock a step left beyond what the line
	// held (-1: no step carried the stock), at record LeastRoomAt.
	LeastRoom, LeastRoomAt int64
	// Unchecked are the orders without a pass placed while the log knew
	// no stock to check them against (a line begun before the log).
	Unchecked int64
	// Unread are the records of the streams the line could not read
	// (KindUnread): they change nothing, so a ticket whose join is one
	// is not in the line.
	Unread int64
}

// sources is where the log stands in each stream, for its order.
type sources struct {
	line, order, decision, pace uint64
	// cover is the furthest any step or cover record so far covers.
	cover Covers
	// gap says which streams' records came since the last pace record:
	// 0 none, 1 the line's, 2 the decisions', 3 the orders' (in that
	// order, before the record that covers them).
	gap int
}

// pace says whether the record is one of the pace stream.
func (e Entry) pace() bool {
	switch e.Kind {
	case KindStep, KindCover, KindClaim, KindUse, KindRoom, KindStock:
		return true
	case KindUnread:
		return e.PaceSeq != 0
	}
	return false
}

// place checks that e comes where the log's order puts it.
func (r *Replay) place(e Entry) {
	s := &r.src
	next := r.seq + 1
	stage := func(g int, what string) {
		if s.gap > g {
			r.fail(next, e, RuleOrder, what+" after records of a stream that comes later before the same record of the pace")
		}
		s.gap = g
	}
	switch {
	case e.Kind == KindCommitment:
		if r.seq != 0 {
			r.fail(next, e, RuleOrder, "a commitment past the log's first record")
		}
	case r.seq == 0:
		r.fail(next, e, RuleOrder, "the log opens with the commitment")
	case e.LineSeq != 0:
		if e.LineSeq != s.line+1 {
			r.fail(next, e, RuleOrder, fmt.Sprintf("line record %d after line record %d: every one comes, in order", e.LineSeq, s.line))
		}
		stage(1, "a line record")
		s.line = e.LineSeq
	case e.DecisionSeq != 0:
		if e.DecisionSeq <= s.decision {
			r.fail(next, e, RuleOrder, fmt.Sprintf("decision %d after decision %d", e.DecisionSeq, s.decision))
		}
		stage(2, "a decision")
		s.decision = e.DecisionSeq
	case e.OrderSeq != 0:
		if e.OrderSeq != s.order+1 {
			r.fail(next, e, RuleOrder, fmt.Sprintf("order %d after order %d: every one comes, in order", e.OrderSeq, s.order))
		}
		stage(3, "an order")
		s.order = e.OrderSeq
	case e.pace():
		r.placePace(e)
	default:
		r.fail(next, e, RuleRecord, "a record of no stream")
	}
}

// placePace checks a pace record: after the last, and a step or cover record
// preceded by exactly the records it covers.
func (r *Replay) placePace(e Entry) {
	s := &r.src
	next := r.seq + 1
	if e.PaceSeq <= s.pace {
		r.fail(next, e, RuleOrder, fmt.Sprintf("pace record %d after pace record %d", e.PaceSeq, s.pace))
	}
	s.pace = e.PaceSeq
	if c := e.Covers; c != nil && (e.Kind == KindStep || e.Kind == KindCover) {
		s.cover = Covers{LineSeq: max(s.cover.LineSeq, c.LineSeq), OrderSeq: max(s.cover.OrderSeq, c.OrderSeq),
			DecisionSeq: max(s.cover.DecisionSeq, c.DecisionSeq)}
		if s.line != s.cover.LineSeq || s.order != s.cover.OrderSeq || s.decision != s.cover.DecisionSeq {
			r.fail(next, e, RuleOrder, fmt.Sprintf("it covers line record %d, order %d and decision %d; the log has %d, %d and %d before it",
				s.cover.LineSeq, s.cover.OrderSeq, s.cover.DecisionSeq, s.line, s.order, s.decision))
		}
	} else if s.gap != 0 {
		r.fail(next, e, RuleOrder, "records of another stream before a record of the pace that does not cover them")
	}
	s.gap = 0
}

// order checks an order: placed with a pass, the pass was granted to
// its ticket and had not expired (within the pass grace) when the order
// was stored, and admits this order alone; placed without one, it took
// only stock the line did not hold.
func (r *Replay) order(e Entry) {
	defer func() { r.orders++ }()
	r.sum.Orders++
	if e.Ticket == "" {
		r.sum.Passless++
		r.passless(e)
		return
	}
	r.sum.PassOrders++
	h, ok := r.hash(e)
	if !ok {
		return
	}
	t, found := r.book.Lookup(line.KeyOfHash(h))
	switch {
	case !found:
		r.fail(r.seq+1, e, RulePass, "placed with the pass of a ticket that is not in the line")
	case !t.HasPass():
		r.fail(r.seq+1, e, RulePass, fmt.Sprintf("placed with a pass of the ticket at position %d, which was granted none", t.Position))
	case !e.At.Before(t.PassExpires.Add(r.passGrace)):
		r.fail(r.seq+1, e, RulePass, fmt.Sprintf("placed at %s with a pass that expired at %s (and its grace of %v)",
			e.At.Format(time.RFC3339Nano), t.PassExpires.UTC().Format(time.RFC3339Nano), r.passGrace))
	case r.passOrders[h] != 0:
		r.fail(r.seq+1, e, RulePass, fmt.Sprintf("a second order with one pass (the first: order %d)", r.passOrders[h]))
	}
	r.passOrders[h] = e.OrderSeq
}

// passless checks an order without a pass against what the line held
// when it was placed (a clock skew later, which only lowers what is
// held): the orders before it, what the line held and it fit what the
// sale took then (at most its stock recorded plus what was given back,
// and at least what the last step or cover record read).
func (r *Replay) passless(e Entry) {
	limit, ok := r.limit, r.limitKnown
	if c := r.capacity + r.tally.Released(); r.capKnown && (!ok || c > limit) {
		limit, ok = c, true
	}
	if !ok {
		r.sum.Unchecked++
		return
	}
	held := r.book.StateWith(e.At.Add(ClockSkew), r.passGrace, r.claimGrace).Held
	if held+r.orders+1 > limit {
		r.fail(r.seq+1, e, RulePassless, fmt.Sprintf("an order without a pass: %d held by the line + %d orders before it + 1 > the %d the sale takes",
			held, r.orders, limit))
	}
}
