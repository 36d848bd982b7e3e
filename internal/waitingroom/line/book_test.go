package line

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"

	"sluice/internal/testkit/testenv"
)

func mustKey(t testing.TB) (TicketKey, string) {
	t.Helper()
	id, err := NewTicketID()
	if err != nil {
		t.Fatal(err)
	}
	k, ok := KeyOf(id)
	if !ok {
		t.Fatalf("KeyOf(%q) refused a ticket NewTicketID made", id)
	}
	return k, id
}

// The book orders the tickets before the seal exactly as Draw does, and
// the later ones behind them in arrival order.
func TestBookPositionsAreTheDraw(t *testing.T) {
	seed, _ := NewSeed()
	b := NewBook(seed)
	t0 := time.Unix(1_800_000_000, 0)
	var early, late []string
	seq := uint64(0)
	for i := range 500 {
		seq++
		k, id := mustKey(t)
		b.Add(k, fmt.Sprintf("buyer-%d", i), seq, t0)
		early = append(early, id)
	}
	seq++
	b.SealBefore(seq, Opening{}) // the mark
	b.Skip(seq)
	for i := range 20 {
		seq++
		k, id := mustKey(t)
		b.Add(k, fmt.Sprintf("late-%d", i), seq, t0.Add(time.Minute))
		late = append(late, id)
	}
	want := drawIDs(seed, early)
	got, total, ok := b.Drawn(0, 1000, nil)
	if !ok || total != len(early) {
		t.Fatalf("Drawn: sealed %v, total %d; want %d", ok, total, len(early))
	}
	for i, k := range got {
		if k.String() != want[i] {
			t.Fatalf("position %d holds %s; the draw puts %s there", i+1, k, want[i])
		}
		tk, _ := KeyOf(want[i])
		if tick, _ := b.Lookup(tk); tick.Position != int64(i+1) || !tick.Drawn {
			t.Fatalf("Lookup(%s) = position %d drawn %v, want %d drawn", want[i], tick.Position, tick.Drawn, i+1)
		}
	}
	if err := VerifyDraw(seed.Hex(), seed.Commitment(), hashes(want)); err != nil {
		t.Fatal(err)
	}
	for i, id := range late {
		k, _ := KeyOf(id)
		tick, _ := b.Lookup(k)
		if tick.Position != int64(len(early)+i+1) || tick.Drawn {
			t.Fatalf("late ticket %d: position %d drawn %v, want %d not drawn", i, tick.Position, tick.Drawn, len(early)+i+1)
		}
	}
	// A seal learned before the records it follows waits for them.
	b2 := NewBook(seed)
	b2.SealBefore(3, Opening{})
	k1, _ := mustKey(t)
	b2.Add(k1, "a", 1, t0)
	if st := b2.State(t0, 0); st.Sealed {
		t.Fatal("sealed before the records before the mark were applied")
	}
	k2, _ := mustKey(t)
	b2.Add(k2, "b", 2, t0)
	if st := b2.State(t0, 0); !st.Sealed || st.Drawn != 2 {
		t.Fatalf("after the records: %+v, want sealed with 2 drawn", st)
	}
}

