package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"sluice/internal/ledger"
	"sluice/internal/orderstatus"
	"sluice/limiter"
)

// DeadLetterStream holds the orders the drain gave up on, on subjects
// sluice.dead.<sale>, with headers Sluice-Order-Id, Sluice-Reason and
// Sluice-Deliveries.
const DeadLetterStream = "SLUICE_DEAD"

// ErrUnavailable marks a backend error that concerns the backend as a
// whole (down, unreachable, timing out) rather than the orders of a batch:
// the drainer then retries the batch later instead of order by order.
var ErrUnavailable = errors.New("consumer: backend unavailable")

// Config tunes a Drainer. Zero values mean the documented defaults.
type Config struct {
	// Workers bounds the backend calls under way at once, across all
	// sales. Each sale runs twice this many fetchers, and its consumer's
	// MaxAckPending is 2 × Workers × Batch. Default 4.
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
	// (EachCallBounded) gets no deadline on the whole batch; sluice serve
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
	afterCommit func([]Order) bool
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 4
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

// Drainer drains every sale's stream into a Backend. Start it once; Stop
// returns when its goroutines have exited.
type Drainer struct {
	cfg     Config
	js      jetstream.JetStream
	ledger  *ledger.Ledger
	status  *orderstatus.Recorder
	backend Backend
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
	wg         sync.WaitGroup
	stopOnce   sync.Once
	started    bool

	// afterCommit, when set (tests), runs after the backend committed a
	// batch and before anything is recorded or acked; returning false
	// abandons the batch there, as a crash would.
	afterCommit func([]Order) bool
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
func New(l *ledger.Ledger, status *orderstatus.Recorder, b Backend, cfg Config, m *Metrics) *Drainer {
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
	_, err := d.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "sluice: orders the drain gave up on",
		Subjects:    []string{"sluice.dead.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      30 * 24 * time.Hour,
		Duplicates:  time.Hour,
	})
	if err != nil {
		return fmt.Errorf("consumer: dead-letter stream: %w", err)
	}
	d.discover(ctx)
	d.started = true
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(d.cfg.Discover)
		defer t.Stop()
		for {
			select {
			case <-d.stopFetch:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(d.hardCtx, 5*time.Second)
				d.discover(ctx)
				cancel()
			}
		}
	}()
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
	go func() { d.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		d.hardCancel()
		<-done
		err = fmt.Errorf("consumer: stop: %w", ctx.Err())
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

// discover starts a drain for each new sale and passes stock changes to
// the backend.
func (d *Drainer) discover(ctx context.Context) {
	states, err := d.ledger.States(ctx)
	if err != nil {
		d.log.Warn("drain: cannot list sales", "err", err)
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
					d.log.Warn("drain: backend stock update failed", "sale", sd.name, "err", err)
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
			d.log.Warn("drain: cannot start sale", "sale", st.Sale.Name, "err", err)
		}
	}
	d.backlog.Store(int64(backlog))
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
// the backend it drains into (Backend.Describe).
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
	order Order
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
		lo, err := ledger.DecodeOrder(msg.Data())
		id := ledger.OrderID{Sale: sd.name, Seq: meta.Sequence.Stream, Token: lo.Token}
		if err != nil {
			d.deadLetter(ctx, sd, item{msg: msg, meta: meta, id: id}, "undecodable order: "+err.Error())
			continue
		}
		items = append(items, item{msg: msg, meta: meta, id: id, order: Order{
			ID: id.String(), Sale: sd.name, BuyerID: lo.BuyerID, IdempotencyKey: lo.IdempotencyKey,
			AdmittedAt: lo.AdmittedAt, Payload: lo.Payload, Seq: id.Seq, PerBuyer: sd.perBuyer,
		}})
	}
	if len(items) == 0 {
		return 0
	}
	orders := make([]Order, len(items))
	for i, it := range items {
		orders[i] = it.order
	}
	stop := d.keepAlive(items)
	var results []Result
	if _, each := d.backend.(PacedEachCall); each {
		// The backend waits for the pace call by call, once it holds a
		// call's slot.
		results = d.commit(withPace(ctx, func(ctx context.Context) error { return d.waitPace(ctx, sd, 1) }), orders)
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
		if r.Outcome != Retry || !errors.Is(r.Err, ErrUnavailable) {
			return 0
		}
	}
	return d.backoff(items[0].meta.NumDelivered)
}

