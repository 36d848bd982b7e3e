package line

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func testSeed() Seed {
	var s Seed
	for i := range s {
		s[i] = byte(i)
	}
	return s
}

// The draw is what the README tells anyone to compute, here checked
// against values computed apart (Python's hmac and hashlib).
func TestDrawKnownValues(t *testing.T) {
	s := testSeed()
	if got := s.Hex(); got != "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" {
		t.Fatalf("hex %s", got)
	}
	if got := s.Commitment(); got != "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd" {
		t.Fatalf("commitment %s", got)
	}
	for id, want := range map[string][2]string{
		"a":        {"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb", "a7cb833d71ff16358e264100eabe28e57eee38a55d3df471bd778738cd1159c8"},
		"ticket-1": {"737ce60fccf9da889f4605c0a20479b502eb8ed97e7bf3b5db1295ccd350b1bb", "4d4396d94dc9ece57591500d9f10c0222acb62edd0a02267f31d2d8f0ec84c89"},
	} {
		h := TicketHash(id)
		if h != want[0] {
			t.Fatalf("hash of %s: %s", id, h)
		}
		if got := s.Key(h); got != want[1] {
			t.Fatalf("key of %s: %s", id, got)
		}
	}
	ids := make([]string, 10)
	for i := range ids {
		ids[i] = fmt.Sprint("t", i)
	}
	want := []string{"t9", "t6", "t8", "t3", "t2", "t5", "t1", "t4", "t0", "t7"}
	if got := drawIDs(s, ids); !slices.Equal(got, want) {
		t.Fatalf("draw %v, want %v", got, want)
	}
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	if got := drawIDs(s, ids); !slices.Equal(got, want) {
		t.Fatalf("the draw depends on the order tickets came in: %v", got)
	}
	back, err := ParseSeed(strings.ToUpper(s.Hex()))
	if err != nil || back != s {
		t.Fatalf("parse seed: %v", err)
	}
	for _, bad := range []string{"", "00", s.Hex() + "00", strings.Repeat("zz", 32)} {
		if _, err := ParseSeed(bad); err == nil {
			t.Errorf("seed %q accepted", bad)
		}
	}
}

// drawIDs draws ticket ids by their hashes, as the book does, and gives
// the ids back in position order.
func drawIDs(s Seed, ids []string) []string {
	byHash := make(map[string]string, len(ids))
	hs := make([]string, len(ids))
	for i, id := range ids {
		hs[i] = TicketHash(id)
		byHash[hs[i]] = id
	}
	out := Draw(s, hs)
	for i, h := range out {
		out[i] = byHash[h]
	}
	return out
}

func hashes(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = TicketHash(id)
	}
	return out
}

func tickets(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	seen := map[string]bool{}
	for i := range ids {
		id, err := NewTicketID()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidTicketID(id) || seen[id] {
			t.Fatalf("ticket id %q: valid %v, seen %v", id, ValidTicketID(id), seen[id])
		}
		seen[id] = true
		ids[i] = id
	}
	return ids
}

