package serve

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"

	"sluice/consumer"
	"sluice/internal/drain"
	"sluice/internal/ledger"
	"sluice/internal/orderstatus"
)

// startDrain opens the backend and starts the drain into it, with the
// gate's cancellations wired to the backend (a gate and its drain in one
// process).
func (s *Server) startDrain(ctx context.Context) error {
	dc := s.cfg.Drain
	if dc.Logger == nil {
		dc.Logger = s.log
	}
	workers := dc.Workers
	if workers <= 0 {
		workers = 4
	}
	b, db, err := openBackend(ctx, s.cfg.Backend, backendOptions{dataDir: s.cfg.DataDir, workers: workers, callTimeout: dc.BackendTimeout})
	if err != nil {
		return err
	}
	s.backend = b
	// From here on, the backend as the drain records it, without
	// secrets: for the start log, the console and sluice status.
	s.cfg.Backend = b.Describe()
	if db != nil {
		s.reg.MustRegister(collectors.NewDBStatsCollector(db, "orders"))
	}
	rec, err := retry(ctx, func(ctx context.Context) (*orderstatus.Recorder, error) {
		return orderstatus.OpenRecorder(ctx, s.ledger.JetStream(), s.cfg.Replicas)
	})
	if err != nil {
		return err
	}
	if s.gate != nil {
		s.gate.SetOrderCanceller(func(ctx context.Context, id ledger.OrderID, buyer string) (time.Time, error) {
			return cancelOrder(ctx, b, rec, id, buyer)
		})
	}
	s.drainer = drain.New(s.ledger, rec, b, dc, drain.NewMetrics(s.reg))
	_, err = retry(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, s.drainer.Start(ctx) })
	return err
}

// cancelOrder cancels a confirmed order in the backend, when it can (the
// SQL backends: the row and the item, in one transaction), and then in the
// decisions stream, once whatever is retried: the order reads cancelled
// and its slot goes back to the sale. The backend first, so that the slot
// is never sold again while the backend still counts the order.
func cancelOrder(ctx context.Context, b consumer.Backend, rec *orderstatus.Recorder, id ledger.OrderID, buyer string) (time.Time, error) {
	if c, ok := b.(consumer.Canceller); ok {
		if _, err := c.Cancel(ctx, consumer.Order{ID: id.String(), Sale: id.Sale, BuyerID: buyer, Seq: id.Seq}); err != nil {
			return time.Time{}, err
		}
	}
	d := orderstatus.Decision{Sale: id.Sale, At: time.Now().UTC(),
		Cancelled: []orderstatus.Outcome{{Seq: id.Seq, Reason: "cancelled", Buyer: buyer}}}
	stored, err := rec.RecordOnce(ctx, d, "cancel-"+id.String())
	return stored.At, err
}
