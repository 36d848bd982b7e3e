package drain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sluice/consumer"
	"sluice/internal/orderstatus"
)

// commit runs one backend call for the batch under the worker bound; if
// the batch fails for a reason other than the backend being unavailable,
// it retries order by order so one bad order cannot hold back the others.
func (d *Drainer) commit(ctx context.Context, orders []consumer.Order) []consumer.Result {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return retryAll(len(orders), ctx.Err())
	}
	d.m.inFlight.Inc()
	defer func() {
		d.m.inFlight.Dec()
		<-d.sem
	}()
	res, err := d.call(ctx, orders)
	if err == nil {
		return res
	}
	if len(orders) == 1 || errors.Is(err, consumer.ErrUnavailable) || ctx.Err() != nil {
		if !errors.Is(err, consumer.ErrUnavailable) && ctx.Err() == nil {
			d.log.Warn("drain: backend failed an order", "order", orders[0].ID, "err", err)
		}
		return retryAll(len(orders), err)
	}
	d.log.Warn("drain: batch failed, retrying order by order", "orders", len(orders), "err", err)
	out := make([]consumer.Result, len(orders))
	for i := range orders {
		r, err := d.call(ctx, orders[i:i+1])
		if err != nil {
			out[i] = consumer.Result{Outcome: consumer.Retry, Err: err}
			continue
		}
		out[i] = r[0]
	}
	return out
}

func (d *Drainer) call(ctx context.Context, orders []consumer.Order) ([]consumer.Result, error) {
	cctx := ctx
	if _, ok := d.backend.(consumer.EachCallBounded); !ok {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, d.cfg.BackendTimeout)
		defer cancel()
	}
	start := time.Now()
	res, err := d.backend.Commit(cctx, orders)
	if err == nil && len(res) != len(orders) {
		err = consumer.ErrBadResults
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("%w: timed out after %v: %w", consumer.ErrUnavailable, d.cfg.BackendTimeout, err)
	}
	d.noteHealth(res, err)
	result := "ok"
	if err != nil {
		result = "error"
	}
	d.m.backend.WithLabelValues(result).Observe(time.Since(start).Seconds())
	return res, err
}

func retryAll(n int, err error) []consumer.Result {
	out := make([]consumer.Result, n)
	for i := range out {
		out[i] = consumer.Result{Outcome: consumer.Retry, Err: err}
	}
	return out
}

// settle records the batch's decisions and then acknowledges its orders:
// the record first, so that an acked order always has its outcome known
// to the gates. Orders to retry are sent back at once.
func (d *Drainer) settle(ctx context.Context, sd *saleDrain, items []item, results []consumer.Result) {
	dec := orderstatus.Decision{Sale: sd.name, At: time.Now().UTC()}
	var final []int // indexes of confirmed or rejected orders
	for i, r := range results {
		switch r.Outcome {
		case consumer.Confirmed:
			dec.Confirmed = append(dec.Confirmed, items[i].id.Seq)
			final = append(final, i)
		case consumer.Rejected:
			dec.Rejected = append(dec.Rejected, orderstatus.Outcome{Seq: items[i].id.Seq, Reason: r.Reason,
				Buyer: items[i].order.BuyerID, Variant: items[i].order.Variant})
			final = append(final, i)
		default:
			d.retry(ctx, sd, items[i], r.Err)
		}
	}
	if err := d.status.Record(ctx, dec); err != nil {
		// Committed but not recorded: send them back; the backend gives
		// the same answer next time.
		d.m.statusErrors.Inc()
		d.log.Warn("drain: cannot record decisions", "sale", sd.name, "orders", len(final), "err", err)
		for _, i := range final {
			_ = items[i].msg.NakWithDelay(d.backoff(items[i].meta.NumDelivered))
		}
		return
	}
	// A batch's acks are pipelined: each goes out without waiting, and
	// the last is a double ack (AckSync). JetStream processes the acks a
	// consumer gets over one connection in order, so the answer to the
	// last confirms every ack and term of the batch sent before it. One
	// round trip per batch instead of one per order; an ack lost on the
	// way means a redelivery, which the backend answers as before.
	last := -1
	for _, i := range final {
		if results[i].Outcome == consumer.Confirmed {
			last = i
		}
	}
	for _, i := range final {
		it := items[i]
		d.forget(it.order.ID)
		switch {
		case results[i].Outcome == consumer.Rejected:
			_ = it.msg.TermWithReason(results[i].Reason)
			d.m.drained.WithLabelValues(sd.name, outcomeRejected).Inc()
			continue
		case i != last:
			if err := it.msg.Ack(); err != nil {
				d.log.Warn("drain: ack failed", "order", it.order.ID, "err", err)
			}
		}
		d.m.drained.WithLabelValues(sd.name, outcomeConfirmed).Inc()
	}
	if last < 0 {
		return
	}
	actx, cancel := context.WithTimeout(ctx, d.cfg.AckWait)
	defer cancel()
	if err := items[last].msg.DoubleAck(actx); err != nil {
		// Whatever was not acked is redelivered and committed again:
		// idempotent.
		d.log.Warn("drain: batch ack not confirmed", "sale", sd.name, "orders", len(final), "err", err)
	}
}
