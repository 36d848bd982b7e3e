package ledger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/room/line"
)

// The waiting room's JetStream records. Each sale with a waiting room has
// a line stream, SLUICE_LINE_<sale>: one subject per buyer holding that
// buyer's ticket (at most one message per subject, so a buyer holds one
// place, as the broker enforces), and the draw mark, whose sequence seals
// the draw: the tickets before it are drawn. The pace stream, shared by
// every sale, holds the advances of "let in through position N" (each
// one a compare-and-set on the last) and the passes used. The keys bucket
// holds each sale's seed and pass secret, made once when the waiting room
// is turned on.
const (
	PaceStream = "SLUICE_PACE"
	KeysBucket = "SLUICE_LINE_KEYS"
)

// LineStreamName is the name of a sale's line stream.
func LineStreamName(sale string) string { return "SLUICE_LINE_" + sale }

func lineSubjectPrefix(sale string) string { return "sluice.line." + sale + "." }

// LineBuyerSubject is the subject of a buyer's ticket.
func LineBuyerSubject(sale, buyer string) string {
	return lineSubjectPrefix(sale) + "b." + base64.RawURLEncoding.EncodeToString([]byte(buyer))
}

// LineRejoinSubject is the subject of a buyer's return to the back of
// the line after their turn lapsed: at most one message, so once.
func LineRejoinSubject(sale, buyer string) string {
	return lineSubjectPrefix(sale) + "r." + base64.RawURLEncoding.EncodeToString([]byte(buyer))
}

// LineDrawSubject is the subject of the draw mark.
func LineDrawSubject(sale string) string { return lineSubjectPrefix(sale) + "draw" }

// PaceLetInSubject, PaceClaimSubject, PaceUsedSubject and
// PaceRoomSubject are a sale's subjects in the pace stream: its steps,
// claims, passes used and the marks that turn its room off and on.
func PaceLetInSubject(sale string) string { return "sluice.pace." + sale + ".letin" }
func PaceClaimSubject(sale string) string { return "sluice.pace." + sale + ".claim" }
func PaceUsedSubject(sale string) string  { return "sluice.pace." + sale + ".used" }
func PaceRoomSubject(sale string) string  { return "sluice.pace." + sale + ".room" }

// PaceSubjects are a sale's subjects in the pace stream.
func PaceSubjects(sale string) []string {
	return []string{PaceLetInSubject(sale), PaceClaimSubject(sale), PaceUsedSubject(sale), PaceRoomSubject(sale)}
}

// ApplyPace applies a record of the sale's pace (a message of the pace
// stream on subject, stored at at with sequence seq) to its book: what
// every gate's room does with each, and what a recomputation of the
// line from its records does. A record it cannot read changes nothing.
func ApplyPace(b *line.Book, sale, subject string, data []byte, at time.Time, seq uint64) {
	switch subject {
	case PaceLetInSubject(sale):
		if a, ok := advanceOf(data, at, seq); ok {
			b.Advance(a)
		}
	case PaceClaimSubject(sale):
		var c claimRecord
		if json.Unmarshal(data, &c) == nil {
			if key, ok := line.KeyOf(c.Ticket); ok {
				b.Claim(key, c.Position, at, seq)
			}
		}
	case PaceUsedSubject(sale):
		if key, ok := line.KeyOf(strings.TrimSpace(string(data))); ok {
			b.Use(key)
		}
	case PaceRoomSubject(sale):
		if open, ok := RoomMarkOf(data); ok {
			b.Mark(open, seq)
		}
	}
}

// roomRecord turns a sale's room off (Open false) or on (line.Book.Mark).
type roomRecord struct {
	Open bool `json:"open"`
}

// RoomMarkOf reads a room mark.
func RoomMarkOf(data []byte) (open, ok bool) {
	var r struct {
		Open *bool `json:"open"`
	}
	if json.Unmarshal(data, &r) != nil || r.Open == nil {
		return false, false
	}
	return *r.Open, true
}

// markRoom makes the sale's last room mark say open, recording a mark
// when it says otherwise (or, for a room turned off, when there is none
// yet). The mark is a compare-and-set on the last one, so that two
// admins' changes are recorded in the order they were made.
func (l *Ledger) markRoom(ctx context.Context, sale string, open bool) error {
	str, err := l.js.Stream(ctx, PaceStream)
	if err != nil {
		return fmt.Errorf("%w: pace stream: %w", ErrUnavailable, err)
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
			return fmt.Errorf("%w: the room mark of %s: %w", ErrUnavailable, sale, err)
		default:
			if was, ok := RoomMarkOf(last.Data); ok && was == open {
				return nil
			}
			after = last.Sequence
		}
		data, _ := json.Marshal(roomRecord{Open: open})
		_, err = l.js.Publish(ctx, subj, data, jetstream.WithExpectLastSequencePerSubject(after), jetstream.WithExpectStream(PaceStream))
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			continue // another change came first: read it
		}
		if err != nil {
			return fmt.Errorf("%w: mark the room of %s: %w", ErrUnavailable, sale, err)
		}
		return nil
	}
}

