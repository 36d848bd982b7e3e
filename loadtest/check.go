package loadtest

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// check proves the outcome: the draw verifies and our drawn tickets hold
// the positions it gives; every order in the sale is one the generator
// placed with its buyer's pass (the generator, with all its shards, is
// the sale's only client); no late ticket was served while drawn ones
// waited; and the orders served end as Verify requires of any drop:
// decided, no oversell, no buyer twice. It also counts the lapsed turns
// that were offered to holders who had left.
func (r *RoomReport) check(ctx context.Context, c *http.Client, base string, cr *crowd, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+30*time.Second)
	defer cancel()
	add := func(name string, ok bool, detail string, args ...any) {
		r.Checks = append(r.Checks, Check{Name: name, Passed: ok, Detail: fmt.Sprintf(detail, args...)})
	}
	drawn, absentAt := r.checkDraw(ctx, c, base, cr)
	// The orders served, as any drop's are checked.
	var served []Admission
	lateServed, withoutTurn := 0, 0
	for i := range cr.buyers {
		b := &cr.buyers[i]
		if !b.is(fServed) {
			continue
		}
		l := uint32(i)
		served = append(served, Admission{OrderID: cr.order(l), Buyer: cr.id(l), Key: orderKey(cr.ticket(l), cr.variant(l)), Variant: cr.variant(l)})
		if b.is(fLate) {
			lateServed++
		}
		if !b.is(fTurn) {
			withoutTurn++
		}
	}
	v := Verify(ctx, c, base, r.Sale, served, 1, timeout)
	r.Confirmed = v.Confirmed
	byVariant := ""
	if t := v.variantsText(); t != "" {
		byVariant = "; by variant, confirmed of stock: " + t
	}
	add("orders", v.Passed, "%d served: %s; confirmed %d of stock %d%s%s", len(served), countsInt(v.ByStatus), v.Confirmed, v.Stock, byVariant, problemsText(v))
	var st roomSale
	if err := getJSON(ctx, c, base+"/v1/sales/"+url.PathEscape(r.Sale), &st); err != nil {
		add("passes", false, "cannot read the sale: %v", err)
		r.Passed = false
		return
	}
	add("passes", st.Admitted == int64(len(served)) && withoutTurn == 0 && r.Outcomes["order_pass_required"] == 0 && r.Outcomes["order_bad_pass"] == 0,
		"the sale holds %d orders, the %d the generator placed each with the pass its buyer got at its turn (%d without a turn)",
		st.Admitted, len(served), withoutTurn)
	letIn := int64(0)
	if st.Room != nil {
		letIn = st.Room.LetIn
		r.LapseCauses.Away = 0
		for _, p := range absentAt {
			if int64(p) <= st.Room.Offered {
				r.LapseCauses.Away++
			}
		}
	}
	add("late after drawn", lateServed == 0 || letIn >= drawn, "%d late tickets served; the line let in %d of %d drawn", lateServed, letIn, drawn)
	if st.Room != nil {
		r.Checks = append(r.Checks, lateJoinCheck(cr, st.Room.LineLimit, st.Room.LineLength))
	}
	r.Checks = append(r.Checks, drawOrderCheck(cr))
	r.Passed = true
	for _, ch := range r.Checks {
		r.Passed = r.Passed && ch.Passed
	}
}

// checkDraw reads the draw and checks it and our positions in it: the
// tickets drawn, and the draw's positions of the tickets whose holders
// left. The draw (a million hashes, 80 MB) is not kept past it.
func (r *RoomReport) checkDraw(ctx context.Context, c *http.Client, base string, cr *crowd) (int64, []uint32) {
	d, err := FetchDraw(ctx, c, base, r.Sale)
	if err != nil {
		r.Checks = append(r.Checks, Check{Name: "draw verifies", Detail: fmt.Sprintf("cannot read the draw: %v", err)})
		return 0, nil
	}
	verr := d.Verify()
	r.Checks = append(r.Checks, Check{Name: "draw verifies", Passed: verr == nil,
		Detail: fmt.Sprintf("%d tickets, SHA-256(seed) = commitment, HMAC order: %v", len(d.Hashes), errOrOK(verr))})
	pc, absentAt := checkPositions(cr, d.Hashes)
	r.Checks = append(r.Checks, Check{Name: "positions", Passed: pc.bad == 0 && pc.distinct == len(d.Hashes),
		Detail: fmt.Sprintf("%d of our %d drawn tickets hold the position the draw gives them (positions 1..%d, %d distinct)",
			pc.ours-pc.bad, pc.ours, len(d.Hashes), pc.distinct)})
	return int64(len(d.Hashes)), absentAt
}

// positionCheck is how our drawn tickets compare with the draw.
type positionCheck struct{ ours, bad, distinct int }

