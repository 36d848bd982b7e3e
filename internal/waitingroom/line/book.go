package line

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"math"
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
	// opening is the draw mark's (SealBefore); period the drawn tickets'
	// period of looks once the line opened.
	opening Opening
	period  [2]time.Duration // the front's, the back's
	// advances of the pace, in order; Through and Offered never
	// decrease.
	advances []Advance
	// paceSeq is the last advance record applied (moving or not), for
	// the next compare-and-set. closed says the last room mark, at
	// markSeq, turned the room off: the advances recorded while it is
	// off move nothing (Mark).
	paceSeq, markSeq uint64
	closed           bool
	// claims of each position, as recorded: which of them counts is
	// asked when the position is read (turnAt), so that the answer does
	// not depend on what was applied before them.
	claims map[int64][]claim
	used   int64 // tickets whose pass was used
	// slots are the positions after the drawn ones, in line stream
	// order: slots[i] holds position drawn+i+1 (a ticket joined after
	// the seal, or one put at the back after its turn lapsed).
	slots []int32
	// rejoined maps a ticket put at the back to the position it left
	// (its turn there lapsed): a ticket goes to the back once.
	rejoined map[int32]int32
	// early holds the uses recorded for tickets not applied yet: the
	// line and the pace are two streams, and a use may be applied before
	// its ticket. Applied with the ticket, the result does not depend on
	// which stream was read first.
	early map[TicketKey]struct{}
	// notify, made when someone waits (Applied), is closed when records
	// are applied: a replay with nobody waiting makes no channel a record.
	notify chan struct{}
	// hashes, in a book of the public line log (NewHashBook), are the
	// tickets' hashes by key: there a ticket is known by its hash alone.
	hashes map[TicketKey][32]byte
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
	id   TicketKey
	used bool
	pos  int32 // 1-based once sealed (drawn) or at join (after the seal)
	// slot is a drawn ticket's place in the opening, milliseconds after
	// the draw (Opening): its first look, and its period's phase.
	slot   uint32
	seq    uint64
	joined int64 // unix ns, as JetStream stored the ticket
	buyer  string
}

// Opening is how a line opens at its draw: the gates answer Rate polls a
// second, so the drawn tickets' first looks are spread over drawn/Rate
// seconds from At (the draw mark's time), front of the line first, and
// then come every Period. A drawn ticket's slot is a function of its
// draw key (HMAC-SHA256(seed, hash of its id), read as a fraction), so
// it is its position's share of the opening, known to the gates before
// the draw: they tell each ticket to come back at its slot, and a turn's
// claim window starts at the first of its holder's looks (its slot, then
// every Period) after its offer, never before (Book.Turn's ClaimFrom).
// The zero Opening (a mark written before openings, a line sealed full
// without its mark) opens nothing: a turn's window starts at its offer.
//
// The front of the line, positions 1..Front (a number the mark carries:
// the turns the stock may reach when many holders are away), looks
// more often than the back: half of Rate goes to the front's looks, a
// quarter to the back's, so that a turn offered at the front to a
// holder who left lapses within a short period and a claim window, and
// the back, which the stock reaches only when most of the front is
// away, costs little.
type Opening struct {
	At    time.Time
	Rate  float64
	Front int64
}

// Opening's bounds: a period of looks is between MinPeriod and MaxPoll
// at the front, and up to MaxBackPeriod behind it.
const (
	MinPeriod     = 2 * time.Second
	MaxBackPeriod = 5 * time.Minute
)

// FrontOf is the front of a line whose sale has capacity items: four
// times the capacity, the turns offered ahead when a quarter of the
// holders come.
func FrontOf(capacity int64) int64 { return 4 * max(0, capacity) }

// OpeningLength is how long an opening of drawn tickets at rate lasts.
func OpeningLength(drawn int64, rate float64) time.Duration {
	if rate <= 0 || drawn <= 0 {
		return 0
	}
	return time.Duration(float64(drawn) / rate * float64(time.Second))
}

