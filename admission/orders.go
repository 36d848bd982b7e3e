package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/internal/ledger"
	"sluice/internal/payload"
	"sluice/internal/waitingroom/line"
	"sluice/overflow"
)

var (
	ctJSON      = []string{"application/json"}
	noStore     = []string{"no-store"}
	ctJSONb     = []byte("application/json")
	hCache      = []byte("Cache-Control")
	hLocation   = []byte("Location")
	hReplayed   = []byte("Idempotent-Replayed")
	vNoStore    = []byte("no-store")
	vTrue       = []byte("true")
	hIdemKey    = "Idempotency-Key"
	hForwardFor = "X-Forwarded-For"
)

// placeOrder is POST /v1/sales/{sale}/orders: the admit decision, in
// its phases. Each phase answers and returns false when the order stops
// there.
func (g *Gate) placeOrder(ctx *fasthttp.RequestCtx, saleName []byte) {
	o := orderReq{start: g.now()}
	if !g.refuseEarly(ctx, saleName, &o) || !g.readOrder(ctx, &o) || !g.checkVariant(ctx, &o) {
		return
	}
	g.decide(&o)
	if !g.mayPublish(ctx, &o) {
		return
	}
	g.answerOrder(ctx, &o, g.publishOrder(&o))
}

// orderReq is an order request as it passes placeOrder's phases.
type orderReq struct {
	start time.Time
	s     *sale
	cfg   *ledger.Sale
	// withPass: the order carries a pass its sale's line gave; hasKey,
	// key: its Idempotency-Key.
	withPass, hasKey bool
	key              string
	soldOut          bool // the sale's flag, for an order without a pass
	buyer            string
	body             decodedOrder
	pass             line.Pass
	variant          string // the variant ordered, in a sale with variants
	round            int    // the buyer's round (released orders)
	msgID            string // what makes a repeat of it a duplicate
	trial            bool   // the one order sent while the ledger refuses
}

// refuseEarly answers from memory, cheapest first, every order the
// gate can refuse before reading its body: unknown sale, sale window,
// pass required, sold out (a keyed retry of a sold-out sale from the
// index), rate limits, the queue bound.
func (g *Gate) refuseEarly(ctx *fasthttp.RequestCtx, saleName []byte, o *orderReq) bool {
	start := o.start
	s := g.lookupSale(string(saleName))
	if s == nil {
		g.finish(ctx, nil, overflow.UnknownSale, g.unknownSale, start)
		return false
	}
	cfg := s.cfg.Load()
	o.s, o.cfg = s, cfg
	switch cfg.PhaseAt(start) {
	case ledger.Upcoming:
		a := s.notStarted.get(g.render, overflow.Problem{Reason: overflow.NotStarted, Sale: s.name, RetryAfter: cfg.StartsAt.Sub(start)})
		g.finish(ctx, s, overflow.NotStarted, a, start)
		return false
	case ledger.Closed:
		g.finish(ctx, s, overflow.Closed, s.closedAnswer, start)
		return false
	}
	req := &ctx.Request.Header
	hasPass := len(req.Peek(hPass)) > 0
	// A waiting-room sale takes orders with a pass only: without one the
	// answer is at once, and names the line.
	if cfg.WaitingRoom && !hasPass {
		g.finish(ctx, s, overflow.PassRequired, s.passRequired, start)
		return false
	}
	// A pass admits its holder whatever the room's state: a room turned
	// off keeps what its passes hold (line.Book.Mark).
	o.withPass = hasPass && (cfg.WaitingRoom || s.hasLine.Load())
	keys := req.PeekAll(hIdemKey)
	o.hasKey = len(keys) > 0
	// A retry carrying its key goes on to the ledger even when sold out, so
	// that an order admitted before the sell-out is answered as admitted.
	// So does an order with a pass: the line gives one only while the
	// stock covers it, and this gate's flag may be a refresh behind stock
	// given back; JetStream's limit is the judge (a forged pass is
	// refused below without I/O).
	o.soldOut = s.soldOut.Load() && !o.withPass
	if o.soldOut && !o.hasKey {
		g.finish(ctx, s, overflow.SoldOut, s.soldOutAnswer, start)
		return false
	}
	if o.hasKey {
		if len(keys) != 1 || !validIdempotencyKey(keys[0]) {
			g.finish(ctx, s, overflow.BadIdempotencyKey, g.badKey, start)
			return false
		}
		o.key = string(keys[0]) // keys is reused by the next PeekAll
		// A sold-out sale whose every order the gate holds in memory
		// answers a keyed request as the ledger would, without asking it.
		if x := s.index.Load(); o.soldOut && x.covers(s, cfg) {
			g.answerFromIndex(ctx, s, cfg, x, o.key, start)
			return false
		}
	}
	if g.ipLim != nil && !g.ipLim.AllowAt(start, limiterKey(g.clientIP(ctx))) {
		g.finish(ctx, s, overflow.IPRateLimited, g.ipLimited, start)
		return false
	}
	if !s.limiter.AllowN(start, 1) {
		a := s.rateLimited.get(g.render, overflow.Problem{Reason: overflow.RateLimited, Sale: s.name, RetryAfter: time.Second})
		g.finish(ctx, s, overflow.RateLimited, a, start)
		return false
	}
	if bound := s.queueBound(cfg); bound > 0 && s.pending.Load() >= bound {
		a := s.queueFull.get(g.render, overflow.Problem{Reason: overflow.QueueFull, Sale: s.name, RetryAfter: retryAfterQueue(s, bound)})
		g.finish(ctx, s, overflow.QueueFull, a, start)
		return false
	}
	return true
}

