package waitingroom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/ledger"
	"sluice/internal/streams"
	"sluice/internal/waitingroom/line"
)

// Store writes and reads the waiting rooms' records in JetStream. It is
// safe for concurrent use.
type Store struct {
	js   jetstream.JetStream
	opts streams.Options
}

// NewStore returns a Store over js.
func NewStore(js jetstream.JetStream, opts streams.Options) *Store {
	return &Store{js: js, opts: opts}
}

// EnsureLine provisions a sale's line stream and what every waiting room
// shares (the pace stream, the spent proofs, the address slots, the keys
// bucket), and makes the sale's keys the first time, keeping them after.
// ledger.EnsureSale calls it (ledger.Lines) before the sale says it has
// a waiting room.
func (st *Store) EnsureLine(ctx context.Context, sale string) error {
	for _, cfg := range []jetstream.StreamConfig{streams.LineConfig(sale, st.opts), streams.PaceConfig(st.opts),
		streams.ProofsConfig(st.opts), streams.AddressesConfig(st.opts)} {
		if _, err := st.js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("waitingroom: provision %s: %w", cfg.Name, err)
		}
	}
	kv, err := st.keysBucket(ctx)
	if err != nil {
		return err
	}
	seed, err := line.NewSeed()
	if err != nil {
		return err
	}
	secret, err := line.NewSeed()
	if err != nil {
		return err
	}
	b, _ := json.Marshal(keysRecord{Seed: seed.Hex(), Secret: secret.Hex(), Created: time.Now().UTC()})
	if _, err := kv.Create(ctx, sale, b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("waitingroom: make the keys of %s: %w", sale, err)
	}
	return nil
}

func (st *Store) keysBucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := st.js.KeyValue(ctx, streams.Keys)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = st.js.CreateOrUpdateKeyValue(ctx, streams.KeysConfig(st.opts))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: keys bucket: %w", ledger.ErrUnavailable, err)
	}
	return kv, nil
}

// Keys reads a sale's seed and pass secret.
func (st *Store) Keys(ctx context.Context, sale string) (Keys, error) {
	kv, err := st.keysBucket(ctx)
	if err != nil {
		return Keys{}, err
	}
	e, err := kv.Get(ctx, sale)
	if err != nil {
		return Keys{}, fmt.Errorf("%w: keys of %s: %w", ledger.ErrUnavailable, sale, err)
	}
	var r keysRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Keys{}, fmt.Errorf("waitingroom: keys of %s: %w", sale, err)
	}
	seed, err := line.ParseSeed(r.Seed)
	if err != nil {
		return Keys{}, err
	}
	secret, err := line.ParseSeed(r.Secret)
	if err != nil {
		return Keys{}, err
	}
	return Keys{Seed: seed, Secret: secret[:], Created: r.Created}, nil
}

// Keys are a sale's waiting-room secrets: the draw's seed (committed
// before the start, revealed after) and the key its passes are signed
// with.
type Keys struct {
	Seed   line.Seed
	Secret []byte
	// Created is when they were made: when the room was first turned on.
	Created time.Time
}

type keysRecord struct {
	Seed    string    `json:"seed"`
	Secret  string    `json:"secret"`
	Created time.Time `json:"created"`
}

// MarkRoom makes the sale's last room mark say open, recording a mark
// when it says otherwise (or, for a room turned off, when there is none
// yet). The mark is a compare-and-set on the last one, so that two
// admins' changes are recorded in the order they were made.
func (st *Store) MarkRoom(ctx context.Context, sale string, open bool) error {
	str, err := st.js.Stream(ctx, streams.Pace)
	if err != nil {
		return fmt.Errorf("%w: pace stream: %w", ledger.ErrUnavailable, err)
	}
	subj := PaceRoomSubject(sale)
	for {
		last, err := str.GetLastMsgForSubject(ctx, subj)
		var after uint64
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			if open {
				return nil // never turned off
			}
		case err != nil:
			return fmt.Errorf("%w: the room mark of %s: %w", ledger.ErrUnavailable, sale, err)
		default:
			if was, ok := RoomMarkOf(last.Data); ok && was == open {
				return nil
			}
			after = last.Sequence
		}
		data, _ := json.Marshal(roomRecord{Open: open})
		_, err = st.js.Publish(ctx, subj, data, jetstream.WithExpectLastSequencePerSubject(after), jetstream.WithExpectStream(streams.Pace))
		if streams.WrongLastSequence(err) {
			continue // another change came first: read it
		}
		if err != nil {
			return fmt.Errorf("%w: mark the room of %s: %w", ledger.ErrUnavailable, sale, err)
		}
		return nil
	}
}

