package admission

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"sluice/internal/ledger"
	"sluice/overflow"
)

var (
	ctJSON      = []string{"application/json"}
	noStore     = []string{"no-store"}
	replayedHdr = []string{"true"}
)

// placeOrder is POST /v1/sales/{sale}/orders: the admit decision.
func (g *Gate) placeOrder(w http.ResponseWriter, r *http.Request, saleName string) {
	start := g.now()
	s := g.lookupSale(saleName)
	if s == nil {
		g.finish(w, r, nil, overflow.UnknownSale, g.unknownSale, start)
		return
	}
	cfg := s.cfg.Load()
	switch cfg.PhaseAt(start) {
	case ledger.Upcoming:
		a := s.notStarted.get(g.render, overflow.Problem{Reason: overflow.NotStarted, Sale: s.name, RetryAfter: cfg.StartsAt.Sub(start)})
		g.finish(w, r, s, overflow.NotStarted, a, start)
		return
	case ledger.Closed:
		g.finish(w, r, s, overflow.Closed, s.closedAnswer, start)
		return
	}
	key, hasKey := r.Header["Idempotency-Key"]
	// A retry carrying its key goes on to the ledger even when sold out, so
	// that an order admitted before the sell-out is answered as admitted.
	if s.soldOut.Load() && !hasKey {
		g.finish(w, r, s, overflow.SoldOut, s.soldOutAnswer, start)
		return
	}
	if g.ipLim != nil && !g.ipLim.AllowAt(start, limiterKey(clientIP(r.RemoteAddr, r.Header["X-Forwarded-For"], g.cfg.TrustedProxies))) {
		g.finish(w, r, s, overflow.IPRateLimited, g.ipLimited, start)
		return
	}
	if !s.limiter.AllowN(start, 1) {
		a := s.rateLimited.get(g.render, overflow.Problem{Reason: overflow.RateLimited, Sale: s.name, RetryAfter: time.Second})
		g.finish(w, r, s, overflow.RateLimited, a, start)
		return
	}
	if bound := cfg.QueueBound; bound > 0 && s.pending.Load() >= bound {
		a := s.queueFull.get(g.render, overflow.Problem{Reason: overflow.QueueFull, Sale: s.name, RetryAfter: retryAfterQueue(s, bound)})
		g.finish(w, r, s, overflow.QueueFull, a, start)
		return
	}

	buyer, reason := g.readBuyer(w, r)
	if reason != "" {
		g.finishProblem(w, r, s, overflow.Problem{Reason: reason, Sale: s.name}, start)
		return
	}
	if g.buyLim != nil && !g.buyLim.AllowAt(start, buyer) {
		g.finish(w, r, s, overflow.BuyerRateLimited, g.buyerLimited, start)
		return
	}
	var msgID string
	switch {
	case hasKey:
		if len(key) != 1 || !validIdempotencyKey(key[0]) {
			g.finish(w, r, s, overflow.BadIdempotencyKey, g.badKey, start)
			return
		}
		msgID = "k|" + buyer + "|" + key[0]
	case cfg.OrdersPerBuyer() == 1:
		// The derived key makes a repeated order by the same buyer a
		// duplicate: JetStream hands back the first order without a
		// per-subject refusal and a second look-up.
		msgID = "b|" + buyer
	default:
		msgID = "r|" + ledger.NewToken()
	}
	o := ledger.Order{Sale: s.name, BuyerID: buyer, Token: ledger.NewToken(), AdmittedAt: start.UTC()}
	if hasKey {
		o.IdempotencyKey = key[0]
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.PublishTimeout)
	pubStart := time.Now()
	id, dup, err := g.ledger.Place(ctx, o, msgID)
	cancel()
	g.m.publish.Observe(time.Since(pubStart).Seconds())

	var already *ledger.AlreadyOrderedError
	switch {
	case err == nil && !dup:
		s.admitted.Add(1)
		s.pending.Add(1)
		g.writeAccepted(w, id, buyer, false)
		g.count(s, overflow.Admitted, start)
	case err == nil && hasKey:
		g.writeAccepted(w, id, buyer, true)
		g.count(s, overflow.Replayed, start)
	case err == nil: // a duplicate of the derived key: the buyer's earlier order
		g.finishProblem(w, r, s, overflow.Problem{Reason: overflow.AlreadyOrdered, Sale: s.name, OrderID: id.String()}, start)
	case errors.As(err, &already):
		g.finishProblem(w, r, s, overflow.Problem{Reason: overflow.AlreadyOrdered, Sale: s.name, OrderID: already.Existing.String()}, start)
	case errors.Is(err, ledger.ErrSoldOut):
		if !s.soldOut.Swap(true) {
			g.log.Info("sale sold out", "sale", s.name)
		}
		g.finish(w, r, s, overflow.SoldOut, s.soldOutAnswer, start)
	default:
		kind := "unavailable"
		if errors.Is(err, ledger.ErrStoreFull) {
			kind = "store_full"
		}
		g.m.publishErrors.WithLabelValues(kind).Inc()
		g.log.Warn("order not recorded", "sale", s.name, "err", err)
		g.finish(w, r, s, overflow.Unavailable, g.unavailable, start)
	}
}

// readBuyer reads and validates the body (or the trusted buyer header).
func (g *Gate) readBuyer(w http.ResponseWriter, r *http.Request) (string, overflow.Reason) {
	if h := g.cfg.BuyerHeader; h != "" {
		b := r.Header.Get(h)
		if !validBuyerID(b) {
			return "", overflow.BadBuyerID
		}
		return b, ""
	}
	if !jsonContentType(r.Header.Get("Content-Type")) {
		return "", overflow.BadContentType
	}
	if r.ContentLength > g.cfg.MaxBodyBytes {
		return "", overflow.BodyTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return "", overflow.BodyTooLarge
		}
		return "", overflow.BadJSON
	}
	return decodeOrder(body)
}

type acceptedBody struct {
	OrderID string `json:"order_id"`
	Sale    string `json:"sale"`
	BuyerID string `json:"buyer_id"`
	Status  string `json:"status"`
}

func (g *Gate) writeAccepted(w http.ResponseWriter, id ledger.OrderID, buyer string, replayed bool) {
	ids := id.String()
	b, _ := json.Marshal(acceptedBody{OrderID: ids, Sale: id.Sale, BuyerID: buyer, Status: "queued"})
	h := w.Header()
	h["Content-Type"] = ctJSON
	h["Cache-Control"] = noStore
	h["Location"] = []string{"/v1/orders/" + ids}
	if replayed {
		h["Idempotent-Replayed"] = replayedHdr
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(append(b, '\n'))
}

func (g *Gate) finish(w http.ResponseWriter, r *http.Request, s *sale, reason overflow.Reason, a *overflow.Answer, start time.Time) {
	a.Write(w, overflow.WantsHTML(r))
	g.count(s, reason, start)
}

func (g *Gate) finishProblem(w http.ResponseWriter, r *http.Request, s *sale, p overflow.Problem, start time.Time) {
	g.finish(w, r, s, p.Reason, g.render.Render(p), start)
}

func (g *Gate) count(s *sale, reason overflow.Reason, start time.Time) {
	if s == nil {
		g.unknownCounter[reason].Inc()
	} else {
		s.counters[reason].Inc()
	}
	g.m.durationOf[OutcomeOf(reason)].Observe(g.now().Sub(start).Seconds())
}
