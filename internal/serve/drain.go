package serve

import (
	"context"

	"github.com/prometheus/client_golang/prometheus/collectors"

	"sluice/internal/drain"
	"sluice/internal/orderstatus"
)

// startDrain opens the backend and starts the drain into it; a gate in
// the same process cancels orders through the drain (Drainer.Cancel).
func (s *Server) startDrain(ctx context.Context) error {
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
		return orderstatus.OpenRecorder(ctx, s.ledger.JetStream(), s.cfg.Replicas)
	})
	if err != nil {
		return err
	}
	s.drainer = drain.New(s.ledger, rec, b, dc, drain.NewMetrics(s.reg))
	if s.gate != nil {
		s.gate.SetOrderCanceller(s.drainer.Cancel)
	}
	_, err = retry(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, s.drainer.Start(ctx) })
	return err
}