// paceWindow is the burst of a pace: a twentieth of a second of orders,
// so that in any second the backend sees at most 5% more than the rate.
const paceWindow = time.Second / 20

// newPace is a limiter of r orders per second, or none (rate.Inf) for 0.
func newPace(r float64) *rate.Limiter { return limiter.NewRate(r, limiter.Burst(r, paceWindow)) }

// setPace changes a pace to r orders per second, or none for 0.
func setPace(l *rate.Limiter, r float64) { limiter.SetRate(l, r, limiter.Burst(r, paceWindow)) }

// batchSize is how many orders a worker fetches: Batch, or less when a
// pace would not let that many through at once.
func (d *Drainer) batchSize(sd *saleDrain) int {
	n := d.cfg.Batch
	for _, l := range []*rate.Limiter{d.pace, sd.pace} {
		if l.Limit() != rate.Inf {
			n = min(n, l.Burst())
		}
	}
	return n
}

// waitPace takes one token per order from the sale's pace and the
// process's, in steps no larger than a burst, so a backend paced at r
// orders/s sees no more than that whatever the batch.
func (d *Drainer) waitPace(ctx context.Context, sd *saleDrain, n int) error {
	start := time.Now()
	defer func() {
		if w := time.Since(start); w > time.Millisecond {
			d.m.paceWait.Add(w.Seconds())
		}
	}()
	for _, l := range []*rate.Limiter{sd.pace, d.pace} {
		for left := n; left > 0 && l.Limit() != rate.Inf; {
			k := min(left, l.Burst())
			if err := d.waitTokens(ctx, l, k); err != nil {
				return fmt.Errorf("%w: waiting for the backend's pace: %w", ErrUnavailable, err)
			}
			left -= k
		}
	}
	return nil
}

// errStopping: the drain began to stop while a batch waited for its pace.
var errStopping = errors.New("the drain is stopping")

// waitTokens is l.WaitN(ctx, k), given up (its tokens given back) when
// the drain begins to stop: a shutdown waits for the backend calls under
// way, not for the pace, which at a low backend_rate would hold it for
// as many seconds as batches are queued for it. Tokens there already are
// taken even then: such a batch goes on as any batch under way.
func (d *Drainer) waitTokens(ctx context.Context, l *rate.Limiter, k int) error {
	r := l.ReserveN(time.Now(), k)
	if !r.OK() {
		return fmt.Errorf("%d orders exceed the pace's burst of %d", k, l.Burst())
	}
	wait := r.Delay()
	if wait == 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	case <-d.stopFetch:
		r.Cancel()
		return errStopping
	}
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

// commit runs one backend call for the batch under the worker bound; if
// the batch fails for a reason other than the backend being unavailable,
// it retries order by order so one bad order cannot hold back the others.
func (d *Drainer) commit(ctx context.Context, orders []Order) []Result {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return retryAll(len(orders), ctx.Err())
	}
	d.m.inFlight.Inc()
	defer func() {
		d.m.inFlight.Dec()
		<-d.sem
	}()
	res, err := d.call(ctx, orders)
	if err == nil {
		return res
	}
	if len(orders) == 1 || errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		if !errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
			d.log.Warn("drain: backend failed an order", "order", orders[0].ID, "err", err)
		}
		return retryAll(len(orders), err)
	}
	d.log.Warn("drain: batch failed, retrying order by order", "orders", len(orders), "err", err)
	out := make([]Result, len(orders))
	for i := range orders {
		r, err := d.call(ctx, orders[i:i+1])
		if err != nil {
			out[i] = Result{Outcome: Retry, Err: err}
			continue
		}
		out[i] = r[0]
	}
	return out
}

func (d *Drainer) call(ctx context.Context, orders []Order) ([]Result, error) {
	cctx := ctx
	if _, ok := d.backend.(EachCallBounded); !ok {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, d.cfg.BackendTimeout)
		defer cancel()
	}
	start := time.Now()
	res, err := d.backend.Commit(cctx, orders)
	if err == nil && len(res) != len(orders) {
		err = ErrBadResults
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("%w: timed out after %v: %w", ErrUnavailable, d.cfg.BackendTimeout, err)
	}
	d.noteHealth(res, err)
	result := "ok"
	if err != nil {
		result = "error"
	}
	d.m.backend.WithLabelValues(result).Observe(time.Since(start).Seconds())
	return res, err
}