// Joined is a ticket the line stream holds.
type Joined struct {
	Ticket string
	Buyer  string
	Seq    uint64
	At     time.Time
}

// Join gives the buyer a ticket in the sale's line, or the one they hold
// (created false). It fails with ErrLineFull, or an error matching
// ledger.ErrUnavailable.
func (st *Store) Join(ctx context.Context, sale, buyer string) (Joined, bool, error) {
	id, err := line.NewTicketID()
	if err != nil {
		return Joined{}, false, err
	}
	data, _ := json.Marshal(ticketRecord{Ticket: id, Buyer: buyer})
	subj := LineBuyerSubject(sale, buyer)
	// No message id: the subject's limit of one ticket answers a second
	// join (a retry too), and a line of a million keeps no million ids in
	// the server's duplicate window. No header either: only the sale's
	// line stream takes its subjects, and a replay reads no header.
	ack, err := st.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: data})
	switch streams.RefusalOf(err) {
	case streams.RefusedFull:
		return Joined{}, false, ErrLineFull
	case streams.RefusedSubjectFull:
		j, err := st.lineMsg(ctx, sale, subj)
		return j, false, err
	case streams.RefusedNoRoom:
		return Joined{}, false, fmt.Errorf("%w: %w: %w", ledger.ErrUnavailable, ledger.ErrStoreFull, err)
	}
	if err != nil {
		return Joined{}, false, fmt.Errorf("%w: join: %w", ledger.ErrUnavailable, err)
	}
	return Joined{Ticket: id, Buyer: buyer, Seq: ack.Sequence}, true, nil
}

// HeldTicket reads the ticket buyer holds in sale's line, if any: a join
// asks before it spends what buys a ticket (a proof of work, an address
// slot), so that a holder's join returns the ticket and spends nothing.
func (st *Store) HeldTicket(ctx context.Context, sale, buyer string) (Joined, bool, error) {
	j, err := st.lineMsg(ctx, sale, LineBuyerSubject(sale, buyer))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Joined{}, false, nil
	}
	return j, err == nil, err
}

// lineMsg reads a ticket back by its buyer's subject.
func (st *Store) lineMsg(ctx context.Context, sale, subj string) (Joined, error) {
	str, err := st.js.Stream(ctx, streams.LineName(sale))
	if err != nil {
		return Joined{}, fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
	}
	raw, err := str.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		return Joined{}, fmt.Errorf("%w: read back the ticket: %w", ledger.ErrUnavailable, err)
	}
	var r ticketRecord
	if err := json.Unmarshal(raw.Data, &r); err != nil {
		return Joined{}, fmt.Errorf("waitingroom: ticket record: %w", err)
	}
	return Joined{Ticket: r.Ticket, Buyer: r.Buyer, Seq: raw.Sequence, At: raw.Time}, nil
}

