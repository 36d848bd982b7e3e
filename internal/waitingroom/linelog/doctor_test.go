package linelog

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// Every doctoring of a log's records that no stream could have written
// is refused: each record removed (the rest renumbered), each two
// neighbours swapped, each record given twice, and each field a record
// derives (an offer's, a grant's, a lapse's, an expiry's; a join's
// position, a rejoin's, the draw's count, a step's state, a claim's
// count) changed. A record of a stream changed alone is evidence of the
// stream, which the log cannot check against anything but itself; those
// its rules can (a ticket's hash, a draw's seed, a return to the back
// before the turn lapsed) are refused too.
func TestVerifyRefusesEveryDoctoring(t *testing.T) {
	s := newScene(t)
	log := s.log(t)
	renumber := func(l []Entry) []Entry {
		for i := range l {
			l[i].Seq = int64(i + 1)
		}
		return l
	}
	refused := func(name string, l []Entry) {
		t.Helper()
		if _, err := Verify(renumber(l), s.draw()); err == nil {
			t.Errorf("%s: the doctored log verifies", name)
		}
	}
	for i := range log {
		coverNext := i+1 < len(log) && (log[i+1].Kind == KindStep || log[i+1].Kind == KindCover)
		if !log[i].Kind.Derived() && log[i].pace() && log[i].Kind != KindStep && log[i].Kind != KindCover && log[i].Kind != KindRoom ||
			log[i].Kind == KindDecision && !coverNext {
			// A claim, a use or a stock record of the pace, or a
			// decision but the last one a cover names, left out: the
			// pace's and the decisions' sequences are every sale's, so
			// their gaps say nothing (docs/line-audit.md, what it
			// cannot prove); what such a record brought (a grant) is
			// checked.
			continue
		}
		refused(fmt.Sprintf("record %d %s removed", i+1, log[i].Kind), slices.Delete(slices.Clone(log), i, i+1))
		refused("record "+string(log[i].Kind)+" twice", slices.Insert(slices.Clone(log), i, log[i]))
		if i+1 < len(log) {
			l := slices.Clone(log)
			l[i], l[i+1] = l[i+1], l[i]
			refused("records "+string(log[i].Kind)+" and "+string(log[i+1].Kind)+" swapped", l)
		}
	}
	other := s.hashes[5]
	for i, e := range log {
		change := func(what string, f func(e *Entry)) {
			t.Helper()
			l := slices.Clone(log)
			f(&l[i])
			refused(string(e.Kind)+"'s "+what+" changed", l)
		}
		switch e.Kind {
		case KindOffer, KindGrant, KindLapse, KindExpire:
			change("position", func(e *Entry) { e.Position++ })
			change("ticket", func(e *Entry) {
				if e.Ticket == other {
					e.Ticket = s.hashes[0]
				} else {
					e.Ticket = other
				}
			})
			change("time", func(e *Entry) { e.At = e.At.Add(time.Millisecond) })
			if !e.ClaimBy.IsZero() {
				change("claim_by", func(e *Entry) { e.ClaimBy = e.ClaimBy.Add(time.Second) })
			}
			if !e.Expires.IsZero() {
				change("expires", func(e *Entry) { e.Expires = e.Expires.Add(time.Second) })
			}
		case KindJoin:
			change("ticket", func(e *Entry) { e.Ticket = s.hashes[(slices.Index(s.hashes, e.Ticket)+1)%6] })
			change("position", func(e *Entry) { e.Position = 3 })
		case KindRejoin:
			change("position", func(e *Entry) { e.Position++ })
			change("from", func(e *Entry) { e.From = 1 })
			change("time, before the turn lapsed", func(e *Entry) { e.At = s.t0.Add(12 * time.Second) })
		case KindDraw:
			change("count", func(e *Entry) { *e = *ptrEntry(*e); *e.Drawn++ })
			change("seed", func(e *Entry) { e.Seed = s.hashes[0] })
		case KindStep:
			change("state", func(e *Entry) { st := *e.State; st.Held--; e.State = &st })
			change("passes outstanding", func(e *Entry) { st := *e.State; st.Outstanding++; e.State = &st })
		case KindClaim:
			change("count", func(e *Entry) { c := !*e.Counted; e.Counted = &c })
		case KindOrder:
			change("ticket (another's pass)", func(e *Entry) { e.Ticket = s.drawn[3] })
		}
	}
	// A pass given beyond the stock: a grant written for an offered turn
	// never claimed.
	l := slices.Clone(log)
	for i, e := range l {
		if e.Kind == KindOffer && e.Position == 3 {
			refused("a forged pass", slices.Insert(l, i+1, Entry{At: e.At, Kind: KindGrant, Position: 3, Ticket: e.Ticket,
				Expires: e.At.Add(20 * time.Second)}))
			break
		}
	}
	if _, err := Verify(renumber(slices.Clone(log)), s.draw()); err != nil {
		t.Fatalf("the log itself: %v", err)
	}
}

// ptrEntry copies e with its Drawn of its own.
func ptrEntry(e Entry) *Entry {
	if e.Drawn != nil {
		d := *e.Drawn
		e.Drawn = &d
	}
	return &e
}

// A join the line could not read leaves its ticket out of the line,
// and a log written that way is consistent: what the log cannot prove
// (docs/line-audit.md). The summary says how many records were unread,
// so that a holder who looks for their ticket knows why it is missing.
func TestVerifyCountsTheRecordsUnread(t *testing.T) {
	s := newScene(t)
	// The ticket drawn last, so that the scene's turns stay as they are.
	last := slices.Index(s.hashes, s.drawn[5])
	for i, e := range s.raw {
		if e.Kind == KindJoin && e.Ticket == s.hashes[last] {
			s.raw[i] = Entry{At: e.At, Kind: KindUnread, LineSeq: e.LineSeq}
		}
	}
	s.drawn = s.drawn[:5]
	sum, err := Verify(s.log(t), s.draw())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Unread != 1 || sum.Tickets != 5 || sum.Drawn != 5 {
		t.Errorf("summary %+v; want 1 record unread and 5 tickets drawn", sum)
	}
}
