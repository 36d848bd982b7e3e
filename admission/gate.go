package admission

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"sluice/internal/eventlog"
	"sluice/internal/ledger"
	"sluice/limiter"
	"sluice/overflow"
)

// Ledger is what the gate needs of the order ledger (ledger.Ledger).
type Ledger interface {
	Place(ctx context.Context, o ledger.Order, msgID string) (ledger.OrderID, bool, error)
	Lookup(ctx context.Context, id ledger.OrderID) (ledger.Order, error)
	EnsureSale(ctx context.Context, s ledger.Sale) (ledger.SaleState, error)
	// PlaceBeyond places an order that takes only the stock beyond
	// what held says the sale's line holds (room_pass.go).
	PlaceBeyond(ctx context.Context, o ledger.Order, msgID string, held func() int64) (ledger.OrderID, bool, error)
}

// Deps are the parts a gate is built of, made by its owner
// (internal/serve). Their types are sluice's own internal ones, on
// purpose: the ledger keeps the promises the gate answers for (stock, one
// order per buyer, the line's), so a gate is built of sluice's ledger and
// waiting room, not of something outside this module.
type Deps struct {
	// Ledger places and finds orders. Required.
	Ledger Ledger
	// Metrics, made by NewMetrics. Required.
	Metrics *Metrics
	// Status tells what the drain did with an order (orderstatus.Tracker);
	// nil: every order reads queued.
	Status StatusSource
	// Confirmed counts a sale's confirmed and decided orders
	// (orderstatus.Tracker); nil: the gate shows no count.
	Confirmed ConfirmedCounter
	// Canceller cancels a confirmed order (POST /admin/orders/{id}/cancel);
	// nil: a gate that does not drain refuses cancels.
	Canceller OrderCanceller
	// Rooms and RoomStore serve the waiting rooms: both, or neither for a
	// gate without them.
	Rooms     Rooms
	RoomStore RoomStore
}

// Validate reports deps a gate cannot be built of (ErrBadDeps).
func (d Deps) Validate() error {
	switch {
	case d.Ledger == nil:
		return fmt.Errorf("%w: no ledger", ErrBadDeps)
	case d.Metrics == nil:
		return fmt.Errorf("%w: no metrics", ErrBadDeps)
	case (d.Rooms == nil) != (d.RoomStore == nil):
		return fmt.Errorf("%w: rooms and a room store go together", ErrBadDeps)
	}
	return nil
}

// Config configures a Gate. Zero values mean the documented defaults.
type Config struct {
	// BuyerHeader, when set, names a header an authenticating proxy sets
	// to the buyer id. It is believed only on connections from
	// TrustedProxies; other peers are refused (untrusted_buyer_header).
	BuyerHeader string
	// TrustedProxies are peers whose X-Forwarded-For (and BuyerHeader) is
	// believed.
	TrustedProxies []netip.Prefix
	// BuyerTokens, when set, verifies the shop's buyer tokens: every
	// order and join then needs one, and its sub is the buyer. It takes
	// precedence over BuyerHeader (New refuses both).
	BuyerTokens BuyerTokens
	// LineMaxTickets bounds the tickets the gate holds in memory over
	// every waiting room's line; zero means DefaultLineMaxTickets.
	LineMaxTickets int64
	// BuyerTokenCookie names a cookie the token may come in (a
	// browser's page). A request whose cookie and Authorization header
	// hold two different tokens is refused (bad_buyer_token).
	BuyerTokenCookie string
	// IPRate and IPBurst limit orders per client address (IPv6 per /64);
	// zero IPRate means no limit. BuyerRate and BuyerBurst likewise per
	// buyer id.
	IPRate, BuyerRate   float64
	IPBurst, BuyerBurst int
	// LimiterKeys bounds the keys each keyed limiter holds; default 100,000.
	LimiterKeys int
	// LimiterIdle is how long an idle key is kept; default one minute.
	LimiterIdle time.Duration
	// MaxBodyBytes bounds an order body; default 4 KiB.
	MaxBodyBytes int64
	// PublishTimeout bounds the wait for a PubAck; default 5 s.
	PublishTimeout time.Duration
	// Renderer renders diverted answers; nil means the built-in pages.
	Renderer *overflow.Renderer
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// MaxWaiters bounds the requests held for a decision (Prefer: wait)
	// at once; past it a request is answered at once, as without the
	// preference. Zero means DefaultMaxWaiters; negative, no waiting.
	MaxWaiters int
	// CORS lets a shop's pages on other origins call the public API;
	// the zero value is off.
	CORS CORS
}

