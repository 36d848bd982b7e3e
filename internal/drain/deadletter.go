package drain

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/orderstatus"
	"sluice/internal/streams"
)

// DeadLetterStream holds the orders the drain gave up on
// (streams.DeadLettersConfig), on subjects sluice.dead.<sale>, with headers
// Sluice-Order-Id, Sluice-Reason and Sluice-Deliveries.
const DeadLetterStream = streams.DeadLetters

// ensureDeadLetterStream creates the dead-letter stream, or updates it
// to this version's settings.
func (d *Drainer) ensureDeadLetterStream(ctx context.Context) error {
	_, err := d.js.CreateOrUpdateStream(ctx, streams.DeadLettersConfig())
	if err != nil {
		return fmt.Errorf("drain: dead-letter stream: %w", err)
	}
	return nil
}

// deadLetter publishes the order to the dead-letter stream, records it as
// failed and terminates it. If the dead-letter publish fails the order is
// redelivered instead: it is never dropped.
func (d *Drainer) deadLetter(ctx context.Context, sd *saleDrain, it item, reason string) {
	m := nats.NewMsg(streams.DeadLetterSubject(sd.name))
	m.Data = it.msg.Data()
	m.Header.Set("Sluice-Order-Id", it.id.String())
	m.Header.Set("Sluice-Reason", reason)
	m.Header.Set("Sluice-Deliveries", fmt.Sprint(it.meta.NumDelivered))
	if _, err := d.js.PublishMsg(ctx, m, jetstream.WithMsgID("dead-"+it.id.String())); err != nil {
		d.log.Error("drain: dead-letter publish failed; order stays queued", "order", it.id.String(), "err", err)
		_ = it.msg.NakWithDelay(d.cfg.BackoffMax)
		return
	}
	dec := orderstatus.Decision{Sale: sd.name, At: time.Now().UTC(),
		Failed: []orderstatus.Outcome{{Seq: it.id.Seq, Reason: reason, Buyer: it.order.BuyerID, Variant: it.order.Variant}}}
	if err := d.status.Record(ctx, dec); err != nil {
		d.m.statusErrors.Inc()
		_ = it.msg.NakWithDelay(d.backoff(it.meta.NumDelivered))
		return
	}
	_ = it.msg.TermWithReason("dead-lettered: " + reason)
	d.forget(it.id.String())
	d.m.deadLetters.WithLabelValues(sd.name).Inc()
	d.m.drained.WithLabelValues(sd.name, outcomeDeadLettered).Inc()
	d.log.Warn("drain: order dead-lettered", "order", it.id.String(), "deliveries", it.meta.NumDelivered, "reason", reason)
}