// Passes: outstanding until used or expired; the expired count follows,
// and a use recorded after the expiry takes its pass out of it.
func TestBookPassesOutstandingAndExpired(t *testing.T) {
	seed, _ := NewSeed()
	b := NewBook(seed)
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 10 {
		k, _ := mustKey(t)
		b.Add(k, fmt.Sprint(i), uint64(i+1), t0)
	}
	b.SealBefore(11, Opening{})
	b.Skip(11)
	ttl := time.Minute
	b.Advance(Advance{Through: 3, At: t0, TTL: ttl, Seq: 1})
	b.Advance(Advance{Through: 2, At: t0, TTL: ttl, Seq: 2}) // stale: ignored but remembered as the last
	b.Advance(Advance{Through: 5, At: t0.Add(30 * time.Second), TTL: ttl, Seq: 3})
	st := b.State(t0.Add(10*time.Second), 0)
	if st.LetIn != 5 || st.Outstanding != 5 || st.Expired != 0 || st.LastAdvance != 3 {
		t.Fatalf("state %+v, want let in 5, 5 outstanding, last advance 3", st)
	}
	_, k1, _ := b.BuyerAt(1)
	b.Use(k1)
	st = b.State(t0.Add(61*time.Second), 0) // positions 1-3 expired
	if st.Outstanding != 2 || st.Expired != 2 {
		t.Fatalf("after the first expiry: %+v, want 2 outstanding, 2 expired", st)
	}
	_, k2, _ := b.BuyerAt(2)
	b.Use(k2) // its order was placed in time, its record came late
	st = b.State(t0.Add(62*time.Second), 0)
	if st.Expired != 1 || st.Used != 2 {
		t.Fatalf("after a late use: %+v, want 1 expired, 2 used", st)
	}
	tick, _ := b.Lookup(k1)
	if !tick.Used || !tick.LetIn || !tick.LetInAt.Equal(t0) || !tick.PassExpires.Equal(t0.Add(ttl)) {
		t.Fatalf("ticket at position 1: %+v", tick)
	}
	p := Pace{LetIn: st.LetIn, Tickets: st.Tickets, Outstanding: st.Outstanding, Budget: 4, StockLeft: 100}
	if n, _ := p.Next(); n != 7 {
		t.Fatalf("Next = %d, want 7 (budget 4, 2 outstanding)", n)
	}
}

// BenchmarkBookLookup is a poll's look-up in a line of a million.
func BenchmarkBookLookup(b *testing.B) {
	book, keys := bigBook(b, 1_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := book.Lookup(keys[i%len(keys)]); !ok {
			b.Fatal("lost a ticket")
		}
	}
}

func bigBook(t testing.TB, n int) (*Book, []TicketKey) {
	seed, _ := NewSeed()
	book := NewBook(seed)
	keys := make([]TicketKey, n)
	t0 := time.Unix(1_800_000_000, 0)
	// Random keys from a seeded generator: a million reads of the
	// system's source would be most of the test's time.
	rng := rand.NewChaCha8(seed)
	for i := range n {
		var k TicketKey
		_, _ = rng.Read(k[:])
		keys[i] = k
		book.Add(k, "buyer-"+strconv.Itoa(1_000_000+i), uint64(i+1), t0)
	}
	book.SealBefore(uint64(n+1), Opening{})
	book.Skip(uint64(n + 1))
	book.Advance(Advance{Through: 500, At: t0, TTL: time.Minute, Seq: 1})
	return book, keys
}

// MaxBytesPerTicket bounds what a ticket costs a gate's memory, buyer id
// of 14 bytes included (measured: see the README's waiting-room section).
const MaxBytesPerTicket = 200

// A line of a million tickets stays within MaxBytesPerTicket a ticket,
// and a poll's look-up allocates nothing.
func TestBookMemoryMillionTickets(t *testing.T) {
	if testing.Short() {
		t.Skip("a million tickets: not in -short")
	}
	testenv.Exclusive(t)
	const n = 1_000_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	book, ks := bigBook(t, n)
	runtime.GC()
	runtime.ReadMemStats(&after)
	// ks (16 B a ticket) belongs to the test, not the book.
	per := (float64(after.HeapAlloc) - float64(before.HeapAlloc) - float64(16*n)) / n
	t.Logf("a line of %d tickets: %.0f bytes a ticket", n, per)
	if per > MaxBytesPerTicket {
		t.Errorf("a ticket costs %.0f bytes, over the bound of %d", per, MaxBytesPerTicket)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := book.Lookup(ks[12345]); !ok {
			t.Fatal("lost a ticket")
		}
	})
	if allocs != 0 {
		t.Errorf("a look-up allocates %v times; want 0", allocs)
	}
	runtime.KeepAlive(book)
}