// ErrLineFull: the line holds line_limit tickets.
var ErrLineFull = errors.New("ledger: the line is full")

// LineKeys are a sale's waiting-room secrets.
type LineKeys struct {
	Seed   line.Seed
	Secret []byte
}

type keysRecord struct {
	Seed    string    `json:"seed"`
	Secret  string    `json:"secret"`
	Created time.Time `json:"created"`
}

// ticketRecord is a ticket as the line stream stores it.
type ticketRecord struct {
	Ticket string `json:"ticket"`
	Buyer  string `json:"buyer"`
}

// ticketOf reads a ticket record. Records are written by json.Marshal of
// a ticketRecord, so the common one is read without reflection (a gate
// replays a million of them when it starts); anything else, escapes
// included, goes through encoding/json.
func ticketOf(data []byte) (ticketRecord, bool) {
	const head, mid = `{"ticket":"`, `","buyer":"`
	if n := len(head) + line.TicketIDLen + len(mid); len(data) > n+2 &&
		string(data[:len(head)]) == head && string(data[len(head)+line.TicketIDLen:n]) == mid &&
		string(data[len(data)-2:]) == `"}` && plainJSON(data[len(head):n-len(mid)]) && plainJSON(data[n:len(data)-2]) {
		return ticketRecord{Ticket: string(data[len(head) : len(head)+line.TicketIDLen]), Buyer: string(data[n : len(data)-2])}, true
	}
	var r ticketRecord
	err := json.Unmarshal(data, &r)
	return r, err == nil
}

// plainJSON says whether b is a JSON string's contents that read as they
// are: printable ASCII without quotes or escapes.
func plainJSON(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// advanceRecord is a step of the pace: let in through Through, offer
// through Offered. TTLMillis is the pass lifetime the step's passes were
// given and WindowMillis the claim window of the turns it offered: kept
// in the record so that every gate, and every replay after a change of
// a setting, dates them alike. A record without TTLMillis (written
// before it was kept) is read with DefaultPassTTL; one without Offered
// offers what it lets in, and one without WindowMillis needs no claim
// (written before turns were claimed).
type advanceRecord struct {
	Through      int64 `json:"through"`
	Offered      int64 `json:"offered,omitempty"`
	TTLMillis    int64 `json:"ttl_ms,omitempty"`
	WindowMillis int64 `json:"window_ms,omitempty"`
}

// advanceOf reads a pace record; false when it is not one.
func advanceOf(data []byte, at time.Time, seq uint64) (line.Advance, bool) {
	var a advanceRecord
	if json.Unmarshal(data, &a) != nil || a.Through <= 0 || a.TTLMillis < 0 || a.WindowMillis < 0 || a.Offered < 0 {
		return line.Advance{}, false
	}
	ttl := time.Duration(a.TTLMillis) * time.Millisecond
	if ttl == 0 {
		ttl = DefaultPassTTL
	}
	return line.Advance{Through: a.Through, Offered: a.Offered, At: at, TTL: ttl,
		Window: time.Duration(a.WindowMillis) * time.Millisecond, Seq: seq}, true
}

// claimRecord is a claim of a turn: the holder of Ticket asked for it
// while Position was offered.
type claimRecord struct {
	Ticket   string `json:"ticket"`
	Position int64  `json:"position"`
}

func (l *Ledger) lineStreamConfig(s Sale) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        LineStreamName(s.Name),
		Description: "sluice sale " + s.Name + ": the waiting room's line",
		Subjects:    []string{lineSubjectPrefix(s.Name) + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    l.opts.Replicas,
		// Not line_limit: before the start every joiner is in the draw,
		// and after it the gates apply line_limit. The stream's bound is
		// the memory one, MaxLineLimit. The draw mark takes a place when
		// the line is not full at the start; a full line is sealed
		// without it (SealDraw).
		MaxMsgs:              MaxLineLimit,
		Discard:              jetstream.DiscardNew,
		MaxMsgsPerSubject:    1,
		DiscardNewPerSubject: true,
		Duplicates:           l.opts.DuplicateWindow,
		MaxMsgSize:           1024,
		AllowDirect:          true,
		DenyDelete:           true,
		DenyPurge:            true,
	}
}

