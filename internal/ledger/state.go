package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SaleState is a sale's configuration and its ledger counts at one moment.
type SaleState struct {
	Sale Sale
	// Admitted is the number of orders in the stream.
	Admitted uint64
	// Pending is the queue depth: admitted orders the drain has not
	// finished (not yet delivered, or delivered and not acked). Without a
	// drain consumer it equals Admitted.
	Pending uint64
	// Drained is Admitted - Pending.
	Drained uint64
	// LastSeq is the stream's last sequence when it was read: an order
	// a gate stored with a higher one was admitted after the read, and
	// counts in the queue on top of Pending.
	LastSeq uint64
	// Limit is how many orders the stream takes: stock + overbook +
	// Released, the orders that gave their slot back.
	Limit    int64
	Released int64
	// Draining says a drain consumer exists; ConsumerPending (not yet
	// delivered) and ConsumerAckPending (delivered, not acked) are its counts.
	Draining           bool
	ConsumerPending    uint64
	ConsumerAckPending uint64
	// Created is when the stream was made.
	Created time.Time
	// Read is when this process began reading the state, on its own clock
	// (the end of the change, for the state EnsureSale returns): of two
	// states of a sale, the one read later reflects every change the other
	// does, so a slow refresh never undoes a newer admin change.
	Read time.Time
	// Replication is the stream's replica group, when JetStream is
	// clustered: who leads, and how far each follower is behind.
	Replication *Replication
	// Line says the sale has a waiting room's line: its room is on, or
	// was and is off now. Its gates follow the line either way, and what
	// its turns and passes hold stays held (line.Book.Mark).
	Line bool
	// Variants are a sale with variants' counts, by variant; nil for a
	// sale without.
	Variants map[string]VariantState
}

// Replication is a sale stream's replica group.
type Replication struct {
	Cluster string `json:"cluster,omitempty"`
	Leader  string `json:"leader"`
	// Peers are the followers; the leader is not among them.
	Peers []Peer `json:"peers"`
}

// Peer is one follower of a replicated stream.
type Peer struct {
	Name    string `json:"name"`
	Current bool   `json:"current"` // caught up with the leader
	Offline bool   `json:"offline,omitempty"`
	// ActiveSeconds is how long ago the leader last heard from it.
	ActiveSeconds float64 `json:"active_seconds"`
	// Lag is how many operations it is behind the leader.
	Lag uint64 `json:"lag"`
}

func replicationOf(ci *jetstream.ClusterInfo) *Replication {
	if ci == nil || (ci.Leader == "" && len(ci.Replicas) == 0) {
		return nil
	}
	r := &Replication{Cluster: ci.Name, Leader: ci.Leader, Peers: make([]Peer, 0, len(ci.Replicas))}
	for _, p := range ci.Replicas {
		if p == nil {
			continue
		}
		r.Peers = append(r.Peers, Peer{Name: p.Name, Current: p.Current, Offline: p.Offline,
			ActiveSeconds: p.Active.Seconds(), Lag: p.Lag})
	}
	return r
}

// SoldOut says the ledger holds as many orders as the sale admits: for
// a sale with variants, every variant is sold out.
func (st SaleState) SoldOut() bool {
	if st.Sale.HasVariants() {
		for _, v := range st.Variants {
			if v.Remaining > 0 {
				return false
			}
		}
		return true
	}
	return int64(st.Admitted) >= max(st.Limit, st.Sale.Capacity())
}

// VariantsLeft are the variants still on sale, sorted.
func (st SaleState) VariantsLeft() []string {
	var out []string
	for _, v := range st.Sale.VariantNames() {
		if st.Variants[v].Remaining > 0 {
			out = append(out, v)
		}
	}
	return out
}

// States returns every sale in the JetStream domain, one StreamInfo page
// and one consumer info per sale: meant for a background refresher, not
// for a request path.
func (l *Ledger) States(ctx context.Context) ([]SaleState, error) {
	read := time.Now()
	lister := l.js.ListStreams(ctx, jetstream.WithStreamListSubject("sluice.orders.>"))
	var out []SaleState
	for info := range lister.Info() {
		st, err := l.stateOf(ctx, info, read)
		if errors.Is(err, ErrNoSale) {
			continue // a stream that is not a sluice sale
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("%w: list sales: %w", ErrUnavailable, err)
	}
	return out, nil
}

// State returns one sale's state.
func (l *Ledger) State(ctx context.Context, sale string) (SaleState, error) {
	read := time.Now()
	str, err := l.js.Stream(ctx, StreamName(sale))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return SaleState{}, fmt.Errorf("%w: %s", ErrNoSale, sale)
	}
	if err != nil {
		return SaleState{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return l.stateOf(ctx, str.CachedInfo(), read)
}

// saleOf reads a sale stream's configuration: the sale from its
// metadata, and how many released orders its limit holds beyond stock and
// overbook.
func saleOf(cfg jetstream.StreamConfig) (s Sale, released int64, ok bool) {
	s, ok = saleFromMetadata(cfg.Metadata)
	if !ok {
		return Sale{}, 0, false
	}
	return s, max(0, cfg.MaxMsgs-s.Capacity()), true
}

func (l *Ledger) stateOf(ctx context.Context, info *jetstream.StreamInfo, read time.Time) (SaleState, error) {
	sale, released, ok := saleOf(info.Config)
	if !ok {
		return SaleState{}, ErrNoSale
	}
	st := SaleState{
		Sale:        sale,
		Admitted:    info.State.Msgs,
		Pending:     info.State.Msgs,
		LastSeq:     info.State.LastSeq,
		Created:     info.Created,
		Read:        read,
		Replication: replicationOf(info.Cluster),
		Limit:       info.Config.MaxMsgs,
		Released:    released,
		Line:        hasLine(info.Config.Metadata),
	}
	if sale.HasVariants() {
		if err := l.variantCounts(ctx, info, &st); err != nil {
			return SaleState{}, err
		}
	}
	cons, err := l.js.Consumer(ctx, info.Config.Name, DrainConsumer)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	case err != nil:
		return SaleState{}, fmt.Errorf("%w: drain consumer of %s: %w", ErrUnavailable, sale.Name, err)
	default:
		ci := cons.CachedInfo()
		st.Draining = true
		st.ConsumerPending, st.ConsumerAckPending = ci.NumPending, uint64(ci.NumAckPending)
		st.Pending = ci.NumPending + uint64(ci.NumAckPending)
	}
	if st.Pending > st.Admitted {
		st.Pending = st.Admitted
	}
	st.Drained = st.Admitted - st.Pending
	return st, nil
}

// variantCounts sets a sale with variants' counts, from its book caught
// up to the stream as info read it: its orders (the stream also holds
// burns), how many it takes, the released ones.
func (l *Ledger) variantCounts(ctx context.Context, info *jetstream.StreamInfo, st *SaleState) error {
	b := l.book(st.Sale.Name)
	b.setConfig(info.Config)
	if err := l.catchUp(ctx, b, info.State.LastSeq); err != nil {
		return err
	}
	st.Variants = l.variantStates(b)
	var admitted uint64
	st.Limit, st.Released = 0, 0
	for _, v := range st.Variants {
		admitted += uint64(v.Admitted)
		st.Released += v.Released
		st.Limit += v.Admitted + v.Remaining
	}
	st.Admitted, st.Pending = admitted, admitted
	return nil
}