func retryAll(n int, err error) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = Result{Outcome: Retry, Err: err}
	}
	return out
}

// settle records the batch's decisions and then acknowledges its orders:
// the record first, so that an acked order always has its outcome known
// to the gates. Orders to retry are sent back at once.
func (d *Drainer) settle(ctx context.Context, sd *saleDrain, items []item, results []Result) {
	dec := orderstatus.Decision{Sale: sd.name, At: time.Now().UTC()}
	var final []int // indexes of confirmed or rejected orders
	for i, r := range results {
		switch r.Outcome {
		case Confirmed:
			dec.Confirmed = append(dec.Confirmed, items[i].id.Seq)
			final = append(final, i)
		case Rejected:
			dec.Rejected = append(dec.Rejected, orderstatus.Outcome{Seq: items[i].id.Seq, Reason: r.Reason, Buyer: items[i].order.BuyerID})
			final = append(final, i)
		default:
			d.retry(ctx, sd, items[i], r.Err)
		}
	}
	if err := d.status.Record(ctx, dec); err != nil {
		// Committed but not recorded: send them back; the backend gives
		// the same answer next time.
		d.m.statusErrors.Inc()
		d.log.Warn("drain: cannot record decisions", "sale", sd.name, "orders", len(final), "err", err)
		for _, i := range final {
			_ = items[i].msg.NakWithDelay(d.backoff(items[i].meta.NumDelivered))
		}
		return
	}
	// A batch's acks are pipelined: each goes out without waiting, and
	// the last is a double ack (AckSync). JetStream processes the acks a
	// consumer gets over one connection in order, so the answer to the
	// last confirms every ack and term of the batch sent before it. One
	// round trip per batch instead of one per order; an ack lost on the
	// way means a redelivery, which the backend answers as before.
	last := -1
	for _, i := range final {
		if results[i].Outcome == Confirmed {
			last = i
		}
	}
	for _, i := range final {
		it := items[i]
		d.forget(it.order.ID)
		switch {
		case results[i].Outcome == Rejected:
			_ = it.msg.TermWithReason(results[i].Reason)
			d.m.drained.WithLabelValues(sd.name, outcomeRejected).Inc()
			continue
		case i != last:
			if err := it.msg.Ack(); err != nil {
				d.log.Warn("drain: ack failed", "order", it.order.ID, "err", err)
			}
		}
		d.m.drained.WithLabelValues(sd.name, outcomeConfirmed).Inc()
	}
	if last < 0 {
		return
	}
	actx, cancel := context.WithTimeout(ctx, d.cfg.AckWait)
	defer cancel()
	if err := items[last].msg.DoubleAck(actx); err != nil {
		// Whatever was not acked is redelivered and committed again:
		// idempotent.
		d.log.Warn("drain: batch ack not confirmed", "sale", sd.name, "orders", len(final), "err", err)
	}
}

// retry sends an order back for a later attempt, or dead-letters it once
// MaxDeliver of its attempts failed while the backend was deciding other
// orders. An outage of the whole backend (ErrUnavailable, or nothing
// decided lately) never counts, so it never dead-letters anything.
func (d *Drainer) retry(ctx context.Context, sd *saleDrain, it item, cause error) {
	if errors.Is(cause, errStopping) {
		// Never sent: back to the stream at once, for the next drain.
		_ = it.msg.Nak()
		return
	}
	if !errors.Is(cause, ErrUnavailable) && d.backendHealthy() {
		d.mu.Lock()
		d.failures[it.id.String()]++
		n := d.failures[it.id.String()]
		d.mu.Unlock()
		if n >= d.cfg.MaxDeliver {
			reason := "backend kept failing"
			if cause != nil {
				reason = cause.Error()
			}
			d.deadLetter(ctx, sd, it, reason)
			return
		}
	}
	_ = it.msg.NakWithDelay(d.backoff(it.meta.NumDelivered))
	d.m.drained.WithLabelValues(sd.name, outcomeRetried).Inc()
}

