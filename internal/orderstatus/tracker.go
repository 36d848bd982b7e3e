package orderstatus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/ledger"
)

// Tracker follows the decisions stream and answers statuses and counts
// from memory. It is safe for concurrent use; Stop ends it.
type Tracker struct {
	// anyReleased: some order of some sale gave its slot back. Until one
	// does, BuyerReleased answers without taking mu: it is asked for every
	// order the gate places.
	anyReleased atomic.Bool
	js          jetstream.JetStream
	last        uint64 // the last decision applied (stream sequence); under mu
	log         *slog.Logger
	mu          sync.RWMutex
	sales       map[string]*saleDecisions
	// waiters are the channels to close when an order's decision comes
	// (see Wait): the stream wakes them, nobody polls.
	waiters map[waitKey][]chan struct{}
	ccMu    sync.Mutex
	cc      jetstream.ConsumeContext
	once    sync.Once
}

type waitKey struct {
	sale string
	seq  uint64
}

type saleDecisions struct {
	confirmed []uint64 // bitset by sequence
	count     int64
	other     map[uint64]Status // rejected and failed
	// released counts the orders that gave their slot back (see
	// Status.Releases), byBuyer the same per buyer.
	released  int64
	byBuyer   map[string]int64
	byVariant map[string]int64 // a sale with variants' released, by variant
}

func (s *saleDecisions) isConfirmed(seq uint64) bool {
	w := seq / 64
	return w < uint64(len(s.confirmed)) && s.confirmed[w]&(1<<(seq%64)) != 0
}

func (s *saleDecisions) confirm(seq uint64) {
	if s.isConfirmed(seq) {
		return
	}
	if _, ok := s.other[seq]; ok {
		return // the first outcome stands
	}
	w := seq / 64
	for uint64(len(s.confirmed)) <= w {
		s.confirmed = append(s.confirmed, 0)
	}
	s.confirmed[w] |= 1 << (seq % 64)
	s.count++
}

func (s *saleDecisions) refuse(seq uint64, st Status, o Outcome) {
	if s.isConfirmed(seq) {
		return
	}
	if _, ok := s.other[seq]; ok {
		return // the first outcome stands
	}
	s.other[seq] = st
	if st.Releases() {
		s.release(o)
	}
}

// release counts an order that gave its slot back.
func (s *saleDecisions) release(o Outcome) {
	s.released++
	if o.Buyer != "" {
		if s.byBuyer == nil {
			s.byBuyer = make(map[string]int64)
		}
		s.byBuyer[o.Buyer]++
	}
	if o.Variant != "" {
		if s.byVariant == nil {
			s.byVariant = make(map[string]int64)
		}
		s.byVariant[o.Variant]++
	}
}

// cancel turns a confirmed order into a cancelled one, which gives its
// slot back; an order not confirmed is left as it is.
func (s *saleDecisions) cancel(seq uint64, st Status, o Outcome) {
	if !s.isConfirmed(seq) {
		return
	}
	s.confirmed[seq/64] &^= 1 << (seq % 64)
	s.count--
	s.other[seq] = st
	s.release(o)
}

// apply applies one decision of the sale: the first outcome of an order
// stands, and a cancel turns a confirmed order into one that gave its
// slot back.
func (s *saleDecisions) apply(d Decision) {
	for _, seq := range d.Confirmed {
		s.confirm(seq)
	}
	for _, o := range d.Rejected {
		s.refuse(o.Seq, Status{Status: Rejected, Reason: o.Reason, At: d.At}, o)
	}
	for _, o := range d.Failed {
		s.refuse(o.Seq, Status{Status: Failed, Reason: o.Reason, At: d.At}, o)
	}
	for _, o := range d.Cancelled {
		s.cancel(o.Seq, Status{Status: Cancelled, Reason: o.Reason, At: d.At}, o)
	}
}

// StartTracker replays the decisions stream (see Provision) and follows
// it. It returns once the decisions recorded so far are loaded (or ctx
// ends), so a gate that starts answers statuses it can prove.
func StartTracker(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*Tracker, error) {
	info, err := js.Stream(ctx, Stream)
	if err != nil {
		return nil, fmt.Errorf("orderstatus: %w", err)
	}
	last := info.CachedInfo().State.LastSeq
	t := &Tracker{js: js, log: log, sales: make(map[string]*saleDecisions), waiters: make(map[waitKey][]chan struct{})}
	caughtUp := make(chan struct{})
	var caught sync.Once
	if last == 0 {
		caught.Do(func() { close(caughtUp) })
	}
	t.cc, err = t.follow(ctx, 0, func(seq uint64) {
		if seq >= last {
			caught.Do(func() { close(caughtUp) })
		}
	})
	if err != nil {
		return nil, err
	}
	select {
	case <-caughtUp:
	case <-ctx.Done():
		t.Stop()
		return nil, fmt.Errorf("orderstatus: replay decisions: %w", ctx.Err())
	}
	return t, nil
}

