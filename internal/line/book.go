package line

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"slices"
	"sync"
	"time"
)

// Book is one gate's copy of a sale's line, built from the records of the
// line and pace streams in their order: tickets as they joined, the mark
// that seals the draw, the advances of "let in through position N", and
// the passes used for an order. Every gate that applies the same records
// holds the same positions. It answers a poll without allocating.
//
// A Book is safe for concurrent use: the stream followers write it, the
// request path reads it.
type Book struct {
	seed Seed

	mu      sync.RWMutex
	tickets []entry             // in stream order
	byID    map[TicketKey]int32 // ticket → index in tickets
	// applied is the last line stream sequence applied; sealSeq, once
	// set, is the sequence the draw was sealed at: the tickets before it
	// are drawn. drawn is their number once their positions are known
	// (sealed), byPos their indexes by position.
	applied uint64
	sealSeq uint64
	sealed  bool
	drawn   int32
	byPos   []int32
	// advances of the pace, in order; Through and Expires never
	// decrease.
	advances []Advance
	used     int64 // tickets whose pass was used
	// usedPos are the positions of the used tickets, ascending, once the
	// draw is sealed: State counts the used among a range of positions
	// with two binary searches.
	usedPos []int64
	// early holds the uses recorded for tickets not applied yet: the
	// line and the pace are two streams, and a use may be applied before
	// its ticket. Applied with the ticket, the result does not depend on
	// which stream was read first.
	early map[TicketKey]struct{}
	// notify, made when someone waits (Applied), is closed when records
	// are applied: a replay with nobody waiting makes no channel a record.
	notify chan struct{}
}

// TicketKey is a ticket id's 16 bytes, as the book keys it.
type TicketKey [16]byte

// KeyOf decodes a ticket id; false when it is not one.
func KeyOf(id string) (TicketKey, bool) {
	var k TicketKey
	if len(id) != TicketIDLen {
		return k, false
	}
	n, err := ticketEncoding.Decode(k[:], []byte(id))
	if err != nil || n != len(k) {
		return k, false
	}
	var back [TicketIDLen]byte // one spelling only: no other id decodes to k
	ticketEncoding.Encode(back[:], k[:])
	return k, string(back[:]) == id
}

// String is the ticket id.
func (k TicketKey) String() string { return ticketEncoding.EncodeToString(k[:]) }

// Hash is the ticket's public identity, SHA-256 of its id (TicketHash).
func (k TicketKey) Hash() [32]byte {
	var b [TicketIDLen]byte
	ticketEncoding.Encode(b[:], k[:])
	return sha256.Sum256(b[:])
}

// AppendID appends the ticket id to dst.
func (k TicketKey) AppendID(dst []byte) []byte {
	var b [TicketIDLen]byte
	ticketEncoding.Encode(b[:], k[:])
	return append(dst, b[:]...)
}

type entry struct {
	id     TicketKey
	used   bool
	pos    int32 // 1-based once sealed (drawn) or at join (after the seal)
	seq    uint64
	joined int64 // unix ns, as JetStream stored the ticket
	buyer  string
}

// Advance is one step of the pace: positions 1..Through are let in, and
// the positions this step let in got their pass At (the pace record's
// time in JetStream, which every gate reads alike), living TTL (the
// sale's pass_ttl when the step was recorded, kept in the record so that
// a later change of the setting changes no pass already given).
type Advance struct {
	Through int64
	At      time.Time
	TTL     time.Duration
	Seq     uint64 // the record's sequence in the pace stream
	// Expires is when the passes of this step expire: At+TTL, or the
	// previous step's expiry when that is later (a shortened pass_ttl),
	// so that expiries follow positions. Book.Advance sets it.
	Expires time.Time
}

// NewBook returns an empty book whose draw uses seed.
func NewBook(seed Seed) *Book {
	return &Book{seed: seed, byID: make(map[TicketKey]int32)}
}

// Seed is the seed the book draws with.
func (b *Book) Seed() Seed { return b.seed }

// wake tells the waiters that records were applied; b.mu is held.
func (b *Book) wake() {
	if b.notify != nil {
		close(b.notify)
		b.notify = nil
	}
}

// Add applies a ticket record at line stream sequence seq. A ticket seen
// already (a record applied twice) changes nothing.
func (b *Book) Add(id TicketKey, buyer string, seq uint64, joined time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if seq <= b.applied {
		return
	}
	b.applied = seq
	if _, ok := b.byID[id]; !ok {
		e := entry{id: id, seq: seq, joined: joined.UnixNano(), buyer: buyer}
		if b.sealed {
			e.pos = int32(len(b.tickets)) + 1 // after the drawn, in arrival order
		}
		if _, ok := b.early[id]; ok {
			delete(b.early, id)
			e.used = true
			b.used++
			if e.pos > 0 {
				b.usedPos = insertSorted(b.usedPos, int64(e.pos))
			}
		}
		b.byID[id] = int32(len(b.tickets))
		b.tickets = append(b.tickets, e)
	}
	b.maybeSeal()
	b.wake()
}

// Skip notes a record at seq that is not a ticket.
func (b *Book) Skip(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if seq > b.applied {
		b.applied = seq
		b.maybeSeal()
		b.wake()
	}
}

