package drain

import (
	"log/slog"
	"time"

	"sluice/consumer"
)

// Config tunes a Drainer. Zero values mean the documented defaults.
type Config struct {
	// Workers bounds the backend calls under way at once, across all
	// sales. Each sale runs twice this many fetchers, and its consumer's
	// MaxAckPending is 2 × Workers × Batch. Default DefaultWorkers.
	Workers int
	// Batch is the most orders fetched and committed together; default 100.
	Batch int
	// MaxWait is how long a fetch waits to fill a batch, so that a
	// trickle of orders is not held back; default 50 ms.
	MaxWait time.Duration
	// MaxDeliver is how many attempts an order gets before it is
	// dead-lettered; default 10.
	MaxDeliver int
	// AckWait is JetStream's redelivery timeout for an unacknowledged
	// order; default 5 s. A batch in the backend is kept alive every third
	// of it, so it need not exceed BackendTimeout: it bounds how long a
	// crashed drain's orders wait to be handed out again.
	AckWait time.Duration
	// BackendTimeout bounds one backend call, the transaction of a batch;
	// default 10 s. A backend that bounds each of its own calls
	// (consumer.EachCallBounded) gets no deadline on the whole batch; sluice serve
	// gives the HTTP backend this timeout for each call.
	BackendTimeout time.Duration
	// BackoffBase and BackoffMax shape the retry delay: BackoffBase ×
	// 2^(attempt-1), capped at BackoffMax, with jitter. Defaults 250 ms, 30 s.
	BackoffBase, BackoffMax time.Duration
	// Discover is how often new sales and stock changes are looked for;
	// default 1 s.
	Discover time.Duration
	// BackendRate caps the orders per second this process sends to the
	// backend, over all sales and workers; zero means no cap. A sale's own
	// backend_rate applies as well. Orders are counted one by one, and a
	// batch is never larger than a twentieth of a second of the pace.
	BackendRate float64
	Logger      *slog.Logger

	// afterCommit: see Drainer.afterCommit; set by tests (export_test.go).
	afterCommit func([]consumer.Order) bool
}

// DefaultWorkers is the bound on backend calls under way when
// Config.Workers is zero; whoever opens the backend sizes its pool or its
// concurrency for as many.
const DefaultWorkers = 4

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 50 * time.Millisecond
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 10
	}
	if c.BackendTimeout <= 0 {
		c.BackendTimeout = 10 * time.Second
	}
	if c.AckWait <= 0 {
		// The drain sends in-progress every third of it while a batch is
		// in the backend, so it bounds only how long a crashed drain's
		// orders wait to be handed out again.
		c.AckWait = 5 * time.Second
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 250 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.Discover <= 0 {
		c.Discover = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
