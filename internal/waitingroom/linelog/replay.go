package linelog

import (
	"container/heap"
	"fmt"
	"time"

	"sluice/internal/orderstatus"
	"sluice/internal/waitingroom/line"
)

// The margins of the checks, as the gates keep them (package
// waitingroom): the gates' clocks may differ by ClockSkew. A step or
// mark says which graces its pace used; before the first that does,
// these defaults apply (a claim reaches a book within
// DefaultClaimGrace, an order checked before its pass expired reaches
// the ledger within DefaultPassGrace, the default publish timeout plus
// the skew).
const (
	ClockSkew         = 2 * time.Second
	DefaultClaimGrace = ClockSkew + time.Second
	DefaultPassGrace  = 5*time.Second + ClockSkew
)

// Replay recomputes the line from the log's records, in the log's
// order, with the line package's Book (a hash book: it never holds a
// ticket id), and writes the log: each record with the fields derived
// from those before it, the offers, grants, lapses and expiries they
// bring, numbered. It checks the log's order and the line's promises as
// it goes (Violation). The gates write their log with it and `sluice
// line verify` checks one with it, so the two cannot differ. It does no
// I/O and reads no clock: a lapse or an expiry is written once a record
// of the pace is dated past it. A Replay is not safe for concurrent use.
type Replay struct {
	book       *line.Book
	seed       line.Seed
	commitment string
	seq        int64
	// clock is the pace's: the latest time of a pace record so far.
	clock                 time.Time
	passGrace, claimGrace time.Duration
	due                   deadlines
	// letIn and offered are the marks whose turns are written.
	letIn, offered int64
	granted        map[int64]bool
	src            sources
	orders         int64
	passOrders     map[[32]byte]uint64
	tally          orderstatus.Tally
	// The stock: the last stock record's capacity and the largest one
	// recorded, and the last limit a step or cover record read.
	capacity, maxCap int64
	capKnown         bool
	limit            int64
	limitKnown       bool
	sum              Summary
	bad              *Violation
	last             Kind // the last record's
}

// NewReplay returns the replay of a line whose draw uses seed.
func NewReplay(seed line.Seed) *Replay {
	return &Replay{book: line.NewHashBook(seed), seed: seed, passGrace: DefaultPassGrace, claimGrace: DefaultClaimGrace,
		granted: map[int64]bool{}, passOrders: map[[32]byte]uint64{}, sum: Summary{LeastRoom: -1}}
}

// Book is the line as the records applied so far give it.
func (r *Replay) Book() *line.Book { return r.book }

// Violation is the first record that broke the log's order or a promise
// of the line, nil while none has.
func (r *Replay) Violation() *Violation { return r.bad }

// Summary is what the records applied so far came to.
func (r *Replay) Summary() Summary {
	s := r.sum
	s.Records = r.seq
	s.Tickets = r.book.Len()
	return s
}

// Apply takes the next record of a stream (a raw record: Entry.Raw), in
// the log's order, and appends to dst the records it adds to the log:
// the lapses and expiries due before it, the record with its derived
// fields, and the offers and grants it brings.
func (r *Replay) Apply(dst []Entry, e Entry) []Entry {
	e = e.Raw()
	e.At = e.At.UTC()
	if e.Kind.Derived() {
		r.fail(r.seq+1, e, RuleRecord, "a derived record, given as a record of a stream")
		return dst
	}
	r.place(e)
	r.last = e.Kind
	if e.pace() && e.At.After(r.clock) {
		r.clock = e.At
		dst = r.dueBy(dst)
	}
	grantAt := int64(0) // a claim of a turn let in grants its pass
	switch e.Kind {
	case KindCommitment:
		r.commitment = e.Commitment
	case KindJoin:
		if h, ok := r.hash(e); ok {
			r.book.AddHash(h, e.LineSeq, e.At)
			if t, ok := r.book.Lookup(line.KeyOfHash(h)); ok && !t.Drawn && t.Seq == e.LineSeq {
				e.Position = t.Position
			}
		}
	case KindDraw:
		r.draw(&e)
	case KindRejoin:
		r.rejoin(&e)
	case KindUnread:
		r.sum.Unread++
		if e.LineSeq != 0 {
			r.book.Skip(e.LineSeq)
		}
	case KindStep, KindCover:
		r.cover(e)
		if e.Kind == KindStep {
			return r.step(dst, e)
		}
	case KindClaim:
		grantAt = r.claim(&e)
	case KindUse:
		if h, ok := r.hash(e); ok {
			r.book.Use(line.KeyOfHash(h))
		}
	case KindRoom:
		if e.Open == nil {
			r.fail(r.seq+1, e, RuleRecord, "a room record says neither open nor closed")
			break
		}
		r.book.Mark(*e.Open, e.PaceSeq)
	case KindStock:
		r.stock(e)
	case KindOrder:
		r.order(e)
	case KindDecision:
		r.decision(e)
	default:
		r.fail(r.seq+1, e, RuleRecord, fmt.Sprintf("no record is of kind %q", e.Kind))
	}
	dst = r.emit(dst, e)
	if grantAt > 0 {
		dst = r.grant(dst, grantAt)
	}
	return r.sync(dst)
}

