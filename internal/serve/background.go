package serve

import (
	"context"
	"errors"
	"syscall"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/periodic"
)

// every runs fn every interval in a goroutine of its own, with a context
// that its Stop cancels, not the start's: background work outlives Start
// and ends at the shutdown.
func every(interval time.Duration, fn func(ctx context.Context)) *periodic.Loop {
	return periodic.Every(context.Background(), interval, fn)
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
	if s.refollow.Load() && s.tracker != nil {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.tracker.Refollow(rctx)
		cancel()
		if err != nil {
			s.log.Debug("order statuses: following the decisions again failed; retrying", "err", err)
		} else {
			s.refollow.Store(false)
		}
	}
	if !s.gate.LedgerRefusing() {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := s.ledger.Probe(pctx); err != nil {
		s.log.Debug("store probe failed; orders still answered 503", "err", err)
		if errors.Is(err, ledger.ErrStoreFull) {
			s.probeFails = 0 // refused cleanly (--max-store): it takes writes once space returns
			return
		}
		s.probeFails++
		s.clearWriteError()
		return
	}
	s.probeFails = 0
	s.gate.StoreProbed()
}

// RestartJetStream restarts the embedded NATS server in process (see
// broker.Restart); the order statuses then follow the decisions stream
// again at the next probe, not after missed heartbeats.
func (s *Server) RestartJetStream() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.broker.Restart(ctx); err != nil {
		return err
	}
	s.refollow.Store(true)
	if s.rooms != nil {
		// The waiting rooms are read again from the restarted server
		// (the next refresh opens them) rather than after missed heartbeats.
		s.rooms.Reset()
	}
	return nil
}

// The conditions for restarting JetStream in process: this many probes in
// a row unanswered, this much free space in the store's file system, and
// no restart for this long.
const (
	restartAfterProbes = 3
	restartMinFree     = 8 << 20
	restartEvery       = 30 * time.Second
)

// clearWriteError restarts the embedded NATS server once the disk has
// room again while the store still takes no write. A stream whose file hit
// a write error (the disk filled) is refused by nats-server until its
// store is opened again; a new server in process opens every stream from
// disk, as a restart of sluice would, and the client reconnects to it.
// Only a standalone embedded server is restarted; a cluster's member or an
// external server is left to its operator (the log says so, every 30 s).
func (s *Server) clearWriteError() {
	if s.probeFails < restartAfterProbes || time.Since(s.jsRestarted) < restartEvery {
		return
	}
	dir := s.broker.StoreDir()
	if dir == "" {
		return
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil || int64(fs.Bavail)*int64(fs.Bsize) < restartMinFree {
		return // still full: a restart would hit the same error
	}
	s.jsRestarted = time.Now()
	free := int64(fs.Bavail) * int64(fs.Bsize)
	if err := s.RestartJetStream(); err != nil {
		s.log.Warn("the store takes no writes although its disk has room again; restart sluice to clear nats-server's write error",
			"free_bytes", free, "err", err)
		return
	}
	s.log.Warn("restarted the embedded NATS server in process: the store took no writes after the disk filled, and the disk has room again",
		"free_bytes", free, "took", time.Since(s.jsRestarted).Round(time.Millisecond))
	s.probeFails = 0
}