// Validate reports a config the gate cannot run with, or that would not
// do what it says (ErrBadConfig, ErrTwoIdentities, ErrBuyerHeaderUntrusted).
func (c Config) Validate() error {
	switch {
	case c.BuyerHeader != "" && c.BuyerTokens != nil:
		return ErrTwoIdentities
	case c.BuyerHeader != "" && len(c.TrustedProxies) == 0:
		return ErrBuyerHeaderUntrusted
	}
	_, err := newCORS(c.CORS)
	return err
}

// Gate answers the public API. It is safe for concurrent use. It starts no
// goroutines: the caller feeds it sale states with UpdateSales.
type Gate struct {
	cfg     Config
	ledger  Ledger
	m       *Metrics
	render  *overflow.Renderer
	log     *slog.Logger
	now     func() time.Time
	ipLim   *limiter.Keyed[netip.Addr]
	buyLim  *limiter.Keyed[string]
	sales   atomic.Pointer[map[string]*sale]
	updates sync.Mutex // serialises UpdateSales
	// evictedSeen are the limiters' eviction totals at the last update.
	evictedSeen [2]uint64
	ready       atomic.Bool
	// stopping is closed when the gate begins shutting down: held
	// requests are answered at once.
	stopping  chan struct{}
	stopOnce  sync.Once
	waiting   atomic.Int64
	status    StatusSource
	releases  buyerReleaser // status, when it counts released orders
	canceller OrderCanceller
	confirmed ConfirmedCounter
	// rooms and roomStore serve the waiting rooms.
	rooms     Rooms
	roomStore RoomStore
	lineWarn  eventlog.Log

	// unconfirmed aggregates the log of publishes JetStream did not
	// confirm: one line a minute, not one per request.
	unconfirmed eventlog.Log
	// lookupFailed aggregates the log of order look-ups JetStream did
	// not answer (GET /v1/orders/{id} answered 503) likewise.
	lookupFailed eventlog.Log
	// refusing is when the ledger began refusing writes (a full store,
	// publishes that time out), unix ns; zero while it takes them. While
	// set, orders are answered 503 at once instead of each waiting out
	// the publish timeout; whoever feeds the gate probes the store and
	// calls LedgerRecovered.
	refusing atomic.Int64
	// serverErrors counts the public API's 5xx answers (ServerErrors).
	serverErrors atomic.Uint64
	// probed: a probe write was stored since; one order (trial) may then
	// try the ledger, and its outcome ends the refusal or not.
	probed, trial  atomic.Bool
	refusingAnswer *overflow.Answer

	unknownSale    *overflow.Answer
	ipLimited      *overflow.Answer
	buyerLimited   *overflow.Answer
	badContentType *overflow.Answer
	tooLarge       *overflow.Answer
	unavailable    *overflow.Answer
	notFound       *overflow.Answer
	badKey         *overflow.Answer
	// keysUnavailable: the shop's keys were never read (every buyer
	// with a token gets it while they are not).
	keysUnavailable *overflow.Answer
	cors            *cors // nil: CORS off
	unknownCounter  map[overflow.Reason]counter
}

type counter interface{ Inc() }

