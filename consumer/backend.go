package consumer

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"time"
)

// Order is an admitted order as a backend receives it.
type Order struct {
	ID      string `json:"order_id"`
	Sale    string `json:"sale"`
	BuyerID string `json:"buyer_id"`
	// Variant is the variant the order takes, in a sale with variants
	// (a size, a colour); absent otherwise.
	Variant        string    `json:"variant,omitempty"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	AdmittedAt     time.Time `json:"admitted_at"`
	// Payload is the shop's JSON object sent with the order (item, size,
	// quantity…), unchanged; absent when the order had none.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Seq is the order's position in the sale's ledger.
	Seq uint64 `json:"-"`
	// PerBuyer is how many orders of this sale one buyer may hold.
	PerBuyer int64 `json:"-"`
}

// Outcome is what a backend decided for one order.
type Outcome int

const (
	// Retry: the backend could not decide now (down, timed out); the order
	// is redelivered later. Err says why.
	Retry Outcome = iota
	// Confirmed: the backend holds the order.
	Confirmed
	// Rejected: the backend refused the order for good. Reason says why.
	Rejected
)

// Result is a backend's answer for one order of a batch.
type Result struct {
	Outcome Outcome
	Reason  string // with Rejected: a short machine-readable reason
	Err     error  // with Retry
}

// Backend takes batches of admitted orders. Commit must be idempotent: an
// order committed before (same ID) gets the same result again and changes
// nothing. It returns one Result per order, in order, or an error when the
// whole batch failed and nothing was committed.
type Backend interface {
	// EnsureSale tells the backend a sale's stock before its orders come.
	// Raising it adds to the remaining stock; lowering it takes away from
	// it, never below zero.
	EnsureSale(ctx context.Context, sale string, stock int64) error
	Commit(ctx context.Context, orders []Order) ([]Result, error)
	// Describe says which backend this is and where its orders go,
	// without secrets: "sqlite:/abs/path.db", "postgres://host:port/db",
	// "https://host/path". Two backends that hold the same orders
	// describe themselves alike. The drain records it on each sale's
	// consumer, which remembers what was drained but not where.
	Describe() string
	Close() error
}

// EachCallBounded is implemented by a backend that makes one call per
// order and bounds each call itself, as the HTTP backend does. The drainer
// then puts no deadline of its own on a whole batch, whose orders may wait
// their turn for the backend's concurrency, and keeps them from being
// redelivered meanwhile.
type EachCallBounded interface {
	Backend
	BoundsEachCall()
}

// Canceller is implemented by a backend that can cancel a confirmed order
// itself (the SQL backends): the order's row reads cancelled and its item
// returns to the sale's remaining stock, in one transaction. It reports
// whether the order was confirmed and is now cancelled (false when it was
// cancelled already, or is not there). The HTTP backend does not: there
// the shop cancels and tells sluice.
type Canceller interface {
	Cancel(ctx context.Context, o Order) (bool, error)
}

// PacedEachCall is implemented by a backend that makes one call per order
// and calls PaceOrder before each, once it holds the call's slot (the
// HTTP backend). The drain's pace (backend_rate, --backend-rate) then
// holds call by call: no more calls are let through the pace than can be
// under way, so calls an endpoint is slow to take cannot pile up behind
// it and reach it in one burst.
type PacedEachCall interface {
	Backend
	PacesEachCall()
}

type paceKey struct{}

// WithPace is how the drain hands a PacedEachCall backend its pace for
// the orders of one batch: wait blocks until one more order may go, and
// PaceOrder calls it.
func WithPace(ctx context.Context, wait func(context.Context) error) context.Context {
	return context.WithValue(ctx, paceKey{}, wait)
}

// PaceOrder waits until the drain's pace lets one more order go to the
// backend (see PacedEachCall); it returns at once when there is no pace,
// and an error if ctx ends first.
func PaceOrder(ctx context.Context) error {
	if wait, ok := ctx.Value(paceKey{}).(func(context.Context) error); ok {
		return wait(ctx)
	}
	return nil
}

// Reasons a backend rejects an order with.
const (
	ReasonSoldOut        = "sold_out"
	ReasonAlreadyOrdered = "already_ordered"
)

// BySale groups orders by sale, each group sorted by ledger sequence, the
// order in which a backend hands out stock.
func BySale(orders []Order) [][]Order {
	idx := map[string]int{}
	var groups [][]Order
	for _, o := range orders {
		i, ok := idx[o.Sale]
		if !ok {
			i = len(groups)
			idx[o.Sale] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], o)
	}
	for _, g := range groups {
		slices.SortFunc(g, func(a, b Order) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	return groups
}
