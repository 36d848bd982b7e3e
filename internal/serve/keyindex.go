package serve

import (
	"context"
	"time"

	"sluice/internal/ledger"
)

// indexer reads the orders of each sold-out sale into the gate's memory
// (admission.Gate.ExtendIndex), so that retries carrying an
// Idempotency-Key are answered without a JetStream round trip. A sold-out
// stream is bounded by the stock, and is read once; a sale whose stock is
// raised and sells out again is read from where the index ends.
type indexer struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Server) startIndexer(every time.Duration) *indexer {
	ctx, cancel := context.WithCancel(context.Background())
	ix := &indexer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ix.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for sale, from := range s.gate.IndexWanted() {
				var orders []ledger.Order
				rctx, rcancel := context.WithTimeout(ctx, time.Minute)
				upTo, err := s.ledger.ReadOrders(rctx, sale, from, func(o ledger.Order) { orders = append(orders, o) })
				rcancel()
				if err != nil {
					if ctx.Err() == nil {
						s.log.Debug("sold-out index: read failed; keyed retries still ask JetStream", "sale", sale, "err", err)
					}
					continue
				}
				s.gate.ExtendIndex(sale, from, upTo, orders)
			}
		}
	}()
	return ix
}

// stop ends the indexer and returns when its goroutine has exited.
func (ix *indexer) stop() {
	ix.cancel()
	<-ix.done
}