// ChiSquareP against the survival function integrated numerically.
func TestChiSquareP(t *testing.T) {
	for _, c := range []struct {
		chi  float64
		df   int
		want float64
	}{
		{9, 9, 0.43727418}, {16.919, 9, 0.05000}, {2, 9, 0.99146761}, {30, 9, 0.00043872}, {3.84146, 1, 0.05},
	} {
		if got := ChiSquareP(c.chi, c.df); math.Abs(got-c.want) > 1e-4 {
			t.Errorf("ChiSquareP(%v, %d) = %.6f, want %.6f", c.chi, c.df, got, c.want)
		}
	}
}

// Break 3: the line and the pace are two streams read by two consumers;
// a use applied before its ticket was dropped, and after a restart the
// used pass read your_turn again. The use is kept until its ticket comes.
func TestBookUseBeforeItsTicket(t *testing.T) {
	seed, _ := NewSeed()
	t0 := time.Unix(1_800_000_000, 0)
	b := NewBook(seed)
	k, _ := mustKey(t)
	b.Use(k) // the pace stream read first
	b.Advance(Advance{Through: 1, At: t0, TTL: time.Minute, Seq: 2})
	b.Add(k, "alice", 1, t0)
	b.SealBefore(2, Opening{})
	b.Skip(2)
	tk, _ := b.Lookup(k)
	if !tk.Used || !tk.LetIn {
		t.Fatalf("ticket %+v: want used and let in", tk)
	}
	if st := b.State(t0.Add(time.Second), 0); st.Used != 1 || st.Outstanding != 0 || st.LetIn != 1 {
		t.Fatalf("state %+v: want 1 used, none outstanding", st)
	}
}

// A room turned off keeps what its turns and passes hold: the steps
// recorded while it is off (a gate that had not seen the change) move
// nothing, so Held only falls until a mark turns it on again.
func TestBookRoomOffKeepsItsHolds(t *testing.T) {
	seed, _ := NewSeed()
	b := NewBook(seed)
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 10 {
		k, _ := mustKey(t)
		b.Add(k, fmt.Sprint(i), uint64(i+1), t0)
	}
	b.SealBefore(11, Opening{})
	b.Skip(11)
	ttl := time.Minute
	b.Advance(Advance{Through: 3, At: t0, TTL: ttl, Seq: 1})
	b.Mark(false, 2)
	b.Advance(Advance{Through: 8, At: t0.Add(time.Second), TTL: ttl, Seq: 3}) // a stale gate's step
	st := b.State(t0.Add(2*time.Second), 0)
	if !st.Closed || st.LetIn != 3 || st.Held != 3 || st.LastAdvance != 3 {
		t.Fatalf("off: %+v, want closed, let in 3, 3 held, last advance 3", st)
	}
	_, k1, _ := b.BuyerAt(1)
	b.Use(k1)
	if st := b.State(t0.Add(2*time.Second), 0); st.Held != 2 {
		t.Fatalf("after a use: %+v, want 2 held", st)
	}
	if st := b.State(t0.Add(ttl+time.Second), 0); st.Held != 0 || st.Expired != 2 {
		t.Fatalf("after the expiry: %+v, want nothing held, 2 expired", st)
	}
	b.Mark(false, 4) // off again: nothing changes
	b.Mark(true, 5)
	b.Advance(Advance{Through: 6, At: t0.Add(ttl + 2*time.Second), TTL: ttl, Seq: 6})
	st = b.State(t0.Add(ttl+3*time.Second), 0)
	if st.Closed || st.LetIn != 6 || st.Held != 3 || st.LastAdvance != 6 {
		t.Fatalf("on again: %+v, want open, let in 6, 3 held, last advance 6", st)
	}
	// The same records replayed, a mark applied twice: the same state.
	b.Mark(false, 2)
	b.Advance(Advance{Through: 8, At: t0.Add(time.Second), TTL: ttl, Seq: 3})
	if again := b.State(t0.Add(ttl+3*time.Second), 0); again != st {
		t.Fatalf("replayed: %+v, want %+v", again, st)
	}
}