// ensureLine provisions a waiting-room sale's line stream, the pace
// stream and the sale's keys (made here the first time, kept after).
func (l *Ledger) ensureLine(ctx context.Context, s Sale) error {
	if _, err := l.js.CreateOrUpdateStream(ctx, l.lineStreamConfig(s)); err != nil {
		return fmt.Errorf("ledger: provision the line of %s: %w", s.Name, err)
	}
	if _, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        PaceStream,
		Description: "sluice: the waiting rooms' pace (let in through position N) and the passes used",
		Subjects:    []string{"sluice.pace.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    l.opts.Replicas,
		Duplicates:  l.opts.DuplicateWindow,
		MaxMsgSize:  1024,
		DenyDelete:  true,
		DenyPurge:   true,
	}); err != nil {
		return fmt.Errorf("ledger: provision %s: %w", PaceStream, err)
	}
	if err := l.ensureProofs(ctx); err != nil {
		return err
	}
	if err := l.ensureAddresses(ctx); err != nil {
		return err
	}
	kv, err := l.keysBucket(ctx)
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
	if _, err := kv.Create(ctx, s.Name, b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("ledger: make the keys of %s: %w", s.Name, err)
	}
	return nil
}

func (l *Ledger) keysBucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := l.js.KeyValue(ctx, KeysBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      KeysBucket,
			Description: "sluice: each waiting room's draw seed and pass secret",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    l.opts.Replicas,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("%w: keys bucket: %w", ErrUnavailable, err)
	}
	return kv, nil
}

// LineKeys reads a sale's seed and pass secret.
func (l *Ledger) LineKeys(ctx context.Context, sale string) (LineKeys, error) {
	kv, err := l.keysBucket(ctx)
	if err != nil {
		return LineKeys{}, err
	}
	e, err := kv.Get(ctx, sale)
	if err != nil {
		return LineKeys{}, fmt.Errorf("%w: keys of %s: %w", ErrUnavailable, sale, err)
	}
	var r keysRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return LineKeys{}, fmt.Errorf("ledger: keys of %s: %w", sale, err)
	}
	seed, err := line.ParseSeed(r.Seed)
	if err != nil {
		return LineKeys{}, err
	}
	secret, err := line.ParseSeed(r.Secret)
	if err != nil {
		return LineKeys{}, err
	}
	return LineKeys{Seed: seed, Secret: secret[:]}, nil
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
// ErrUnavailable.
func (l *Ledger) Join(ctx context.Context, sale, buyer string) (Joined, bool, error) {
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
	ack, err := l.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: data})
	switch refusalOf(err) {
	case refusedFull:
		return Joined{}, false, ErrLineFull
	case refusedSubjectFull:
		j, err := l.lineMsg(ctx, sale, subj)
		return j, false, err
	case refusedNoRoom:
		return Joined{}, false, fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrStoreFull, err)
	}
	if err != nil {
		return Joined{}, false, fmt.Errorf("%w: join: %w", ErrUnavailable, err)
	}
	return Joined{Ticket: id, Buyer: buyer, Seq: ack.Sequence}, true, nil
}

// HeldTicket reads the ticket buyer holds in sale's line, if any: a join
// asks before it spends what buys a ticket (a proof of work, an address
// slot), so that a holder's join returns the ticket and spends nothing.
func (l *Ledger) HeldTicket(ctx context.Context, sale, buyer string) (Joined, bool, error) {
	j, err := l.lineMsg(ctx, sale, LineBuyerSubject(sale, buyer))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Joined{}, false, nil
	}
	return j, err == nil, err
}

// lineMsg reads a ticket back by its buyer's subject.
func (l *Ledger) lineMsg(ctx context.Context, sale, subj string) (Joined, error) {
	str, err := l.js.Stream(ctx, LineStreamName(sale))
	if err != nil {
		return Joined{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	raw, err := str.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		return Joined{}, fmt.Errorf("%w: read back the ticket: %w", ErrUnavailable, err)
	}
	var r ticketRecord
	if err := json.Unmarshal(raw.Data, &r); err != nil {
		return Joined{}, fmt.Errorf("ledger: ticket record: %w", err)
	}
	return Joined{Ticket: r.Ticket, Buyer: r.Buyer, Seq: raw.Sequence, At: raw.Time}, nil
}

// rejoinRecord puts a ticket whose turn lapsed at the back of the line.
type rejoinRecord struct {
	Rejoin string `json:"rejoin"`
}

// RejoinLine puts the buyer's ticket, whose turn lapsed, at the back of
// the sale's line, once: the record's subject is the buyer's and holds
// one message. It returns the record's line sequence, or that of the one
// stored already.
func (l *Ledger) RejoinLine(ctx context.Context, sale, buyer, ticket string) (uint64, error) {
	data, _ := json.Marshal(rejoinRecord{Rejoin: ticket})
	subj := LineRejoinSubject(sale, buyer)
	ack, err := l.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: data}, jetstream.WithExpectStream(LineStreamName(sale)))
	switch refusalOf(err) {
	case refusedSubjectFull:
		j, err := l.lineMsg(ctx, sale, subj)
		return j.Seq, err
	case refusedFull:
		return 0, ErrLineFull
	case refusedNoRoom:
		return 0, fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrStoreFull, err)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: rejoin: %w", ErrUnavailable, err)
	}
	return ack.Sequence, nil
}

