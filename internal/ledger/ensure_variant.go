package ledger

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/streams"
)

// variantConfig is the stream of a sale with variants, with its units
// fitted to each variant's stock (fitUnits). old is the stream as it
// is, nil for a new sale.
func (l *Ledger) variantConfig(ctx context.Context, s Sale, old *jetstream.StreamInfo, line bool) (jetstream.StreamConfig, error) {
	units := map[string]int64{}
	if old == nil {
		for v, n := range s.Variants {
			units[v] = n
		}
	} else {
		prev, _ := saleFromMetadata(old.Config.Metadata)
		for _, v := range prev.VariantNames() {
			if _, ok := s.Variants[v]; !ok {
				return jetstream.StreamConfig{}, fmt.Errorf("%w: %s: variant %s cannot be removed (its orders stay): set its stock to 0", ErrInvalidSale, s.Name, v)
			}
		}
		units = unitsFromMetadata(old.Config.Metadata)
		b := l.book(s.Name)
		b.setConfig(old.Config)
		if err := l.catchUp(ctx, b, old.State.LastSeq); err != nil {
			return jetstream.StreamConfig{}, err
		}
		for _, v := range s.VariantNames() {
			if err := l.fitUnits(ctx, b, s, v, units); err != nil {
				return jetstream.StreamConfig{}, err
			}
		}
	}
	md := variantMetadata(s.metadata(line), units)
	return streams.VariantSaleConfig(s.Name, s.OrdersPerBuyer(), md,
		streams.Options{Replicas: l.opts.Replicas, DuplicateWindow: l.opts.DuplicateWindow}), nil
}

// fitUnits makes variant v's units less its burns equal its stock: a
// raise makes more units (units[v] grows, written with the stream), a
// lowering burns units nothing holds, below the units made first and
// then the units to come, so that a gate that has not read the change
// yet, and the released orders to come, sell no more than the new stock
// (doc.go). The burns are stored before the stream's configuration
// changes: a change cut short leaves the burns, and the next one burns
// only what is still missing.
func (l *Ledger) fitUnits(ctx context.Context, b *unitBook, s Sale, v string, units map[string]int64) error {
	b.mu.Lock()
	eff := units[v] - b.variant(v).burns
	b.mu.Unlock()
	switch want := s.Variants[v]; {
	case want > eff:
		units[v] += want - eff
	case want < eff:
		return l.burn(ctx, b, s.Name, v, units[v]+l.releasedVariant(s.Name, v), eff-want)
	}
	return nil
}

// burnWindow bounds the burns in flight at once.
const burnWindow = 256

// burn takes n units of variant v that nothing holds out of sale, each
// with a message of its own (empty, on its unit's stock subject, with
// the unit's id): units of 1..hi first, then units above hi.
func (l *Ledger) burn(ctx context.Context, b *unitBook, sale, v string, hi, n int64) error {
	for n > 0 {
		b.mu.Lock()
		u := b.variant(v)
		var ks []int64
		for int64(len(ks)) < min(n, burnWindow) {
			k, ok := u.reserve(hi)
			if !ok {
				k = u.beyond(hi)
				u.held.add(k)
			}
			ks = append(ks, k)
		}
		b.mu.Unlock()
		burnt, err := l.publishBurns(ctx, b, sale, v, ks)
		n -= burnt
		if err != nil {
			return err
		}
	}
	return nil
}

// publishBurns publishes the burns of units ks, and says how many of
// them it stored.
func (l *Ledger) publishBurns(ctx context.Context, b *unitBook, sale, v string, ks []int64) (int64, error) {
	futures := make([]jetstream.PubAckFuture, len(ks))
	var firstErr error
	for i, k := range ks {
		f, err := l.js.PublishMsgAsync(&nats.Msg{Subject: burnSubject(sale, v, k)},
			jetstream.WithMsgID(unitID(v, k)), jetstream.WithExpectStream(StreamName(sale)))
		if err != nil {
			firstErr = err
			break
		}
		futures[i] = f
	}
	var burnt int64
	for i, f := range futures {
		k := ks[i]
		b.mu.Lock()
		u := b.variant(v)
		b.mu.Unlock()
		var ack *jetstream.PubAck
		err := firstErr
		if f != nil {
			select {
			case ack = <-f.Ok():
				err = nil
			case err = <-f.Err():
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		b.mu.Lock()
		switch {
		case err == nil && !ack.Duplicate:
			u.take(k, true)
			burnt++
		case err == nil:
			u.takenByAnother(k)
		case f == nil:
			u.release(k) // never sent
		default:
			u.unsure(k)
		}
		b.mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return burnt, fmt.Errorf("%w: burn units of %s's variant %s: %w", ErrUnavailable, sale, v, firstErr)
	}
	return burnt, nil
}