// LookPeriod is how often the front's drawn tickets look once the line
// opened (front of them: a line's first positions, Opening): twice the
// front's opening, so that their looks take half of what the gates
// answer (the rest for the back, the claims and those the pace is about
// to reach, who ask more often), between MinPeriod and MaxPoll.
func LookPeriod(front int64, rate float64) time.Duration {
	return min(MaxPoll, max(MinPeriod, 2*OpeningLength(front, rate)))
}

// BackPeriod is how often the back's drawn tickets look (back of them,
// behind the front): four times their opening, a quarter of what the
// gates answer, between MinPeriod and MaxBackPeriod.
func BackPeriod(back int64, rate float64) time.Duration {
	return min(MaxBackPeriod, max(MinPeriod, 4*OpeningLength(back, rate)))
}

// SlotShare is a drawn ticket's share of the opening, in [0, 1): its draw
// key read as a fraction, so that the front of the line comes first.
func SlotShare(seed Seed, id TicketKey) float64 {
	h := id.Hash()
	m := hmac.New(sha256.New, seed[:])
	m.Write(h[:])
	var key [32]byte
	m.Sum(key[:0])
	return float64(binary.BigEndian.Uint64(key[:8])>>11) / (1 << 53)
}

// Advance is one step of the pace: positions 1..Through are let in
// (granted: a claimed turn among them gets its pass), and positions
// 1..Offered are offered (their holders may claim their turn). A step
// is dated At (the pace record's time in JetStream, which every gate
// reads alike). The positions it offered have Window to be claimed;
// those it let in got passes living TTL from their grant or their
// claim, whichever is later (the sale's settings when the step was
// recorded, kept in the record so that a later change of a setting
// changes no turn already given).
type Advance struct {
	Through int64
	// Offered is at least Through; 0 is read as Through (a record
	// written before turns were offered ahead).
	Offered int64
	At      time.Time
	TTL     time.Duration
	// Window is the claim window of the turns this step offered; 0 (a
	// record written before turns were claimed) means the turn needs no
	// claim: it is claimed when it is offered.
	Window time.Duration
	Seq    uint64 // the pace's last record when applied, for the next compare-and-set
	// seq is this record's own sequence in the pace stream: a claim
	// counts only if recorded after the step that offered its turn.
	seq uint64
}

// claim is a claim record of a position.
type claim struct {
	id  TicketKey
	at  int64  // unix ns, as JetStream stored the claim
	seq uint64 // its sequence in the pace stream
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
			e.pos = b.drawn + int32(len(b.slots)) + 1 // after the drawn, in arrival order
			b.slots = append(b.slots, int32(len(b.tickets)))
		}
		if _, ok := b.early[id]; ok {
			delete(b.early, id)
			e.used = true
			b.used++
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
// seq are drawn, every later one queues behind them, and the line opens
// as o says (a rate that is not a finite positive number opens nothing;
// a front below zero is none). The first seal stands. Positions are
// computed once every record before seq is applied.
func (b *Book) SealBefore(seq uint64, o Opening) {
	if !(o.Rate > 0) || math.IsInf(o.Rate, 0) {
		o.Rate = 0
	}
	o.Front = max(0, o.Front)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sealSeq != 0 {
		return
	}
	b.sealSeq, b.opening = seq, o
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
		hs[i] = b.hashOf(b.tickets[i].id)
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
	length := OpeningLength(int64(n), b.opening.Rate)
	for p, k := range ks {
		b.byPos[p] = k.idx
		e := &b.tickets[k.idx]
		e.pos = int32(p) + 1
		if length > 0 {
			share := float64(binary.BigEndian.Uint64(k.key[:8])>>11) / (1 << 53) // SlotShare
			e.slot = uint32(share * float64(length.Milliseconds()))
		}
	}
	for i := n; i < len(b.tickets); i++ {
		b.tickets[i].pos = int32(i) + 1
		b.slots = append(b.slots, int32(i))
	}
	b.drawn = int32(n)
	front := b.frontLen()
	b.period = [2]time.Duration{LookPeriod(front, b.opening.Rate), BackPeriod(int64(n)-front, b.opening.Rate)}
	b.sealed = true
}

// Advance applies a pace record. One that does not move the line on
// (another gate's step applied twice, or older) changes nothing, and
// neither does one recorded while the room is off (Mark).
func (b *Book) Advance(a Advance) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.Seq <= b.paceSeq {
		return // applied already
	}
	b.paceSeq = a.Seq
	if b.closed {
		return
	}
	a.Offered = max(a.Offered, a.Through)
	a.seq = a.Seq
	if n := len(b.advances); n > 0 {
		last := &b.advances[n-1]
		if a.Through <= last.Through && a.Offered <= last.Offered {
			return
		}
		// Each mark moves on alone: a step that offers more but lets in
		// less than the last lets in what the last did.
		a.Through, a.Offered = max(a.Through, last.Through), max(a.Offered, last.Offered)
	}
	b.advances = append(b.advances, a)
	b.wake()
}

