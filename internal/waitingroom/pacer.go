package waitingroom

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"sluice/internal/eventlog"
	"sluice/internal/ledger"
	"sluice/internal/waitingroom/line"
)

// The pace's margins. A pass is checked on one gate's clock and dated by
// JetStream's, so the gates' clocks may differ by ClockSkew; a claim
// JetStream stored in time may reach a book ClaimGrace after its window
// closed; an order checked just before its pass expired may take the
// publish timeout to reach the ledger (PassGrace). An item is held that
// much longer, so that nobody holding a valid pass finds it gone.
const (
	ClockSkew  = 2 * time.Second
	ClaimGrace = ClockSkew + time.Second
)

// PassGrace is how long after its expiry a pass still holds its item for
// the pace: an order checked just before the expiry may take the publish
// timeout to reach the ledger, and the clocks may differ by ClockSkew.
func PassGrace(publishTimeout time.Duration) time.Duration { return publishTimeout + ClockSkew }

// MaxOffersAhead bounds the turns offered beyond the let-in, in stocks: a
// line whose holders almost all left is offered ten stocks at once, no
// more.
const MaxOffersAhead = 10

// PaceSale is what the pacer needs of a sale with a line, from the gate
// that serves it (admission.Gate.PaceSales): its settings and what its
// last refresh says of its orders.
type PaceSale struct {
	Sale ledger.Sale
	// Queued are the orders admitted and not yet decided by the backend.
	Queued int64
	// Budget is how many orders the backend can take in the window the
	// line plans for: passes outstanding plus orders queued stay within
	// it (line.Pace.Budget).
	Budget int64
	// DrainRate is the drain's observed rate, orders/s; 0 when unknown.
	DrainRate float64
	// StockGuess is the stock left as the last refresh saw it: for the
	// estimates only, when the stream cannot be read.
	StockGuess int64
}

// PaceSales lists the sales with a line a gate serves; known is false
// until the gate has read its sales.
type PaceSales interface {
	PaceSales() (sales []PaceSale, known bool)
}

// StockReader reads how many orders a sale's stream takes and holds,
// from JetStream at the call (ledger.Ledger.Stock).
type StockReader interface {
	Stock(ctx context.Context, sale string) (ledger.Stock, error)
}

// Snapshot is a sale's line as the pace saw it last: a poll reads it
// instead of walking the line.
type Snapshot struct {
	line.State
	// Rate is the positions/s the estimates use; 0 when none is known.
	Rate float64
	// Spare is the stock no order and no outstanding pass holds: a ticket
	// further back than that waits for passes to expire or orders to be
	// given back, which no rate foretells.
	Spare int64
	// Reach is how far the next steps are expected to offer: the offered
	// mark the pace would move to now, plus the stock no pass holds.
	// Tickets within it ask often, to claim soon; further back, a drawn
	// ticket comes at its looks (line.Opening), whose claim windows start
	// then, so reach bounds the polls, never a promise.
	Reach int64
}

// Pacer is the pace of every waiting room a gate follows, run at each
// refresh by every gate (Pace): it seals a sale's draw at its start, and
// moves "let in through N, offer through M" on as far as line.Pace says,
// by a compare-and-set on the pace stream, so that whichever gate runs it
// first moves it, and a gate's death leaves the others to go on. It keeps
// each room's Snapshot and the line's metrics. It starts no goroutines:
// its owner calls Pace.
type Pacer struct {
	rooms     *Rooms
	store     *Store
	stock     StockReader
	sales     PaceSales
	m         *Metrics
	log       *slog.Logger
	passGrace time.Duration
	now       func() time.Time
	// warm: every sale with a line had its room open and paced once.
	warm atomic.Bool
	warn eventlog.Log
	seen map[string]bool // sales whose series exist; Pace's goroutine only
	// covered and decided are when this gate last tried a cover record
	// of a sale, and last read its last decision (Pace's goroutine only).
	covered, decided map[string]time.Time
}

