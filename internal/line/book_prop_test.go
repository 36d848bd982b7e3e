package line

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// The book's state is a function of the records alone: the line stream's
// (tickets and the draw mark) and the pace stream's (advances and uses)
// applied in any interleaving of the two, replayed any number of times
// (a restart, a room turned off and on), and read at any moment any
// number of times. A reference model computed naively from the same
// records says what it must be.

type lineRec struct {
	mark   bool
	key    TicketKey
	buyer  string
	joined time.Time
}

type paceRec struct {
	use     bool
	key     TicketKey // use
	through int64     // advance
	at      time.Time
	ttl     time.Duration
}

// model computes the line naively from the prefixes of both streams.
type model struct {
	seed Seed
	line []lineRec
	pace []paceRec
}

type modelAdvance struct {
	through      int64
	at, expires  time.Time
	seq          uint64
	lastSeqOfAll uint64
}

func (m model) positions() (byPos []TicketKey, drawn int, sealed bool) {
	var ids []string
	var keys []TicketKey
	mark := -1
	for i, r := range m.line {
		if r.mark && mark < 0 {
			mark = i
			continue
		}
		if r.mark {
			continue
		}
		if slices.Contains(keys, r.key) {
			continue
		}
		keys = append(keys, r.key)
		if mark < 0 {
			ids = append(ids, r.key.String())
		}
	}
	if mark < 0 {
		return nil, 0, false
	}
	for _, id := range drawIDs(m.seed, ids) {
		k, _ := KeyOf(id)
		byPos = append(byPos, k)
	}
	return append(byPos, keys[len(ids):]...), len(ids), true
}

func (m model) advances() (out []modelAdvance, lastSeq uint64) {
	for i, r := range m.pace {
		if r.use {
			continue
		}
		seq := uint64(i + 1)
		lastSeq = seq
		if n := len(out); n > 0 && r.through <= out[n-1].through {
			continue
		}
		exp := r.at.Add(r.ttl)
		if n := len(out); n > 0 && exp.Before(out[n-1].expires) {
			exp = out[n-1].expires
		}
		out = append(out, modelAdvance{through: r.through, at: r.at, expires: exp, seq: seq})
	}
	return out, lastSeq
}

func (m model) used() map[TicketKey]bool {
	known := map[TicketKey]bool{}
	for _, r := range m.line {
		if !r.mark {
			known[r.key] = true
		}
	}
	u := map[TicketKey]bool{}
	for _, r := range m.pace {
		if r.use && known[r.key] {
			u[r.key] = true
		}
	}
	return u
}

func (m model) state(now time.Time, grace time.Duration) State {
	byPos, drawn, sealed := m.positions()
	used := m.used()
	tickets := 0
	seen := map[TicketKey]bool{}
	for _, r := range m.line {
		if !r.mark && !seen[r.key] {
			seen[r.key] = true
			tickets++
		}
	}
	st := State{Sealed: sealed, Tickets: int64(tickets), Used: int64(len(used))}
	if sealed {
		st.Drawn = int64(drawn)
	}
	adv, lastSeq := m.advances()
	if len(adv) == 0 || !sealed {
		return st
	}
	st.LastAdvance = lastSeq
	st.LetIn = min(adv[len(adv)-1].through, int64(tickets))
	for p := int64(1); p <= st.LetIn; p++ {
		var exp time.Time
		for _, a := range adv {
			if a.through >= p {
				exp = a.expires
				break
			}
		}
		if used[byPos[p-1]] {
			continue
		}
		if !exp.After(now) {
			st.Expired++
		} else {
			st.Outstanding++
		}
		if exp.Add(grace).After(now) {
			st.Held++
		}
	}
	return st
}

// apply feeds the book the line stream's records from li and the pace
// stream's from pi, interleaved as t draws.
func applyInterleaved(t *rapid.T, b *Book, m model, li, pi, lEnd, pEnd int) {
	for li < lEnd || pi < pEnd {
		if li < lEnd && (pi >= pEnd || rapid.Bool().Draw(t, "line first")) {
			r := m.line[li]
			seq := uint64(li + 1)
			if r.mark {
				b.SealBefore(seq)
				b.Skip(seq)
			} else {
				b.Add(r.key, r.buyer, seq, r.joined)
			}
			li++
			continue
		}
		r := m.pace[pi]
		if r.use {
			b.Use(r.key)
		} else {
			b.Advance(Advance{Through: r.through, At: r.at, TTL: r.ttl, Seq: uint64(pi + 1)})
		}
		pi++
	}
}

