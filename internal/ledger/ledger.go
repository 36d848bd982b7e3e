package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/streams"
)

// DrainConsumer is the durable consumer through which the drain reads a
// sale's stream. Its pending counts are the sale's queue depth.
const DrainConsumer = "sluice-drain"

// DefaultDuplicateWindow is streams.DefaultDuplicateWindow.
const DefaultDuplicateWindow = streams.DefaultDuplicateWindow

// LineRecords provisions a sale's waiting-room records, marks its room
// on or off and records its stock (waitingroom.Store): EnsureSale calls
// it, for a sale that has (or had) a waiting room, before the sale says
// so, so that a room turned off keeps what its turns and passes hold for
// every gate alike (line.Book.Mark), and the public line log shows each
// change of the stock before the sale takes it.
type LineRecords interface {
	EnsureLine(ctx context.Context, sale string) error
	MarkRoom(ctx context.Context, sale string, open bool) error
	MarkStock(ctx context.Context, sale string, stock, overbook int64) error
}

// Options tune a Ledger. The zero value means: one replica, the default
// duplicate window.
type Options struct {
	// Replicas of each sale stream; 3 in a cluster. Zero means 1.
	Replicas int
	// DuplicateWindow, zero means DefaultDuplicateWindow.
	DuplicateWindow time.Duration
	// Lines provisions and marks the waiting rooms' records (room.Store);
	// nil for a ledger whose sales have no waiting room.
	Lines LineRecords
	// Released tells how many of a sale's orders gave their slot back
	// (rejected or failed, from the decisions stream): a sale's stream
	// holds stock + overbook + released orders. Nil means none.
	Released func(sale string) int64
	// ReleasedVariant is Released for one variant of a sale with
	// variants: the variant sells its stock plus these. Nil means none.
	ReleasedVariant func(sale, variant string) int64
}

// Ledger places and finds orders in the sale streams. It is safe for
// concurrent use.
type Ledger struct {
	js   jetstream.JetStream
	opts Options

	mu      sync.Mutex
	streams map[string]jetstream.Stream // sale -> handle, for direct gets
	books   map[string]*unitBook        // sale with variants -> its units, as read
}

// New returns a Ledger over js.
func New(js jetstream.JetStream, opts Options) *Ledger {
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.DuplicateWindow <= 0 {
		opts.DuplicateWindow = DefaultDuplicateWindow
	}
	return &Ledger{js: js, opts: opts, streams: make(map[string]jetstream.Stream), books: make(map[string]*unitBook)}
}

func (l *Ledger) released(sale string) int64 {
	if l.opts.Released == nil {
		return 0
	}
	return max(0, l.opts.Released(sale))
}

// RaiseLimit makes the sale's stream take stock + overbook + released
// orders when it takes fewer: orders that gave their slot back are sold
// again. The limit only rises here; released is counted from the durable
// decisions, so a redelivery or a restart cannot count a slot twice.
func (l *Ledger) RaiseLimit(ctx context.Context, sale string) error {
	str, err := l.js.Stream(ctx, StreamName(sale))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	cfg := str.CachedInfo().Config
	s, had, ok := saleOf(cfg)
	if !ok {
		return ErrNoSale
	}
	if s.HasVariants() {
		return nil // its variants' units count their released orders (variant.go)
	}
	released := l.released(sale)
	if had >= released {
		return nil
	}
	cfg.MaxMsgs = s.Capacity() + released
	// Streams made before rounds existed take one subject token per buyer.
	cfg.Subjects = []string{SubjectPrefix(sale) + ">"}
	if _, err := l.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("ledger: raise the limit of %s: %w", sale, err)
	}
	return nil
}

// JetStream returns the JetStream context the ledger uses.
func (l *Ledger) JetStream() jetstream.JetStream { return l.js }

// CountReleasedWith sets how the ledger counts a sale's released orders
// (Options.Released); call it before the ledger is shared.
func (l *Ledger) CountReleasedWith(f func(sale string) int64) { l.opts.Released = f }

func (l *Ledger) releasedVariant(sale, variant string) int64 {
	if l.opts.ReleasedVariant == nil {
		return 0
	}
	return max(0, l.opts.ReleasedVariant(sale, variant))
}

func (l *Ledger) streamConfig(s Sale, released int64, line bool) jetstream.StreamConfig {
	return streams.SaleConfig(s.Name, s.Capacity()+released, s.OrdersPerBuyer(), s.metadata(line),
		streams.Options{Replicas: l.opts.Replicas, DuplicateWindow: l.opts.DuplicateWindow})
}