// readOrder reads what the order is: its body and buyer (the payload
// checked against the sale's schema), the buyer's rate limit, and its
// pass, checked without I/O.
func (g *Gate) readOrder(ctx *fasthttp.RequestCtx, o *orderReq) bool {
	s, start := o.s, o.start
	buyer, d, ok := g.readOrderBody(ctx, s, start)
	if !ok {
		return false
	}
	if v := s.payloadSchema.Load().Check(d.value); v != nil {
		g.finishProblem(ctx, s, payloadProblem(s, d, v), start)
		return false
	}
	if g.buyLim != nil && !g.buyLim.AllowAt(start, buyer) {
		g.finish(ctx, s, overflow.BuyerRateLimited, g.buyerLimited, start)
		return false
	}
	o.buyer, o.body = buyer, d
	if o.withPass {
		if o.pass, ok = g.checkPass(ctx, s, buyer, start); !ok {
			return false
		}
	}
	return true
}

// decide settles what makes a repeat of the order a duplicate for the
// ledger: its message id, in the buyer's round.
func (g *Gate) decide(o *orderReq) {
	// A buyer whose orders gave their slot back (rejected, failed) orders
	// in a new round, on a subject of its own: the per-buyer limit holds
	// per round, and a round opens per OrdersPerBuyer released orders.
	if g.releases != nil {
		o.round = int(g.releases.BuyerReleased(o.s.name, o.buyer) / o.cfg.OrdersPerBuyer())
	}
	switch {
	case o.withPass:
		// A pass admits one order: a second one with it is a duplicate,
		// told apart from a retry by its Idempotency-Key.
		o.msgID = "t|" + o.pass.Ticket
	case o.hasKey:
		o.msgID = "k|" + o.buyer + "|" + o.key
	case o.cfg.OrdersPerBuyer() == 1:
		// The derived key makes a repeated order by the same buyer a
		// duplicate: JetStream hands back the first order without a
		// per-subject refusal and a second look-up.
		o.msgID = "b|" + o.buyer
		if o.round > 0 {
			o.msgID += "|" + strconv.Itoa(o.round)
		}
	default:
		o.msgID = "r|" + ledger.NewToken()
	}
}