// SealBefore seals the draw: the tickets at line stream sequences before
// seq are drawn, every later one queues behind them. The first seal
// stands. Positions are computed once every record before seq is applied.
func (b *Book) SealBefore(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sealSeq != 0 {
		return
	}
	b.sealSeq = seq
	b.maybeSeal()
	b.wake()
}

// maybeSeal orders the drawn tickets once the seal is known and every
// record before it applied; b.mu is held.
func (b *Book) maybeSeal() {
	if b.sealed || b.sealSeq == 0 || b.applied+1 < b.sealSeq {
		return
	}
	n, _ := slices.BinarySearchFunc(b.tickets, b.sealSeq, bySeq)
	type keyed struct {
		key [32]byte
		idx int32
	}
	ks := make([]keyed, n)
	m := hmac.New(sha256.New, b.seed[:])
	hs := make([][32]byte, n)
	for i := range n {
		hs[i] = b.tickets[i].id.Hash()
		m.Reset()
		m.Write(hs[i][:])
		m.Sum(ks[i].key[:0])
		ks[i].idx = int32(i)
	}
	slices.SortFunc(ks, func(x, y keyed) int {
		if c := bytes.Compare(x.key[:], y.key[:]); c != 0 {
			return c
		}
		// Equal keys (a SHA-256 collision) go by hash, as Draw does.
		return bytes.Compare(hs[x.idx][:], hs[y.idx][:])
	})
	b.byPos = make([]int32, n)
	for p, k := range ks {
		b.byPos[p] = k.idx
		b.tickets[k.idx].pos = int32(p) + 1
	}
	for i := n; i < len(b.tickets); i++ {
		b.tickets[i].pos = int32(i) + 1
	}
	for i := range b.tickets {
		if b.tickets[i].used {
			b.usedPos = append(b.usedPos, int64(b.tickets[i].pos))
		}
	}
	slices.Sort(b.usedPos)
	b.drawn = int32(n)
	b.sealed = true
}

// insertSorted inserts v into the ascending s.
func insertSorted(s []int64, v int64) []int64 {
	i, _ := slices.BinarySearch(s, v)
	return slices.Insert(s, i, v)
}

// Advance applies a pace record. One that does not move the line on
// (another gate's step applied twice, or older) changes nothing.
func (b *Book) Advance(a Advance) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.advances); n > 0 && (a.Seq <= b.advances[n-1].Seq || a.Through <= b.advances[n-1].Through) {
		if a.Seq > b.advances[n-1].Seq {
			b.advances[n-1].Seq = a.Seq // the pace's last record, for the next compare-and-set
		}
		return
	}
	a.Expires = a.At.Add(a.TTL)
	if n := len(b.advances); n > 0 && a.Expires.Before(b.advances[n-1].Expires) {
		a.Expires = b.advances[n-1].Expires
	}
	b.advances = append(b.advances, a)
	b.wake()
}

// Use marks a ticket's pass as used for an order. A use of a ticket not
// applied yet is kept until it is.
func (b *Book) Use(id TicketKey) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, ok := b.byID[id]
	if !ok {
		if b.early == nil {
			b.early = make(map[TicketKey]struct{})
		}
		b.early[id] = struct{}{}
		return
	}
	if b.tickets[i].used {
		return
	}
	b.tickets[i].used = true
	b.used++
	if p := b.tickets[i].pos; p > 0 {
		b.usedPos = insertSorted(b.usedPos, int64(p))
	}
	b.wake()
}

// Applied is the last line stream sequence applied, and a channel closed
// when more is applied.
func (b *Book) Applied() (uint64, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.notify == nil {
		b.notify = make(chan struct{})
	}
	return b.applied, b.notify
}

// Ticket is what a poll learns of one ticket.
type Ticket struct {
	ID     TicketKey
	Buyer  string
	Seq    uint64
	Joined time.Time
	// Drawn: the ticket was taken before the draw was sealed (or it is
	// not sealed yet).
	Drawn bool
	// Position is 0 until the draw is sealed.
	Position int64
	Used     bool
	// LetIn: its turn came, at LetInAt; the pass it got expires at
	// PassExpires.
	LetIn       bool
	LetInAt     time.Time
	PassExpires time.Time
}

// Lookup finds a ticket.
func (b *Book) Lookup(id TicketKey) (Ticket, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	i, ok := b.byID[id]
	if !ok {
		return Ticket{}, false
	}
	return b.ticketAt(i), true
}

// BySeq finds the ticket recorded at a line stream sequence.
func (b *Book) BySeq(seq uint64) (Ticket, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	i, ok := slices.BinarySearchFunc(b.tickets, seq, bySeq)
	if !ok {
		return Ticket{}, false
	}
	return b.ticketAt(int32(i)), true
}

// ticketAt reads ticket i; b.mu is held.
func (b *Book) ticketAt(i int32) Ticket {
	e := &b.tickets[i]
	t := Ticket{ID: e.id, Buyer: e.buyer, Seq: e.seq, Joined: time.Unix(0, e.joined),
		Drawn: !b.sealed || i < b.drawn, Position: int64(e.pos), Used: e.used}
	if t.Position > 0 {
		if a, ok := b.letInBy(t.Position); ok {
			t.LetIn, t.LetInAt, t.PassExpires = true, a.At, a.Expires
		}
	}
	return t
}

