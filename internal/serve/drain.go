package serve

import (
	"context"

	"github.com/prometheus/client_golang/prometheus/collectors"

	"sluice/internal/drain"
	"sluice/internal/orderstatus"
)

// openDrain opens the backend and makes the drain into it, before the
// gate: a gate in the same process cancels orders through the drain
// (Drainer.Cancel). startDrain starts it.
func (s *Server) openDrain(ctx context.Context) error {
	if s.cfg.NoDrain {
		return nil
	}
	dc := s.cfg.Drain
	if dc.Logger == nil {
		dc.Logger = s.log
	}
	workers := dc.Workers
	if workers <= 0 {
		workers = drain.DefaultWorkers
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
		return orderstatus.OpenRecorder(ctx, s.js, s.cfg.Replicas)
	})
	if err != nil {
		return err
	}
	s.drainer = drain.New(s.ledger, rec, b, dc, drain.NewMetrics(s.reg))
	return nil
}

// startDrain starts the drain openDrain made.
func (s *Server) startDrain(ctx context.Context) error {
	if s.drainer == nil {
		return nil
	}
	_, err := retry(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, s.drainer.Start(ctx) })
	return err
}
