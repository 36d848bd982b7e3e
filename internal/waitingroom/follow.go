package waitingroom

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/ledger"
	"sluice/internal/streams"
	"sluice/internal/waitingroom/line"
	"sluice/internal/waitingroom/linelog"
)

// Room is one gate's copy of a sale's waiting room: its keys, and the
// line and pace streams followed into a line.Book. Every gate follows the
// same records in the same order, so every gate answers the same
// positions and passes.
type Room struct {
	Sale string
	Book *line.Book
	Keys Keys

	// snap is the line as the pace saw it last (Pacer); nil before.
	snap atomic.Pointer[Snapshot]
	// placed is what the pace's records applied say of the public line
	// log (Placed), for the pacer's cover records.
	placed atomic.Pointer[Placed]

	mu  sync.Mutex
	ccs []jetstream.ConsumeContext
}

// Snapshot is the line as the pace saw it last (every refresh), nil
// before its first look (or of a nil room): a poll reads it instead of
// walking the line.
func (r *Room) Snapshot() *Snapshot {
	if r == nil {
		return nil
	}
	return r.snap.Load()
}

// OpenRoom reads a sale's keys, replays its line and pace and follows
// them. It returns once the records stored so far are applied.
func (st *Store) OpenRoom(ctx context.Context, sale string, log *slog.Logger) (*Room, error) {
	// Each JetStream call is bounded on its own: in a cluster that is
	// starting, a request can go unanswered, and waiting out ctx (minutes,
	// for a long replay) kept the room closed that long.
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, roomCallTimeout) }
	cctx, cancel := call()
	defer cancel()
	keys, err := st.Keys(cctx, sale)
	if err != nil {
		return nil, err
	}
	r := &Room{Sale: sale, Keys: keys, Book: line.NewBook(keys.Seed)}
	lineStr, err := st.js.Stream(cctx, streams.LineName(sale))
	if err != nil {
		return nil, fmt.Errorf("%w: line of %s: %w", ledger.ErrUnavailable, sale, err)
	}
	paceStr, err := st.js.Stream(cctx, streams.Pace)
	if err != nil {
		return nil, fmt.Errorf("%w: pace stream: %w", ledger.ErrUnavailable, err)
	}
	lineLast := lineStr.CachedInfo().State.LastSeq
	var paceLast uint64
	for _, subj := range PaceSubjects(sale) {
		m, err := paceStr.GetLastMsgForSubject(cctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return nil, fmt.Errorf("%w: pace of %s: %w", ledger.ErrUnavailable, sale, err)
		default:
			paceLast = max(paceLast, m.Sequence)
		}
	}
	paceCaught := make(chan struct{})
	var paceOnce sync.Once
	if paceLast == 0 {
		paceOnce.Do(func() { close(paceCaught) })
	}
	cancel()
	cctx, cancel = call()
	defer cancel()
	lineCons, err := st.js.OrderedConsumer(cctx, streams.LineName(sale), jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("%w: follow the line of %s: %w", ledger.ErrUnavailable, sale, err)
	}
	// Large pulls: a gate replays the whole line when it starts.
	cc, err := lineCons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err != nil {
			return
		}
		if !ApplyLine(r.Book, sale, msg.Subject(), msg.Data(), meta.Timestamp, meta.Sequence.Stream) {
			log.Warn("line: skipping a malformed record", "sale", sale, "seq", meta.Sequence.Stream)
		}
	}, jetstream.PullMaxMessages(4096))
	if err != nil {
		return nil, fmt.Errorf("%w: follow the line of %s: %w", ledger.ErrUnavailable, sale, err)
	}
	r.ccs = append(r.ccs, cc)
	cancel()
	cctx, cancel = call()
	defer cancel()
	paceCons, err := st.js.OrderedConsumer(cctx, streams.Pace, jetstream.OrderedConsumerConfig{FilterSubjects: PaceSubjects(sale)})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("%w: follow the pace of %s: %w", ledger.ErrUnavailable, sale, err)
	}
	cc, err = paceCons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err != nil {
			return
		}
		ApplyPace(r.Book, sale, msg.Subject(), msg.Data(), meta.Timestamp, meta.Sequence.Stream)
		r.notePace(msg.Subject(), msg.Data(), meta.Timestamp, meta.Sequence.Stream)
		if meta.Sequence.Stream >= paceLast {
			paceOnce.Do(func() { close(paceCaught) })
		}
	})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("%w: follow the pace of %s: %w", ledger.ErrUnavailable, sale, err)
	}
	r.ccs = append(r.ccs, cc)
	// A replay that stops moving (a consumer on a stream still without a
	// leader, as in a cluster that is starting) is given up after
	// replayStall, not after ctx's minutes: the next refresh tries again.
	if err := r.replayLine(ctx, lineLast); err != nil {
		r.Close()
		return nil, fmt.Errorf("%w: replay the line of %s: %w", ledger.ErrUnavailable, sale, err)
	}
	select {
	case <-paceCaught:
	case <-time.After(replayStall):
		r.Close()
		return nil, fmt.Errorf("%w: replay the pace of %s: nothing for %v", ledger.ErrUnavailable, sale, replayStall)
	case <-ctx.Done():
		r.Close()
		return nil, fmt.Errorf("waitingroom: replay the pace of %s: %w", sale, ctx.Err())
	}
	return r, nil
}