// mayPublish refuses an order while the ledger refuses writes, but the
// one trial order that learns when it takes them again.
func (g *Gate) mayPublish(ctx *fasthttp.RequestCtx, o *orderReq) bool {
	if g.refusing.Load() == 0 {
		return true
	}
	if !g.admitTrial() {
		// Not sent: the store refuses writes, and the order would
		// only wait out the publish timeout before the same answer.
		g.finish(ctx, o.s, overflow.Unavailable, g.refusingAnswer, o.start)
		return false
	}
	o.trial = true
	return true
}

// placed is what the ledger said of an order.
type placed struct {
	order ledger.Order
	id    ledger.OrderID
	dup   bool
	err   error
}

// publishOrder places the order in the ledger and waits for the PubAck.
// The wait is not tied to the client's connection: once the order has
// left, the gate learns and counts its outcome whether or not the client
// is still there.
func (g *Gate) publishOrder(o *orderReq) placed {
	p := placed{order: ledger.Order{Sale: o.s.name, BuyerID: o.buyer, Token: ledger.NewToken(), AdmittedAt: o.start.UTC(),
		IdempotencyKey: o.key, Round: o.round, Payload: o.body.payload, Variant: o.variant}}
	if o.withPass && o.variant != "" {
		p.order.Pass = o.pass.Ticket // a pass admits one order: with a variant, the ledger keeps it
	}
	pctx, cancel := context.WithTimeout(context.Background(), g.cfg.PublishTimeout)
	pubStart := time.Now()
	if !o.withPass && o.s.hasLine.Load() {
		p.id, p.dup, p.err = g.placeBeside(pctx, o.s, p.order, o.msgID)
	} else {
		p.id, p.dup, p.err = g.ledger.Place(pctx, p.order, o.msgID)
	}
	cancel()
	if o.trial {
		g.endTrial(o.start, p.err)
	}
	g.m.publish.Observe(time.Since(pubStart).Seconds())
	return p
}

// answerOrder answers what the ledger said: admitted (202, or the
// decision with Prefer: wait), a replay, the buyer's earlier order, sold
// out, held for the line, or 503 when the order's fate is not known.
func (g *Gate) answerOrder(ctx *fasthttp.RequestCtx, o *orderReq, p placed) {
	s, start, buyer, err := o.s, o.start, o.buyer, p.err
	var already *ledger.AlreadyOrderedError
	switch {
	case err == nil && !p.dup:
		s.admitted.Add(1)
		s.pending.Add(1)
		s.storedSeq(p.id.Seq)
		if o.withPass {
			g.roomStore.UsePass(s.name, o.pass.Ticket)
		}
		g.count(s, overflow.Admitted, start)
		g.answerPlaced(ctx, p.id, buyer, false, p.order.AdmittedAt)
	case err == nil && o.withPass:
		g.answerPassReplay(ctx, s, p.id, buyer, o.key, request{o.body.payload, o.variant}, start)
	case err == nil && o.hasKey:
		g.answerKeyedReplay(ctx, s, p.id, buyer, request{o.body.payload, o.variant}, start)
	case err == nil: // a duplicate of the derived key: the buyer's earlier order
		g.finishProblem(ctx, s, g.alreadyOrdered(s, p.id), start)
	case errors.As(err, &already) && o.hasKey:
		g.answerHeld(ctx, s, already.Existing, buyer, o.key, request{o.body.payload, o.variant}, start)
	case errors.As(err, &already):
		g.finishProblem(ctx, s, g.alreadyOrdered(s, already.Existing), start)
	case errors.Is(err, ledger.ErrStockHeld):
		g.finishProblem(ctx, s, g.stockHeld(s), start)
	case errors.Is(err, errRoomTurning), errors.Is(err, errLineUnread):
		// Nothing was sent: not the "could not learn whether it was
		// stored" of a publish that failed.
		detail := "The sale's waiting room is being turned on or off; the order was not sent. Try again in a second."
		if errors.Is(err, errLineUnread) {
			detail = "The sale's line is being read; the order was not sent. Try again in a second."
		}
		g.finishProblem(ctx, s, overflow.Problem{Reason: overflow.Unavailable, Sale: s.name, RetryAfter: time.Second, Detail: detail}, start)
	case errors.Is(err, ledger.ErrVariantSoldOut):
		g.variantSoldOut(ctx, o)
	case errors.Is(err, ledger.ErrUnknownVariant), errors.Is(err, ledger.ErrVariantRequired):
		g.variantRefused(ctx, s, errors.Is(err, ledger.ErrVariantRequired), start)
	case errors.Is(err, ledger.ErrSoldOut):
		if !s.soldOut.Swap(true) {
			g.log.Info("sale sold out", "sale", s.name)
		}
		g.finish(ctx, s, overflow.SoldOut, s.soldOutAnswer, start)
	default:
		g.answerUnconfirmed(ctx, o, err)
	}
}