// checkPositions finds each of our drawn tickets in the draw (by its
// hash) and compares the position with the one its holder was told; it
// returns the draw's positions of the tickets whose holders left.
func checkPositions(cr *crowd, hashes []string) (positionCheck, []uint32) {
	pos := make(map[[32]byte]uint32, len(hashes))
	for i, h := range hashes {
		var k [32]byte
		if n, err := hex.Decode(k[:], []byte(h)); err != nil || n != len(k) {
			continue // not a hash: no ticket of ours matches it
		}
		pos[k] = uint32(i + 1)
	}
	pc := positionCheck{distinct: len(pos)}
	var absentAt []uint32
	for i := range cr.buyers {
		b := &cr.buyers[i]
		if !b.is(fTicket) || !b.is(fDrawn) {
			continue
		}
		pc.ours++
		p, ok := pos[cr.ticketHash(uint32(i))]
		if !ok || (b.position != 0 && p != b.position) {
			pc.bad++
		}
		if ok && b.is(fAbsent) {
			absentAt = append(absentAt, p)
		}
	}
	return pc, absentAt
}

// drawOrderCheck: nobody who stayed is overtaken by someone behind.
// Among the drawn who kept polling, by the place their last answer gave
// them (at the back after a lapse), those served are the first. Not among
// them: a holder whose turn lapsed and who did not go back to the line
// (its place was taken; the lapses' causes say why), and one of whose
// polls after the start failed or was answered later than LateAfter
// after its time (the generator or the gate fell behind: its turn may
// have come and gone unseen, as when the run ends before its next poll).
// Both are counted in the detail.
func drawOrderCheck(cr *crowd) Check {
	var stayed []uint32
	lapsed, slipped := 0, 0
	for i := range cr.buyers {
		b := &cr.buyers[i]
		if !b.is(fDrawn) || b.is(fAbsent) || b.is(fSybil) || b.current == 0 {
			continue
		}
		switch {
		case b.is(fLapsed):
			lapsed++
			continue
		case b.is(fSlipped) && !b.is(fServed):
			slipped++
			continue
		}
		stayed = append(stayed, uint32(i))
	}
	slices.SortFunc(stayed, func(a, b uint32) int {
		return int(int64(cr.buyers[a].current) - int64(cr.buyers[b].current))
	})
	lastServed, skipped := -1, 0
	for i, l := range stayed {
		if cr.buyers[l].is(fServed) {
			lastServed = i
		}
	}
	for _, l := range stayed[:lastServed+1] {
		if !cr.buyers[l].is(fServed) {
			skipped++
		}
	}
	detail := fmt.Sprintf("%d of the %d who stayed were served, the first in draw order; %d passed over by someone behind",
		lastServed+1-skipped, len(stayed), skipped)
	if lapsed > 0 {
		detail += fmt.Sprintf("; not counted: %d whose turn lapsed and who never went back to the line", lapsed)
	}
	if slipped > 0 {
		detail += fmt.Sprintf("; not counted: %d not served one of whose polls failed or was answered late (see the errors and the late polls)", slipped)
	}
	return Check{Name: "draw order among those who stayed", Passed: skipped == 0, Detail: detail}
}

// lateJoinCheck says whether the late buyers rehearsed anything: when the
// line held its line_limit at the start, every one of them is refused
// 410 line_full, and "no late ticket was served" holds for want of late
// tickets. The run then rehearsed something other than what was asked,
// and says so, with what to change.
func lateJoinCheck(cr *crowd, lineLimit, lineLength int64) Check {
	late, joined, full := 0, 0, 0
	full410, ok := cr.names.lookup("join_410")
	if !ok {
		full410 = math.MaxUint16 // no buyer has it
	}
	for i := range cr.buyers {
		b := &cr.buyers[i]
		if !b.is(fLate) {
			continue
		}
		late++
		if b.is(fTicket) {
			joined++
		}
		if b.outcome == full410 {
			full++
		}
	}
	c := Check{Name: "late buyers joined", Passed: late == 0 || joined > 0}
	switch {
	case late == 0:
		c.Detail = "no --late-buyers"
	case joined == 0:
		c.Detail = fmt.Sprintf("none of the %d late buyers joined (%d refused 410 line_full): the line held %d tickets, its line_limit is %d; raise the sale's line_limit above --buyers or lower --buyers",
			late, full, lineLength, lineLimit)
	default:
		c.Detail = fmt.Sprintf("%d of %d late buyers joined behind the drawn (%d refused 410 line_full)", joined, late, full)
	}
	return c
}

// problemsText lists a Verification's problems, after a semicolon.
func problemsText(v Verification) string {
	var parts []string
	if v.Oversold {
		parts = append(parts, "OVERSOLD")
	}
	for name, ids := range map[string][]string{"lost": v.Lost, "buyers twice": v.DoubleBuyers, "keys with two orders": v.KeyMismatch} {
		if len(ids) > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", name, len(ids)))
		}
	}
	parts = append(parts, v.Problems...)
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}

func errOrOK(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// orderKey is the Idempotency-Key of a rehearsal buyer's order: its
// ticket's, and the variant's in a sale with variants (a keyed retry
// naming another variant is another order).
func orderKey(ticket, variant string) string {
	if variant == "" {
		return "ticket-" + ticket
	}
	return "ticket-" + ticket + "-" + variant
}
