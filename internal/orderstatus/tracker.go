package orderstatus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/ledger"
)

// Tracker follows the decisions stream and answers statuses and counts
// from memory. It is safe for concurrent use; Stop ends it.
type Tracker struct {
	log   *slog.Logger
	mu    sync.RWMutex
	sales map[string]*saleDecisions
	cc    jetstream.ConsumeContext
	once  sync.Once
}

type saleDecisions struct {
	confirmed []uint64 // bitset by sequence
	count     int64
	other     map[uint64]Status // rejected and failed
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

func (s *saleDecisions) refuse(seq uint64, st Status) {
	if s.isConfirmed(seq) {
		return
	}
	if _, ok := s.other[seq]; !ok {
		s.other[seq] = st
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
	cons, err := js.OrderedConsumer(ctx, Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"sluice.decided.>"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("orderstatus: follow decisions: %w", err)
	}
	t := &Tracker{log: log, sales: make(map[string]*saleDecisions)}
	caughtUp := make(chan struct{})
	var caught sync.Once
	if last == 0 {
		caught.Do(func() { close(caughtUp) })
	}
	t.cc, err = cons.Consume(func(msg jetstream.Msg) {
		t.apply(msg.Data())
		if meta, err := msg.Metadata(); err == nil && meta.Sequence.Stream >= last {
			caught.Do(func() { close(caughtUp) })
		}
	})
	if err != nil {
		return nil, fmt.Errorf("orderstatus: follow decisions: %w", err)
	}
	select {
	case <-caughtUp:
	case <-ctx.Done():
		t.Stop()
		return nil, fmt.Errorf("orderstatus: replay decisions: %w", ctx.Err())
	}
	return t, nil
}

func (t *Tracker) apply(data []byte) {
	var d Decision
	if err := json.Unmarshal(data, &d); err != nil || !ledger.ValidSaleName(d.Sale) {
		t.log.Warn("orderstatus: skipping a malformed decision", "err", err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sales[d.Sale]
	if s == nil {
		s = &saleDecisions{other: make(map[uint64]Status)}
		t.sales[d.Sale] = s
	}
	for _, seq := range d.Confirmed {
		s.confirm(seq)
	}
	for _, o := range d.Rejected {
		s.refuse(o.Seq, Status{Status: Rejected, Reason: o.Reason, At: d.At})
	}
	for _, o := range d.Failed {
		s.refuse(o.Seq, Status{Status: Failed, Reason: o.Reason, At: d.At})
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
		t.cc.Stop()
		select {
		case <-t.cc.Closed():
		case <-time.After(5 * time.Second):
		}
	})
}