// answerUnconfirmed answers an order whose publish JetStream did not
// confirm: 503, and the ledger marked refusing when the store is full or
// timed out. The publish left: JetStream may have stored the order, and
// the client is told to retry with its key; the log gets one line a
// minute however many there are.
func (g *Gate) answerUnconfirmed(ctx *fasthttp.RequestCtx, o *orderReq, err error) {
	kind := "unavailable"
	if errors.Is(err, ledger.ErrStoreFull) {
		kind = "store_full"
	}
	if !o.trial && (errors.Is(err, ledger.ErrStoreFull) || errors.Is(err, context.DeadlineExceeded)) {
		g.refuse(o.start, err)
	}
	g.m.publishErrors.WithLabelValues(kind).Inc()
	g.unconfirmed.Note(o.start, func(n int) {
		g.log.Warn("orders answered 503: JetStream did not confirm their publish (they may be stored; a retry with the same Idempotency-Key learns which)",
			"orders", n, "last_sale", o.s.name, "last_err", err, "kind", kind)
	})
	g.finish(ctx, o.s, overflow.Unavailable, g.unavailable, o.start)
}

// request is what a retry must repeat of its order, besides its key and
// buyer: the payload and the variant.
type request struct {
	payload []byte
	variant string
}

// same says prev is the order this request asked for.
func (r request) same(prev ledger.Order) bool {
	return bytes.Equal(prev.Payload, r.payload) && prev.Variant == r.variant
}

// buyerReleaser tells how many of a buyer's orders gave their slot back
// (orderstatus.Tracker).
type buyerReleaser interface {
	BuyerReleased(sale, buyer string) int64
}

// readOrderBody reads an order's buyer and body (readBuyer), and answers
// and returns false when they are refused.
func (g *Gate) readOrderBody(ctx *fasthttp.RequestCtx, s *sale, start time.Time) (string, decodedOrder, bool) {
	buyer, d, p := g.readBuyer(ctx, false)
	switch {
	case p.Reason == overflow.BadPayload:
		g.finishProblem(ctx, s, payloadProblem(s, d, nil), start)
		return "", d, false
	case p.Reason != "":
		g.refuseBuyer(ctx, s, p, start)
		return "", d, false
	}
	return buyer, d, true
}

// payloadProblem is the answer to an order whose payload is refused.
func payloadProblem(s *sale, d decodedOrder, v *payload.Violation) overflow.Problem {
	p := overflow.Problem{Reason: overflow.BadPayload, Sale: s.name, Detail: d.bad, Path: "/payload"}
	if v != nil {
		p.Detail = "The payload does not match the sale's payload_schema: " + v.Message + "."
		p.Path = v.Path
	} else {
		p.Detail = "The " + d.bad + "."
	}
	return p
}

type acceptedBody struct {
	OrderID string `json:"order_id"`
	Sale    string `json:"sale"`
	BuyerID string `json:"buyer_id"`
	Status  string `json:"status"`
}

