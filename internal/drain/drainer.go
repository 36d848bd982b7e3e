package drain

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"sluice/consumer"
	"sluice/internal/ledger"
	"sluice/internal/orderstatus"
	"sluice/internal/periodic"
)

// Drainer drains every sale's stream into a consumer.Backend. Start it
// once; Stop returns when its goroutines have exited. Its methods are safe
// for concurrent use.
type Drainer struct {
	cfg     Config
	js      jetstream.JetStream
	ledger  *ledger.Ledger
	status  *orderstatus.Recorder
	backend consumer.Backend
	m       *Metrics
	log     *slog.Logger
	sem     chan struct{}
	// pace is the process's --backend-rate (rate.Inf without one).
	pace *rate.Limiter
	// lastOK is when a backend call last decided an order (unix ns): an
	// order is dead-lettered only while the backend is otherwise healthy.
	lastOK atomic.Int64
	// downSince is when calls began to find the whole backend unavailable
	// (unix ns), zero while it answers: the log's outage lines.
	downSince atomic.Int64
	// backlog is the orders the drain consumers had not settled at the
	// last look, over every sale.
	backlog atomic.Int64

	mu    sync.Mutex
	sales map[string]*saleDrain
	// failures counts, per order, the attempts that failed while the
	// backend was deciding other orders. An entry lives until the order
	// is settled, so the map holds at most the orders under way.
	failures map[string]int

	stopFetch  chan struct{}
	hardCtx    context.Context // cancelled only when Stop runs out of time
	hardCancel context.CancelFunc
	// discovery looks for new sales and stock changes every Discover.
	discovery *periodic.Loop
	wg        sync.WaitGroup // the workers of every sale
	stopOnce  sync.Once

	// afterCommit, when set (tests), runs after the backend committed a
	// batch and before anything is recorded or acked; returning false
	// abandons the batch there, as a crash would.
	afterCommit func([]consumer.Order) bool
}

type saleDrain struct {
	name     string
	cons     jetstream.Consumer
	stock    int64
	perBuyer int64
	// pace is the sale's backend_rate (rate.Inf without one); discover
	// follows changes.
	pace *rate.Limiter
}

// New returns a Drainer; it does nothing until Start.
func New(l *ledger.Ledger, status *orderstatus.Recorder, b consumer.Backend, cfg Config, m *Metrics) *Drainer {
	cfg.defaults()
	hard, cancel := context.WithCancel(context.Background())
	m.bound.Set(float64(cfg.Workers))
	m.paceLimit.Set(cfg.BackendRate)
	return &Drainer{
		cfg: cfg, js: l.JetStream(), ledger: l, status: status, backend: b, m: m,
		log: cfg.Logger, sem: make(chan struct{}, cfg.Workers), pace: newPace(cfg.BackendRate),
		sales: make(map[string]*saleDrain), failures: make(map[string]int), stopFetch: make(chan struct{}),
		hardCtx: hard, hardCancel: cancel, afterCommit: cfg.afterCommit,
	}
}

// Start provisions the dead-letter stream, starts draining every sale it
// finds and keeps looking for new ones.
func (d *Drainer) Start(ctx context.Context) error {
	if err := d.ensureDeadLetterStream(ctx); err != nil {
		return err
	}
	d.discover(ctx)
	d.discovery = periodic.Every(d.hardCtx, d.cfg.Discover, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		d.discover(ctx)
	})
	return nil
}

// Stop stops fetching, lets the batches under way finish (committed,
// recorded and acked) and returns when every goroutine has exited. A
// batch still waiting for its pace (backend_rate, --backend-rate) is not
// under way: it is given back to the stream at once. If ctx ends first,
// the batches still under way are abandoned unacked, to be redelivered.
// Calling Stop twice is safe.
func (d *Drainer) Stop(ctx context.Context) error {
	d.stopOnce.Do(func() { close(d.stopFetch) })
	done := make(chan struct{})
	go func() {
		// Discovery first: it is what starts workers.
		if d.discovery != nil {
			d.discovery.Stop()
		}
		d.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		d.hardCancel()
		<-done
		err = fmt.Errorf("drain: stop: %w", ctx.Err())
	}
	d.hardCancel()
	return err
}

func (d *Drainer) stopping() bool {
	select {
	case <-d.stopFetch:
		return true
	default:
		return false
	}
}