// noteHealth follows the backend's health from a call's outcome: a call
// that decided an order says it is up; one that decided none says it is
// down when it found the backend unavailable (unreachable, timing out) or
// when nothing was decided lately (an endpoint answering 5xx to
// everything). The log gets one line when it goes down and one when it is
// back, not one per retry.
func (d *Drainer) noteHealth(res []Result, err error) {
	decided, allUnavailable := false, errors.Is(err, ErrUnavailable)
	if err == nil {
		allUnavailable = len(res) > 0
		for _, r := range res {
			if r.Outcome != Retry {
				decided = true
			}
			if r.Outcome != Retry || !errors.Is(r.Err, ErrUnavailable) {
				allUnavailable = false
			}
		}
	}
	unavailable := !decided && (allUnavailable || !d.backendHealthy())
	now := time.Now()
	switch {
	case decided:
		d.lastOK.Store(now.UnixNano())
		if since := d.downSince.Swap(0); since != 0 {
			d.log.Info("drain: backend is back", "down_for", now.Sub(time.Unix(0, since)).Round(time.Millisecond),
				"backlog", d.backlog.Load())
		}
	case unavailable:
		cause := err
		if cause == nil && len(res) > 0 {
			cause = res[0].Err
		}
		if d.downSince.CompareAndSwap(0, now.UnixNano()) {
			d.log.Warn("drain: backend unavailable; orders stay in the ledger and are retried until it is back",
				"err", cause, "backlog", d.backlog.Load())
		}
	}
}

// backendHealthy says the backend decided an order lately.
func (d *Drainer) backendHealthy() bool {
	return time.Since(time.Unix(0, d.lastOK.Load())) < max(10*time.Second, 2*d.cfg.BackoffMax)
}

func (d *Drainer) forget(id string) {
	d.mu.Lock()
	delete(d.failures, id)
	d.mu.Unlock()
}

// backoff is BackoffBase × 2^(attempt-1), capped, with jitter over its
// upper half so that retries of a burst spread out.
func (d *Drainer) backoff(attempt uint64) time.Duration {
	delay := d.cfg.BackoffBase
	for i := uint64(1); i < attempt && delay < d.cfg.BackoffMax; i++ {
		delay *= 2
	}
	delay = min(delay, d.cfg.BackoffMax)
	return delay/2 + rand.N(delay/2+1)
}

// deadLetter publishes the order to the dead-letter stream, records it as
// failed and terminates it. If the dead-letter publish fails the order is
// redelivered instead: it is never dropped.
func (d *Drainer) deadLetter(ctx context.Context, sd *saleDrain, it item, reason string) {
	m := nats.NewMsg("sluice.dead." + sd.name)
	m.Data = it.msg.Data()
	m.Header.Set("Sluice-Order-Id", it.id.String())
	m.Header.Set("Sluice-Reason", reason)
	m.Header.Set("Sluice-Deliveries", fmt.Sprint(it.meta.NumDelivered))
	if _, err := d.js.PublishMsg(ctx, m, jetstream.WithMsgID("dead-"+it.id.String())); err != nil {
		d.log.Error("drain: dead-letter publish failed; order stays queued", "order", it.id.String(), "err", err)
		_ = it.msg.NakWithDelay(d.cfg.BackoffMax)
		return
	}
	dec := orderstatus.Decision{Sale: sd.name, At: time.Now().UTC(),
		Failed: []orderstatus.Outcome{{Seq: it.id.Seq, Reason: reason, Buyer: it.order.BuyerID}}}
	if err := d.status.Record(ctx, dec); err != nil {
		d.m.statusErrors.Inc()
		_ = it.msg.NakWithDelay(d.backoff(it.meta.NumDelivered))
		return
	}
	_ = it.msg.TermWithReason("dead-lettered: " + reason)
	d.forget(it.id.String())
	d.m.deadLetters.WithLabelValues(sd.name).Inc()
	d.m.drained.WithLabelValues(sd.name, outcomeDeadLettered).Inc()
	d.log.Warn("drain: order dead-lettered", "order", it.id.String(), "deliveries", it.meta.NumDelivered, "reason", reason)
}