// Mark applies a room mark recorded at pace sequence seq: open false
// turns the room off, and the advances recorded after it (in the pace
// stream's order, which every book applies) move nothing until a mark
// turns it on again. While it is off, the turns and passes given before
// the mark keep their items (State.Held only falls, as passes are used
// or expire and turns lapse), so that orders without a pass can be
// admitted beside them without taking what the line promised. Whoever
// turns a room off records the mark before the sale says so: a gate
// that has not seen the change yet may still record a step, and the
// mark decides for every book alike that it moves nothing.
func (b *Book) Mark(open bool, seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if seq <= b.markSeq {
		return // applied already
	}
	b.markSeq = seq
	b.closed = !open
	b.wake()
}

// Claim applies a claim record at pace stream sequence seq: the holder
// of ticket id asked for it while its position pos was offered, at (as
// JetStream stored the claim). The claim that counts for the ticket at
// pos is the first that names it, recorded after the step that offered
// pos and stored before its window closed; which one that is is asked
// when the position is read, since the line stream may not have brought
// the ticket yet, and a record may be applied twice.
func (b *Book) Claim(id TicketKey, pos int64, at time.Time, seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if pos < 1 || pos > MaxPosition {
		return
	}
	if b.claims == nil {
		b.claims = make(map[int64][]claim)
	}
	cs := b.claims[pos]
	for _, c := range cs {
		if c.seq == seq {
			return
		}
	}
	b.claims[pos] = append(cs, claim{id: id, at: at.UnixNano(), seq: seq})
	b.wake()
}

// MaxPosition bounds the positions a claim may name: a line holds no more
// tickets than a line stream (ledger.MaxLineLimit) plus its rejoins.
const MaxPosition = 1 << 26

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
	// Rejoined: its turn at LeftPosition lapsed and it was put at the
	// back, at Position.
	Rejoined     bool
	LeftPosition int64
	// Slot is a drawn ticket's first look after the draw, and Period how
	// often it looks after (Opening); zero for a ticket without looks.
	Slot   time.Time
	Period time.Duration
	Turn
}

// Turn is a position's turn as the records give it. Whether an
// unclaimed turn has lapsed depends on the moment asked (Lapsed).
type Turn struct {
	// Offered: the holder may claim the turn, from OfferedAt until
	// ClaimBy; its claim window starts at ClaimFrom, the first of its
	// holder's looks at or after the offer (Opening), so that whoever
	// came back when told never lapses; its offer, for a ticket without
	// looks.
	Offered   bool
	OfferedAt time.Time
	ClaimFrom time.Time
	ClaimBy   time.Time
	// Claimed: the holder claimed the turn, at ClaimedAt.
	Claimed   bool
	ClaimedAt time.Time
	// LetIn: the line let the position in, at LetInAt; a claimed turn
	// let in has a pass expiring at PassExpires (its grant or its claim,
	// whichever is later, plus the pass_ttl of the step that let it in).
	LetIn       bool
	LetInAt     time.Time
	PassExpires time.Time
}