// letInBy is the step that let position pos in; b.mu is held.
func (b *Book) letInBy(pos int64) (Advance, bool) {
	n := len(b.advances)
	if n == 0 || b.advances[n-1].Through < pos {
		return Advance{}, false
	}
	i, _ := slices.BinarySearchFunc(b.advances, pos, func(a Advance, pos int64) int {
		if a.Through < pos {
			return -1
		}
		return 1
	})
	return b.advances[i], true
}

// State is the line as a whole at one moment.
type State struct {
	// Sealed: the draw is made; Drawn tickets were in it.
	Sealed bool
	Drawn  int64
	// Tickets in the line, drawn and after.
	Tickets int64
	// LetIn: positions 1..LetIn have had their turn; LastAdvance is the
	// pace record that says so (0: none yet), for a compare-and-set.
	LetIn       int64
	LastAdvance uint64
	// Used passes, of all issued.
	Used int64
	// Outstanding passes at the moment asked: issued, unused, unexpired.
	Outstanding int64
	// Expired passes, issued and unused, at that moment.
	Expired int64
	// Held is what the pace counts against the stock: Outstanding, plus
	// the passes expired within the grace asked for, whose order may
	// still be on its way to the ledger.
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
// counts as held until grace after its expiry. It costs a few binary
// searches, not a walk of the line.
//
// The invariants it reports, with Book's records applied in any order:
//   - LetIn = Used of the let-in + Outstanding + Expired;
//   - positions are let in in order: LetIn is a prefix;
//   - Expired never counts a pass before its expiry, Outstanding never
//     one after it;
//   - Held >= Outstanding.
func (b *Book) State(now time.Time, grace time.Duration) State {
	b.mu.RLock()
	defer b.mu.RUnlock()
	st := State{Sealed: b.sealed, Drawn: int64(b.drawn), Tickets: int64(len(b.tickets)), Used: b.used}
	n := len(b.advances)
	if n == 0 || !b.sealed {
		return st
	}
	last := b.advances[n-1]
	st.LetIn, st.LastAdvance = min(last.Through, st.Tickets), last.Seq
	exp := b.expiredThrough(now)
	held := b.expiredThrough(now.Add(-grace))
	usedIn := func(lo, hi int64) int64 { return b.usedThrough(hi) - b.usedThrough(lo) }
	st.Expired = exp - usedIn(0, exp)
	st.Outstanding = st.LetIn - exp - usedIn(exp, st.LetIn)
	st.Held = st.LetIn - held - usedIn(held, st.LetIn)
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

// expiredThrough is the last position whose pass expired at or before
// now (0: none); b.mu is held. Expiries follow positions (Advance), so
// it is a binary search.
func (b *Book) expiredThrough(now time.Time) int64 {
	k, _ := slices.BinarySearchFunc(b.advances, now, func(a Advance, t time.Time) int {
		if a.Expires.After(t) {
			return 1
		}
		return -1
	})
	if k == 0 {
		return 0
	}
	return min(b.advances[k-1].Through, int64(len(b.tickets)))
}

// usedThrough is how many used tickets hold positions 1..pos; b.mu is
// held.
func (b *Book) usedThrough(pos int64) int64 {
	i, _ := slices.BinarySearch(b.usedPos, pos+1)
	return int64(i)
}

// indexAt is the index of the ticket at position pos; b.mu is held and
// the draw is sealed.
func (b *Book) indexAt(pos int64) int32 {
	if pos <= int64(b.drawn) {
		return b.byPos[pos-1]
	}
	return int32(pos - 1)
}

// Drawn appends the ids of the drawn tickets from position from+1 on, at
// most n, in position order; ok is false until the draw is sealed.
func (b *Book) Drawn(from, n int, dst []TicketKey) ([]TicketKey, int, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.sealed {
		return dst, 0, false
	}
	for p := from; p < int(b.drawn) && p < from+n; p++ {
		dst = append(dst, b.tickets[b.byPos[p]].id)
	}
	return dst, int(b.drawn), true
}

// BuyerAt is the buyer and ticket at a position, for the pace's look-ups.
func (b *Book) BuyerAt(pos int64) (string, TicketKey, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.sealed || pos < 1 || pos > int64(len(b.tickets)) {
		return "", TicketKey{}, false
	}
	e := &b.tickets[b.indexAt(pos)]
	return e.buyer, e.id, true
}

// Sealing is the line stream sequence the draw is sealed at, once known
// (the tickets before it are drawn); sealed positions follow once every
// record before it is applied.
func (b *Book) Sealing() (uint64, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.sealSeq, b.sealSeq != 0
}

// Len is how many tickets the line holds.
func (b *Book) Len() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return int64(len(b.tickets))
}

// bySeq orders tickets by their line stream sequence, for binary searches.
func bySeq(e entry, seq uint64) int { return cmp.Compare(e.seq, seq) }
