package waitingroom

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

	"sluice/consumer"
	"sluice/internal/ledger"
	"sluice/internal/orderstatus"
	"sluice/internal/streams"
	"sluice/internal/waitingroom/line"
	"sluice/internal/waitingroom/linelog"
)

// LineLog is a gate's copy of a sale's public line log (package
// linelog): the sale's line, pace, ledger and decisions followed, each
// record without its secrets (tickets by their hash, no buyer, no pass),
// put in the log's one order (a record of another stream right before
// the step or cover record of the pace that covers it) and replayed,
// each written record kept as the JSON the log serves. Every gate
// writes the same records in the same order. Rooms opens it at its first
// read and closes it once unread for LogIdle: a gate holds a log only
// while someone reads it. It is safe for concurrent use.
type LineLog struct {
	Sale string
	log  *slog.Logger
	keys Keys

	mu  sync.Mutex
	rep *linelog.Replay
	// Records read and not placed yet, by stream.
	line                  []lineRec
	decided, orders, pace []linelog.Entry
	// seen are the last records read of each stream; want those stored
	// when the log was opened: caught up once seen reaches want.
	seen, want struct{ line, pace, orders, decided uint64 }
	caught     bool
	// cover is the furthest the records placed so far cover.
	cover linelog.Covers
	// The log: record i and a comma are buf[ends[i-1]:ends[i]]. Bytes
	// written are never changed (buf only grows), so that a page served
	// is a slice of buf, no copy.
	buf    []byte
	ends   []int
	out    []linelog.Entry
	warned bool
	// draw is the draw mark's opening, read with it.
	draw drawRecord

	readAt atomic.Int64 // unix ns of the last read (Touch)
	ccs    []jetstream.ConsumeContext
}

// lineRec is a line record read and not placed yet, small: a line holds
// millions.
type lineRec struct {
	seq  uint64
	at   int64
	kind linelog.Kind
	hash [32]byte
}

// LogIdle is how long a gate keeps a sale's log unread.
const LogIdle = 10 * time.Minute

// OpenLog starts following the records of a sale's public line log. It
// returns at once; Ready says when the records stored at the call are
// in.
func (st *Store) OpenLog(ctx context.Context, sale string, keys Keys, log *slog.Logger) (*LineLog, error) {
	l := &LineLog{Sale: sale, log: log, keys: keys, rep: linelog.NewReplay(keys.Seed)}
	l.readAt.Store(time.Now().UnixNano())
	if err := l.targets(ctx, st.js); err != nil {
		return nil, err
	}
	l.write(linelog.Entry{At: keys.Created, Kind: linelog.KindCommitment, Commitment: keys.Seed.Commitment()})
	l.check()
	follow := []struct {
		stream   string
		subjects []string
		take     func(jetstream.Msg, jetstream.MsgMetadata)
	}{
		{streams.LineName(sale), nil, l.takeLine},
		{streams.Pace, PaceSubjects(sale), l.takePace},
		{ledger.StreamName(sale), nil, l.takeOrder},
		{streams.Decisions, []string{streams.DecisionSubject(sale)}, l.takeDecision},
	}
	for _, f := range follow {
		if f.stream == streams.Decisions && l.want.decided == 0 {
			if _, err := st.js.Stream(ctx, streams.Decisions); errors.Is(err, jetstream.ErrStreamNotFound) {
				continue // no drain has decided anything yet
			}
		}
		cons, err := st.js.OrderedConsumer(ctx, f.stream, jetstream.OrderedConsumerConfig{FilterSubjects: f.subjects})
		if err == nil {
			var cc jetstream.ConsumeContext
			cc, err = cons.Consume(func(msg jetstream.Msg) {
				if meta, err := msg.Metadata(); err == nil {
					f.take(msg, *meta)
				}
			}, jetstream.PullMaxMessages(4096))
			if err == nil {
				l.ccs = append(l.ccs, cc)
			}
		}
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("%w: follow %s for the line log of %s: %w", ledger.ErrUnavailable, f.stream, sale, err)
		}
	}
	return l, nil
}

