package line

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// The book's state is a function of the records alone: the line stream's
// (tickets and the draw mark) and the pace stream's (advances, claims,
// uses and room marks)
// applied in any interleaving of the two, replayed any number of times
// (a restart, a room turned off and on), and read at any moment any
// number of times. A reference model computed naively from the same
// records says what it must be.

type lineRec struct {
	mark bool
	// rate, at: the mark's opening (Opening); rate 0 opens nothing.
	rate   float64
	at     time.Time
	rejoin bool // the ticket key goes to the back
	key    TicketKey
	buyer  string
	joined time.Time
}

type paceRec struct {
	use, claim bool
	// room is a room mark: roomOff or roomOn (0: not a mark).
	room    int
	key     TicketKey // use, claim
	pos     int64     // claim
	through int64     // advance
	offered int64     // advance; 0: a record before offers
	window  time.Duration
	at      time.Time
	ttl     time.Duration
}

const (
	roomOff = 1
	roomOn  = 2
)

// model computes the line naively from the prefixes of both streams.
type model struct {
	seed Seed
	line []lineRec
	pace []paceRec
}

type modelAdvance struct {
	through, offered int64
	at               time.Time
	ttl, window      time.Duration
	seq              int
}

type modelClaim struct {
	key TicketKey
	pos int64
	at  time.Time
	seq int
}