// PacerConfig is what a Pacer is made of. Every field is required but
// Logger and Now.
type PacerConfig struct {
	Rooms *Rooms
	Store *Store
	Stock StockReader
	Sales PaceSales
	// Metrics are the line's gauges and counters (NewMetrics).
	Metrics *Metrics
	// PublishTimeout is the gates' longest wait for a PubAck: a pass is
	// held PassGrace(PublishTimeout) past its expiry.
	PublishTimeout time.Duration
	Logger         *slog.Logger
	Now            func() time.Time
}

// NewPacer returns the pacer of the rooms cfg names.
func NewPacer(cfg PacerConfig) *Pacer {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Pacer{rooms: cfg.Rooms, store: cfg.Store, stock: cfg.Stock, sales: cfg.Sales, m: cfg.Metrics,
		log: cfg.Logger, passGrace: PassGrace(cfg.PublishTimeout), now: cfg.Now, seen: map[string]bool{},
		covered: map[string]time.Time{}, decided: map[string]time.Time{}}
}

// Warm says every sale with a line had its room read and paced once,
// the gate's sales known, since the pacer was made: a gate just
// restarted is not ready while its line counters read zero. Once warm, a
// room opened later (a new sale) does not take the gate out of rotation.
func (p *Pacer) Warm() bool { return p.warm.Load() }

// Pace looks at every line once: its snapshot and metrics, the seal of
// its draw, and a step of its pace.
func (p *Pacer) Pace(ctx context.Context) {
	now := p.now()
	sales, warm := p.sales.PaceSales()
	names := make(map[string]bool, len(sales))
	for _, ps := range sales {
		names[ps.Sale.Name] = true
		r := p.rooms.Room(ps.Sale.Name)
		if r == nil {
			warm = false
			continue
		}
		p.paceLine(ctx, ps, r, now)
	}
	for name := range p.seen {
		if !names[name] {
			p.m.forget(name)
			delete(p.seen, name)
			delete(p.covered, name)
			delete(p.decided, name)
		}
	}
	if warm {
		p.warm.Store(true)
	}
}

func (p *Pacer) paceLine(ctx context.Context, ps PaceSale, r *Room, now time.Time) {
	cfg := &ps.Sale
	// The line first, the stock after: every order whose pass this look
	// no longer holds (used, or expired more than passGrace ago) was in
	// the ledger before the stock is read, so the two never count one
	// item twice as free (an order counted neither as held nor as sold).
	st, ahead := r.Book.StateAhead(now, p.passGrace, ClaimGrace, nil)
	// What this look read, for the public line log (Cover): the line
	// applied, then the ledger.
	cover := Cover{Line: r.Book.LineSeq(), PassGrace: p.passGrace, ClaimGrace: ClaimGrace}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	stock, err := p.stock.Stock(rctx, cfg.Name)
	cancel()
	fresh := err == nil
	stockLeft := stock.Left
	if !fresh {
		stockLeft = ps.StockGuess
	}
	cover.Orders, cover.Limit = stock.Orders, stock.Limit
	stepped := false
	defer func() {
		if fresh && !stepped {
			p.cover(ctx, cfg.Name, r, st, cover, now)
		}
	}()
	// The invariant the pace keeps, on every gate at once (each step a
	// compare-and-set on the last): orders in the ledger plus what the
	// turns let in hold never exceed what the sale's stream takes, so
	// whoever holds a valid pass finds an item. Offers run ahead by as
	// many turns as are expected to be claimed (line.Pace.Next).
	pace := line.Pace{
		LetIn:       st.LetIn,
		Offered:     st.Offered,
		Tickets:     st.Positions,
		Outstanding: st.Held,
		Pending:     st.Pending,
		Queued:      ps.Queued,
		Budget:      ps.Budget,
		StockLeft:   stockLeft,
		Ahead:       ahead,
		Claimed:     st.Claimed,
		Lapsed:      st.Lapsed,
		MaxAhead:    MaxOffersAhead * cfg.Capacity(),
	}
	through, offered := pace.Next()
	snap := &Snapshot{State: st, Rate: lineRate(ps, st), Spare: stockLeft - st.Outstanding,
		Reach: min(st.Positions, offered+max(0, stockLeft-st.Outstanding))}
	r.snap.Store(snap)
	if !p.seen[cfg.Name] {
		p.seen[cfg.Name] = true
		p.m.init(cfg.Name)
	}
	p.m.follow(cfg.Name, snap)
	if !cfg.WaitingRoom || st.Closed {
		// The room is off (or its mark says so while this gate's sale is
		// a refresh behind): the line is followed and answers, and moves
		// nobody on until a mark turns it on (line.Book.Mark).
		return
	}
	if !st.Sealed {
		if cfg.StartsAt.IsZero() || !now.Before(cfg.StartsAt) {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := p.store.Seal(sctx, *cfg, r); err != nil {
				p.log.Warn("cannot seal the draw yet", "sale", cfg.Name, "err", err)
			} else {
				p.log.Info("draw sealed", "sale", cfg.Name, "drawn", r.Book.State(now, 0).Drawn)
			}
			cancel()
		}
		return
	}
	if !fresh || cfg.PhaseAt(now) != ledger.Open {
		return
	}
	if through <= st.LetIn && offered <= st.Offered {
		return
	}
	stepped = true
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	// The sale's last decision, read after its stock: the stock given
	// back that the limit counts is in the records the step covers.
	if cover.Decided, err = p.store.DecidedSeq(actx, cfg.Name); err == nil {
		p.decided[cfg.Name] = now
		err = p.store.AdvanceLine(actx, cfg.Name, Step{Through: through, Offered: offered,
			TTL: cfg.PassLifetime(), Window: cfg.ClaimLifetime(), Cover: cover}, st.LastAdvance)
	}
	cancel()
	switch {
	case err == nil, errors.Is(err, ErrPaceMoved):
	default:
		p.warn.Note(now, func(n int) {
			p.log.Warn("cannot move the line on", "sale", cfg.Name, "tries", n, "err", err)
		})
	}
}