// EnsureSale creates the sale's stream, or updates its limits and
// settings when it exists. Orders already admitted always stay: lowering
// the stock below them leaves the sale sold out, and nothing is deleted.
func (l *Ledger) EnsureSale(ctx context.Context, s Sale) (SaleState, error) {
	s = s.WithVariantStock()
	if err := s.Validate(); err != nil {
		return SaleState{}, err
	}
	if s.Capacity() == 0 && !s.HasVariants() {
		// MaxMsgs 0 would mean "unlimited" to JetStream.
		return SaleState{}, fmt.Errorf("%w: %s: stock plus overbook must be at least 1", ErrInvalidSale, s.Name)
	}
	// Released slots stay released whatever the stock becomes: the
	// stream's own limit remembers them, in case this process has not
	// read the decisions yet.
	released := l.released(s.Name)
	line := s.WaitingRoom
	var old *jetstream.StreamInfo
	if str, err := l.js.Stream(ctx, StreamName(s.Name)); err == nil {
		old = str.CachedInfo()
		cfg := old.Config
		prev, had, ok := saleOf(cfg)
		if ok {
			released = max(released, had)
			if prev.HasVariants() != s.HasVariants() {
				return SaleState{}, fmt.Errorf("%w: %s: a sale's variants are set when it is made: it cannot gain or lose them", ErrInvalidSale, s.Name)
			}
		}
		line = line || hasLine(cfg.Metadata)
	}
	if line {
		// The line, and the room's mark, before the sale says the room
		// is on or off (line.Book.Mark): a room turned off keeps what its
		// turns and passes hold, for every gate alike.
		if l.opts.Lines == nil {
			return SaleState{}, fmt.Errorf("ledger: sale %s has a waiting room, and this ledger keeps no lines", s.Name)
		}
		if err := l.opts.Lines.EnsureLine(ctx, s.Name); err != nil {
			return SaleState{}, err
		}
		if err := l.opts.Lines.MarkRoom(ctx, s.Name, s.WaitingRoom); err != nil {
			return SaleState{}, err
		}
		if err := l.opts.Lines.MarkStock(ctx, s.Name, s.Stock, s.Overbook); err != nil {
			return SaleState{}, err
		}
	}
	cfg := l.streamConfig(s, released, line)
	if s.HasVariants() {
		var err error
		if cfg, err = l.variantConfig(ctx, s, old, line); err != nil {
			return SaleState{}, err
		}
	}
	str, err := l.js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return SaleState{}, fmt.Errorf("ledger: provision sale %s: %w", s.Name, err)
	}
	l.remember(s.Name, str)
	if s.HasVariants() {
		l.book(s.Name).setConfig(str.CachedInfo().Config)
	}
	return l.stateOf(ctx, str.CachedInfo(), time.Now())
}

func (l *Ledger) remember(sale string, str jetstream.Stream) {
	l.mu.Lock()
	l.streams[sale] = str
	l.mu.Unlock()
}

func (l *Ledger) stream(ctx context.Context, sale string) (jetstream.Stream, error) {
	l.mu.Lock()
	str, ok := l.streams[sale]
	l.mu.Unlock()
	if ok {
		return str, nil
	}
	str, err := l.js.Stream(ctx, StreamName(sale))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoSale, sale)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	l.remember(sale, str)
	return str, nil
}

// Place publishes an admitted order and returns its id once JetStream has
// stored it (the PubAck). msgID deduplicates: a second Place with the same
// msgID returns the first order's id and duplicate true. It fails with
// ErrSoldOut, an *AlreadyOrderedError, or an error matching ErrUnavailable
// when the order's fate is not known to be stored.
//
// An order of a sale with variants (o.Variant set) takes a unit of its
// variant instead (see placeVariant): msgID is not used, the order's
// Idempotency-Key and pass tell a retry; it may also fail with
// ErrVariantSoldOut or ErrUnknownVariant.
func (l *Ledger) Place(ctx context.Context, o Order, msgID string) (id OrderID, duplicate bool, err error) {
	if o.Variant != "" {
		return l.placeVariant(ctx, o, nil)
	}
	if l.hasVariants(o.Sale) {
		return OrderID{}, false, ErrVariantRequired
	}
	data, err := o.encode()
	if err != nil {
		return OrderID{}, false, fmt.Errorf("ledger: encode order: %w", err)
	}
	msg := &nats.Msg{Subject: BuyerRoundSubject(o.Sale, o.BuyerID, o.Round), Data: data}
	ack, err := streams.PublishDeduplicated(ctx, l.js, msg,
		jetstream.WithMsgID(msgID),
		jetstream.WithExpectStream(StreamName(o.Sale)))
	if err != nil {
		return OrderID{}, false, l.placeError(ctx, o, err)
	}
	if !ack.Duplicate {
		return OrderID{Sale: o.Sale, Seq: ack.Sequence, Token: o.Token}, false, nil
	}
	// A retry: the id is the stored order's, whose token we read back.
	prev, err := l.lookupSeq(ctx, o.Sale, ack.Sequence)
	if err != nil {
		return OrderID{}, false, fmt.Errorf("%w: read back duplicate order: %w", ErrUnavailable, err)
	}
	return prev.ID, true, nil
}