// RejoinLine puts the buyer's ticket, whose turn lapsed, at the back of
// the sale's line, once: the record's subject is the buyer's and holds
// one message. It returns the record's line sequence, or that of the one
// stored already.
func (st *Store) RejoinLine(ctx context.Context, sale, buyer, ticket string) (uint64, error) {
	data, _ := json.Marshal(rejoinRecord{Rejoin: ticket})
	subj := LineRejoinSubject(sale, buyer)
	ack, err := st.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: data}, jetstream.WithExpectStream(streams.LineName(sale)))
	switch streams.RefusalOf(err) {
	case streams.RefusedSubjectFull:
		j, err := st.lineMsg(ctx, sale, subj)
		return j.Seq, err
	case streams.RefusedFull:
		return 0, ErrLineFull
	case streams.RefusedNoRoom:
		return 0, fmt.Errorf("%w: %w: %w", ledger.ErrUnavailable, ledger.ErrStoreFull, err)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: rejoin: %w", ledger.ErrUnavailable, err)
	}
	return ack.Sequence, nil
}

// SealDraw writes the draw mark, once: the tickets before it are drawn.
// full is true when the line is full and the mark has no room: then no
// ticket can join any more, and every ticket is drawn.
func (st *Store) SealDraw(ctx context.Context, sale string, pollRate float64, front int64) (full bool, err error) {
	data, _ := json.Marshal(drawRecord{Draw: true, PollRate: pollRate, Front: front})
	_, err = st.js.PublishMsg(ctx, &nats.Msg{Subject: LineDrawSubject(sale), Data: data},
		jetstream.WithMsgID("draw"), jetstream.WithExpectStream(streams.LineName(sale)))
	switch {
	case err == nil:
		return false, nil
	case streams.RefusalOf(err) == streams.RefusedSubjectFull:
		return false, nil // sealed already
	case streams.RefusalOf(err) == streams.RefusedFull:
		return true, nil
	}
	return false, fmt.Errorf("%w: seal the draw of %s: %w", ledger.ErrUnavailable, sale, err)
}

// Seal writes the sale's draw mark, the line to open at the sale's poll
// rate with a front of four times its capacity (line.Opening), and waits until r, the gate's copy of its line, is
// sealed: a line full to its limit has no room for the mark, and is
// sealed after its last ticket, opening nothing.
func (st *Store) Seal(ctx context.Context, s ledger.Sale, r *Room) error {
	sale := s.Name
	full, err := st.SealDraw(ctx, sale, s.LinePollRate(), line.FrontOf(s.Capacity()))
	if err != nil {
		return err
	}
	if full {
		last, err := st.LineLastSeq(ctx, sale)
		if err != nil {
			return err
		}
		r.Book.SealBefore(last+1, line.Opening{})
	}
	for {
		seq, sealing := r.Book.Sealing()
		if sealing {
			return r.WaitApplied(ctx, seq-1)
		}
		_, more := r.Book.Applied()
		select {
		case <-more:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// LineLastSeq is the last sequence in a sale's line stream.
func (st *Store) LineLastSeq(ctx context.Context, sale string) (uint64, error) {
	str, err := st.js.Stream(ctx, streams.LineName(sale))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
	}
	return str.CachedInfo().State.LastSeq, nil
}

// Step is one step of a sale's pace: let in through Through (the passes
// living TTL), offer through Offered (the turns to be claimed within
// Window), computed from what Cover says was read.
type Step struct {
	Through, Offered int64
	TTL, Window      time.Duration
	Cover            Cover
}

// AdvanceLine records a step of the pace if the pace's last record is
// still after (0: none yet); ErrPaceMoved otherwise.
func (st *Store) AdvanceLine(ctx context.Context, sale string, s Step, after uint64) error {
	data, _ := json.Marshal(advanceRecord{Through: s.Through, Offered: max(s.Offered, s.Through),
		TTLMillis: max(1, s.TTL.Milliseconds()), WindowMillis: max(0, s.Window.Milliseconds()), coverRecord: s.Cover.record()})
	_, err := st.js.Publish(ctx, PaceLetInSubject(sale), data,
		jetstream.WithExpectLastSequencePerSubject(after), jetstream.WithExpectStream(streams.Pace))
	if streams.WrongLastSequence(err) {
		return ErrPaceMoved
	}
	if err != nil {
		return fmt.Errorf("%w: advance the line of %s: %w", ledger.ErrUnavailable, sale, err)
	}
	return nil
}

// RecordCover records a cover record of the sale's pace if its last one
// is still after (0: none yet); ErrPaceMoved otherwise. It moves nothing:
// it places the records c covers in the public line log (linelog), and
// dates the log's lapses and expiries, when no step does.
func (st *Store) RecordCover(ctx context.Context, sale string, c Cover, after uint64) error {
	data, _ := json.Marshal(c.record())
	_, err := st.js.Publish(ctx, PaceCoverSubject(sale), data,
		jetstream.WithExpectLastSequencePerSubject(after), jetstream.WithExpectStream(streams.Pace))
	if streams.WrongLastSequence(err) {
		return ErrPaceMoved
	}
	if err != nil {
		return fmt.Errorf("%w: record a cover of %s: %w", ledger.ErrUnavailable, sale, err)
	}
	return nil
}

// DecidedSeq is the sequence of the sale's last decision in the
// decisions stream (0: none, or no decisions stream).
func (st *Store) DecidedSeq(ctx context.Context, sale string) (uint64, error) {
	str, err := st.js.Stream(ctx, streams.Decisions)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: decisions stream: %w", ledger.ErrUnavailable, err)
	}
	m, err := str.GetLastMsgForSubject(ctx, streams.DecisionSubject(sale))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("%w: the last decision of %s: %w", ledger.ErrUnavailable, sale, err)
	}
	return m.Sequence, nil
}