// targets reads the last record of each stream now: the log is ready
// once it has read them.
func (l *LineLog) targets(ctx context.Context, js jetstream.JetStream) error {
	str, err := js.Stream(ctx, streams.LineName(l.Sale))
	if err != nil {
		return fmt.Errorf("%w: line of %s: %w", ledger.ErrUnavailable, l.Sale, err)
	}
	l.want.line = str.CachedInfo().State.LastSeq
	if str, err = js.Stream(ctx, ledger.StreamName(l.Sale)); err != nil {
		return fmt.Errorf("%w: ledger of %s: %w", ledger.ErrUnavailable, l.Sale, err)
	}
	l.want.orders = str.CachedInfo().State.LastSeq
	last := func(stream, subj string) (uint64, error) {
		str, err := js.Stream(ctx, stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		m, err := str.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		return m.Sequence, nil
	}
	for _, subj := range PaceSubjects(l.Sale) {
		seq, err := last(streams.Pace, subj)
		if err != nil {
			return fmt.Errorf("%w: pace of %s: %w", ledger.ErrUnavailable, l.Sale, err)
		}
		l.want.pace = max(l.want.pace, seq)
	}
	if l.want.decided, err = last(streams.Decisions, streams.DecisionSubject(l.Sale)); err != nil {
		return fmt.Errorf("%w: decisions of %s: %w", ledger.ErrUnavailable, l.Sale, err)
	}
	return nil
}

func (l *LineLog) takeLine(msg jetstream.Msg, meta jetstream.MsgMetadata) {
	rec := lineRec{seq: meta.Sequence.Stream, at: meta.Timestamp.UnixNano(), kind: linelog.KindUnread}
	var draw drawRecord
	subj := msg.Subject()
	switch {
	case subj == LineDrawSubject(l.Sale):
		rec.kind = linelog.KindDraw
		_ = json.Unmarshal(msg.Data(), &draw) // a mark that says nothing more still seals, opening nothing
	case strings.HasPrefix(subj, streams.LineSubjectPrefix(l.Sale)+"r."):
		if k, ok := rejoinOf(msg.Data()); ok {
			rec.kind, rec.hash = linelog.KindRejoin, k.Hash()
		}
	default:
		if t, ok := ticketOf(msg.Data()); ok {
			if k, ok := line.KeyOf(t.Ticket); ok {
				rec.kind, rec.hash = linelog.KindJoin, k.Hash()
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if rec.seq <= l.seen.line {
		return
	}
	l.seen.line = rec.seq
	if rec.kind == linelog.KindDraw {
		l.draw = draw
	}
	l.line = append(l.line, rec)
	l.merge()
}

func (l *LineLog) takePace(msg jetstream.Msg, meta jetstream.MsgMetadata) {
	e := paceEntry(l.Sale, msg.Subject(), msg.Data(), meta.Timestamp, meta.Sequence.Stream)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.PaceSeq <= l.seen.pace {
		return
	}
	l.seen.pace = e.PaceSeq
	l.pace = append(l.pace, e)
	l.merge()
}

func (l *LineLog) takeOrder(msg jetstream.Msg, meta jetstream.MsgMetadata) {
	e := linelog.Entry{At: meta.Timestamp.UTC(), Kind: linelog.KindOrder, OrderSeq: meta.Sequence.Stream}
	// An order placed with a pass is deduplicated by its ticket
	// (admission: "t|" + the pass's ticket id): the log shows its hash.
	if id, ok := strings.CutPrefix(msg.Headers().Get(jetstream.MsgIDHeader), "t|"); ok {
		e.Ticket = line.TicketHash(id)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.OrderSeq <= l.seen.orders {
		return
	}
	l.seen.orders = e.OrderSeq
	l.orders = append(l.orders, e)
	l.merge()
}

func (l *LineLog) takeDecision(msg jetstream.Msg, meta jetstream.MsgMetadata) {
	e := decisionEntry(msg.Data(), meta.Timestamp, meta.Sequence.Stream)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.DecisionSeq <= l.seen.decided {
		return
	}
	l.seen.decided = e.DecisionSeq
	l.decided = append(l.decided, e)
	l.merge()
}

// merge writes the pace's records read, each after the records of the
// other streams it covers, as far as those are read; l.mu is held.
func (l *LineLog) merge() {
	for len(l.pace) > 0 {
		p := l.pace[0]
		if c := p.Covers; c != nil {
			if l.seen.line < c.LineSeq || l.seen.orders < c.OrderSeq || l.seen.decided < c.DecisionSeq {
				break // read on
			}
			l.cover = linelog.Covers{LineSeq: max(l.cover.LineSeq, c.LineSeq), OrderSeq: max(l.cover.OrderSeq, c.OrderSeq),
				DecisionSeq: max(l.cover.DecisionSeq, c.DecisionSeq)}
			l.place()
		}
		l.write(p)
		l.pace[0] = linelog.Entry{}
		l.pace = l.pace[1:]
	}
	l.check()
}

// place writes the records of the other streams covered so far: the
// line's, then the decisions', then the orders'; l.mu is held.
func (l *LineLog) place() {
	n := 0
	for ; n < len(l.line) && l.line[n].seq <= l.cover.LineSeq; n++ {
		l.write(l.lineEntry(l.line[n]))
	}
	l.line = l.line[n:]
	for n = 0; n < len(l.decided) && l.decided[n].DecisionSeq <= l.cover.DecisionSeq; n++ {
		l.write(l.decided[n])
	}
	l.decided = l.decided[n:]
	for n = 0; n < len(l.orders) && l.orders[n].OrderSeq <= l.cover.OrderSeq; n++ {
		l.write(l.orders[n])
	}
	l.orders = l.orders[n:]
}

func (l *LineLog) lineEntry(r lineRec) linelog.Entry {
	e := linelog.Entry{At: time.Unix(0, r.at).UTC(), Kind: r.kind, LineSeq: r.seq}
	switch r.kind {
	case linelog.KindDraw:
		e.Seed, e.PollRate, e.Front = l.keys.Seed.Hex(), l.draw.PollRate, l.draw.Front
	case linelog.KindJoin, linelog.KindRejoin:
		e.Ticket = linelog.HashString(r.hash)
	}
	return e
}

// write replays a record into the log; l.mu is held.
func (l *LineLog) write(e linelog.Entry) {
	l.out = l.rep.Apply(l.out[:0], e)
	for _, o := range l.out {
		b, _ := json.Marshal(o)
		l.buf = append(append(l.buf, b...), ',')
		l.ends = append(l.ends, len(l.buf))
	}
	if v := l.rep.Violation(); v != nil && !l.warned {
		l.warned = true
		l.log.Error("the line's log breaks a rule of the line", "sale", l.Sale, "violation", v.Error())
	}
}

// check notes the log caught up with the records stored when it was
// opened; l.mu is held.
func (l *LineLog) check() {
	s, w := l.seen, l.want
	l.caught = l.caught || (s.line >= w.line && s.pace >= w.pace && s.orders >= w.orders && s.decided >= w.decided)
}

// Ready says the log has read the records stored when it was opened.
func (l *LineLog) Ready() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.caught
}

// Touch notes a read of the log at now.
func (l *LineLog) Touch(now time.Time) { l.readAt.Store(now.UnixNano()) }

// idle says the log was not read for LogIdle at now.
func (l *LineLog) idle(now time.Time) bool {
	return now.Sub(time.Unix(0, l.readAt.Load())) > LogIdle
}

// Page is records from+1..from+n of the log, n at most limit, as JSON
// objects separated by commas, and how many records the log has. The
// bytes are the log's own, shared by every read and never changed (the
// log grows only at its end): a read of a page copies nothing.
func (l *LineLog) Page(from, limit int) ([]byte, int, int) {
	l.mu.Lock()
	buf, ends := l.buf, l.ends
	l.mu.Unlock()
	total := len(ends)
	if from >= total || limit <= 0 {
		return nil, 0, total
	}
	to := min(total, from+limit)
	start := 0
	if from > 0 {
		start = ends[from-1]
	}
	return buf[start : ends[to-1]-1 : ends[to-1]-1], to - from, total
}

// Close stops following the records.
func (l *LineLog) Close() {
	for _, cc := range l.ccs {
		cc.Stop()
	}
	for _, cc := range l.ccs {
		select {
		case <-cc.Closed():
		case <-time.After(5 * time.Second):
		}
	}
	l.ccs = nil
}

// paceEntry is a pace record of the sale as the log publishes it.
func paceEntry(sale, subject string, data []byte, at time.Time, seq uint64) linelog.Entry {
	e := linelog.Entry{At: at.UTC(), Kind: linelog.KindUnread, PaceSeq: seq}
	cover := func() bool {
		var c coverRecord
		if json.Unmarshal(data, &c) != nil {
			return false
		}
		e.Covers, e.PassGraceMillis, e.ClaimGraceMillis = c.Covers, c.PassGraceMillis, c.ClaimGraceMillis
		if c.Limit > 0 {
			e.Limit = &c.Limit
		}
		return true
	}
	switch subject {
	case PaceLetInSubject(sale):
		if a, ok := advanceOf(data, at, seq); ok && cover() {
			e.Kind, e.Through, e.TTLMillis, e.WindowMillis = linelog.KindStep, a.Through, a.TTL.Milliseconds(), a.Window.Milliseconds()
			e.Offered = a.Offered
		}
	case PaceCoverSubject(sale):
		if cover() && e.Covers != nil {
			e.Kind = linelog.KindCover
		}
	case PaceClaimSubject(sale):
		var c claimRecord
		if json.Unmarshal(data, &c) == nil {
			if k, ok := line.KeyOf(c.Ticket); ok {
				h := k.Hash()
				e.Kind, e.Ticket, e.Position = linelog.KindClaim, linelog.HashString(h), c.Position
			}
		}
	case PaceUsedSubject(sale):
		if k, ok := line.KeyOf(strings.TrimSpace(string(data))); ok {
			h := k.Hash()
			e.Kind, e.Ticket = linelog.KindUse, linelog.HashString(h)
		}
	case PaceRoomSubject(sale):
		if open, ok := RoomMarkOf(data); ok {
			e.Kind, e.Open = linelog.KindRoom, &open
		}
	case PaceStockSubject(sale):
		var s stockRecord
		if json.Unmarshal(data, &s) == nil && s.Stock >= 0 && s.Overbook >= 0 {
			e.Kind, e.Stock = linelog.KindStock, &s.Stock
			if s.Overbook > 0 {
				e.Overbook = &s.Overbook
			}
		}
	}
	if e.Kind == linelog.KindUnread {
		e.Covers, e.Limit, e.PassGraceMillis, e.ClaimGraceMillis = nil, nil, 0, 0
	}
	return e
}

// decisionEntry is a decision of the sale as the log publishes it: the
// orders, their outcomes and reasons; never a buyer. A reason is one of
// a few words (publicReason): what a backend or the drain said is free
// text, which may name a buyer or an address of the shop's.
func decisionEntry(data []byte, at time.Time, seq uint64) linelog.Entry {
	var d orderstatus.Decision
	if json.Unmarshal(data, &d) != nil {
		return linelog.Entry{At: at.UTC(), Kind: linelog.KindUnread, DecisionSeq: seq}
	}
	e := linelog.Entry{At: at.UTC(), Kind: linelog.KindDecision, DecisionSeq: seq, Confirmed: d.Confirmed}
	for _, o := range []struct {
		status string
		from   []orderstatus.Outcome
		to     *[]linelog.Outcome
	}{{orderstatus.Rejected, d.Rejected, &e.Rejected}, {orderstatus.Failed, d.Failed, &e.Failed},
		{orderstatus.Cancelled, d.Cancelled, &e.Cancelled}} {
		for _, x := range o.from {
			*o.to = append(*o.to, linelog.Outcome{OrderSeq: x.Seq, Reason: publicReason(o.status, x.Reason)})
		}
	}
	return e
}

// publicReason is the reason the log publishes for an order that ended
// with status: a rejection for want of stock or of a second order keeps
// its word (sold_out, which gives nothing back, and already_ordered);
// any other is its status alone.
func publicReason(status, reason string) string {
	if status == orderstatus.Rejected && (reason == consumer.ReasonSoldOut || reason == consumer.ReasonAlreadyOrdered) {
		return reason
	}
	return status
}
