package serve

import (
	"context"
	"time"

	"sluice/internal/ledger"
)

// loop runs fn every interval in one goroutine until stop is called;
// stop returns when the goroutine has exited.
type loop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func every(interval time.Duration, fn func(ctx context.Context)) *loop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &loop{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn(ctx)
			}
		}
	}()
	return l
}

func (l *loop) stop() {
	l.cancel()
	<-l.done
}

// indexSoldOut reads the orders of each sold-out sale into the gate's
// memory (admission.Gate.ExtendIndex), so that retries carrying an
// Idempotency-Key are answered without a JetStream round trip. A sold-out
// stream is bounded by the stock and is read once; a sale whose stock is
// raised and sells out again is read on from where its index ends.
func (s *Server) indexSoldOut(ctx context.Context) {
	for sale, from := range s.gate.IndexWanted() {
		var orders []ledger.Order
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		upTo, err := s.ledger.ReadOrders(rctx, sale, from, func(o ledger.Order) { orders = append(orders, o) })
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Debug("sold-out index: read failed; keyed retries still ask JetStream", "sale", sale, "err", err)
			}
			continue
		}
		s.gate.ExtendIndex(sale, from, upTo, orders)
	}
}

// probeStore writes to the probe stream while the gate has found the
// ledger refusing writes; once a write is stored, the gate tries orders
// on the ledger again, one at a time.
func (s *Server) probeStore(ctx context.Context) {
	if !s.gate.LedgerRefusing() {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := s.ledger.Probe(pctx); err != nil {
		s.log.Debug("store probe failed; orders still answered 503", "err", err)
		return
	}
	s.gate.StoreProbed()
}
