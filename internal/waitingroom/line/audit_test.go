package line

import (
	"testing"
	"time"
)

// A hash book, which knows tickets by their hashes alone, holds the same
// line as a book of ids fed the same records: the same draw, positions,
// turns and marks; Slot and Marks read what State and Lookup do.
func TestHashBookIsTheSameLine(t *testing.T) {
	seed, _ := NewSeed()
	ids, hb := NewBook(seed), NewHashBook(seed)
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 40 {
		k, _ := mustKey(t)
		ids.Add(k, "b", uint64(i+1), t0)
		hb.AddHash(k.Hash(), uint64(i+1), t0)
	}
	for _, b := range []*Book{ids, hb} {
		b.SealBefore(41, Opening{})
		b.Skip(41)
		b.Advance(Advance{Through: 3, Offered: 6, At: t0.Add(time.Second), TTL: time.Minute, Window: 5 * time.Second, Seq: 1})
	}
	hk := func(k TicketKey) TicketKey { return KeyOfHash(k.Hash()) }
	pick := func(b *Book, k TicketKey) TicketKey {
		if b == hb {
			return hk(k)
		}
		return k
	}
	// The holders of positions 1 and 4 claim; the one at 2 lapses and goes to the back.
	for pos := int64(1); pos <= 6; pos++ {
		s, _ := ids.Slot(pos)
		for _, b := range []*Book{ids, hb} {
			switch pos {
			case 1, 4:
				b.Claim(pick(b, s.Key), pos, t0.Add(2*time.Second), uint64(10+pos))
			case 2:
				b.Rejoin(pick(b, s.Key), 42)
			}
		}
	}
	now := t0.Add(30 * time.Second)
	if a, b := ids.State(now, time.Second), hb.State(now, time.Second); a != b {
		t.Fatalf("states differ:\n ids  %+v\n hash %+v", a, b)
	}
	for pos := int64(1); pos <= ids.Positions(); pos++ {
		a, _ := ids.Slot(pos)
		b, ok := hb.Slot(pos)
		if !ok || hk(a.Key) != b.Key || a.Turn != b.Turn || a.Used != b.Used || a.Void != b.Void || a.From != b.From {
			t.Fatalf("position %d: ids %+v, hash %+v", pos, a, b)
		}
		if hb.HashOf(b.Key) != a.Key.Hash() {
			t.Fatalf("position %d: the hash book's hash is not the ticket's", pos)
		}
		tk, _ := ids.Lookup(a.Key)
		if !a.Void && tk.Position == pos && tk.Turn != a.Turn {
			t.Fatalf("position %d: Slot %+v, Lookup %+v", pos, a.Turn, tk.Turn)
		}
	}
	if s, _ := hb.Slot(41); s.From != 2 {
		t.Fatalf("the ticket at the back came from %d, want 2", s.From)
	}
	st := ids.State(now, time.Second)
	if li, of := ids.Marks(); li != st.LetIn || of != st.Offered {
		t.Fatalf("Marks %d, %d; State %d, %d", li, of, st.LetIn, st.Offered)
	}
}
