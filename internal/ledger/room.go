package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/room/line"
)

// Room is one gate's copy of a sale's waiting room: its keys, and the
// line and pace streams followed into a line.Book. Every gate follows the
// same records in the same order, so every gate answers the same
// positions and passes.
type Room struct {
	Sale string
	Book *line.Book
	Keys LineKeys

	mu  sync.Mutex
	ccs []jetstream.ConsumeContext
}

// OpenRoom reads a sale's keys, replays its line and pace and follows
// them. It returns once the records stored so far are applied.
func (l *Ledger) OpenRoom(ctx context.Context, sale string, log *slog.Logger) (*Room, error) {
	// Each JetStream call is bounded on its own: in a cluster that is
	// starting, a request can go unanswered, and waiting out ctx (minutes,
	// for a long replay) kept the room closed that long.
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, roomCallTimeout) }
	cctx, cancel := call()
	defer cancel()
	keys, err := l.LineKeys(cctx, sale)
	if err != nil {
		return nil, err
	}
	r := &Room{Sale: sale, Keys: keys, Book: line.NewBook(keys.Seed)}
	lineStr, err := l.js.Stream(cctx, LineStreamName(sale))
	if err != nil {
		return nil, fmt.Errorf("%w: line of %s: %w", ErrUnavailable, sale, err)
	}
	paceStr, err := l.js.Stream(cctx, PaceStream)
	if err != nil {
		return nil, fmt.Errorf("%w: pace stream: %w", ErrUnavailable, err)
	}
	lineLast := lineStr.CachedInfo().State.LastSeq
	var paceLast uint64
	for _, subj := range PaceSubjects(sale) {
		m, err := paceStr.GetLastMsgForSubject(cctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return nil, fmt.Errorf("%w: pace of %s: %w", ErrUnavailable, sale, err)
		default:
			paceLast = max(paceLast, m.Sequence)
		}
	}
	paceCaught := make(chan struct{})
	var paceOnce sync.Once
	if paceLast == 0 {
		paceOnce.Do(func() { close(paceCaught) })
	}
	drawSubj := LineDrawSubject(sale)
	rejoinPrefix := lineSubjectPrefix(sale) + "r."
	cancel()
	cctx, cancel = call()
	defer cancel()
	lineCons, err := l.js.OrderedConsumer(cctx, LineStreamName(sale), jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("%w: follow the line of %s: %w", ErrUnavailable, sale, err)
	}
	// Large pulls: a gate replays the whole line when it starts.
	cc, err := lineCons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err != nil {
			return
		}
		seq := meta.Sequence.Stream
		if msg.Subject() == drawSubj {
			r.Book.SealBefore(seq)
			r.Book.Skip(seq)
			return
		}
		if strings.HasPrefix(msg.Subject(), rejoinPrefix) {
			if key, ok := rejoinOf(msg.Data()); ok {
				r.Book.Rejoin(key, seq)
			} else {
				r.Book.Skip(seq)
			}
			return
		}
		t, ok := ticketOf(msg.Data())
		key := line.TicketKey{}
		if ok {
			key, ok = line.KeyOf(t.Ticket)
		}
		if !ok {
			log.Warn("line: skipping a malformed ticket", "sale", sale, "seq", seq)
			r.Book.Skip(seq)
			return
		}
		r.Book.Add(key, t.Buyer, seq, meta.Timestamp)
	}, jetstream.PullMaxMessages(4096))
	if err != nil {
		return nil, fmt.Errorf("%w: follow the line of %s: %w", ErrUnavailable, sale, err)
	}
	r.ccs = append(r.ccs, cc)
	cancel()
	cctx, cancel = call()
	defer cancel()
	paceCons, err := l.js.OrderedConsumer(cctx, PaceStream, jetstream.OrderedConsumerConfig{FilterSubjects: PaceSubjects(sale)})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("%w: follow the pace of %s: %w", ErrUnavailable, sale, err)
	}
	cc, err = paceCons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err != nil {
			return
		}
		ApplyPace(r.Book, sale, msg.Subject(), msg.Data(), meta.Timestamp, meta.Sequence.Stream)
		if meta.Sequence.Stream >= paceLast {
			paceOnce.Do(func() { close(paceCaught) })
		}
	})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("%w: follow the pace of %s: %w", ErrUnavailable, sale, err)
	}
	r.ccs = append(r.ccs, cc)
	// A replay that stops moving (a consumer on a stream still without a
	// leader, as in a cluster that is starting) is given up after
	// replayStall, not after ctx's minutes: the next refresh tries again.
	if err := r.replayLine(ctx, lineLast); err != nil {
		r.Close()
		return nil, fmt.Errorf("%w: replay the line of %s: %w", ErrUnavailable, sale, err)
	}
	select {
	case <-paceCaught:
	case <-time.After(replayStall):
		r.Close()
		return nil, fmt.Errorf("%w: replay the pace of %s: nothing for %v", ErrUnavailable, sale, replayStall)
	case <-ctx.Done():
		r.Close()
		return nil, fmt.Errorf("ledger: replay the pace of %s: %w", sale, ctx.Err())
	}
	return r, nil
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