func TestBookIsAFunctionOfItsRecords(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var seed Seed
		copy(seed[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "seed"))
		t0 := time.Unix(1_800_000_000, 0)
		m := model{seed: seed}
		var keys []TicketKey
		clock := t0
		n := rapid.IntRange(1, 60).Draw(t, "records")
		for range n {
			clock = clock.Add(time.Duration(rapid.IntRange(0, 20).Draw(t, "dt")) * time.Second)
			switch rapid.IntRange(0, 9).Draw(t, "kind") {
			case 0, 1, 2, 3: // a ticket (sometimes the same one again)
				var k TicketKey
				if len(keys) > 0 && rapid.IntRange(0, 9).Draw(t, "again") == 0 {
					k = rapid.SampledFrom(keys).Draw(t, "old")
				} else {
					copy(k[:], rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "key"))
					keys = append(keys, k)
				}
				m.line = append(m.line, lineRec{key: k, buyer: fmt.Sprint("b", len(m.line)), joined: clock})
			case 4: // the draw mark (a second one changes nothing)
				m.line = append(m.line, lineRec{mark: true})
			case 5, 6: // an advance, sometimes stale
				ttl := time.Duration(rapid.SampledFrom([]int{5, 30, 120}).Draw(t, "ttl")) * time.Second
				m.pace = append(m.pace, paceRec{through: int64(rapid.IntRange(1, 40).Draw(t, "through")), at: clock, ttl: ttl})
			default: // a use, maybe of a ticket not yet in the line
				if len(keys) == 0 {
					continue
				}
				m.pace = append(m.pace, paceRec{use: true, key: rapid.SampledFrom(keys).Draw(t, "used")})
			}
		}
		grace := time.Duration(rapid.IntRange(0, 10).Draw(t, "grace")) * time.Second
		check := func(b *Book, mm model, now time.Time, when string) {
			want := mm.state(now, grace)
			for range 2 { // a read changes nothing
				got := b.State(now, grace)
				got.Rate, got.Moving = 0, 0
				if got != want {
					t.Fatalf("%s at +%v: book %+v, model %+v", when, now.Sub(t0), got, want)
				}
			}
			byPos, _, sealed := mm.positions()
			used := mm.used()
			for _, k := range keys {
				tk, ok := b.Lookup(k)
				if !ok {
					continue
				}
				if tk.Used != used[k] {
					t.Fatalf("%s: ticket %s used %v, model %v", when, k, tk.Used, used[k])
				}
				if !sealed {
					continue
				}
				if pos := int64(slices.Index(byPos, k) + 1); tk.Position != pos {
					t.Fatalf("%s: ticket %s at %d, model %d", when, k, tk.Position, pos)
				}
			}
		}
		// Partial prefixes, interleaved at random, checked on the way.
		b := NewBook(seed)
		li, pi := 0, 0
		for li < len(m.line) || pi < len(m.pace) {
			lEnd := rapid.IntRange(li, len(m.line)).Draw(t, "line to")
			pEnd := rapid.IntRange(pi, len(m.pace)).Draw(t, "pace to")
			applyInterleaved(t, b, m, li, pi, lEnd, pEnd)
			li, pi = lEnd, pEnd
			now := t0.Add(time.Duration(rapid.IntRange(0, 1500).Draw(t, "now")) * time.Second)
			check(b, model{seed: seed, line: m.line[:li], pace: m.pace[:pi]}, now, "prefix")
		}
		// A restart: a new book replaying everything in another order.
		b2 := NewBook(seed)
		applyInterleaved(t, b2, m, 0, 0, len(m.line), len(m.pace))
		now := t0.Add(time.Duration(rapid.IntRange(0, 1500).Draw(t, "now after")) * time.Second)
		check(b, m, now, "first book")
		check(b2, m, now, "replayed book")
		// A record applied twice (a redelivery) changes nothing.
		applyInterleaved(t, b2, m, 0, 0, len(m.line), len(m.pace))
		check(b2, m, now, "records applied twice")
	})
}