// PlaceBeyond is Place for an order that may take only the stock beyond
// what held says the sale's waiting room holds (a room turned off while
// its turns and passes hold items: line.Book.Mark). It reads held, then
// the stream, and publishes only if the stream is as read (an expected
// last sequence), so that the orders in the stream, what held says and
// this order stay within the stream's limit however many gates place
// orders at once; a stream that moved meanwhile is read again. held is
// read first so that an order placed with a pass meanwhile is counted
// as held or as placed, never as neither (a pass's use is recorded
// after its order is stored). It fails as Place does, or with
// ErrStockHeld.
func (l *Ledger) PlaceBeyond(ctx context.Context, o Order, msgID string, held func() int64) (OrderID, bool, error) {
	if o.Variant != "" {
		return l.placeVariant(ctx, o, &beyond{held: held})
	}
	if l.hasVariants(o.Sale) {
		return OrderID{}, false, ErrVariantRequired
	}
	data, err := json.Marshal(o)
	if err != nil {
		return OrderID{}, false, fmt.Errorf("ledger: encode order: %w", err)
	}
	str, err := l.stream(ctx, o.Sale)
	if err != nil {
		return OrderID{}, false, err
	}
	for {
		h := held()
		info, err := str.Info(ctx)
		if err != nil {
			return OrderID{}, false, fmt.Errorf("%w: read the sale's stream: %w", ErrUnavailable, err)
		}
		s, _, ok := saleOf(info.Config)
		if !ok {
			return OrderID{}, false, fmt.Errorf("%w: %s", ErrNoSale, o.Sale)
		}
		left := max(info.Config.MaxMsgs, s.Capacity()) - int64(info.State.Msgs)
		if left-h < 1 {
			// A retry of an order stored before gets its answer, as it
			// would from Place.
			switch prev, dup, already := l.placedBefore(ctx, o, s); {
			case dup:
				return prev.ID, true, nil
			case already:
				return OrderID{}, false, &AlreadyOrderedError{Existing: prev.ID}
			}
			if left < 1 {
				return OrderID{}, false, ErrSoldOut
			}
			return OrderID{}, false, ErrStockHeld
		}
		msg := &nats.Msg{Subject: BuyerRoundSubject(o.Sale, o.BuyerID, o.Round), Data: data}
		ack, err := streams.PublishDeduplicated(ctx, l.js, msg, jetstream.WithMsgID(msgID),
			jetstream.WithExpectStream(StreamName(o.Sale)), jetstream.WithExpectLastSequence(info.State.LastSeq))
		if streams.WrongLastSequence(err) {
			if ctx.Err() != nil {
				return OrderID{}, false, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
			}
			continue // another order came first: read again
		}
		if err != nil {
			return OrderID{}, false, l.placeError(ctx, o, err)
		}
		if !ack.Duplicate {
			return OrderID{Sale: o.Sale, Seq: ack.Sequence, Token: o.Token}, false, nil
		}
		prev, err := l.lookupSeq(ctx, o.Sale, ack.Sequence)
		if err != nil {
			return OrderID{}, false, fmt.Errorf("%w: read back duplicate order: %w", ErrUnavailable, err)
		}
		return prev.ID, true, nil
	}
}

// placedBefore is what Place would answer o from the buyer's subject
// alone: dup when it holds the order a retry of o stands for (the same
// Idempotency-Key, or, one order per buyer and no key, any order of
// theirs in o's round), already when it holds the one order the buyer
// may have.
func (l *Ledger) placedBefore(ctx context.Context, o Order, s Sale) (prev Order, dup, already bool) {
	prev, err := l.lastForBuyer(ctx, o.Sale, o.BuyerID, o.Round)
	if err != nil || prev.BuyerID != o.BuyerID {
		return Order{}, false, false
	}
	if o.IdempotencyKey != "" && prev.IdempotencyKey == o.IdempotencyKey {
		return prev, true, false
	}
	one := s.OrdersPerBuyer() == 1
	return prev, one && o.IdempotencyKey == "", one
}