// New returns a gate built of d, publishing admitted orders to its
// ledger, or why cfg or d cannot make one.
func New(cfg Config, d Deps) (*Gate, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	m := d.Metrics
	if cfg.LimiterKeys <= 0 {
		cfg.LimiterKeys = 100_000
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4 << 10
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.Renderer == nil {
		cfg.Renderer = &overflow.Renderer{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LineMaxTickets <= 0 {
		cfg.LineMaxTickets = DefaultLineMaxTickets
	}
	if cfg.MaxWaiters == 0 {
		cfg.MaxWaiters = DefaultMaxWaiters
	}
	cfg.MaxWaiters = max(0, cfg.MaxWaiters)
	g := &Gate{
		cfg:       cfg,
		stopping:  make(chan struct{}),
		ledger:    d.Ledger,
		m:         m,
		status:    d.Status,
		confirmed: d.Confirmed,
		canceller: d.Canceller,
		rooms:     d.Rooms,
		roomStore: d.RoomStore,
		render:    cfg.Renderer,
		log:       cfg.Logger,
		now:       cfg.Now,
		ipLim:     limiter.NewKeyed[netip.Addr](rate.Limit(cfg.IPRate), cfg.IPBurst, cfg.LimiterKeys, cfg.LimiterIdle),
		buyLim:    limiter.NewKeyed[string](rate.Limit(cfg.BuyerRate), cfg.BuyerBurst, cfg.LimiterKeys, cfg.LimiterIdle),
	}
	g.releases, _ = d.Status.(buyerReleaser)
	g.cors, _ = newCORS(cfg.CORS) // validated above
	empty := map[string]*sale{}
	g.sales.Store(&empty)
	r := g.render
	g.unknownSale = r.Render(overflow.Problem{Reason: overflow.UnknownSale})
	g.ipLimited = r.Render(overflow.Problem{Reason: overflow.IPRateLimited, RetryAfter: limiter.RetryAfter(rate.Limit(cfg.IPRate))})
	g.buyerLimited = r.Render(overflow.Problem{Reason: overflow.BuyerRateLimited, RetryAfter: limiter.RetryAfter(rate.Limit(cfg.BuyerRate))})
	g.badContentType = r.Render(overflow.Problem{Reason: overflow.BadContentType})
	g.tooLarge = r.Render(overflow.Problem{Reason: overflow.BodyTooLarge})
	g.unavailable = r.Render(overflow.Problem{Reason: overflow.Unavailable, RetryAfter: time.Second})
	g.refusingAnswer = r.Render(overflow.Problem{Reason: overflow.Unavailable, RetryAfter: 5 * time.Second,
		Detail: "The order store is refusing writes (full, or not answering); the order was not sent to it. Try again later."})
	g.notFound = r.Render(overflow.Problem{Reason: overflow.OrderNotFound})
	g.badKey = r.Render(overflow.Problem{Reason: overflow.BadIdempotencyKey})
	g.keysUnavailable = r.Render(overflow.Problem{Reason: overflow.BuyerKeysUnavailable, RetryAfter: keysRetryAfter})
	g.unknownCounter = make(map[overflow.Reason]counter)
	for r, c := range m.initSale(unknownSaleLabel) {
		g.unknownCounter[r] = c
	}
	m.limiterCap.WithLabelValues("ip").Set(float64(g.ipLim.Cap()))
	m.limiterCap.WithLabelValues("buyer").Set(float64(g.buyLim.Cap()))
	m.waitersMax.Set(float64(cfg.MaxWaiters))
	m.lineMaxTickets.Set(float64(cfg.LineMaxTickets))
	return g, nil
}

// Ready reports whether the gate can admit: the last sale refresh reached
// JetStream and the gate is not shutting down. (Its owner also waits for
// the waiting rooms to be read: waitingroom.Pacer.Warm.)
func (g *Gate) Ready() bool { return g.ready.Load() }

// SetDraining marks the gate as shutting down: /readyz turns false so a
// load balancer stops sending before the listener closes, and requests
// held for a decision are answered at once.
func (g *Gate) SetDraining() {
	g.ready.Store(false)
	g.stopOnce.Do(func() { close(g.stopping) })
}

func (g *Gate) lookupSale(name string) *sale { return (*g.sales.Load())[name] }

// UpdateSales replaces the gate's view of the sales with a fresh read of
// the ledger, begun at read. A failed read (err != nil) keeps the previous
// view and marks the gate not ready.
func (g *Gate) UpdateSales(read time.Time, states []ledger.SaleState, err error) {
	g.updates.Lock()
	defer g.updates.Unlock()
	if err != nil {
		if g.ready.Swap(false) {
			g.log.Warn("cannot refresh sales from JetStream", "err", err)
		}
		g.m.ledgerUp.Set(0)
		return
	}
	now := g.now()
	old := *g.sales.Load()
	next := make(map[string]*sale, len(states))
	for _, st := range states {
		s := old[st.Sale.Name]
		if s == nil {
			s = newSale(st.Sale, g.render, g.m)
			g.log.Info("sale known", "sale", st.Sale.Name, "stock", st.Sale.Stock, "admitted", st.Admitted)
		}
		g.apply(s, st, now)
		next[s.name] = s
	}
	for name, s := range old {
		if _, ok := next[name]; ok {
			continue
		}
		// A sale made by an admin change after this list was read is
		// not in it, and not gone: it stays until a newer list says.
		if s.read.After(read) {
			next[name] = s
			continue
		}
		g.m.forgetSale(name)
		g.log.Info("sale gone", "sale", name)
	}
	g.sales.Store(&next)
	g.m.ledgerUp.Set(1)
	g.ready.Store(true)
	g.m.lineHeld.Set(float64(g.heldTickets()))
	g.m.limiterKeys.WithLabelValues("ip").Set(float64(g.ipLim.Len()))
	g.m.limiterKeys.WithLabelValues("buyer").Set(float64(g.buyLim.Len()))
	// Eviction totals live in the limiters; the counters follow them.
	for i, ev := range [2]uint64{g.ipLim.Evicted(), g.buyLim.Evicted()} {
		g.m.limiterEvict.WithLabelValues([2]string{"ip", "buyer"}[i]).Add(float64(ev - g.evictedSeen[i]))
		g.evictedSeen[i] = ev
	}
}

// UpdateSale applies one sale's fresh state, as after an admin change.
func (g *Gate) UpdateSale(st ledger.SaleState) {
	g.updates.Lock()
	defer g.updates.Unlock()
	old := *g.sales.Load()
	s := old[st.Sale.Name]
	if s == nil {
		s = newSale(st.Sale, g.render, g.m)
		next := make(map[string]*sale, len(old)+1)
		for k, v := range old {
			next[k] = v
		}
		next[s.name] = s
		g.sales.Store(&next)
	}
	g.apply(s, st, g.now())
}

func (g *Gate) apply(s *sale, st ledger.SaleState, now time.Time) {
	if st.Read.Before(s.read) {
		return // read before the state applied last: an admin change may be newer
	}
	s.read = st.Read
	cfg := st.Sale
	s.cfg.Store(&cfg)
	s.setSchema(&cfg)
	limiter.SetRate(s.limiter, cfg.Rate, cfg.Burst)
	prevDrained := s.drained.Load()
	// After a drain's crash its orders decided but not acked count as
	// pending until they are redelivered; the decisions stream knows they
	// are done, so the queue is never deeper than admitted minus decided.
	admitted := st.Admitted // for the gauges: never below the orders decided
	if dc, ok := g.confirmed.(decidedCounter); ok {
		if n, err := dc.DecidedCount(context.Background(), s.name); err == nil && n >= 0 {
			st.Pending = min(st.Pending, st.Admitted-min(st.Admitted, uint64(n)))
			st.Drained = st.Admitted - st.Pending
			admitted = max(admitted, uint64(n))
		}
	}
	// Orders this gate stored after the read are not in it: with the
	// counts overwritten they were forgotten until the next refresh, and
	// a queue bound let that many more in (TestRefreshKeepsLaterAdmits).
	// A sale removed and made again has a new stream, numbered from 1.
	if !st.Created.IsZero() && !st.Created.Equal(s.streamCreated) {
		if !s.streamCreated.IsZero() {
			s.lastSeq.Store(0)
		}
		s.streamCreated = st.Created
	}
	if last := s.lastSeq.Load(); st.LastSeq > 0 && last > st.LastSeq {
		st.Admitted += last - st.LastSeq
		st.Pending += last - st.LastSeq
		admitted = max(admitted, st.Admitted)
	}
	s.admitted.Store(int64(st.Admitted))
	s.pending.Store(int64(st.Pending))
	s.drained.Store(int64(st.Drained))
	s.released.Store(st.Released)
	s.soldOut.Store(st.SoldOut())
	s.draining.Store(st.Draining)
	s.replication.Store(st.Replication)
	g.applyVariants(s, st)
	s.hasLine.Store(st.Line || cfg.WaitingRoom)
	if s.hasLine.Load() && !s.lineSeries.Swap(true) {
		g.m.initLine(s.name)
	}
	switch {
	case st.Draining:
		s.warnedNoDrain = false
	case st.Pending > 0 && !s.warnedNoDrain:
		s.warnedNoDrain = true
		g.log.Warn("orders wait and no drain is attached to the sale: they stay queued until one starts (sluice serve without --no-drain, or sluice drain)",
			"sale", s.name, "queued", st.Pending)
	}
	if !s.lastSeen.IsZero() {
		if dt := now.Sub(s.lastSeen).Seconds(); dt > 0 {
			inst := float64(int64(st.Drained)-prevDrained) / dt
			if inst < 0 {
				inst = 0
			}
			r := 0.7*s.rate() + 0.3*inst
			if r < minDrainRate {
				r = 0 // an average decaying towards zero is zero, not 5e-324
			}
			s.drainRate.Store(math.Float64bits(r))
			if r > math.Float64frombits(s.drainPeak.Load()) {
				s.drainPeak.Store(math.Float64bits(r)) // refresh goroutine only
			}
		}
	}
	s.lastSeen = now

	name := s.name
	g.m.stock.WithLabelValues(name).Set(float64(cfg.Stock))
	g.m.remaining.WithLabelValues(name).Set(float64(remainingOf(cfg, st, admitted)))
	g.m.released.WithLabelValues(name).Set(float64(st.Released))
	g.m.admitted.WithLabelValues(name).Set(float64(admitted))
	g.m.queueDepth.WithLabelValues(name).Set(float64(st.Pending))
	g.m.queueBound.WithLabelValues(name).Set(float64(s.queueBound(&cfg)))
	g.m.backendRate.WithLabelValues(name).Set(cfg.BackendRate)
	g.m.maxWait.WithLabelValues(name).Set(cfg.MaxWait.Seconds())
	g.m.drainRate.WithLabelValues(name).Set(s.rate())
	g.m.saleRate.WithLabelValues(name).Set(cfg.Rate)
	wait, known := s.wait(st.Pending)
	if !known {
		wait = math.NaN()
	}
	g.m.wait.WithLabelValues(name).Set(wait)
	if g.confirmed != nil {
		if n, err := g.confirmed.ConfirmedCount(context.Background(), name); err == nil {
			g.m.confirmed.WithLabelValues(name).Set(float64(n))
		}
	}
	state := stateOf(s, now)
	g.m.soldOut.WithLabelValues(name).Set(b2f(st.SoldOut()))
	for _, x := range []string{"upcoming", "open", "sold_out", "closed"} {
		g.m.state.WithLabelValues(name, x).Set(b2f(x == state))
	}
}

// remainingOf is the stock no admitted order takes: a sale with
// variants' is the sum of its variants' (each at most its own).
func remainingOf(cfg ledger.Sale, st ledger.SaleState, admitted uint64) int64 {
	if !cfg.HasVariants() {
		return max(0, cfg.Stock+st.Released-int64(admitted))
	}
	var n int64
	for _, v := range st.Variants {
		n += v.Remaining
	}
	return n
}

// decidedCounter tells how many of a sale's orders the drain decided;
// the confirmed counter (the decisions tracker) is one when it can.
type decidedCounter interface {
	DecidedCount(ctx context.Context, sale string) (int64, error)
}

// minDrainRate is the smallest drain rate the gate reports, orders/s:
// below it the drain is taken as stopped and waits are unknown.
const minDrainRate = 1e-3

// stateOf is the sale's state as the API reports it.
func stateOf(s *sale, now time.Time) string {
	switch s.cfg.Load().PhaseAt(now) {
	case ledger.Upcoming:
		return "upcoming"
	case ledger.Closed:
		return "closed"
	}
	if s.soldOut.Load() {
		return "sold_out"
	}
	return "open"
}

// retryAfterQueue estimates when the queue will have room: the excess
// over the bound at the observed drain rate, between 1 and 60 seconds.
func retryAfterQueue(s *sale, bound int64) time.Duration {
	excess := float64(s.pending.Load()-bound) + 1
	r, ok := s.drainRateKnown()
	if !ok {
		return 10 * time.Second // nothing drains: no honest estimate
	}
	secs := math.Ceil(excess / r)
	return time.Duration(min(60, max(1, secs))) * time.Second
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// MaxBodyBytes is the bound on an order body, default applied: the
// server in front of the gate refuses a larger body before reading it.
func (g *Gate) MaxBodyBytes() int64 { return g.cfg.MaxBodyBytes }

// refuse marks the ledger as refusing writes after a publish failed with
// cause (a full store, or a time-out that follows one).
func (g *Gate) refuse(now time.Time, cause error) {
	if g.refusing.CompareAndSwap(0, now.UnixNano()) {
		g.log.Warn("JetStream is refusing orders: answering 503 at once and probing the store until it takes writes again",
			"err", cause)
	}
}

// LedgerRefusing says the gate answers orders 503 because the ledger
// refused writes; the gate's owner probes the store meanwhile.
func (g *Gate) LedgerRefusing() bool { return g.refusing.Load() != 0 }

// ServerErrors is how many answers of the public API had a 5xx status
// since the gate was made, over every route: the gate's own failures
// (JetStream not answering, the ledger refusing writes, a line that
// cannot be read). Refusals of a request (sold out, busy, already
// ordered, bad input: 4xx) are answers the gate means, not errors.
func (g *Gate) ServerErrors() uint64 { return g.serverErrors.Load() }

// StoreProbed is called when a probe write was stored while the ledger
// refuses: the next order tries the ledger, one at a time, and the first
// one it stores ends the refusal. (A sale's stream can refuse when the
// probe stream does not: nats-server stops writing a stream whose file
// hit a write error until it restarts.)
func (g *Gate) StoreProbed() {
	if g.LedgerRefusing() {
		g.probed.Store(true)
	}
}

// admitTrial says whether an order may go to the ledger while it refuses.
func (g *Gate) admitTrial() bool {
	return g.probed.Load() && g.trial.CompareAndSwap(false, true)
}

// endTrial takes the outcome of a trial order's publish.
func (g *Gate) endTrial(now time.Time, err error) {
	defer g.trial.Store(false)
	if err != nil && (errors.Is(err, ledger.ErrStoreFull) || errors.Is(err, context.DeadlineExceeded)) {
		g.probed.Store(false) // still refusing: wait for the next probe
		return
	}
	g.probed.Store(false)
	if since := g.refusing.Swap(0); since != 0 {
		g.log.Info("JetStream takes orders again", "refused_for", now.Sub(time.Unix(0, since)).Round(time.Millisecond))
	}
}