// Placed is what the sale's pace records applied so far say of its
// public line log (linelog): the furthest records of the line, the
// ledger and the decisions a step or cover record placed, the last cover
// record (for the next compare-and-set) and the time of the pace's last
// record, past which the log's lapses and expiries are not written yet.
type Placed struct {
	Covers   linelog.Covers
	CoverSeq uint64
	PaceAt   time.Time
}

// Placed is what the pace's records applied say of the log; the zero
// value before any.
func (r *Room) Placed() Placed {
	if p := r.placed.Load(); p != nil {
		return *p
	}
	return Placed{}
}

// notePace notes a pace record of the sale for Placed (the pace's
// consumer only).
func (r *Room) notePace(subject string, data []byte, at time.Time, seq uint64) {
	p := r.Placed()
	if at.After(p.PaceAt) {
		p.PaceAt = at
	}
	switch subject {
	case PaceCoverSubject(r.Sale):
		p.CoverSeq = seq
		fallthrough
	case PaceLetInSubject(r.Sale):
		if c, ok := coverOf(data); ok {
			p.Covers = linelog.Covers{LineSeq: max(p.Covers.LineSeq, c.LineSeq), OrderSeq: max(p.Covers.OrderSeq, c.OrderSeq),
				DecisionSeq: max(p.Covers.DecisionSeq, c.DecisionSeq)}
		}
	}
	r.placed.Store(&p)
}

// replayStall is how long a room's replay may go without applying a
// record before it is given up; roomCallTimeout bounds each JetStream
// call of the opening.
const (
	replayStall     = 10 * time.Second
	roomCallTimeout = 5 * time.Second
)

// replayLine waits until the book has applied the line through seq,
// failing when nothing more is applied for replayStall.
func (r *Room) replayLine(ctx context.Context, seq uint64) error {
	stall := time.NewTimer(replayStall)
	defer stall.Stop()
	for {
		applied, more := r.Book.Applied()
		if applied >= seq {
			return nil
		}
		select {
		case <-more:
			stall.Reset(replayStall)
		case <-stall.C:
			return fmt.Errorf("stalled at %d of %d", applied, seq)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitApplied returns once the book has applied the line stream through
// seq, or ctx ends.
func (r *Room) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		applied, more := r.Book.Applied()
		if applied >= seq {
			return nil
		}
		select {
		case <-more:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops following the streams.
func (r *Room) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, cc := range r.ccs {
		cc.Stop()
	}
	for _, cc := range r.ccs {
		select {
		case <-cc.Closed():
		case <-time.After(5 * time.Second):
		}
	}
	r.ccs = nil
}