// rejoinOf reads a rejoin record.
func rejoinOf(data []byte) (line.TicketKey, bool) {
	var r rejoinRecord
	if json.Unmarshal(data, &r) != nil {
		return line.TicketKey{}, false
	}
	return line.KeyOf(r.Rejoin)
}

// SealDraw writes the draw mark, once: the tickets before it are drawn.
// full is true when the line is full and the mark has no room: then no
// ticket can join any more, and every ticket is drawn.
func (l *Ledger) SealDraw(ctx context.Context, sale string) (full bool, err error) {
	_, err = l.js.PublishMsg(ctx, &nats.Msg{Subject: LineDrawSubject(sale), Data: []byte(`{"draw":true}`)},
		jetstream.WithMsgID("draw"), jetstream.WithExpectStream(LineStreamName(sale)))
	switch {
	case err == nil:
		return false, nil
	case refusalOf(err) == refusedSubjectFull:
		return false, nil // sealed already
	case refusalOf(err) == refusedFull:
		return true, nil
	}
	return false, fmt.Errorf("%w: seal the draw of %s: %w", ErrUnavailable, sale, err)
}

// LineLastSeq is the last sequence in a sale's line stream.
func (l *Ledger) LineLastSeq(ctx context.Context, sale string) (uint64, error) {
	str, err := l.js.Stream(ctx, LineStreamName(sale))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return str.CachedInfo().State.LastSeq, nil
}

// StockLeft is how many more orders a sale's stream takes now: its limit
// (stock + overbook + released) less the orders it holds, read from
// JetStream at the call, never from a cache: the pace reads it after its
// look at the line, so that every order whose pass that look no longer
// counts is in it.
func (l *Ledger) StockLeft(ctx context.Context, sale string) (int64, error) {
	str, err := l.js.Stream(ctx, StreamName(sale))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, fmt.Errorf("%w: %s", ErrNoSale, sale)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	info := str.CachedInfo()
	s, _, ok := saleOf(info.Config)
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrNoSale, sale)
	}
	return max(info.Config.MaxMsgs, s.Capacity()) - int64(info.State.Msgs), nil
}

// ErrPaceMoved: another gate advanced the pace first.
var ErrPaceMoved = errors.New("ledger: the pace moved on")

// Step is one step of a sale's pace: let in through Through (the passes
// living TTL), offer through Offered (the turns to be claimed within
// Window).
type Step struct {
	Through, Offered int64
	TTL, Window      time.Duration
}

// AdvanceLine records a step of the pace if the pace's last record is
// still after (0: none yet); ErrPaceMoved otherwise.
func (l *Ledger) AdvanceLine(ctx context.Context, sale string, s Step, after uint64) error {
	data, _ := json.Marshal(advanceRecord{Through: s.Through, Offered: max(s.Offered, s.Through),
		TTLMillis: max(1, s.TTL.Milliseconds()), WindowMillis: max(0, s.Window.Milliseconds())})
	_, err := l.js.Publish(ctx, PaceLetInSubject(sale), data,
		jetstream.WithExpectLastSequencePerSubject(after), jetstream.WithExpectStream(PaceStream))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return ErrPaceMoved
	}
	if err != nil {
		return fmt.Errorf("%w: advance the line of %s: %w", ErrUnavailable, sale, err)
	}
	return nil
}

// ClaimTurn records that the holder of ticket claimed the turn of
// position pos, and returns once it is stored. Its message id makes the
// claims of one turn at several gates (or a retry) one record.
func (l *Ledger) ClaimTurn(ctx context.Context, sale, ticket string, pos int64) error {
	data, _ := json.Marshal(claimRecord{Ticket: ticket, Position: pos})
	_, err := l.js.Publish(ctx, PaceClaimSubject(sale), data,
		jetstream.WithMsgID("c|"+sale+"|"+ticket+"|"+strconv.FormatInt(pos, 10)), jetstream.WithExpectStream(PaceStream))
	if err != nil {
		return fmt.Errorf("%w: claim a turn of %s: %w", ErrUnavailable, sale, err)
	}
	return nil
}

// UsePass records that a ticket's pass was used for an order, without
// waiting for the store: the order itself is durable, and a record lost
// leaves the pass counted until it expires, which only slows the pace.
func (l *Ledger) UsePass(sale, ticket string) {
	_, _ = l.js.PublishAsync(PaceUsedSubject(sale), []byte(ticket), jetstream.WithMsgID("u|"+sale+"|"+ticket))
}