func (m model) positions() (byPos []TicketKey, drawn int, sealed bool) {
	var ids []string
	var keys, rejoined []TicketKey
	mark := -1
	for i, r := range m.line {
		if r.mark && mark < 0 {
			mark = i
			continue
		}
		if r.mark {
			continue
		}
		if r.rejoin {
			// After the seal, of a ticket in the line, once: a second
			// place at the back.
			if mark >= 0 && slices.Contains(keys, r.key) && !slices.Contains(rejoined, r.key) {
				rejoined = append(rejoined, r.key)
				keys = append(keys, r.key)
			}
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

// paceOf replays the pace stream: the steps that moved a mark, the last
// advance record's sequence, the claims, and
// whether the room is off. A step recorded while the room is off moves
// nothing.
func (m model) paceOf() (out []modelAdvance, lastSeq uint64, claims []modelClaim, closed bool) {
	for i, r := range m.pace {
		switch {
		case r.use:
		case r.claim:
			claims = append(claims, modelClaim{r.key, r.pos, r.at, i + 1})
		case r.room != 0:
			closed = r.room == roomOff
		case closed:
			lastSeq = uint64(i + 1)
		default:
			lastSeq = uint64(i + 1)
			a := modelAdvance{through: r.through, offered: max(r.offered, r.through), at: r.at, ttl: r.ttl, window: r.window, seq: i + 1}
			if n := len(out); n > 0 {
				if a.through <= out[n-1].through && a.offered <= out[n-1].offered {
					continue
				}
				a.through, a.offered = max(a.through, out[n-1].through), max(a.offered, out[n-1].offered)
			}
			out = append(out, a)
		}
	}
	return out, lastSeq, claims, closed
}

// lookFrom is when the claim window of key's turn at position p, offered
// at at, starts: at its holder's first look from then (Opening), for a
// drawn ticket at its drawn position in a line opened by its mark; at
// then otherwise.
func (m model) lookFrom(p int64, key TicketKey, at time.Time) time.Time {
	byPos, drawn, sealed := m.positions()
	var open lineRec
	for _, r := range m.line {
		if r.mark {
			open = r
			break
		}
	}
	if !sealed || open.rate <= 0 || p > int64(drawn) || byPos[p-1] != key {
		return at
	}
	length := OpeningLength(int64(drawn), open.rate)
	slot := time.Duration(uint32(SlotShare(m.seed, key)*float64(length.Milliseconds()))) * time.Millisecond
	return NextLook(open.at.Add(slot), LookPeriod(int64(drawn), open.rate), at)
}

// turn is position p's turn, held by key, computed from scratch.
func (m model) turn(p int64, key TicketKey) Turn {
	adv, _, claims, _ := m.paceOf()
	var t Turn
	for _, a := range adv {
		if a.offered >= p {
			t.ClaimFrom = m.lookFrom(p, key, a.at)
			t.Offered, t.OfferedAt, t.ClaimBy = true, a.at, t.ClaimFrom.Add(a.window)
			if a.window == 0 {
				t.Claimed, t.ClaimedAt = true, a.at
				break
			}
			// The first claim of p naming key, after the offer, stored
			// before the window closed (claims are in stream order).
			for _, c := range claims {
				if c.pos == p && c.key == key && c.seq > a.seq && c.at.Before(t.ClaimBy) {
					t.Claimed, t.ClaimedAt = true, c.at
					break
				}
			}
			break
		}
	}
	for _, a := range adv {
		if a.through >= p {
			t.LetIn, t.LetInAt = true, a.at
			if t.Claimed {
				from := a.at
				if t.ClaimedAt.After(from) {
					from = t.ClaimedAt
				}
				t.PassExpires = from.Add(a.ttl)
			}
			break
		}
	}
	return t
}

func (m model) used() map[TicketKey]bool {
	known := map[TicketKey]bool{}
	for _, r := range m.line {
		if !r.mark && !r.rejoin {
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

func (m model) state(now time.Time, grace, claimGrace time.Duration) State {
	byPos, drawn, sealed := m.positions()
	used := m.used()
	tickets := 0
	seen := map[TicketKey]bool{}
	for _, r := range m.line {
		if !r.mark && !r.rejoin && !seen[r.key] {
			seen[r.key] = true
			tickets++
		}
	}
	st := State{Sealed: sealed, Tickets: int64(tickets), Positions: int64(tickets), Used: int64(len(used))}
	if sealed {
		st.Drawn = int64(drawn)
		st.Positions = int64(len(byPos))
		st.Rejoined = st.Positions - st.Tickets
	}
	adv, lastSeq, _, closed := m.paceOf()
	st.LastAdvance, st.Closed = lastSeq, closed
	if len(adv) == 0 || !sealed {
		return st
	}
	st.LetIn = min(adv[len(adv)-1].through, st.Positions)
	st.Offered = min(adv[len(adv)-1].offered, st.Positions)
	for p := int64(1); p <= st.Offered; p++ {
		k := byPos[p-1]
		t := m.turn(p, k)
		u := used[k]
		first, second := int64(slices.Index(byPos, k)+1), int64(0)
		if i := slices.Index(byPos[first:], k); i >= 0 {
			second = first + int64(i) + 1
		}
		switch {
		case second > 0 && p == first: // the place it left
			u = u && t.Claimed
		case second > 0 && m.turn(first, k).Claimed:
			continue // its place at the back: its first turn was claimed after all, this one holds nothing
		}
		lapsed := !t.Claimed && !now.Before(t.ClaimBy.Add(claimGrace))
		if t.Claimed {
			st.Claimed++
		} else if !u && lapsed {
			st.Lapsed++
		} else if !u {
			st.Undecided++
			if p <= st.LetIn {
				st.Pending++
				st.Held++
			}
		}
		if u || !t.Claimed {
			continue
		}
		if p > st.LetIn {
			st.Waiting++
			continue
		}
		if !t.PassExpires.After(now) {
			st.Expired++
		} else {
			st.Outstanding++
		}
		if t.PassExpires.Add(grace).After(now) {
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
			switch {
			case r.mark:
				b.SealBefore(seq, Opening{At: r.at, Rate: r.rate})
				b.Skip(seq)
			case r.rejoin:
				b.Rejoin(r.key, seq)
			default:
				b.Add(r.key, r.buyer, seq, r.joined)
			}
			li++
			continue
		}
		r := m.pace[pi]
		switch {
		case r.use:
			b.Use(r.key)
		case r.claim:
			b.Claim(r.key, r.pos, r.at, uint64(pi+1))
		case r.room != 0:
			b.Mark(r.room == roomOn, uint64(pi+1))
		default:
			b.Advance(Advance{Through: r.through, Offered: r.offered, At: r.at, TTL: r.ttl, Window: r.window, Seq: uint64(pi + 1)})
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
			switch rapid.IntRange(0, 13).Draw(t, "kind") {
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
				m.line = append(m.line, lineRec{mark: true, at: clock,
					rate: rapid.SampledFrom([]float64{0, 0.2, 1, 5}).Draw(t, "opening rate")})
			case 12: // a ticket put at the back (before the mark, twice or unknown: nothing)
				if len(keys) == 0 {
					continue
				}
				m.line = append(m.line, lineRec{rejoin: true, key: rapid.SampledFrom(keys).Draw(t, "rejoined")})
			case 5, 6: // an advance, sometimes stale, sometimes without offers or windows (an old record)
				ttl := time.Duration(rapid.SampledFrom([]int{5, 30, 120}).Draw(t, "ttl")) * time.Second
				window := time.Duration(rapid.SampledFrom([]int{0, 5, 15}).Draw(t, "window")) * time.Second
				through := int64(rapid.IntRange(1, 40).Draw(t, "through"))
				offered := int64(0)
				if window > 0 {
					offered = through + int64(rapid.IntRange(-5, 10).Draw(t, "ahead"))
				}
				m.pace = append(m.pace, paceRec{through: through, offered: offered, window: window, at: clock, ttl: ttl})
			case 13: // the room turned off or on (sometimes twice the same way)
				m.pace = append(m.pace, paceRec{room: rapid.SampledFrom([]int{roomOff, roomOn}).Draw(t, "room")})
			case 10, 11: // a claim: mostly of the ticket's own position, sometimes stale or wrong
				if len(keys) == 0 {
					continue
				}
				k := rapid.SampledFrom(keys).Draw(t, "claimed")
				byPos, _, _ := m.positions()
				pos := int64(slices.Index(byPos, k) + 1)
				if pos == 0 || rapid.IntRange(0, 4).Draw(t, "wrong position") == 0 {
					pos = int64(rapid.IntRange(1, 40).Draw(t, "pos"))
				}
				m.pace = append(m.pace, paceRec{claim: true, key: k, pos: pos, at: clock})
			default: // a use, maybe of a ticket not yet in the line
				if len(keys) == 0 {
					continue
				}
				m.pace = append(m.pace, paceRec{use: true, key: rapid.SampledFrom(keys).Draw(t, "used")})
			}
		}
		grace := time.Duration(rapid.IntRange(0, 10).Draw(t, "grace")) * time.Second
		claimGrace := time.Duration(rapid.IntRange(0, 10).Draw(t, "claim grace")) * time.Second
		check := func(b *Book, mm model, now time.Time, when string) {
			want := mm.state(now, grace, grace)
			for range 2 { // a read changes nothing
				got := b.State(now, grace)
				got.Rate, got.Moving = 0, 0
				if got != want {
					t.Fatalf("%s at +%v: book %+v, model %+v", when, now.Sub(t0), got, want)
				}
			}
			want = mm.state(now, grace, claimGrace)
			got, _ := b.StateAhead(now, grace, claimGrace, nil)
			if got.Rate, got.Moving = 0, 0; got != want {
				t.Fatalf("%s at +%v, claim grace %v: book %+v, model %+v", when, now.Sub(t0), claimGrace, got, want)
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
				pos := int64(slices.Index(byPos, k) + 1)
				if i := slices.Index(byPos[pos:], k); i >= 0 && !mm.turn(pos, k).Claimed {
					pos += int64(i) + 1 // at the back, its first turn lapsed
				}
				if tk.Position != pos {
					t.Fatalf("%s: ticket %s at %d, model %d", when, k, tk.Position, pos)
				}
				if want := mm.turn(pos, k); !turnsEqual(tk.Turn, want) {
					t.Fatalf("%s: ticket %s at %d: turn %+v, model %+v", when, k, pos, tk.Turn, want)
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

func turnsEqual(a, b Turn) bool {
	return a.Offered == b.Offered && a.OfferedAt.Equal(b.OfferedAt) && a.ClaimFrom.Equal(b.ClaimFrom) && a.ClaimBy.Equal(b.ClaimBy) &&
		a.Claimed == b.Claimed && a.ClaimedAt.Equal(b.ClaimedAt) && a.LetIn == b.LetIn &&
		a.LetInAt.Equal(b.LetInAt) && a.PassExpires.Equal(b.PassExpires)
}
