package linelog

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"sluice/internal/waitingroom/line"
)

// scene is a small sale's records, as a gate reads them: six tickets,
// the draw, a step offering three turns, two claimed (one orders, then
// is cancelled), one lapsing and going to the back, a second step.
type scene struct {
	seed   line.Seed
	t0     time.Time
	hashes []string // by join order
	drawn  []string // by position
	raw    []Entry
}

func newScene(t *testing.T) *scene {
	t.Helper()
	seed, err := line.NewSeed()
	if err != nil {
		t.Fatal(err)
	}
	s := &scene{seed: seed, t0: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	at := func(ms int) time.Time { return s.t0.Add(time.Duration(ms) * time.Millisecond) }
	lim := func(n int64) *int64 { return &n }
	s.raw = append(s.raw, Entry{At: at(0), Kind: KindCommitment, Commitment: seed.Commitment()})
	for i := range 6 {
		id, _ := line.NewTicketID()
		h := line.TicketHash(id)
		s.hashes = append(s.hashes, h)
		s.raw = append(s.raw, Entry{At: at(1000 + i), Kind: KindJoin, LineSeq: uint64(i + 1), Ticket: h})
	}
	s.drawn = line.Draw(seed, s.hashes)
	cov := func(l, o, d uint64) *Covers { return &Covers{LineSeq: l, OrderSeq: o, DecisionSeq: d} }
	s.raw = append(s.raw,
		Entry{At: at(10_000), Kind: KindDraw, LineSeq: 7, Seed: seed.Hex()},
		Entry{At: at(10_500), Kind: KindStep, PaceSeq: 3, Through: 2, Offered: 3, TTLMillis: 20_000, WindowMillis: 5000,
			Covers: cov(7, 0, 0), Limit: lim(3), PassGraceMillis: 4000, ClaimGraceMillis: 3000},
		Entry{At: at(11_000), Kind: KindClaim, PaceSeq: 5, Ticket: s.drawn[0], Position: 1},
		Entry{At: at(11_100), Kind: KindClaim, PaceSeq: 6, Ticket: s.drawn[1], Position: 2},
		Entry{At: at(12_000), Kind: KindOrder, OrderSeq: 1, Ticket: s.drawn[0]},
		Entry{At: at(12_500), Kind: KindCover, PaceSeq: 9, Covers: cov(7, 1, 0), Limit: lim(3), PassGraceMillis: 4000, ClaimGraceMillis: 3000},
		Entry{At: at(12_600), Kind: KindUse, PaceSeq: 10, Ticket: s.drawn[0]},
		// The third turn's window closes at 15.5 s; it lapses for the
		// log once a pace record is dated 18.5 s or later.
		Entry{At: at(19_000), Kind: KindStep, PaceSeq: 12, Through: 3, Offered: 4, TTLMillis: 20_000, WindowMillis: 5000,
			Covers: cov(7, 1, 0), Limit: lim(3), PassGraceMillis: 4000, ClaimGraceMillis: 3000},
		Entry{At: at(20_000), Kind: KindRejoin, LineSeq: 8, Ticket: s.drawn[2]},
		Entry{At: at(13_000), Kind: KindDecision, DecisionSeq: 30, Confirmed: []uint64{1}},
		Entry{At: at(20_500), Kind: KindDecision, DecisionSeq: 40, Cancelled: []Outcome{{OrderSeq: 1, Reason: "changed mind"}}},
		Entry{At: at(21_000), Kind: KindCover, PaceSeq: 13, Covers: cov(8, 1, 40), Limit: lim(4), PassGraceMillis: 4000, ClaimGraceMillis: 3000},
		Entry{At: at(21_500), Kind: KindStock, PaceSeq: 14, Stock: lim(3)},
	)
	return s
}

// log is the scene's log as a gate writes it.
func (s *scene) log(t *testing.T) []Entry {
	t.Helper()
	r := NewReplay(s.seed)
	var out []Entry
	for _, e := range s.raw {
		out = r.Apply(out, e)
	}
	if v := r.Violation(); v != nil {
		t.Fatalf("the scene breaks a rule: %v", v)
	}
	return out
}

func (s *scene) draw() *Draw {
	return &Draw{Commitment: s.seed.Commitment(), Seed: s.seed.Hex(), Hashes: s.drawn}
}

func kinds(log []Entry) string {
	var ks []string
	for _, e := range log {
		ks = append(ks, string(e.Kind))
	}
	return strings.Join(ks, " ")
}

// The log's derived records are those the records give, in order: the
// offers after the step, the grants after the claims, the lapse before
// the record dated past it, the rejoin at the back.
func TestReplayWritesTheLine(t *testing.T) {
	s := newScene(t)
	log := s.log(t)
	want := "commitment join join join join join join draw step offer offer offer claim grant claim grant order cover use " +
		"lapse step offer rejoin decision decision cover stock"
	if got := kinds(log); got != want {
		t.Fatalf("kinds:\n got %s\nwant %s", got, want)
	}
	sum, err := Verify(log, s.draw())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Offers != 4 || sum.Grants != 2 || sum.Lapses != 1 || sum.Rejoins != 1 || sum.PassOrders != 1 || sum.Released != 1 {
		t.Errorf("summary %+v", sum)
	}
	for i, e := range log {
		if e.Seq != int64(i+1) {
			t.Fatalf("record %d numbered %d", i+1, e.Seq)
		}
		switch e.Kind {
		case KindOffer:
			if e.Ticket != s.drawn[e.Position-1] && e.Position <= 6 {
				t.Errorf("offer of position %d to %s; the draw puts %s there", e.Position, e.Ticket, s.drawn[e.Position-1])
			}
		case KindRejoin:
			if e.From != 3 || e.Position != 7 {
				t.Errorf("rejoin from %d to %d, want 3 to 7", e.From, e.Position)
			}
		case KindLapse:
			if e.Position != 3 || !e.At.Equal(s.t0.Add(15_500*time.Millisecond)) {
				t.Errorf("lapse %+v", e)
			}
		}
	}
	// The step after the lapse: three let in (the lapsed one free), one
	// order, one pass outstanding.
	st := log[20].State
	if log[20].Kind != KindStep || st.LetIn != 3 || st.Orders != 1 || st.Outstanding != 1 || st.Held != 1 || *st.StockLeft != 2 {
		t.Errorf("the second step's state %+v", log[20])
	}
}

// A doctored log is refused, at the first record that breaks it.
func TestVerifyRefusesADoctoredLog(t *testing.T) {
	s := newScene(t)
	good := s.log(t)
	renumber := func(l []Entry) []Entry {
		for i := range l {
			l[i].Seq = int64(i + 1)
		}
		return l
	}
	find := func(l []Entry, k Kind, n int) int {
		for i, e := range l {
			if e.Kind == k {
				if n == 0 {
					return i
				}
				n--
			}
		}
		t.Fatalf("no %s #%d", k, n)
		return -1
	}
	lim := func(n int64) *int64 { return &n }
	for _, c := range []struct {
		name   string
		doctor func([]Entry) []Entry
		draw   *Draw
		rule   string
	}{
		{"a record removed", func(l []Entry) []Entry { return slices.Delete(l, 5, 6) }, nil, RuleSequence},
		{"a join removed and the rest renumbered", func(l []Entry) []Entry { return renumber(slices.Delete(l, 3, 4)) }, nil, RuleOrder},
		{"an order removed and the rest renumbered", func(l []Entry) []Entry {
			return renumber(slices.Delete(l, find(l, KindOrder, 0), find(l, KindOrder, 0)+1))
		}, nil, RuleOrder},
		{"two offers swapped", func(l []Entry) []Entry {
			i := find(l, KindOffer, 0)
			l[i].Ticket, l[i+1].Ticket = l[i+1].Ticket, l[i].Ticket
			return l
		}, nil, RuleRecord},
		{"an extra pass", func(l []Entry) []Entry {
			i := find(l, KindGrant, 1) + 1
			extra := Entry{At: l[i-1].At, Kind: KindGrant, Position: 3, Ticket: s.drawn[2], Expires: l[i-1].Expires}
			return renumber(slices.Insert(l, i, extra))
		}, nil, RuleRecord},
		{"an order with a pass never granted", func(l []Entry) []Entry {
			i := find(l, KindOrder, 0)
			l[i].Ticket = s.drawn[2]
			return l
		}, nil, RulePass},
		{"a step past the stock", func(l []Entry) []Entry { l[find(l, KindStep, 0)].Limit = lim(1); return l }, nil, RuleStock},
		{"a rejoin before the lapse", func(l []Entry) []Entry {
			l[find(l, KindRejoin, 0)].At = s.t0.Add(15 * time.Second)
			return l
		}, nil, RuleRejoin},
		{"a seed other than the commitment's", func(l []Entry) []Entry {
			other, _ := line.NewSeed()
			l[find(l, KindDraw, 0)].Seed = other.Hex()
			return l
		}, nil, RuleDraw},
		{"a draw list in another order", func(l []Entry) []Entry { return l },
			&Draw{Commitment: s.seed.Commitment(), Seed: s.seed.Hex(), Hashes: append([]string{s.drawn[1], s.drawn[0]}, s.drawn[2:]...)}, RuleDraw},
		{"records after the last that places them", func(l []Entry) []Entry {
			return append(l, Entry{Seq: int64(len(l) + 1), At: s.t0.Add(time.Minute), Kind: KindJoin, LineSeq: 9, Ticket: tickHash("late"), Position: 8})
		}, nil, RuleOrder},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := c.doctor(slices.Clone(good))
			_, err := Verify(l, c.draw)
			var v *Violation
			if !errors.As(err, &v) || v.Rule != c.rule {
				t.Fatalf("Verify = %v, want a violation of %q", err, c.rule)
			}
			t.Logf("refused: %v", v)
		})
	}
}

func tickHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return HashString(h)
}

// Replaying a log's raw records in any split gives the same log: what a
// gate writes does not depend on when it read.
func TestReplayIsAFunctionOfTheRecords(t *testing.T) {
	s := newScene(t)
	a := s.log(t)
	r := NewReplay(s.seed)
	var b []Entry
	for _, e := range a {
		if !e.Kind.Derived() {
			b = r.Apply(b, e) // with their derived fields set: Apply ignores them
		}
	}
	if len(a) != len(b) {
		t.Fatalf("%d records, then %d", len(a), len(b))
	}
	for i := range a {
		if render(a[i]) != render(b[i]) {
			t.Fatalf("record %d: %s, then %s", i+1, render(a[i]), render(b[i]))
		}
	}
}

// same, which Verify compares records with, says what comparing their
// JSON says.
func TestSameIsRender(t *testing.T) {
	s := newScene(t)
	log := s.log(t)
	for _, a := range log {
		for _, b := range log {
			b.Seq = a.Seq
			if got, want := same(a, b), render(a) == render(b); got != want {
				t.Fatalf("same = %v, render says %v:\n %s\n %s", got, want, render(a), render(b))
			}
		}
		back, err := json.Marshal(a)
		var c Entry
		if err != nil || json.Unmarshal(back, &c) != nil || !same(a, c) {
			t.Fatalf("a record read back is not the same: %s", back)
		}
	}
}