// A drawn line opens over drawn/rate seconds, front of the line first:
// each ticket's first look is its slot, known before the draw from its
// draw key, and its turn's claim window starts at the first of its looks
// after the offer, so a holder who comes when told never lapses. A ticket
// joined after the draw has no looks: its window starts at its offer.
func TestOpeningLooks(t *testing.T) {
	seed, _ := NewSeed()
	b := NewBook(seed)
	t0 := time.Unix(1_800_000_000, 0)
	const n, rate = 1000, 100.0 // a 10 s opening
	for i := range n {
		k, _ := mustKey(t)
		b.Add(k, fmt.Sprint(i), uint64(i+1), t0)
	}
	mark := t0.Add(time.Minute)
	b.SealBefore(n+1, Opening{At: mark, Rate: rate})
	b.Skip(n + 1)
	late, _ := mustKey(t)
	b.Add(late, "late", n+2, mark)
	length, period := OpeningLength(n, rate), LookPeriod(n, rate)
	if length != 10*time.Second || period != 20*time.Second {
		t.Fatalf("opening %v, period %v; want 10s and 20s", length, period)
	}
	prev := time.Time{}
	for p := int64(1); p <= n; p++ {
		_, k, _ := b.BuyerAt(p)
		tk, _ := b.Lookup(k)
		// The slot the gates tell before the draw, from the draw key and
		// a line no longer than the drawn one, is never after the slot.
		told := mark.Add(time.Duration(SlotShare(seed, k) * float64(OpeningLength(n-5, rate))))
		if tk.Slot.Before(prev) || tk.Slot.Before(mark) || !tk.Slot.Before(mark.Add(length)) || tk.Slot.Before(told.Add(-time.Millisecond)) {
			t.Fatalf("position %d: slot %v (previous %v, told %v), want in draw order within the opening and not before the told slot",
				p, tk.Slot.Sub(mark), prev.Sub(mark), told.Sub(mark))
		}
		prev = tk.Slot
	}
	// The first 100 positions offered at the mark: each window starts at
	// the holder's slot.
	b.Advance(Advance{Through: 0, Offered: 100, At: mark, TTL: time.Minute, Window: 15 * time.Second, Seq: 1})
	_, k1, _ := b.BuyerAt(1)
	_, k100, _ := b.BuyerAt(100)
	for _, k := range []TicketKey{k1, k100} {
		tk, _ := b.Lookup(k)
		if !tk.ClaimFrom.Equal(tk.Slot) || !tk.ClaimBy.Equal(tk.Slot.Add(15*time.Second)) {
			t.Fatalf("offered at the mark: claim from %v by %v, slot %v", tk.ClaimFrom.Sub(mark), tk.ClaimBy.Sub(mark), tk.Slot.Sub(mark))
		}
		// A holder who comes at the slot claims in time; not coming,
		// the turn lapses a window after the slot, not after the offer.
		if tk.Lapsed(tk.Slot.Add(14*time.Second), 0) || !tk.Lapsed(tk.Slot.Add(15*time.Second), 0) {
			t.Fatalf("the turn lapses before or after its window from the slot")
		}
	}
	// Offered later: the window starts at the next look.
	later := mark.Add(25 * time.Second)
	b.Advance(Advance{Through: 0, Offered: 200, At: later, TTL: time.Minute, Window: 15 * time.Second, Seq: 2})
	_, k150, _ := b.BuyerAt(150)
	tk, _ := b.Lookup(k150)
	if next := NextLook(tk.Slot, period, later); !tk.ClaimFrom.Equal(next) || next.Before(later) || !next.Before(later.Add(period)) {
		t.Fatalf("offered at +25s: claim from %v, slot %v, next look %v", tk.ClaimFrom.Sub(mark), tk.Slot.Sub(mark), next.Sub(mark))
	}
	// A ticket joined after the draw has no looks.
	if tl, _ := b.Lookup(late); !tl.Slot.IsZero() || tl.Position != n+1 {
		t.Fatalf("the late ticket: slot %v, position %d", tl.Slot, tl.Position)
	}
	b.Advance(Advance{Through: 0, Offered: n + 1, At: later, TTL: time.Minute, Window: 15 * time.Second, Seq: 3})
	if tl, _ := b.Lookup(late); !tl.ClaimFrom.Equal(later) {
		t.Fatalf("the late ticket's window starts at %v, want its offer", tl.ClaimFrom.Sub(mark))
	}
}