// answerPlaced answers an order the ledger holds: 202, or with Prefer:
// wait=N the decision if the drain makes it within N seconds (see hold).
// A replay of an order the drain has decided answers the decision (201
// with the confirmed order, or its refusal), as a wait would have: a
// retry must not read "queued" for an order long confirmed.
// The admission itself is counted before: the wait is not its latency.
func (g *Gate) answerPlaced(ctx *fasthttp.RequestCtx, id ledger.OrderID, buyer string, replayed bool, admittedAt time.Time) {
	if replayed && g.status != nil && g.answerDecided(ctx, id, buyer, admittedAt) {
		ctx.Response.Header.SetCanonical(hReplayed, vTrue)
		return
	}
	if d := preferWait(&ctx.Request.Header); d > 0 {
		applied, decided := g.hold(id, d)
		if applied {
			setPreferenceApplied(ctx, d)
		}
		if decided && g.answerDecided(ctx, id, buyer, admittedAt) {
			if replayed {
				ctx.Response.Header.SetCanonical(hReplayed, vTrue)
			}
			return
		}
	}
	g.writeAccepted(ctx, id, buyer, replayed)
}

func (g *Gate) writeAccepted(ctx *fasthttp.RequestCtx, id ledger.OrderID, buyer string, replayed bool) {
	ids := id.String()
	b, _ := json.Marshal(acceptedBody{OrderID: ids, Sale: id.Sale, BuyerID: buyer, Status: "queued"})
	h := &ctx.Response.Header
	h.SetContentTypeBytes(ctJSONb)
	h.SetCanonical(hCache, vNoStore)
	h.SetCanonical(hLocation, []byte("/v1/orders/"+ids))
	if replayed {
		h.SetCanonical(hReplayed, vTrue)
	}
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.Response.SetBodyRaw(append(b, '\n'))
}

func (g *Gate) finish(ctx *fasthttp.RequestCtx, s *sale, reason overflow.Reason, a *overflow.Answer, start time.Time) {
	a.Respond(ctx, overflow.AcceptsHTML(&ctx.Request.Header))
	g.count(s, reason, start)
}

// refuseBuyer answers an order whose buyer is not known.
func (g *Gate) refuseBuyer(ctx *fasthttp.RequestCtx, s *sale, p overflow.Problem, start time.Time) {
	if p.Reason == overflow.BuyerKeysUnavailable {
		g.finish(ctx, s, p.Reason, g.keysUnavailable, start) // every buyer's answer: prerendered
		return
	}
	challenge(ctx, p)
	p.Sale = s.name
	g.finishProblem(ctx, s, p, start)
}

func (g *Gate) finishProblem(ctx *fasthttp.RequestCtx, s *sale, p overflow.Problem, start time.Time) {
	g.finish(ctx, s, p.Reason, g.render.Render(p), start)
}

func (g *Gate) count(s *sale, reason overflow.Reason, start time.Time) {
	if s == nil {
		g.unknownCounter[reason].Inc()
	} else {
		s.counters[reason].Inc()
	}
	g.m.durationOf[OutcomeOf(reason)].Observe(g.now().Sub(start).Seconds())
}

// answerPassReplay answers an order whose pass was used already: the
// same order retried with its Idempotency-Key is a replay, anything else
// a second order the pass does not admit. Nothing was published.
func (g *Gate) answerPassReplay(ctx *fasthttp.RequestCtx, s *sale, id ledger.OrderID, buyer, key string, req request, start time.Time) {
	lctx, cancel := context.WithTimeout(context.Background(), g.cfg.PublishTimeout)
	prev, err := g.ledger.Lookup(lctx, id)
	cancel()
	switch {
	case err != nil:
		g.finish(ctx, s, overflow.Unavailable, g.unavailable, start)
	case key != "" && prev.IdempotencyKey == key && prev.BuyerID == buyer && !req.same(prev):
		g.finishProblem(ctx, s, g.keyReused(s, id), start)
	case key != "" && prev.IdempotencyKey == key && prev.BuyerID == buyer:
		g.count(s, overflow.Replayed, start)
		g.answerPlaced(ctx, id, buyer, true, prev.AdmittedAt)
	default:
		g.passUsed(ctx, s, id, start)
	}
}

