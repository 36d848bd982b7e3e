package admission

import (
	"crypto/sha256"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/internal/ledger"
	"sluice/overflow"
)

// orderIndex is every order of a sold-out sale by buyer, read from the
// sale's stream by whoever feeds the gate (ExtendIndex). With it a
// request that carries an Idempotency-Key is answered from memory once the
// sale is sold out, as the ledger would answer it: the buyer's order for
// a known key, already_ordered for a buyer who holds the sale's orders,
// sold out for anyone else. The stream of a sold-out sale is bounded by
// its stock, and so is the index. It is immutable once published.
type orderIndex struct {
	upTo    uint64 // the last stream sequence read into it
	byBuyer map[string][]indexedOrder
}

type indexedOrder struct {
	key string // Idempotency-Key, empty without one
	id  ledger.OrderID
	// payload is the SHA-256 of the order's payload (and variant), zero
	// without either: a retry with another payload or variant is told
	// apart without holding it.
	payload [sha256.Size]byte
}

// requestSum is what indexedOrder.payload holds for an order of variant
// v (empty in a sale without variants) with payload p.
func requestSum(v string, p []byte) (sum [sha256.Size]byte) {
	switch {
	case v != "":
		return sha256.Sum256(append([]byte(v+"\x00"), p...))
	case len(p) == 0:
		return sum
	}
	return sha256.Sum256(p)
}

// covers says the index holds every order of the sale: the sale's stream
// cannot have grown past it while it is sold out.
func (x *orderIndex) covers(s *sale, cfg *ledger.Sale) bool {
	return x != nil && x.upTo >= uint64(max(s.admitted.Load(), cfg.Capacity()))
}

// IndexWanted lists the sold-out sales whose order index is missing or
// behind, with the stream sequence to read from: the feeder reads those
// orders (ledger.ReadOrders) and hands them to ExtendIndex.
func (g *Gate) IndexWanted() map[string]uint64 {
	out := map[string]uint64{}
	for name, s := range *g.sales.Load() {
		if !s.soldOut.Load() {
			continue
		}
		x := s.index.Load()
		if x.covers(s, s.cfg.Load()) {
			continue
		}
		from := uint64(1)
		if x != nil {
			from = x.upTo + 1
		}
		out[name] = from
	}
	return out
}

// ExtendIndex adds the orders of sequences from…upTo of a sale, as read
// from its stream, to the sale's index. A read that does not continue the
// index where it ends is ignored.
func (g *Gate) ExtendIndex(sale string, from, upTo uint64, orders []ledger.Order) {
	g.updates.Lock()
	defer g.updates.Unlock()
	s := g.lookupSale(sale)
	if s == nil {
		return
	}
	old := s.index.Load()
	next := &orderIndex{upTo: upTo, byBuyer: make(map[string][]indexedOrder, len(orders))}
	if old != nil {
		if from != old.upTo+1 {
			return
		}
		for b, os := range old.byBuyer {
			next.byBuyer[b] = os
		}
	} else if from != 1 {
		return
	}
	for _, o := range orders {
		next.byBuyer[o.BuyerID] = append(next.byBuyer[o.BuyerID], indexedOrder{key: o.IdempotencyKey, id: o.ID, payload: requestSum(o.Variant, o.Payload)})
	}
	s.index.Store(next)
	if next.covers(s, s.cfg.Load()) {
		g.log.Info("sold out: retries with an Idempotency-Key are answered from memory", "sale", sale, "orders", upTo)
	}
}

// answerFromIndex answers a keyed order for a sold-out sale from the
// sale's complete index: no JetStream round trip.
func (g *Gate) answerFromIndex(ctx *fasthttp.RequestCtx, s *sale, cfg *ledger.Sale, x *orderIndex, key string, start time.Time) {
	buyer, d, ok := g.readOrderBody(ctx, s, start)
	if !ok {
		return
	}
	held := x.byBuyer[buyer]
	for _, o := range held {
		if o.key == key && o.payload != requestSum(d.variant, d.payload) {
			g.finishProblem(ctx, s, g.keyReused(s, o.id), start)
			return
		}
		if o.key == key {
			g.answerPlaced(ctx, o.id, buyer, true, time.Time{})
			g.count(s, overflow.Replayed, start)
			return
		}
	}
	if len(held) > 0 && int64(len(held)) >= cfg.OrdersPerBuyer() {
		g.finishProblem(ctx, s, g.alreadyOrdered(s, held[0].id), start)
		return
	}
	g.finish(ctx, s, overflow.SoldOut, s.soldOutAnswer, start)
}