// Finish checks the end of a whole log: no record of another stream
// after the last record of the pace that places it.
func (r *Replay) Finish() {
	if r.src.gap != 0 {
		r.fail(r.seq, Entry{Kind: r.last}, RuleOrder, "records of the line, the ledger or the decisions after the last record of the pace that places them")
	}
}

// emit numbers e and appends it.
func (r *Replay) emit(dst []Entry, e Entry) []Entry {
	r.seq++
	e.Seq = r.seq
	return append(dst, e)
}

func (r *Replay) hash(e Entry) ([32]byte, bool) {
	h, ok := Hash(e.Ticket)
	if !ok {
		r.fail(r.seq+1, e, RuleRecord, fmt.Sprintf("ticket %q is not a hash (64 hex digits)", e.Ticket))
	}
	return h, ok
}

func (r *Replay) draw(e *Entry) {
	if e.Seed != r.seed.Hex() {
		r.fail(r.seq+1, *e, RuleDraw, "the seed is not the one the log is checked with")
		return
	}
	if r.seed.Commitment() != r.commitment {
		r.fail(r.seq+1, *e, RuleDraw, fmt.Sprintf("SHA-256 of the seed is %s, not the commitment %s", r.seed.Commitment(), r.commitment))
		return
	}
	r.book.SealBefore(e.LineSeq, line.Opening{At: e.At, Rate: e.PollRate, Front: e.Front})
	r.book.Skip(e.LineSeq)
	_, n, _ := r.book.Drawn(0, 0, nil)
	r.sum.Drawn = int64(n)
	e.Drawn = ptr(int64(n))
}

// rejoin applies a return to the back: the ticket's turn at the place it
// left must have been offered, and its window closed. (A claim stored in
// time and read after the return keeps the ticket its first turn: its
// place at the back then holds nothing, line.Slot.Void.)
func (r *Replay) rejoin(e *Entry) {
	h, ok := r.hash(*e)
	if !ok {
		return
	}
	k := line.KeyOfHash(h)
	before := r.book.Positions()
	r.book.Rejoin(k, e.LineSeq)
	if r.book.Positions() == before {
		return // the line took nothing of it
	}
	t, _ := r.book.Lookup(k)
	e.From, e.Position = t.LeftPosition, before+1
	r.sum.Rejoins++
	s, _ := r.book.Slot(t.LeftPosition)
	switch {
	case !s.Offered:
		r.fail(r.seq+1, *e, RuleRejoin, fmt.Sprintf("put at the back from position %d, whose turn was never offered", e.From))
	case e.At.Before(s.ClaimBy):
		r.fail(r.seq+1, *e, RuleRejoin, fmt.Sprintf("put at the back at %s, before its turn at position %d lapsed (%s)",
			e.At.Format(time.RFC3339Nano), e.From, s.ClaimBy.UTC().Format(time.RFC3339Nano)))
	}
}

