package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/line"
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
	keys, err := l.LineKeys(ctx, sale)
	if err != nil {
		return nil, err
	}
	r := &Room{Sale: sale, Keys: keys, Book: line.NewBook(keys.Seed)}
	lineStr, err := l.js.Stream(ctx, LineStreamName(sale))
	if err != nil {
		return nil, fmt.Errorf("%w: line of %s: %w", ErrUnavailable, sale, err)
	}
	paceStr, err := l.js.Stream(ctx, PaceStream)
	if err != nil {
		return nil, fmt.Errorf("%w: pace stream: %w", ErrUnavailable, err)
	}
	lineLast := lineStr.CachedInfo().State.LastSeq
	var paceLast uint64
	for _, subj := range []string{PaceLetInSubject(sale), PaceClaimSubject(sale), PaceUsedSubject(sale)} {
		// Each look bounded on its own: a stream still electing its
		// leader fails this opening, which the next refresh tries again,
		// instead of holding it for the whole opening's time.
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := paceStr.GetLastMsgForSubject(gctx, subj)
		cancel()
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
	lineCons, err := l.js.OrderedConsumer(ctx, LineStreamName(sale), jetstream.OrderedConsumerConfig{})
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
	letIn, claimed, used := PaceLetInSubject(sale), PaceClaimSubject(sale), PaceUsedSubject(sale)
	paceCons, err := l.js.OrderedConsumer(ctx, PaceStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{letIn, claimed, used}})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("%w: follow the pace of %s: %w", ErrUnavailable, sale, err)
	}
	cc, err = paceCons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err != nil {
			return
		}
		switch msg.Subject() {
		case letIn:
			if a, ok := advanceOf(msg.Data(), meta.Timestamp, meta.Sequence.Stream); ok {
				r.Book.Advance(a)
			}
		case claimed:
			var c claimRecord
			if json.Unmarshal(msg.Data(), &c) == nil {
				if key, ok := line.KeyOf(c.Ticket); ok {
					r.Book.Claim(key, c.Position, meta.Timestamp, meta.Sequence.Stream)
				}
			}
		case used:
			if key, ok := line.KeyOf(strings.TrimSpace(string(msg.Data()))); ok {
				r.Book.Use(key)
			}
		}
		if meta.Sequence.Stream >= paceLast {
			paceOnce.Do(func() { close(paceCaught) })
		}
	})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("%w: follow the pace of %s: %w", ErrUnavailable, sale, err)
	}
	r.ccs = append(r.ccs, cc)
	if err := r.WaitApplied(ctx, lineLast); err != nil {
		r.Close()
		return nil, fmt.Errorf("ledger: replay the line of %s: %w", sale, err)
	}
	select {
	case <-paceCaught:
	case <-ctx.Done():
		r.Close()
		return nil, fmt.Errorf("ledger: replay the pace of %s: %w", sale, ctx.Err())
	}
	return r, nil
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

// Sync opens a room for each waiting-room sale that has none (in the
// background: a long line takes a while to read) and closes the rooms of
// the sales gone or without a waiting room now.
func (rs *Rooms) Sync(sales []Sale) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return
	}
	want := make(map[string]bool, len(sales))
	for _, s := range sales {
		if !s.WaitingRoom {
			continue
		}
		want[s.Name] = true
		if _, busy := rs.opening[s.Name]; busy || rs.rooms[s.Name] != nil {
			continue
		}
		rs.opening[s.Name] = make(chan struct{})
		rs.wg.Add(1)
		go rs.open(s.Name)
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

// Open opens the rooms of the waiting-room sales now, before the gate
// serves (or an admin change answers), so that the next answers know the
// lines: a room Sync is opening meanwhile is waited for. A room that
// cannot be opened yet is left to Sync.
func (rs *Rooms) Open(ctx context.Context, sales []Sale) {
	for _, s := range sales {
		if !s.WaitingRoom {
			continue
		}
		rs.mu.Lock()
		done, opening := rs.opening[s.Name]
		mine := !opening && rs.rooms[s.Name] == nil && !rs.closed
		if mine {
			rs.opening[s.Name] = make(chan struct{})
			rs.wg.Add(1)
		}
		rs.mu.Unlock()
		switch {
		case mine:
			rs.openWith(ctx, s.Name)
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