// lookAfter is the first look at or after t of the ticket i holding
// position pos: its slot, then every period, for a drawn ticket at its
// drawn position in a line that opened (Opening); t itself otherwise (a
// ticket joined after the draw, one put at the back). b.mu is held.
func (b *Book) lookAfter(pos int64, i int32, t time.Time) time.Time {
	if !b.sealed || i >= b.drawn || b.opening.Rate <= 0 {
		return t
	}
	drawnAt := int64(b.tickets[i].pos)
	if old, back := b.rejoined[i]; back {
		drawnAt = int64(old)
	}
	if pos != drawnAt {
		return t
	}
	first := b.opening.At.Add(time.Duration(b.tickets[i].slot) * time.Millisecond)
	return NextLook(first, b.periodAt(drawnAt), t)
}

// frontLen is how many drawn positions are the front: the mark's Front,
// all of them when it says none (a mark written before fronts); b.mu
// is held.
func (b *Book) frontLen() int64 {
	if f := b.opening.Front; f > 0 && f < int64(b.drawn) {
		return f
	}
	return int64(b.drawn)
}

// periodAt is how often the drawn ticket drawn at position pos looks;
// b.mu is held.
func (b *Book) periodAt(pos int64) time.Duration {
	if pos > b.frontLen() {
		return b.period[1]
	}
	return b.period[0]
}

// NextLook is the first of the looks first, first+period, … at or after t.
func NextLook(first time.Time, period time.Duration, t time.Time) time.Time {
	if !t.After(first) || period <= 0 {
		return first
	}
	k := (t.Sub(first) + period - 1) / period
	return first.Add(k * period)
}

// Lapsed says the turn was offered and not claimed within its window,
// with grace for a claim on its way (the pace gives its room away only
// then).
func (t Turn) Lapsed(now time.Time, grace time.Duration) bool {
	return t.Offered && !t.Claimed && !now.Before(t.ClaimBy.Add(grace))
}

// HasPass says the turn carries a pass: claimed and let in.
func (t Turn) HasPass() bool { return t.Claimed && t.LetIn }

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
	if t.Position > 0 && b.sealed {
		t.Turn = b.turnAt(t.Position, i, b.offerIdx(t.Position), b.grantIdx(t.Position))
	}
	if b.sealed && i < b.drawn && b.opening.Rate > 0 {
		t.Slot, t.Period = b.opening.At.Add(time.Duration(e.slot)*time.Millisecond), b.periodAt(int64(e.pos))
	}
	if old, back := b.rejoined[i]; back {
		t.Rejoined, t.LeftPosition = true, int64(old)
		if first := b.turnAt(int64(old), i, b.offerIdx(int64(old)), b.grantIdx(int64(old))); first.Claimed {
			// Claimed after all: the ticket keeps its first turn.
			t.Position, t.Turn = int64(old), first
		}
	}
	return t
}

// turnAt is the turn of position pos held by ticket i, offered by
// advance oi and let in by advance gi (-1: not yet); b.mu is held.
func (b *Book) turnAt(pos int64, i int32, oi, gi int) Turn {
	id := b.tickets[i].id
	var t Turn
	if oi < 0 {
		return t
	}
	o := &b.advances[oi]
	t.ClaimFrom = b.lookAfter(pos, i, o.At)
	t.Offered, t.OfferedAt, t.ClaimBy = true, o.At, t.ClaimFrom.Add(o.Window)
	if o.Window <= 0 {
		t.Claimed, t.ClaimedAt = true, o.At
	} else {
		var first *claim
		by := t.ClaimBy.UnixNano()
		for j, c := range b.claims[pos] {
			if c.id == id && c.seq > o.seq && c.at < by && (first == nil || c.seq < first.seq) {
				first = &b.claims[pos][j]
			}
		}
		if first != nil {
			t.Claimed, t.ClaimedAt = true, time.Unix(0, first.at)
		}
	}
	if gi >= 0 {
		g := &b.advances[gi]
		t.LetIn, t.LetInAt = true, g.At
		if t.Claimed {
			from := g.At
			if t.ClaimedAt.After(from) {
				from = t.ClaimedAt
			}
			t.PassExpires = from.Add(g.TTL)
		}
	}
	return t
}