// The front of the line looks more often than the back: a mark with a
// front of 200 of 1,000 drawn gives positions 1..200 the front's period
// (twice their 2 s opening) and the rest the back's (four times their
// 8 s), and a turn offered behind the front starts its window at its
// holder's next look at the back's period.
func TestOpeningFrontAndBack(t *testing.T) {
	seed, _ := NewSeed()
	b := NewBook(seed)
	t0 := time.Unix(1_800_000_000, 0)
	const n, rate, front = 1000, 100.0, 200
	for i := range n {
		k, _ := mustKey(t)
		b.Add(k, fmt.Sprint(i), uint64(i+1), t0)
	}
	mark := t0.Add(time.Minute)
	b.SealBefore(n+1, Opening{At: mark, Rate: rate, Front: front})
	b.Skip(n + 1)
	fp, bp := LookPeriod(front, rate), BackPeriod(n-front, rate)
	if fp != 4*time.Second || bp != 32*time.Second {
		t.Fatalf("periods %v and %v; want 4s at the front and 32s at the back", fp, bp)
	}
	for p := int64(1); p <= n; p++ {
		_, k, _ := b.BuyerAt(p)
		tk, _ := b.Lookup(k)
		want := fp
		if p > front {
			want = bp
		}
		if tk.Period != want {
			t.Fatalf("position %d: period %v, want %v", p, tk.Period, want)
		}
	}
	later := mark.Add(40 * time.Second)
	b.Advance(Advance{Through: 0, Offered: 300, At: later, TTL: time.Minute, Window: 15 * time.Second, Seq: 1})
	for _, p := range []int64{200, 201, 300} {
		_, k, _ := b.BuyerAt(p)
		tk, _ := b.Lookup(k)
		next := NextLook(tk.Slot, tk.Period, later)
		if !tk.ClaimFrom.Equal(next) || next.Before(later) || !next.Before(later.Add(tk.Period)) {
			t.Fatalf("position %d offered at +40s: claim from %v, next look %v (period %v)", p, tk.ClaimFrom.Sub(mark), next.Sub(mark), tk.Period)
		}
	}
	// A front of none, or of the whole line (a mark before fronts): one
	// period for all, the front's.
	for _, f := range []int64{0, n, 5 * n} {
		b2 := NewBook(seed)
		for i := range n {
			k, _ := mustKey(t)
			b2.Add(k, fmt.Sprint(i), uint64(i+1), t0)
		}
		b2.SealBefore(n+1, Opening{At: mark, Rate: rate, Front: f})
		_, k, _ := b2.BuyerAt(n)
		if tk, _ := b2.Lookup(k); tk.Period != LookPeriod(n, rate) {
			t.Fatalf("front %d: the last position's period %v, want %v", f, tk.Period, LookPeriod(n, rate))
		}
	}
}

// A mark whose rate is not a finite positive number opens nothing: its
// tickets have no looks, and a turn's window starts at its offer.
func TestOpeningOfNoRateOpensNothing(t *testing.T) {
	for _, rate := range []float64{0, -5, math.NaN(), math.Inf(1)} {
		seed, _ := NewSeed()
		b := NewBook(seed)
		k, _ := mustKey(t)
		b.Add(k, "a", 1, time.Unix(1_800_000_000, 0))
		b.SealBefore(2, Opening{At: time.Unix(1_800_000_060, 0), Rate: rate, Front: -3})
		if tk, _ := b.Lookup(k); !tk.Slot.IsZero() || tk.Period != 0 {
			t.Errorf("rate %v: slot %v, period %v; want no looks", rate, tk.Slot, tk.Period)
		}
	}
}