// Anyone holding the seed, the commitment and the drawn order can check
// them; a changed seed, ticket or order fails.
func TestVerifyDraw(t *testing.T) {
	s, err := NewSeed()
	if err != nil {
		t.Fatal(err)
	}
	drawn := Draw(s, hashes(tickets(t, 1000)))
	if err := VerifyDraw(s.Hex(), s.Commitment(), drawn); err != nil {
		t.Fatal(err)
	}
	other, _ := NewSeed()
	if err := VerifyDraw(other.Hex(), s.Commitment(), drawn); !errors.Is(err, ErrCommitment) {
		t.Fatalf("another seed: %v", err)
	}
	if err := VerifyDraw(other.Hex(), other.Commitment(), drawn); !errors.Is(err, ErrDrawOrder) {
		t.Fatalf("the order of another seed: %v", err)
	}
	swapped := slices.Clone(drawn)
	swapped[10], swapped[11] = swapped[11], swapped[10]
	if err := VerifyDraw(s.Hex(), s.Commitment(), swapped); !errors.Is(err, ErrDrawOrder) || !strings.Contains(err.Error(), "position 11") {
		t.Fatalf("two tickets swapped: %v", err)
	}
	// A ticket changed (one that would move: the first whose new key
	// does not fall between its neighbours' keys).
	changed := slices.Clone(drawn)
	for i := 1; i < len(changed)-1; i++ {
		h := TicketHash(changed[i])
		k := s.Key(h)
		if k < s.Key(changed[i-1]) || k > s.Key(changed[i+1]) {
			changed[i] = h
			break
		}
	}
	if err := VerifyDraw(s.Hex(), s.Commitment(), changed); !errors.Is(err, ErrDrawOrder) {
		t.Fatalf("a ticket id changed: %v", err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("a", TicketIDLen+1), strings.Repeat("1", TicketIDLen)} {
		if ValidTicketID(bad) {
			t.Errorf("ticket id %q accepted", bad)
		}
	}
}

// The draw does not favour early or late joiners: of 20,000 tickets in
// the order they were taken, the first 500 drawn are spread over the
// deciles of joining time as chance spreads them.
func TestDrawIsUniformOverJoinTime(t *testing.T) {
	const n, served = 20_000, 500
	// Fixed tickets and seed, so the test gives the same answer each run;
	// ids that sort in joining order, so a draw by id would fail it.
	ids := make([]string, n)
	joined := make(map[string]int, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%08d", i)
		joined[ids[i]] = i
	}
	s := testSeed()
	var deciles [10]int
	for _, id := range drawIDs(s, ids)[:served] {
		deciles[joined[id]*10/n]++
	}
	chi := 0.0
	for _, c := range deciles {
		d := float64(c) - served/10.0
		chi += d * d / (served / 10.0)
		if c > 2*served/10 {
			t.Fatalf("one decile of joining time holds %d of %d served: %v", c, served, deciles)
		}
	}
	// 9 degrees of freedom: 27.88 is the 0.001 tail.
	if chi > 27.88 {
		t.Fatalf("chi-square %.1f over deciles %v", chi, deciles)
	}
	t.Logf("served by decile of joining time %v, chi-square %.1f", deciles, chi)
}

func TestPass(t *testing.T) {
	secret := []byte(strings.Repeat("k", MinSecretLen))
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	p := Pass{Sale: "drop", Buyer: "alice", Ticket: "t1", Expires: now.Add(2 * time.Minute)}
	tok, err := Sign(secret, p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(secret, tok, "drop", "alice", now)
	if err != nil || got.Ticket != "t1" || !got.Expires.Equal(p.Expires) {
		t.Fatalf("verify: %+v %v", got, err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	other, _ := Sign([]byte(strings.Repeat("o", MinSecretLen)), p)
	for name, c := range map[string]struct {
		tok, sale, buyer string
		at               time.Time
		want             error
	}{
		"expired":       {tok, "drop", "alice", p.Expires, ErrPassExpired},
		"other buyer":   {tok, "drop", "bob", now, ErrPassBuyer},
		"other sale":    {tok, "spring", "alice", now, ErrPassSale},
		"other secret":  {other, "drop", "alice", now, ErrPassForged},
		"signature":     {flip(tok, len(tok)-3), "drop", "alice", now, ErrPassForged},
		"payload":       {flip(tok, 5), "drop", "alice", now, ErrPassForged},
		"empty":         {"", "drop", "alice", now, ErrPassForged},
		"no signature":  {strings.Join(strings.Split(tok, ".")[:2], "."), "drop", "alice", now, ErrPassForged},
		"other version": {"p2" + tok[2:], "drop", "alice", now, ErrPassForged},
		"too long":      {tok + strings.Repeat("A", 1024), "drop", "alice", now, ErrPassForged},
		"garbage":       {"p1.!!.!!", "drop", "alice", now, ErrPassForged},
	} {
		if _, err := Verify(secret, c.tok, c.sale, c.buyer, c.at); !errors.Is(err, c.want) || !errors.Is(err, ErrBadPass) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if _, err := Sign(secret[:10], p); err == nil {
		t.Error("a short secret signed")
	}
	if _, err := Sign(secret, Pass{Sale: "drop", Buyer: "a|b", Ticket: "t"}); err == nil {
		t.Error("a buyer with a separator signed")
	}
}

func TestPaceNext(t *testing.T) {
	U, C, S := FateUndecided, FateClaimed, FateSettled
	for name, c := range map[string]struct {
		p             Pace
		through, offr int64
	}{
		"within the budget":             {Pace{LetIn: 0, Tickets: 1000, Budget: 50, StockLeft: 500}, 50, 50},
		"outstanding and queued use it": {Pace{LetIn: 50, Offered: 50, Tickets: 1000, Outstanding: 30, Queued: 15, Budget: 50, StockLeft: 500}, 55, 55},
		"never more passes than stock":  {Pace{LetIn: 90, Offered: 90, Tickets: 1000, Outstanding: 8, Budget: 500, StockLeft: 10}, 92, 92},
		"not past the last ticket":      {Pace{LetIn: 10, Offered: 10, Tickets: 12, Budget: 500, StockLeft: 500}, 12, 12},
		"full: stays":                   {Pace{LetIn: 70, Offered: 70, Tickets: 1000, Outstanding: 40, Queued: 20, Budget: 50, StockLeft: 500}, 70, 70},
		"sold out: stays":               {Pace{LetIn: 70, Offered: 80, Tickets: 1000, Budget: 50, StockLeft: 0, MaxAhead: 100}, 70, 80},
		"an expired pass frees room":    {Pace{LetIn: 70, Offered: 70, Tickets: 1000, Outstanding: 49, Budget: 50, StockLeft: 500}, 71, 71},
		// Offers ahead: nobody has lapsed yet, so every holder is
		// expected: no offer beyond what the stock covers.
		"first step offers the stock": {Pace{Tickets: 1000, Budget: 500, StockLeft: 10, MaxAhead: 100}, 10, 10},
		// Half came (c = 0.5): of 20 items left, the 10 turns pending
		// are expected to take 5, the 10 let in now 5; the other 10 need
		// 20 more turns offered, 35 with the margin (10 + 2 sd of the 40
		// undecided + 1, over c).
		"offers follow the share who came": {Pace{LetIn: 20, Offered: 20, Tickets: 1000, Outstanding: 10, Pending: 10, Budget: 500, StockLeft: 20,
			Claimed: 99, Lapsed: 100, MaxAhead: 1000}, 30, 65},
		// Lapsed turns are passed over free; the claimed behind them get
		// in while the stock covers the undecided ahead of them.
		"lapsed turns cost nothing": {Pace{LetIn: 10, Offered: 16, Tickets: 1000, Outstanding: 0, Budget: 500, StockLeft: 3,
			Ahead: []Fate{S, S, C, U, S, C}, Claimed: 10, Lapsed: 10, MaxAhead: 100}, 16, 22},
		"stops before what the stock does not cover": {Pace{LetIn: 10, Offered: 16, Tickets: 1000, Outstanding: 0, Budget: 500, StockLeft: 2,
			Ahead: []Fate{S, C, U, C, S, C}, Claimed: 10, Lapsed: 10, MaxAhead: 100}, 13, 16},
		// Almost nobody came: offers run MaxAhead past the let-in, no
		// further.
		"bounded ahead": {Pace{LetIn: 0, Tickets: 100_000, Budget: 500, StockLeft: 100, Claimed: 1, Lapsed: 1000, MaxAhead: 1000}, 100, 1100},
		"bounded by the line": {Pace{LetIn: 10, Offered: 10, Tickets: 15, Outstanding: 10, Budget: 500, StockLeft: 20,
			Claimed: 1, Lapsed: 10, MaxAhead: 1000}, 15, 15},
	} {
		g, o := c.p.Next()
		if g != c.through || o != c.offr {
			t.Errorf("%s: next %d offered %d, want %d offered %d", name, g, o, c.through, c.offr)
		}
		if o < g || g < c.p.LetIn || o < c.p.Offered {
			t.Errorf("%s: a mark went back or offers fell behind: %d %d", name, g, o)
		}
	}
	if !(Pace{StockLeft: 0}).SoldOut() || (Pace{StockLeft: 1}).SoldOut() {
		t.Error("sold out")
	}
}

func TestWaitAndPollAfter(t *testing.T) {
	if w, ok := Wait(10, 20, 5); !ok || w != 0 {
		t.Errorf("let in: %v %v", w, ok)
	}
	if w, ok := Wait(120, 20, 5); !ok || w != 20*time.Second {
		t.Errorf("100 ahead at 5/s: %v %v", w, ok)
	}
	if _, ok := Wait(120, 20, 0); ok {
		t.Error("a wait without a rate")
	}
	for _, c := range []struct {
		pos  int64
		rate float64
		want time.Duration
	}{
		{21, 5, MinPoll}, {520, 5, 10 * time.Second}, {100_000, 5, MaxPoll}, {100, 0, 5 * time.Second},
	} {
		if got := PollAfter(c.pos, 20, c.rate); got != c.want {
			t.Errorf("poll after at %d, %v/s: %v, want %v", c.pos, c.rate, got, c.want)
		}
	}
}
