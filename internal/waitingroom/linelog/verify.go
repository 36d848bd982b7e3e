package linelog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"sluice/internal/waitingroom/line"
)

// Draw is a sale's published draw (GET /v1/sales/{sale}/draw and
// /draw/tickets): the commitment, the seed, and the drawn tickets'
// hashes in position order.
type Draw struct {
	Commitment string   `json:"commitment"`
	Seed       string   `json:"seed"`
	Hashes     []string `json:"ticket_hashes"`
}

// Verify checks a whole log, and the draw published beside it when d is
// not nil: the records are numbered without gaps and come in the log's
// order; recomputed from the records alone (Replay, on the line
// package's Book), every derived record is the one the log shows, so
// turns were offered in draw order, tickets went to the back once and
// only after a lapse, and every pass went to a claimed turn let in; at
// every step the line held no more than the stock left; every order
// with a pass had one granted to its ticket, unexpired, once; no order
// without one took stock the line held. It returns the first record that
// breaks a rule as a *Violation.
func Verify(entries []Entry, d *Draw) (Summary, error) {
	for i, e := range entries {
		if e.Seq != int64(i+1) {
			return Summary{}, &Violation{Seq: e.Seq, Kind: e.Kind, Rule: RuleSequence,
				Detail: fmt.Sprintf("record %d comes where record %d belongs", e.Seq, i+1)}
		}
	}
	seed, err := seedOf(entries)
	if err != nil {
		return Summary{}, err
	}
	r := NewReplay(seed)
	var want []Entry
	for i := 0; i < len(entries); {
		j := i
		for j < len(entries) && entries[j].Kind.Derived() {
			j++
		}
		if j == len(entries) {
			return r.Summary(), &Violation{Seq: entries[i].Seq, Kind: entries[i].Kind, Rule: RuleRecord,
				Detail: "no record of a stream gives it"}
		}
		want = r.Apply(want[:0], entries[j])
		if v := r.Violation(); v != nil {
			return r.Summary(), v
		}
		for k, w := range want {
			if i+k >= len(entries) {
				return r.Summary(), &Violation{Seq: w.Seq, Kind: w.Kind, Rule: RuleRecord,
					Detail: "the records give " + render(w) + ", which the log ends before"}
			}
			if !same(entries[i+k], w) {
				return r.Summary(), &Violation{Seq: entries[i+k].Seq, Kind: entries[i+k].Kind, Rule: RuleRecord,
					Detail: "the log says " + render(entries[i+k]) + "; the records give " + render(w)}
			}
		}
		i += len(want)
	}
	r.Finish()
	if v := r.Violation(); v != nil {
		return r.Summary(), v
	}
	if d != nil {
		if v := checkDraw(r, entries, *d); v != nil {
			return r.Summary(), v
		}
	}
	return r.Summary(), nil
}

// seedOf is the seed the log's draw record reveals (none yet: the zero
// seed, which draws nothing since there is no draw record).
func seedOf(entries []Entry) (line.Seed, error) {
	for _, e := range entries {
		if e.Kind == KindDraw {
			s, err := line.ParseSeed(e.Seed)
			if err != nil {
				return line.Seed{}, &Violation{Seq: e.Seq, Kind: e.Kind, Rule: RuleDraw, Detail: err.Error()}
			}
			return s, nil
		}
	}
	return line.Seed{}, nil
}

// checkDraw checks the published draw against the log: the same
// commitment and seed, a draw that verifies, and the same tickets in
// the same order as the log's records give.
func checkDraw(r *Replay, entries []Entry, d Draw) *Violation {
	var at *Entry
	for i := range entries {
		if entries[i].Kind == KindDraw {
			at = &entries[i]
			break
		}
	}
	if at == nil {
		return &Violation{Kind: KindDraw, Rule: RuleDraw, Detail: "the log has no draw yet"}
	}
	v := &Violation{Seq: at.Seq, Kind: KindDraw, Rule: RuleDraw}
	switch {
	case d.Commitment != r.commitment:
		v.Detail = fmt.Sprintf("the draw's commitment %s is not the log's %s", d.Commitment, r.commitment)
	case d.Seed != at.Seed:
		v.Detail = fmt.Sprintf("the draw's seed %s is not the log's %s", d.Seed, at.Seed)
	}
	if v.Detail != "" {
		return v
	}
	if err := line.VerifyDraw(d.Seed, d.Commitment, d.Hashes); err != nil {
		v.Detail = "the draw list does not verify: " + err.Error()
		return v
	}
	keys, n, _ := r.book.Drawn(0, len(d.Hashes)+1, nil)
	if n != len(d.Hashes) {
		v.Detail = fmt.Sprintf("the draw lists %d tickets; the log's records draw %d", len(d.Hashes), n)
		return v
	}
	for i, k := range keys {
		if h := HashString(r.book.HashOf(k)); h != d.Hashes[i] {
			v.Detail = fmt.Sprintf("position %d: the draw lists %s; the log's records put %s there", i+1, d.Hashes[i], h)
			return v
		}
	}
	return nil
}

// same says two records say the same: what render writes of them is
// equal (without writing it: a log has a record per ticket).
func same(a, b Entry) bool {
	eqTime := func(x, y time.Time) bool { return x.Equal(y) && x.IsZero() == y.IsZero() }
	eqPtr := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	eqBool := func(x, y *bool) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	switch {
	case a.Seq != b.Seq || a.Kind != b.Kind || !eqTime(a.At, b.At) || a.LineSeq != b.LineSeq || a.PaceSeq != b.PaceSeq ||
		a.OrderSeq != b.OrderSeq || a.DecisionSeq != b.DecisionSeq || a.Ticket != b.Ticket || a.Position != b.Position ||
		a.From != b.From || a.Commitment != b.Commitment || a.Seed != b.Seed || !eqPtr(a.Drawn, b.Drawn):
		return false
	case a.Through != b.Through || a.Offered != b.Offered || a.TTLMillis != b.TTLMillis || a.WindowMillis != b.WindowMillis ||
		!eqPtr(a.Limit, b.Limit) || a.PassGraceMillis != b.PassGraceMillis || a.ClaimGraceMillis != b.ClaimGraceMillis ||
		!eqBool(a.Open, b.Open) || !eqBool(a.Counted, b.Counted) || !eqPtr(a.Stock, b.Stock) || !eqPtr(a.Overbook, b.Overbook) ||
		!eqTime(a.ClaimBy, b.ClaimBy) || !eqTime(a.Expires, b.Expires):
		return false
	case (a.Covers == nil) != (b.Covers == nil) || (a.Covers != nil && *a.Covers != *b.Covers):
		return false
	case (a.State == nil) != (b.State == nil) || (a.State != nil && (a.State.LetIn != b.State.LetIn ||
		a.State.Offered != b.State.Offered || a.State.Outstanding != b.State.Outstanding || a.State.Claimable != b.State.Claimable ||
		a.State.Held != b.State.Held || a.State.Orders != b.State.Orders || !eqPtr(a.State.StockLeft, b.State.StockLeft))):
		return false
	}
	return slices.Equal(a.Confirmed, b.Confirmed) && slices.Equal(a.Rejected, b.Rejected) && slices.Equal(a.Failed, b.Failed) &&
		slices.Equal(a.Cancelled, b.Cancelled)
}

// render is a record as the log writes it.
func render(e Entry) string {
	b, _ := json.Marshal(e)
	return string(bytes.TrimSpace(b))
}