// MarkStock makes the sale's last stock record say stock and overbook,
// recording one when it says otherwise (or there is none): ledger's
// EnsureSale calls it before the sale takes a new stock, so that the
// public line log shows every change where it happened. A compare-and-
// set on the last, as MarkRoom.
func (st *Store) MarkStock(ctx context.Context, sale string, stock, overbook int64) error {
	str, err := st.js.Stream(ctx, streams.Pace)
	if err != nil {
		return fmt.Errorf("%w: pace stream: %w", ledger.ErrUnavailable, err)
	}
	subj := PaceStockSubject(sale)
	want := stockRecord{Stock: stock, Overbook: overbook}
	for {
		var after uint64
		last, err := str.GetLastMsgForSubject(ctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return fmt.Errorf("%w: the stock record of %s: %w", ledger.ErrUnavailable, sale, err)
		default:
			var was stockRecord
			if json.Unmarshal(last.Data, &was) == nil && was == want {
				return nil
			}
			after = last.Sequence
		}
		data, _ := json.Marshal(want)
		_, err = st.js.Publish(ctx, subj, data, jetstream.WithExpectLastSequencePerSubject(after), jetstream.WithExpectStream(streams.Pace))
		if streams.WrongLastSequence(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: record the stock of %s: %w", ledger.ErrUnavailable, sale, err)
		}
		return nil
	}
}

// ClaimTurn records that the holder of ticket claimed the turn of
// position pos, and returns once it is stored. Its message id makes the
// claims of one turn at several gates (or a retry) one record.
func (st *Store) ClaimTurn(ctx context.Context, sale, ticket string, pos int64) error {
	data, _ := json.Marshal(claimRecord{Ticket: ticket, Position: pos})
	_, err := st.js.Publish(ctx, PaceClaimSubject(sale), data,
		jetstream.WithMsgID("c|"+sale+"|"+ticket+"|"+strconv.FormatInt(pos, 10)), jetstream.WithExpectStream(streams.Pace))
	if err != nil {
		return fmt.Errorf("%w: claim a turn of %s: %w", ledger.ErrUnavailable, sale, err)
	}
	return nil
}

// UsePass records that a ticket's pass was used for an order, without
// waiting for the store: the order itself is durable, and a record lost
// leaves the pass counted until it expires, which only slows the pace.
func (st *Store) UsePass(sale, ticket string) {
	_, _ = st.js.PublishAsync(PaceUsedSubject(sale), []byte(ticket), jetstream.WithMsgID("u|"+sale+"|"+ticket))
}
