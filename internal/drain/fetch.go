package drain

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sluice/consumer"
	"sluice/internal/ledger"
)

// work is one worker slot of a sale: it fetches batches and takes each
// through process until the drain stops.
func (d *Drainer) work(sd *saleDrain) {
	defer d.wg.Done()
	for !d.stopping() {
		batch, err := sd.cons.Fetch(d.batchSize(sd), jetstream.FetchMaxWait(d.cfg.MaxWait))
		if err != nil {
			d.log.Debug("drain: fetch failed", "sale", sd.name, "err", err)
			select {
			case <-d.stopFetch:
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		var msgs []jetstream.Msg
		for msg := range batch.Messages() {
			msgs = append(msgs, msg)
		}
		if len(msgs) == 0 {
			continue
		}
		if pause := d.process(sd, msgs); pause > 0 {
			// The backend is down: fetching more now would only send
			// them back too.
			select {
			case <-d.stopFetch:
			case <-time.After(pause):
			}
		}
	}
}

// item is one fetched order on its way through a batch.
type item struct {
	msg   jetstream.Msg
	meta  *jetstream.MsgMetadata
	order consumer.Order
	id    ledger.OrderID
}

// process takes a fetched batch through the backend and settles it. It
// returns how long the worker should wait before fetching again: non-zero
// when the backend as a whole is unavailable.
func (d *Drainer) process(sd *saleDrain, msgs []jetstream.Msg) time.Duration {
	ctx := d.hardCtx
	d.m.batchSize.Observe(float64(len(msgs)))
	items := make([]item, 0, len(msgs))
	for _, msg := range msgs {
		meta, err := msg.Metadata()
		if err != nil {
			_ = msg.Term()
			continue
		}
		if meta.NumDelivered > 1 {
			d.m.redelivered.Inc()
		}
		if ledger.IsBurn(sd.name, msg.Subject()) {
			// A unit a lowering of a variant's stock burned: no order.
			// (No filter on the consumer: JetStream counts a filtered
			// consumer's pending by walking every buyer's subject.)
			_ = msg.Ack()
			continue
		}
		lo, err := ledger.DecodeOrder(msg.Data())
		id := ledger.OrderID{Sale: sd.name, Seq: meta.Sequence.Stream, Token: lo.Token}
		if err != nil {
			d.deadLetter(ctx, sd, item{msg: msg, meta: meta, id: id}, "undecodable order: "+err.Error())
			continue
		}
		items = append(items, item{msg: msg, meta: meta, id: id, order: consumer.Order{
			ID: id.String(), Sale: sd.name, BuyerID: lo.BuyerID, Variant: lo.Variant, IdempotencyKey: lo.IdempotencyKey,
			AdmittedAt: lo.AdmittedAt, Payload: lo.Payload, Seq: id.Seq, PerBuyer: sd.perBuyer,
		}})
	}
	if len(items) == 0 {
		return 0
	}
	orders := make([]consumer.Order, len(items))
	for i, it := range items {
		orders[i] = it.order
	}
	stop := d.keepAlive(items)
	var results []consumer.Result
	if _, each := d.backend.(consumer.PacedEachCall); each {
		// The backend waits for the pace call by call, once it holds a
		// call's slot.
		results = d.commit(consumer.WithPace(ctx, func(ctx context.Context) error { return d.waitPace(ctx, sd, 1) }), orders)
	} else if err := d.waitPace(ctx, sd, len(orders)); err != nil {
		results = retryAll(len(orders), err)
	} else {
		results = d.commit(ctx, orders)
	}
	stop()
	if d.afterCommit != nil && !d.afterCommit(orders) {
		return 0
	}
	d.settle(ctx, sd, items, results)
	for _, r := range results {
		if r.Outcome != consumer.Retry || !errors.Is(r.Err, consumer.ErrUnavailable) {
			return 0
		}
	}
	return d.backoff(items[0].meta.NumDelivered)
}

// keepAlive tells JetStream, every third of AckWait until stop is called,
// that the batch's orders are still being worked on, so that a batch
// waiting its turn for the backend is not redelivered to another worker.
func (d *Drainer) keepAlive(items []item) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	every := d.cfg.AckWait / 3
	mu.Lock() // t is set before the first tick reads it
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		for _, it := range items {
			_ = it.msg.InProgress()
		}
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}
