package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/streams"
)

// beyond is PlaceBeyond's condition on an order of a sale with variants:
// the stock left over every variant, less what held says the line holds,
// must be at least one, as read at the stream's last sequence.
type beyond struct {
	held func() int64
}

// placeVariant places an order of a sale with variants in one publish
// (doc.go): on the buyer's subject, where the broker counts per_buyer
// across variants, with the unit of the variant it takes as its message
// id, which the broker stores once. A unit another gate took meanwhile
// answers duplicate and the order tries the next; none left is
// ErrVariantSoldOut.
func (l *Ledger) placeVariant(ctx context.Context, o Order, cond *beyond) (OrderID, bool, error) {
	str, err := l.stream(ctx, o.Sale)
	if err != nil {
		return OrderID{}, false, err
	}
	b := l.book(o.Sale)
	s, units, known := b.config()
	if !known {
		info, err := str.Info(ctx)
		if err != nil {
			return OrderID{}, false, fmt.Errorf("%w: read the sale's stream: %w", ErrUnavailable, err)
		}
		b.setConfig(info.Config)
		s, units, _ = b.config()
	}
	if _, ok := s.Variants[o.Variant]; !ok {
		return OrderID{}, false, fmt.Errorf("%w: %s", ErrUnknownVariant, o.Variant)
	}
	data, err := o.encode()
	if err != nil {
		return OrderID{}, false, fmt.Errorf("ledger: encode order: %w", err)
	}
	caught := false
	for {
		// The units as last read: they only grow, so a read before a
		// change issues fewer units, never more (doc.go).
		hi := units[o.Variant] + l.releasedVariant(o.Sale, o.Variant)
		b.mu.Lock()
		k, ok := b.variant(o.Variant).reserve(hi)
		b.mu.Unlock()
		if !ok {
			if !caught {
				// What this gate has not read yet may have freed nothing,
				// but the book may be behind the units it thinks held.
				if err := l.catchUpNow(ctx, b, str); err != nil {
					return OrderID{}, false, err
				}
				caught = true
				continue
			}
			return l.variantSoldOut(ctx, o, s)
		}
		id, dup, err, again := l.tryUnit(ctx, str, o, s, data, k, cond)
		if !again {
			return id, dup, err
		}
	}
}

// tryUnit publishes the order with unit k, and records in the book what
// became of the unit. again says the unit was another's, or the stream
// moved under a compare-and-set: the order tries again.
func (l *Ledger) tryUnit(ctx context.Context, str jetstream.Stream, o Order, s Sale, data []byte, k int64, cond *beyond) (OrderID, bool, error, bool) {
	b := l.book(o.Sale)
	settle := func(f func(*variantUnits)) {
		b.mu.Lock()
		f(b.variant(o.Variant))
		b.mu.Unlock()
	}
	msg := &nats.Msg{Subject: BuyerRoundSubject(o.Sale, o.BuyerID, o.Round), Data: data}
	if o.Pass != "" {
		msg.Header = nats.Header{passHeader: []string{o.Pass}}
	}
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(unitID(o.Variant, k)), jetstream.WithExpectStream(StreamName(o.Sale))}
	if s.OrdersPerBuyer() > 1 && (o.IdempotencyKey != "" || o.Pass != "") {
		// A retry must find its order, and two at once must not both be
		// stored: the buyer's orders are read, and the publish expects
		// the subject as read.
		prior, last, err := l.buyerOrders(ctx, str, o.Sale, msg.Subject)
		if err != nil {
			settle(func(u *variantUnits) { u.release(k) })
			return OrderID{}, false, err, false
		}
		if prev, found := sameOrder(prior, o); found {
			settle(func(u *variantUnits) { u.release(k) })
			return prev.ID, true, nil, false
		}
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(last))
	}
	if cond != nil {
		last, left, err := l.variantLeft(ctx, str)
		if err != nil {
			settle(func(u *variantUnits) { u.release(k) })
			return OrderID{}, false, err, false
		}
		if left-cond.held() < 1 {
			settle(func(u *variantUnits) { u.release(k) })
			id, dup, err := l.heldOrSoldOut(ctx, o, s, left)
			return id, dup, err, false
		}
		opts = append(opts, jetstream.WithExpectLastSequence(last))
	}
	ack, err := streams.PublishDeduplicated(ctx, l.js, msg, opts...)
	switch {
	case err == nil && !ack.Duplicate:
		settle(func(u *variantUnits) { u.take(k, false) })
		return OrderID{Sale: o.Sale, Seq: ack.Sequence, Token: o.Token}, false, nil, false
	case err == nil:
		settle(func(u *variantUnits) { u.takenByAnother(k) })
		return OrderID{}, false, nil, true
	case streams.WrongLastSequence(err):
		settle(func(u *variantUnits) { u.release(k) })
		if ctx.Err() != nil {
			return OrderID{}, false, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err()), false
		}
		return OrderID{}, false, nil, true
	case streams.RefusalOf(err) == streams.RefusedSubjectFull:
		settle(func(u *variantUnits) { u.release(k) })
		id, dup, err := l.buyerFull(ctx, o)
		return id, dup, err, false
	case streams.RefusalOf(err) == streams.RefusedNoRoom:
		settle(func(u *variantUnits) { u.release(k) })
		return OrderID{}, false, fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrStoreFull, err), false
	}
	// Perhaps stored: the unit stays held here until the stream says.
	settle(func(u *variantUnits) { u.unsure(k) })
	return OrderID{}, false, fmt.Errorf("%w: publish: %w", ErrUnavailable, err), false
}