// cover takes what a step or cover record read of the ledger and the pace's
// graces.
func (r *Replay) cover(e Entry) {
	if e.Limit != nil {
		r.limit, r.limitKnown = *e.Limit, true
	}
	if e.PassGraceMillis > 0 {
		r.passGrace = time.Duration(e.PassGraceMillis) * time.Millisecond
	}
	if e.ClaimGraceMillis > 0 {
		r.claimGrace = time.Duration(e.ClaimGraceMillis) * time.Millisecond
	}
}

// step applies a step of the pace, and checks that the line holds no
// more than the stock left: passes outstanding + claimable turns + the
// orders in the ledger never exceed what the sale takes.
func (r *Replay) step(dst []Entry, e Entry) []Entry {
	if e.Through < 1 || e.TTLMillis < 1 || e.WindowMillis < 0 || e.Offered < 0 {
		r.fail(r.seq+1, e, RuleRecord, "a step lets in through a position from 1, with a pass life of 1 ms or more")
		return r.emit(dst, e)
	}
	r.sum.Steps++
	r.book.Advance(line.Advance{Through: e.Through, Offered: e.Offered, At: e.At,
		TTL:    time.Duration(e.TTLMillis) * time.Millisecond,
		Window: time.Duration(e.WindowMillis) * time.Millisecond, Seq: e.PaceSeq})
	st := r.book.StateWith(e.At, r.passGrace, r.claimGrace)
	e.State = &State{LetIn: st.LetIn, Offered: st.Offered, Outstanding: st.Outstanding, Claimable: st.Pending,
		Held: st.Held, Orders: r.orders}
	if r.limitKnown {
		left := r.limit - r.orders
		e.State.StockLeft = &left
		if room := left - st.Held; r.sum.LeastRoom < 0 || room < r.sum.LeastRoom {
			r.sum.LeastRoom, r.sum.LeastRoomAt = room, r.seq+1
		}
		if st.Held > left {
			r.fail(r.seq+1, e, RuleStock, fmt.Sprintf("passes outstanding %d + claimable turns %d (+ %d passes expired within their grace) + orders %d = %d, more than the %d the sale takes",
				st.Outstanding, st.Pending, st.Held-st.Outstanding-st.Pending, r.orders, st.Held+r.orders, r.limit))
		}
		if r.capKnown && r.limit > r.maxCap+r.tally.Released() {
			r.fail(r.seq+1, e, RuleLimit, fmt.Sprintf("the sale takes %d orders, more than its largest stock recorded (%d) and the %d given back",
				r.limit, r.maxCap, r.tally.Released()))
		}
	}
	dst = r.emit(dst, e)
	return r.sync(dst)
}

// claim applies a claim of a turn; Counted says it made the turn
// claimed. It returns the position whose pass the claim grants, a turn
// let in already, or 0.
func (r *Replay) claim(e *Entry) int64 {
	h, ok := r.hash(*e)
	if !ok {
		return 0
	}
	before, _ := r.book.Slot(e.Position)
	r.book.Claim(line.KeyOfHash(h), e.Position, e.At, e.PaceSeq)
	now, ok := r.book.Slot(e.Position)
	counted := ok && !before.Claimed && now.Claimed && now.Key == line.KeyOfHash(h)
	e.Counted = &counted
	if !counted {
		return 0
	}
	r.sum.Claims++
	if e.Position <= r.letIn {
		return e.Position
	}
	return 0
}

func (r *Replay) stock(e Entry) {
	if e.Stock == nil || *e.Stock < 0 || (e.Overbook != nil && *e.Overbook < 0) {
		r.fail(r.seq+1, e, RuleRecord, "a stock record says no stock")
		return
	}
	c := *e.Stock
	if e.Overbook != nil {
		c += *e.Overbook
	}
	r.capacity, r.capKnown = c, true
	r.maxCap = max(r.maxCap, c)
}

func (r *Replay) decision(e Entry) {
	d := orderstatus.Decision{Confirmed: e.Confirmed}
	for _, o := range []struct {
		from []Outcome
		to   *[]orderstatus.Outcome
	}{{e.Rejected, &d.Rejected}, {e.Failed, &d.Failed}, {e.Cancelled, &d.Cancelled}} {
		for _, x := range o.from {
			*o.to = append(*o.to, orderstatus.Outcome{Seq: x.OrderSeq, Reason: x.Reason})
		}
	}
	r.tally.Apply(d)
	r.sum.Released = r.tally.Released()
}