// offerIdx is the advance that offered position pos, -1 if none has;
// grantIdx the one that let it in. Both marks never decrease, so they
// are binary searches. b.mu is held.
func (b *Book) offerIdx(pos int64) int {
	return b.firstAdvance(pos, func(a Advance) int64 { return a.Offered })
}

func (b *Book) grantIdx(pos int64) int {
	return b.firstAdvance(pos, func(a Advance) int64 { return a.Through })
}

// firstAdvance is the first advance whose mark reaches pos, -1 if none
// does; mark never decreases along the advances. b.mu is held.
func (b *Book) firstAdvance(pos int64, mark func(Advance) int64) int {
	n := len(b.advances)
	if n == 0 || mark(b.advances[n-1]) < pos {
		return -1
	}
	i, _ := slices.BinarySearchFunc(b.advances, pos, func(a Advance, pos int64) int {
		if mark(a) < pos {
			return -1
		}
		return 1
	})
	return i
}

// indexAt is the index of the ticket at position pos; b.mu is held and
// the draw is sealed.
func (b *Book) indexAt(pos int64) int32 {
	if pos <= int64(b.drawn) {
		return b.byPos[pos-1]
	}
	return b.slots[pos-int64(b.drawn)-1]
}

// positions is how many positions the line holds: the drawn, the joined
// after them and the tickets put at the back; b.mu is held.
func (b *Book) positions() int64 { return int64(b.drawn) + int64(len(b.slots)) }

// Rejoin applies a rejoin record at line stream sequence seq: the ticket
// whose turn lapsed goes to the back of the line, to the next position,
// once. A rejoin before the seal, of a ticket not in the line, or of one
// put at the back already changes nothing. Whether the turn it left had
// in fact been claimed (a claim on its way when the rejoin was written)
// is asked when the ticket is read: then the new place holds nothing
// (slotTurn).
func (b *Book) Rejoin(id TicketKey, seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if seq <= b.applied {
		return
	}
	b.applied = seq
	i, ok := b.byID[id]
	if _, again := b.rejoined[i]; ok && b.sealed && seq > b.sealSeq && !again && b.tickets[i].pos > 0 {
		if b.rejoined == nil {
			b.rejoined = make(map[int32]int32)
		}
		e := &b.tickets[i]
		b.rejoined[i] = e.pos
		e.pos = b.drawn + int32(len(b.slots)) + 1
		b.slots = append(b.slots, i)
	}
	b.maybeSeal()
	b.wake()
}

// slotTurn is the turn of position pos, held by ticket i, offered by
// advance oi and let in by advance gi (-1: not yet), and whether the
// ticket's pass was used for it. void: the position holds nothing (a
// ticket put at the back whose turn at its first place was claimed
// after all keeps that turn). b.mu is held.
func (b *Book) slotTurn(pos int64, i int32, oi, gi int) (t Turn, used, void bool) {
	e := &b.tickets[i]
	t = b.turnAt(pos, i, oi, gi)
	old, back := b.rejoined[i]
	switch {
	case !back:
		return t, e.used, false
	case int64(old) == pos: // the place it left: a use was this turn's only if claimed
		return t, e.used && t.Claimed, false
	}
	if b.turnAt(int64(old), i, b.offerIdx(int64(old)), b.grantIdx(int64(old))).Claimed {
		return t, false, true
	}
	return t, e.used, false
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
	if !b.sealed || pos < 1 || pos > b.positions() {
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