// buyerFull answers an order the buyer's subject refused: the buyer's
// last order is a retry's own (the same Idempotency-Key, or the same
// pass) or the one the buyer holds already.
func (l *Ledger) buyerFull(ctx context.Context, o Order) (OrderID, bool, error) {
	prev, err := l.lastForBuyer(ctx, o.Sale, o.BuyerID, o.Round)
	if err != nil {
		return OrderID{}, false, fmt.Errorf("%w: read back the buyer's order: %w", ErrUnavailable, err)
	}
	if _, same := sameOrder([]Order{prev}, o); same {
		return prev.ID, true, nil
	}
	return OrderID{}, false, &AlreadyOrderedError{Existing: prev.ID}
}

// sameOrder finds among a buyer's orders the one o is a retry of: the
// same Idempotency-Key, or the same pass (a pass admits one order).
func sameOrder(prior []Order, o Order) (Order, bool) {
	for _, p := range prior {
		if p.BuyerID != o.BuyerID {
			continue
		}
		if (o.IdempotencyKey != "" && p.IdempotencyKey == o.IdempotencyKey) || (o.Pass != "" && p.Pass == o.Pass) {
			return p, true
		}
	}
	return Order{}, false
}

// variantSoldOut answers an order of a variant with no unit left: a
// retry of an order stored before gets its answer, as from Place.
func (l *Ledger) variantSoldOut(ctx context.Context, o Order, s Sale) (OrderID, bool, error) {
	if o.IdempotencyKey != "" || o.Pass != "" || s.OrdersPerBuyer() == 1 {
		prev, err := l.lastForBuyer(ctx, o.Sale, o.BuyerID, o.Round)
		if err == nil {
			if _, same := sameOrder([]Order{prev}, o); same {
				return prev.ID, true, nil
			}
			if s.OrdersPerBuyer() == 1 {
				return OrderID{}, false, &AlreadyOrderedError{Existing: prev.ID}
			}
		}
	}
	return OrderID{}, false, ErrVariantSoldOut
}

// heldOrSoldOut answers PlaceBeyond's order when what is left is held.
func (l *Ledger) heldOrSoldOut(ctx context.Context, o Order, s Sale, left int64) (OrderID, bool, error) {
	id, dup, err := l.variantSoldOut(ctx, o, s)
	if !errors.Is(err, ErrVariantSoldOut) || left < 1 {
		return id, dup, err
	}
	return OrderID{}, false, ErrStockHeld
}

// buyerOrders reads a buyer's orders on one subject (at most per_buyer
// of them) and the subject's last sequence, 0 when it has none.
func (l *Ledger) buyerOrders(ctx context.Context, str jetstream.Stream, sale, subject string) ([]Order, uint64, error) {
	var out []Order
	var last uint64
	for seq := uint64(1); ; {
		raw, err := str.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, last, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%w: read the buyer's orders: %w", ErrUnavailable, err)
		}
		o, err := decodeRaw(sale, raw, nil)
		if err == nil {
			out = append(out, o)
		}
		last, seq = raw.Sequence, raw.Sequence+1
	}
}

// variantLeft reads the stream's last sequence and, with the book caught
// up to it, the stock left over every variant.
func (l *Ledger) variantLeft(ctx context.Context, str jetstream.Stream) (uint64, int64, error) {
	info, err := str.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: read the sale's stream: %w", ErrUnavailable, err)
	}
	s, _, ok := variantsOf(info.Config)
	if !ok {
		return 0, 0, fmt.Errorf("%w: %s", ErrNoSale, info.Config.Name)
	}
	b := l.book(s.Name)
	b.setConfig(info.Config)
	if err := l.catchUp(ctx, b, info.State.LastSeq); err != nil {
		return 0, 0, err
	}
	var left int64
	for _, vs := range l.variantStates(b) {
		left += vs.Remaining
	}
	return info.State.LastSeq, left, nil
}

// variantStates are the variants' counts as the book has read them.
func (l *Ledger) variantStates(b *unitBook) map[string]VariantState {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, units := b.cfg, b.units
	out := make(map[string]VariantState, len(s.Variants))
	for v, stock := range s.Variants {
		rel := l.releasedVariant(s.Name, v)
		u := b.variant(v)
		out[v] = VariantState{Stock: stock, Admitted: u.orders, Released: rel, Remaining: u.left(units[v] + rel)}
	}
	return out
}