func (l *Ledger) placeError(ctx context.Context, o Order, err error) error {
	switch streams.RefusalOf(err) {
	case streams.RefusedFull:
		return ErrSoldOut
	case streams.RefusedSubjectFull:
		prev, lerr := l.lastForBuyer(ctx, o.Sale, o.BuyerID, o.Round)
		if lerr != nil {
			return fmt.Errorf("%w: read back the buyer's order: %w", ErrUnavailable, lerr)
		}
		return &AlreadyOrderedError{Existing: prev.ID}
	case streams.RefusedNoRoom:
		return fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrStoreFull, err)
	}
	return fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
}

// Lookup returns the order id names, or ErrNotFound.
func (l *Ledger) Lookup(ctx context.Context, id OrderID) (Order, error) {
	o, err := l.lookupSeq(ctx, id.Sale, id.Seq)
	if err != nil {
		return Order{}, err
	}
	if o.Token != id.Token {
		return Order{}, ErrNotFound
	}
	return o, nil
}

func (l *Ledger) lookupSeq(ctx context.Context, sale string, seq uint64) (Order, error) {
	str, err := l.stream(ctx, sale)
	if errors.Is(err, ErrNoSale) {
		return Order{}, ErrNotFound
	}
	if err != nil {
		return Order{}, err
	}
	raw, err := str.GetMsg(ctx, seq)
	return decodeRaw(sale, raw, err)
}

func (l *Ledger) lastForBuyer(ctx context.Context, sale, buyer string, round int) (Order, error) {
	str, err := l.stream(ctx, sale)
	if err != nil {
		return Order{}, err
	}
	raw, err := str.GetLastMsgForSubject(ctx, BuyerRoundSubject(sale, buyer, round))
	return decodeRaw(sale, raw, err)
}

func decodeRaw(sale string, raw *jetstream.RawStreamMsg, err error) (Order, error) {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Order{}, ErrNotFound
	}
	if err != nil {
		return Order{}, fmt.Errorf("%w: get order: %w", ErrUnavailable, err)
	}
	o, err := DecodeOrder(raw.Data)
	if err != nil {
		return Order{}, err
	}
	o.ID = OrderID{Sale: sale, Seq: raw.Sequence, Token: o.Token}
	o.Pass = raw.Header.Get(passHeader)
	return o, nil
}

// DecodeOrder decodes an order message's payload. The id is left for the
// caller, who knows the sequence.
func DecodeOrder(data []byte) (Order, error) {
	if o, ok := decodePlain(data); ok {
		return o, nil
	}
	var o Order
	if err := json.Unmarshal(data, &o); err != nil {
		return Order{}, fmt.Errorf("ledger: decode order: %w", err)
	}
	return o, nil
}

// Stock is what a sale's stream takes, read from JetStream at once.
type Stock struct {
	// Left is how many more orders it takes: Limit less the orders.
	Left int64
	// Limit is how many it takes in all: stock + overbook + released.
	Limit int64
	// Orders is the sequence of its last order, which is how many it
	// holds: orders are never removed.
	Orders uint64
}

// Stock reads how many orders a sale's stream takes and holds: its limit
// (stock + overbook + released) and its last order, from JetStream at
// the call, never from a cache: the pace reads it after its look at the
// line, so that every order whose pass that look no longer counts is in
// it.
func (l *Ledger) Stock(ctx context.Context, sale string) (Stock, error) {
	str, err := l.js.Stream(ctx, StreamName(sale))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return Stock{}, fmt.Errorf("%w: %s", ErrNoSale, sale)
	}
	if err != nil {
		return Stock{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	info := str.CachedInfo()
	s, _, ok := saleOf(info.Config)
	if !ok {
		return Stock{}, fmt.Errorf("%w: %s", ErrNoSale, sale)
	}
	if s.HasVariants() {
		// Over every variant, each at most its own: a variant sold
		// beyond a lowered stock takes nothing from another's.
		last, left, err := l.variantLeft(ctx, str)
		if err != nil {
			return Stock{}, err
		}
		return Stock{Left: left, Limit: int64(info.State.Msgs) + left, Orders: last}, nil
	}
	limit := max(info.Config.MaxMsgs, s.Capacity())
	return Stock{Left: limit - int64(info.State.Msgs), Limit: limit, Orders: info.State.LastSeq}, nil
}

// hasVariants says the ledger has read the sale as one with variants.
func (l *Ledger) hasVariants(sale string) bool {
	l.mu.Lock()
	b := l.books[sale]
	l.mu.Unlock()
	if b == nil {
		return false
	}
	_, _, ok := b.config()
	return ok
}