// follow consumes the decisions after sequence after, calling seen with
// each one's sequence once it is applied.
func (t *Tracker) follow(ctx context.Context, after uint64, seen func(uint64)) (jetstream.ConsumeContext, error) {
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{"sluice.decided.>"}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if after > 0 {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	cons, err := t.js.OrderedConsumer(ctx, Stream, occ)
	if err != nil {
		return nil, fmt.Errorf("orderstatus: follow decisions: %w", err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err != nil {
			return
		}
		t.apply(msg.Data(), meta.Sequence.Stream)
		if seen != nil {
			seen(meta.Sequence.Stream)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("orderstatus: follow decisions: %w", err)
	}
	return cc, nil
}

// Refollow starts following the stream again after the last decision
// applied: for when the server's JetStream was restarted, which its
// ordered consumer would otherwise notice only after missed heartbeats.
// The old consumer is stopped first, so that no decision of it arrives
// after the new one's.
func (t *Tracker) Refollow(ctx context.Context) error {
	t.ccMu.Lock()
	defer t.ccMu.Unlock()
	if t.cc != nil {
		t.cc.Stop()
		select {
		case <-t.cc.Closed():
		case <-ctx.Done():
			return ctx.Err()
		}
		t.cc = nil // until the new one runs: a failed Refollow is tried again
	}
	t.mu.RLock()
	last := t.last
	t.mu.RUnlock()
	cc, err := t.follow(ctx, last, nil)
	if err != nil {
		return err
	}
	t.cc = cc
	return nil
}

func (t *Tracker) apply(data []byte, seq uint64) {
	var d Decision
	if err := json.Unmarshal(data, &d); err != nil || !ledger.ValidSaleName(d.Sale) {
		t.log.Warn("orderstatus: skipping a malformed decision", "err", err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq <= t.last {
		return // seen already: a consumer that follows again may repeat some
	}
	t.last = seq
	s := t.sales[d.Sale]
	if s == nil {
		s = &saleDecisions{other: make(map[uint64]Status)}
		t.sales[d.Sale] = s
	}
	s.apply(d)
	if s.released > 0 {
		t.anyReleased.Store(true)
	}
	if len(t.waiters) > 0 {
		for _, seq := range d.Confirmed {
			t.wake(d.Sale, seq)
		}
		for _, o := range d.Rejected {
			t.wake(d.Sale, o.Seq)
		}
		for _, o := range d.Failed {
			t.wake(d.Sale, o.Seq)
		}
		for _, o := range d.Cancelled {
			t.wake(d.Sale, o.Seq)
		}
	}
}

// wake closes the channels of an order's waiters; t.mu is held.
func (t *Tracker) wake(sale string, seq uint64) {
	k := waitKey{sale, seq}
	for _, ch := range t.waiters[k] {
		close(ch)
	}
	delete(t.waiters, k)
}

// Wait returns a channel that is closed once the order has a decision,
// at once if it has one already, and a func that forgets the wait (call
// it when done waiting, whether or not the channel was closed). A wait
// costs a channel and a map entry; it asks JetStream nothing, since the
// decisions stream the tracker follows wakes it.
func (t *Tracker) Wait(id ledger.OrderID) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.sales[id.Sale]; s != nil {
		if _, refused := s.other[id.Seq]; refused || s.isConfirmed(id.Seq) {
			close(ch)
			return ch, func() {}
		}
	}
	k := waitKey{id.Sale, id.Seq}
	t.waiters[k] = append(t.waiters[k], ch)
	return ch, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		ws := t.waiters[k]
		for i, w := range ws {
			if w == ch {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(t.waiters, k)
		} else {
			t.waiters[k] = ws
		}
	}
}

// OrderStatus returns the decided outcome of an order, or ErrNoStatus.
func (t *Tracker) OrderStatus(_ context.Context, id ledger.OrderID) (Status, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := t.sales[id.Sale]
	if s == nil {
		return Status{}, ErrNoStatus
	}
	if s.isConfirmed(id.Seq) {
		return Status{Status: Confirmed}, nil
	}
	if st, ok := s.other[id.Seq]; ok {
		return st, nil
	}
	return Status{}, ErrNoStatus
}

// ConfirmedCount returns how many orders of a sale were confirmed.
func (t *Tracker) ConfirmedCount(_ context.Context, sale string) (int64, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if s := t.sales[sale]; s != nil {
		return s.count, nil
	}
	return 0, nil
}

// Released tells how many of a sale's orders gave their slot back: the
// sale's capacity is its stock and overbook plus these.
func (t *Tracker) Released(sale string) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if s := t.sales[sale]; s != nil {
		return s.released
	}
	return 0
}

// VariantReleased tells how many of the orders of one variant of a sale
// gave their item back: the variant sells its stock plus these.
func (t *Tracker) VariantReleased(sale, variant string) int64 {
	if !t.anyReleased.Load() {
		return 0
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if s := t.sales[sale]; s != nil {
		return s.byVariant[variant]
	}
	return 0
}

// BuyerReleased tells how many of a buyer's orders in a sale gave their
// slot back (so the buyer may order again).
func (t *Tracker) BuyerReleased(sale, buyer string) int64 {
	if !t.anyReleased.Load() {
		return 0
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if s := t.sales[sale]; s != nil {
		return s.byBuyer[buyer]
	}
	return 0
}

// DecidedCount tells how many of a sale's orders the drain decided
// (confirmed, rejected or failed), as recorded in the decisions stream.
func (t *Tracker) DecidedCount(_ context.Context, sale string) (int64, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if s := t.sales[sale]; s != nil {
		return s.count + int64(len(s.other)), nil
	}
	return 0, nil
}

// Stop stops following the stream and waits for the handler to finish.
// It is safe to call more than once.
func (t *Tracker) Stop() {
	t.once.Do(func() {
		t.ccMu.Lock()
		cc := t.cc
		t.ccMu.Unlock()
		if cc == nil {
			return
		}
		cc.Stop()
		select {
		case <-cc.Closed():
		case <-time.After(5 * time.Second):
		}
	})
}