// sync writes the offers and grants the marks reached since the last
// call: a step moved them, or the line grew under them.
func (r *Replay) sync(dst []Entry) []Entry {
	li, of := r.book.Marks()
	for p := r.offered + 1; p <= of; p++ {
		s, ok := r.book.Slot(p)
		if !ok || s.Void {
			continue
		}
		r.sum.Offers++
		o := Entry{At: s.OfferedAt.UTC(), Kind: KindOffer, Position: p, Ticket: HashString(r.book.HashOf(s.Key))}
		if s.ClaimBy.After(s.OfferedAt) {
			o.ClaimBy = s.ClaimBy.UTC()
		}
		if !s.Claimed {
			r.push(s.ClaimBy.Add(r.claimGrace), dueLapse, p)
		}
		dst = r.emit(dst, o)
	}
	r.offered = max(r.offered, of)
	for p := r.letIn + 1; p <= li; p++ {
		dst = r.grant(dst, p)
	}
	r.letIn = max(r.letIn, li)
	return dst
}

// grant writes the pass of position p once it is claimed and let in.
func (r *Replay) grant(dst []Entry, p int64) []Entry {
	s, ok := r.book.Slot(p)
	if r.granted[p] || !ok || s.Void || !s.HasPass() {
		return dst
	}
	r.granted[p] = true
	r.sum.Grants++
	at := s.LetInAt
	if s.ClaimedAt.After(at) {
		at = s.ClaimedAt
	}
	r.push(s.PassExpires.Add(r.passGrace), dueExpire, p)
	return r.emit(dst, Entry{At: at.UTC(), Kind: KindGrant, Position: p, Ticket: HashString(r.book.HashOf(s.Key)),
		Expires: s.PassExpires.UTC()})
}

// dueBy writes the lapses and expiries the pace's clock has passed: a
// turn unclaimed the claim grace after its window closed, a pass unused
// the pass grace after it expired.
func (r *Replay) dueBy(dst []Entry) []Entry {
	for len(r.due) > 0 && !r.due[0].at.After(r.clock) {
		d := heap.Pop(&r.due).(deadline)
		s, ok := r.book.Slot(d.pos)
		if !ok || s.Void {
			continue
		}
		h := r.book.HashOf(s.Key)
		switch {
		case d.kind == dueLapse && s.Offered && !s.Claimed && !s.Used:
			r.sum.Lapses++
			dst = r.emit(dst, Entry{At: s.ClaimBy.UTC(), Kind: KindLapse, Position: d.pos, Ticket: HashString(h)})
		case d.kind == dueExpire && s.HasPass() && !s.Used && r.passOrders[h] == 0:
			r.sum.Expiries++
			dst = r.emit(dst, Entry{At: s.PassExpires.UTC(), Kind: KindExpire, Position: d.pos, Ticket: HashString(h)})
		}
	}
	return dst
}

func (r *Replay) push(at time.Time, kind dueKind, pos int64) {
	heap.Push(&r.due, deadline{at: at, kind: kind, pos: pos})
}

// A deadline is when a turn may lapse or a pass expire.
type deadline struct {
	at   time.Time
	kind dueKind
	pos  int64
}

type dueKind uint8

const (
	dueLapse dueKind = iota
	dueExpire
)

// deadlines is a heap by time, then kind, then position: ties go alike
// everywhere.
type deadlines []deadline

func (d deadlines) Len() int { return len(d) }
func (d deadlines) Less(i, j int) bool {
	if !d[i].at.Equal(d[j].at) {
		return d[i].at.Before(d[j].at)
	}
	if d[i].kind != d[j].kind {
		return d[i].kind < d[j].kind
	}
	return d[i].pos < d[j].pos
}
func (d deadlines) Swap(i, j int) { d[i], d[j] = d[j], d[i] }
func (d *deadlines) Push(x any)   { *d = append(*d, x.(deadline)) }
func (d *deadlines) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}