// Rooms are the waiting rooms a gate follows, one per waiting-room sale.
// Sync opens and closes them as sales change. It is safe for concurrent
// use.
type Rooms struct {
	l   *Ledger
	log *slog.Logger

	mu      sync.Mutex
	rooms   map[string]*Room
	opening map[string]chan struct{} // closed when the opening ends
	warned  time.Time
	wg      sync.WaitGroup
	closed  bool
	all     atomic.Pointer[map[string]*Room]
}

// NewRooms returns no rooms yet; Sync opens them.
func NewRooms(l *Ledger, log *slog.Logger) *Rooms {
	rs := &Rooms{l: l, log: log, rooms: make(map[string]*Room), opening: make(map[string]chan struct{})}
	empty := map[string]*Room{}
	rs.all.Store(&empty)
	return rs
}

// Room is the sale's room, or nil while it is not open (no waiting room,
// or its records are still being read).
func (rs *Rooms) Room(sale string) *Room { return (*rs.all.Load())[sale] }

// Sync opens a room for each of these sales, the sales with a line (in
// the background: a long line takes a while to read), and closes the
// rooms of the others. A room turned off is still followed: its tickets
// answer and its turns and passes hold their items (line.Book.Mark).
func (rs *Rooms) Sync(sales []string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return
	}
	want := make(map[string]bool, len(sales))
	for _, name := range sales {
		want[name] = true
		if _, busy := rs.opening[name]; busy || rs.rooms[name] != nil {
			continue
		}
		rs.opening[name] = make(chan struct{})
		rs.wg.Add(1)
		go rs.open(name)
	}
	changed := false
	for name, r := range rs.rooms {
		if !want[name] {
			r.Close()
			delete(rs.rooms, name)
			changed = true
		}
	}
	if changed {
		rs.publish()
	}
}

// Lines are the names of the sales with a line among states.
func Lines(states []SaleState) []string {
	var out []string
	for _, st := range states {
		if st.Line || st.Sale.WaitingRoom {
			out = append(out, st.Sale.Name)
		}
	}
	return out
}

// Open opens the rooms of these sales (with a line) now, before the gate
// serves (or an admin change answers), so that the next answers know the
// lines: a room Sync is opening meanwhile is waited for. A room that
// cannot be opened yet is left to Sync.
func (rs *Rooms) Open(ctx context.Context, sales []string) {
	for _, name := range sales {
		rs.mu.Lock()
		done, opening := rs.opening[name]
		mine := !opening && rs.rooms[name] == nil && !rs.closed
		if mine {
			rs.opening[name] = make(chan struct{})
			rs.wg.Add(1)
		}
		rs.mu.Unlock()
		switch {
		case mine:
			rs.openWith(ctx, name)
		case opening:
			select {
			case <-done:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (rs *Rooms) open(sale string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs.openWith(ctx, sale)
}

func (rs *Rooms) openWith(ctx context.Context, sale string) {
	defer rs.wg.Done()
	r, err := rs.l.OpenRoom(ctx, sale, rs.log)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	// Those waiting in Open wake once the room is published, or not.
	defer close(rs.opening[sale])
	delete(rs.opening, sale)
	if err != nil {
		if time.Since(rs.warned) > time.Minute {
			rs.warned = time.Now()
			rs.log.Warn("cannot open the waiting room yet; retrying at every refresh", "sale", sale, "err", err)
		}
		return
	}
	if rs.closed {
		r.Close()
		return
	}
	rs.rooms[sale] = r
	rs.publish()
	rs.log.Info("waiting room open", "sale", sale, "tickets", r.Book.Len())
}

// publish makes the rooms visible to Room; rs.mu is held.
func (rs *Rooms) publish() {
	next := make(map[string]*Room, len(rs.rooms))
	for k, v := range rs.rooms {
		next[k] = v
	}
	rs.all.Store(&next)
}

// Reset closes every room; the next Sync opens them again, replaying
// their records: for when the JetStream server was restarted.
func (rs *Rooms) Reset() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, r := range rs.rooms {
		r.Close()
	}
	rs.rooms = map[string]*Room{}
	rs.publish()
}

// Close closes every room and waits for those being opened.
func (rs *Rooms) Close() {
	rs.mu.Lock()
	rs.closed = true
	for _, r := range rs.rooms {
		r.Close()
	}
	rs.rooms = map[string]*Room{}
	rs.publish()
	rs.mu.Unlock()
	rs.wg.Wait()
}
