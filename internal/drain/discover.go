package drain

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/ledger"
)

// discover starts a drain for each new sale and passes stock changes to
// the backend.
func (d *Drainer) discover(ctx context.Context) {
	states, err := d.ledger.States(ctx)
	if err != nil {
		d.warnUnlessStopping("drain: cannot list sales", "err", err)
		return
	}
	var backlog uint64
	for _, st := range states {
		d.mu.Lock()
		sd := d.sales[st.Sale.Name]
		d.mu.Unlock()
		backlog += st.ConsumerPending + st.ConsumerAckPending
		if sd != nil {
			d.m.pending.WithLabelValues(sd.name).Set(float64(st.ConsumerPending))
			d.m.ackPending.WithLabelValues(sd.name).Set(float64(st.ConsumerAckPending))
			setPace(sd.pace, st.Sale.BackendRate)
			if sd.stock != st.Sale.Stock {
				if err := d.backend.EnsureSale(ctx, sd.name, st.Sale.Stock); err != nil {
					d.warnUnlessStopping("drain: backend stock update failed", "sale", sd.name, "err", err)
					continue
				}
				d.mu.Lock()
				sd.stock = st.Sale.Stock
				d.mu.Unlock()
			}
			continue
		}
		if d.stopping() {
			return
		}
		if err := d.startSale(ctx, st); err != nil {
			d.warnUnlessStopping("drain: cannot start sale", "sale", st.Sale.Name, "err", err)
		}
	}
	d.backlog.Store(int64(backlog))
}

// warnUnlessStopping logs a failure of discovery, but not once the drain
// is stopping: Stop cancels the round under way, whose calls then fail.
func (d *Drainer) warnUnlessStopping(msg string, args ...any) {
	if !d.stopping() {
		d.log.Warn(msg, args...)
	}
}

// pipelines is how many batches of a sale each worker slot keeps under
// way: while one is in the backend, the one before is recorded and acked
// and the next is fetched, so that the backend is not left idle waiting
// on JetStream round trips. Backend calls stay bounded by Workers.
const pipelines = 2

func (d *Drainer) startSale(ctx context.Context, st ledger.SaleState) error {
	if err := d.backend.EnsureSale(ctx, st.Sale.Name, st.Sale.Stock); err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	where := d.backend.Describe()
	if err := d.checkBackend(ctx, st.Sale.Name, where); err != nil {
		return err
	}
	cons, err := d.js.CreateOrUpdateConsumer(ctx, ledger.StreamName(st.Sale.Name), jetstream.ConsumerConfig{
		Durable:       ledger.DrainConsumer,
		Description:   "sluice drain: moves admitted orders into the backend",
		Metadata:      map[string]string{backendMetadata: where},
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.cfg.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Attempts are counted by the drain, which dead-letters; the
		// server must keep redelivering until then.
		MaxDeliver:    -1,
		MaxAckPending: pipelines * d.cfg.Workers * d.cfg.Batch,
		MaxWaiting:    max(512, 2*d.cfg.Workers),
	})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	sd := &saleDrain{name: st.Sale.Name, cons: cons, stock: st.Sale.Stock, perBuyer: st.Sale.OrdersPerBuyer(),
		pace: newPace(st.Sale.BackendRate)}
	d.m.initSale(sd.name)
	d.mu.Lock()
	d.sales[sd.name] = sd
	d.mu.Unlock()
	for range pipelines * d.cfg.Workers {
		d.wg.Add(1)
		go d.work(sd)
	}
	d.log.Info("drain: sale started", "sale", sd.name, "stock", sd.stock, "workers", d.cfg.Workers, "batch", d.cfg.Batch)
	return nil
}

// backendMetadata is the key of the drain consumer's metadata that names
// the backend it drains into (consumer.Backend.Describe).
const backendMetadata = "sluice.backend"

// checkBackend warns when a sale's consumer has already drained orders
// into another backend than where: JetStream remembers which orders were
// handed out, not where they went, so this drain goes on from the next
// order and the earlier ones stay in the other backend. A sale drained for
// the first time, or by a version that did not record its backend, is
// not a change. The caller then records where.
func (d *Drainer) checkBackend(ctx context.Context, sale, where string) error {
	cons, err := d.js.Consumer(ctx, ledger.StreamName(sale), ledger.DrainConsumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	info := cons.CachedInfo()
	before := info.Config.Metadata[backendMetadata]
	if before == "" || before == where {
		return nil
	}
	upTo := info.AckFloor.Stream
	if upTo == 0 {
		// Handed out, not all acknowledged: some may be in the other
		// backend all the same.
		upTo = info.Delivered.Stream
	}
	if upTo == 0 {
		return nil
	}
	d.m.backendChanged.WithLabelValues(sale).Set(1)
	d.log.Warn(fmt.Sprintf("drain: sale %s: orders up to #%d were drained into %s and stay there; this drain sends only the later ones to %s. "+
		"To keep the sale's orders in one backend, stop this drain and run it with the earlier --backend, or copy the sale's orders from %s into %s. "+
		"A sale's orders are never drained twice: to drain into a new backend from the first order, use a new store (--data-dir) or a new sale.",
		sale, upTo, before, where, before, where),
		"sale", sale, "drained_into", before, "draining_into", where, "up_to", upTo)
	return nil
}