// The pace of cover records: at most one a coverEvery per sale from a
// gate, and the sale's last decision read at least every decidedEvery.
const (
	coverEvery   = time.Second
	decidedEvery = 5 * time.Second
)

// cover records a cover record of the sale's pace when the public line
// log has records waiting for one (records of the line, the ledger or
// the decisions no step or cover record placed yet), or lapses and
// expiries that no record of the pace is dated past yet. It moves
// nothing; a compare-and-set on the last cover record makes the gates'
// tries one record.
func (p *Pacer) cover(ctx context.Context, sale string, r *Room, st line.State, c Cover, now time.Time) {
	if now.Sub(p.covered[sale]) < coverEvery {
		return
	}
	pl := r.Placed()
	due := c.Line > pl.Covers.LineSeq || c.Orders > pl.Covers.OrderSeq
	if !due && !pl.PaceAt.IsZero() && pl.PaceAt.Before(now) {
		// Time alone moved the line since the pace's last record: a
		// lapse or an expiry waits for a record dated past it.
		was := r.Book.StateWith(pl.PaceAt, p.passGrace, ClaimGrace)
		due = was.Lapsed != st.Lapsed || was.Held != st.Held
	}
	if !due && now.Sub(p.decided[sale]) < decidedEvery {
		return
	}
	p.covered[sale] = now
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	decided, err := p.store.DecidedSeq(cctx, sale)
	if err != nil {
		return
	}
	p.decided[sale] = now
	if c.Decided = decided; !due && decided <= pl.Covers.DecisionSeq {
		return
	}
	if err := p.store.RecordCover(cctx, sale, c, pl.CoverSeq); err != nil && !errors.Is(err, ErrPaceMoved) {
		p.warn.Note(now, func(n int) {
			p.log.Warn("cannot record a cover of the line's log", "sale", sale, "tries", n, "err", err)
		})
	}
}

// lineRate is the pace the estimates assume, positions/s. The line moves
// on as orders drain (and passes expire), so: what it let in over the
// last RateWindow once it has moved that long; before, the drain's rate
// (the first step lets a whole budget in at once, which says nothing of
// the pace); else what it let in, else backend_rate; 0 unknown.
func lineRate(ps PaceSale, st line.State) float64 {
	if st.Rate > 0 && st.Moving >= line.RateWindow {
		return st.Rate
	}
	if ps.DrainRate > 0 {
		return ps.DrainRate
	}
	if st.Rate > 0 {
		return st.Rate
	}
	return ps.Sale.BackendRate
}
