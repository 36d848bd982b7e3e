package line

import "time"

// What the public line log needs of a book (package linelog): a book
// that knows its tickets by their hashes alone, as the log publishes
// them, and the turn of each position as the records give it, so that
// the log's recomputation is this package's and no second one.

// NewHashBook returns an empty book whose tickets are known by their
// hashes (TicketHash) alone, added with AddHash: the book of the public
// line log, which never holds a ticket id. It draws with seed as a book
// of ids does (the draw orders tickets by their hashes), and takes the
// same records: a ticket's key is KeyOfHash of its hash.
func NewHashBook(seed Seed) *Book {
	b := NewBook(seed)
	b.hashes = make(map[TicketKey][32]byte)
	return b
}

// KeyOfHash is the key a hash book knows a ticket by: the first 16 bytes
// of its hash (two tickets' hashes share them as often as 128 random
// bits collide).
func KeyOfHash(h [32]byte) TicketKey {
	var k TicketKey
	copy(k[:], h[:16])
	return k
}

// AddHash applies a ticket record of a hash book (NewHashBook): the
// ticket whose hash is h, at line stream sequence seq. As Add, a ticket
// seen already changes nothing.
func (b *Book) AddHash(h [32]byte, seq uint64, joined time.Time) {
	k := KeyOfHash(h)
	b.mu.Lock()
	if _, ok := b.hashes[k]; !ok && b.hashes != nil {
		b.hashes[k] = h
	}
	b.mu.Unlock()
	b.Add(k, "", seq, joined)
}

// HashOf is the hash of the ticket a key stands for: SHA-256 of its id,
// or, in a hash book, the hash it was added with.
func (b *Book) HashOf(k TicketKey) [32]byte {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.hashOf(k)
}

// hashOf is HashOf; b.mu is held.
func (b *Book) hashOf(k TicketKey) [32]byte {
	if h, ok := b.hashes[k]; ok {
		return h
	}
	return k.Hash()
}

// Slot is a position of the line as the records applied give it: the
// ticket that holds it and its turn there.
type Slot struct {
	Key TicketKey
	Turn
	// Used: the ticket's pass was used for this turn.
	Used bool
	// Void: the position holds nothing: its ticket was put at the back,
	// and its turn at the place it left was claimed after all (it keeps
	// that one).
	Void bool
	// From is the position a ticket put at the back left (0: none).
	From int64
}

// Slot is position pos, false until the draw is sealed or past the
// positions the line holds. It changes nothing.
func (b *Book) Slot(pos int64) (Slot, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.sealed || pos < 1 || pos > b.positions() {
		return Slot{}, false
	}
	i := b.indexAt(pos)
	t, used, void := b.slotTurn(pos, i, b.offerIdx(pos), b.grantIdx(pos))
	s := Slot{Key: b.tickets[i].id, Turn: t, Used: used, Void: void}
	if old, back := b.rejoined[i]; back && int64(old) != pos {
		s.From = int64(old)
	}
	return s, true
}

// Marks are State's LetIn and Offered, without walking the line:
// positions 1..letIn were let in and 1..offered offered, within the
// positions the line holds.
func (b *Book) Marks() (letIn, offered int64) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := len(b.advances)
	if n == 0 || !b.sealed {
		return 0, 0
	}
	p := b.positions()
	return min(b.advances[n-1].Through, p), min(b.advances[n-1].Offered, p)
}

// Positions is how many positions the line holds (State.Positions),
// without walking it: the drawn, the joined after them and the tickets
// put at the back; the tickets while the draw is not sealed.
func (b *Book) Positions() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.sealed {
		return int64(len(b.tickets))
	}
	return b.positions()
}

// LineSeq is the last line stream sequence applied.
func (b *Book) LineSeq() uint64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.applied
}
