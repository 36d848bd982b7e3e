package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ReadOrders hands fn every order of a sale's stream from sequence from
// on, in order, up to the stream's last sequence when the call began, and
// returns that sequence. It reads with an ordered consumer in batches: one
// round trip per batch, not per order. It is for background work (a
// sold-out sale's index of orders), never for a request path.
func (l *Ledger) ReadOrders(ctx context.Context, sale string, from uint64, fn func(Order)) (uint64, error) {
	str, err := l.stream(ctx, sale)
	if err != nil {
		return 0, err
	}
	info, err := str.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	last := info.State.LastSeq
	if from < 1 {
		from = 1
	}
	if from > last {
		return last, nil
	}
	cons, err := l.js.OrderedConsumer(ctx, StreamName(sale), jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return 0, fmt.Errorf("%w: read orders of %s: %w", ErrUnavailable, sale, err)
	}
	next := from
	for next <= last {
		// Ask for no more than remain, so that a fetch never waits for
		// orders that will not come (and its goroutine ends with it).
		batch, err := cons.Fetch(int(min(512, last-next+1)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return 0, fmt.Errorf("%w: read orders of %s: %w", ErrUnavailable, sale, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				continue
			}
			next = meta.Sequence.Stream + 1
			if meta.Sequence.Stream > last {
				continue
			}
			if o, err := DecodeOrder(msg.Data()); err == nil {
				o.ID = OrderID{Sale: sale, Seq: meta.Sequence.Stream, Token: o.Token}
				fn(o)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return 0, fmt.Errorf("%w: read orders of %s: %w", ErrUnavailable, sale, err)
		}
		if n == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("%w: read orders of %s: nothing delivered before sequence %d", ErrUnavailable, sale, last)
		}
	}
	return last, nil
}
