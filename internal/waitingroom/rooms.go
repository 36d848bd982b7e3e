package waitingroom

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/ledger"
)

// Rooms are the waiting rooms a gate follows, one per waiting-room sale.
// Sync opens and closes them as sales change. It is safe for concurrent
// use.
type Rooms struct {
	st  *Store
	log *slog.Logger

	mu      sync.Mutex
	rooms   map[string]*Room
	opening map[string]chan struct{} // closed when the opening ends
	warned  time.Time
	wg      sync.WaitGroup
	closed  bool
	all     atomic.Pointer[map[string]*Room]
	// logs are the public line logs being read (LineLog), opening those
	// being opened.
	logs        map[string]*LineLog
	logsOpening map[string]bool
}

// NewRooms returns no rooms yet; Sync opens them.
func NewRooms(st *Store, log *slog.Logger) *Rooms {
	rs := &Rooms{st: st, log: log, rooms: make(map[string]*Room), opening: make(map[string]chan struct{}),
		logs: make(map[string]*LineLog), logsOpening: make(map[string]bool)}
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
	now := time.Now()
	for name, l := range rs.logs {
		if !want[name] || l.idle(now) {
			l.Close()
			delete(rs.logs, name)
		}
	}
}

// Log is the sale's public line log at this gate, nil while it is being
// opened: the first read of a sale's log opens it (in the background),
// and it is closed once unread for LogIdle. It reads the records until
// LineLog.Ready.
func (rs *Rooms) Log(sale string) *LineLog {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if l := rs.logs[sale]; l != nil {
		l.Touch(time.Now())
		return l
	}
	r := rs.rooms[sale]
	if r == nil || rs.closed || rs.logsOpening[sale] {
		return nil
	}
	rs.logsOpening[sale] = true
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l, err := rs.st.OpenLog(ctx, sale, r.Keys, rs.log)
		rs.mu.Lock()
		defer rs.mu.Unlock()
		delete(rs.logsOpening, sale)
		switch {
		case err != nil:
			rs.log.Warn("cannot open the line's log yet; at the next read", "sale", sale, "err", err)
		case rs.closed || rs.rooms[sale] == nil:
			l.Close()
		default:
			rs.logs[sale] = l
		}
	}()
	return nil
}

// Lines are the names of the sales with a line among states.
func Lines(states []ledger.SaleState) []string {
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
	r, err := rs.st.OpenRoom(ctx, sale, rs.log)
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
	rs.closeLogs()
}

// closeLogs closes every log; rs.mu is held.
func (rs *Rooms) closeLogs() {
	for name, l := range rs.logs {
		l.Close()
		delete(rs.logs, name)
	}
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
	rs.closeLogs()
	rs.mu.Unlock()
	rs.wg.Wait()
}