// answerKeyedReplay answers an order whose Idempotency-Key the buyer used
// before: the same request again is a replay of the first answer; one
// with another payload is the key "reused with a different request"
// (422), and changes nothing. The ledger is asked for the first order's
// payload: a retry is rare next to the flood.
func (g *Gate) answerKeyedReplay(ctx *fasthttp.RequestCtx, s *sale, id ledger.OrderID, buyer string, req request, start time.Time) {
	lctx, cancel := context.WithTimeout(context.Background(), g.cfg.PublishTimeout)
	prev, err := g.ledger.Lookup(lctx, id)
	cancel()
	switch {
	case err != nil:
		g.finish(ctx, s, overflow.Unavailable, g.unavailable, start)
	case !req.same(prev):
		g.finishProblem(ctx, s, g.keyReused(s, id), start)
	default:
		g.count(s, overflow.Replayed, start)
		g.answerPlaced(ctx, id, buyer, true, prev.AdmittedAt)
	}
}

// answerHeld answers a keyed order refused because its buyer holds
// order id: a retry of id itself (its key and body), once JetStream's
// duplicate window has passed, is a replay as within it; the key of id
// with another body is reused; anything else is already_ordered. A
// look-up that fails leaves already_ordered, which is true either way.
func (g *Gate) answerHeld(ctx *fasthttp.RequestCtx, s *sale, id ledger.OrderID, buyer, key string, req request, start time.Time) {
	lctx, cancel := context.WithTimeout(context.Background(), g.cfg.PublishTimeout)
	prev, err := g.ledger.Lookup(lctx, id)
	cancel()
	switch {
	case err != nil || prev.IdempotencyKey != key || prev.BuyerID != buyer:
		g.finishProblem(ctx, s, g.alreadyOrdered(s, id), start)
	case !req.same(prev):
		g.finishProblem(ctx, s, g.keyReused(s, id), start)
	default:
		g.count(s, overflow.Replayed, start)
		g.answerPlaced(ctx, id, buyer, true, prev.AdmittedAt)
	}
}

// An order's contents are its buyer's, and so is its id: it reads the
// order's status (GET /v1/orders/{id}). A refusal that is about an
// earlier order (already_ordered, idempotency_key_reused, a used pass)
// names it only where the gate knows who its buyers are (a token, a
// trusted proxy's header): the buyer asking is then the order's. Where
// the buyer is the body's buyer_id, anyone may send anyone's, and the
// refusal says what happened without naming the order. The one who
// placed it got its id with the 202 (and its Location); a retry with the
// same Idempotency-Key and body gets that answer again (a replay: the
// key and the body are what the retry proves, and it shows nothing the
// caller did not send).

// knowsBuyers reports whether the buyer of every order request is
// proven: by the shop's token, or by the header of a trusted proxy (a
// request without either is refused before it gets here).
func (g *Gate) knowsBuyers() bool { return g.cfg.BuyerTokens != nil || g.cfg.BuyerHeader != "" }

// ownOrder is the id a refusal about the buyer's order id may carry:
// the order's, to a proven buyer; none to anyone else.
func (g *Gate) ownOrder(id ledger.OrderID) string {
	if !g.knowsBuyers() {
		return ""
	}
	return id.String()
}

// alreadyOrdered refuses an order whose buyer holds id already.
func (g *Gate) alreadyOrdered(s *sale, id ledger.OrderID) overflow.Problem {
	p := overflow.Problem{Reason: overflow.AlreadyOrdered, Sale: s.name, OrderID: g.ownOrder(id)}
	if p.OrderID == "" {
		p.Detail = "This buyer already holds an order in this sale. Its id is told only in the answer that placed it: a retry with that order's Idempotency-Key and body gets the answer again."
	}
	return p
}

// keyReused refuses a request that reuses the Idempotency-Key of order
// id with another body.
func (g *Gate) keyReused(s *sale, id ledger.OrderID) overflow.Problem {
	return overflow.Problem{Reason: overflow.IdempotencyKeyReused, Sale: s.name, OrderID: g.ownOrder(id)}
}
