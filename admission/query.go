package admission

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"sluice/internal/ledger"
	"sluice/internal/orderstatus"
	"sluice/overflow"
)

// StatusSource tells what the drain did with an order; an error matching
// orderstatus.ErrNoStatus (or a nil StatusSource) means it has not
// finished it: "queued".
type StatusSource interface {
	OrderStatus(ctx context.Context, id ledger.OrderID) (orderstatus.Status, error)
}

type orderView struct {
	OrderID string `json:"order_id"`
	Sale    string `json:"sale"`
	// BuyerID and Payload are the buyer's: shown to the buyer the gate
	// proved only (see getOrder).
	BuyerID string `json:"buyer_id,omitempty"`
	// Variant is the variant the order takes, in a sale with variants.
	Variant        string    `json:"variant,omitempty"`
	Status         string    `json:"status"`
	Reason         string    `json:"reason,omitempty"`
	AdmittedAt     time.Time `json:"admitted_at,omitzero"`
	DecidedAt      time.Time `json:"decided_at,omitzero"`
	QueuePosition  int64     `json:"queue_position,omitempty"`
	EstimatedWaitS estimate  `json:"estimated_wait_seconds,omitzero"`
	// Payload is the shop's object sent with the order, as kept.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// getOrder is GET /v1/orders/{id}. The id is its holder's secret (it
// holds 64 random bits): whoever has it reads the order's status. Who
// the order is for (buyer_id) and what it holds (payload) are the
// buyer's, shown only to the buyer the gate proves by the shop's token
// or a trusted proxy's header (caller): a buyer id can be a person's
// (a login, an e-mail), and an id travels where its buyer is not asked
// (a Location header, a link, a log), so the holder of an id alone
// learns the order's fate and not whose it is. A gate that takes
// buyers from the body proves nobody, and shows neither to anyone.
func (g *Gate) getOrder(rc *fasthttp.RequestCtx, rawID string) {
	html := overflow.AcceptsHTML(&rc.Request.Header)
	who, proven, p := g.caller(rc)
	switch {
	case p.Reason == overflow.BuyerKeysUnavailable:
		g.keysUnavailable.Respond(rc, html)
		return
	case p.Reason != "":
		challenge(rc, p)
		g.render.Respond(rc, p)
		return
	}
	id, err := ledger.ParseOrderID(rawID)
	if err != nil {
		g.notFound.Respond(rc, html)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.PublishTimeout)
	defer cancel()
	v, err := g.findOrder(ctx, id)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		g.notFound.Respond(rc, html)
		return
	case err != nil:
		g.unavailable.Respond(rc, html)
		return
	}
	if !proven || who != v.BuyerID {
		v.BuyerID, v.Payload = "", nil
	}
	// Prefer: wait=N long-polls a queued order until its status changes.
	if d := preferWait(&rc.Request.Header); d > 0 && v.Status == orderstatus.Queued {
		applied, decided := g.hold(id, d)
		if applied {
			setPreferenceApplied(rc, d)
		}
		if decided && g.statusInto(context.Background(), id, &v) != nil {
			g.unavailable.Respond(rc, html)
			return
		}
	}
	if v.Status == orderstatus.Queued {
		if s := g.lookupSale(id.Sale); s != nil {
			// Orders drain in sequence order, so those before this one
			// that are not drained yet are its queue position.
			pos := int64(id.Seq) - s.drained.Load()
			if pos < 1 {
				pos = 1
			}
			v.QueuePosition = pos
			v.EstimatedWaitS = estimateOf(s.wait(uint64(pos)))
		}
	}
	respondJSON(rc, http.StatusOK, v)
}

// findOrder reads an order from the ledger and its status: an error
// matching ledger.ErrNotFound when there is no such order, another when the
// ledger or the status source did not answer (logged here, the ledger's
// once a minute with a count).
func (g *Gate) findOrder(ctx context.Context, id ledger.OrderID) (orderView, error) {
	o, err := g.ledger.Lookup(ctx, id)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return orderView{}, err
	case err != nil:
		g.lookupFailed.Note(time.Now(), func(n int) {
			g.log.Warn("order look-ups answered 503: JetStream did not answer them", "lookups", n, "last_order", id.String(), "last_err", err)
		})
		return orderView{}, err
	}
	v := orderView{OrderID: id.String(), Sale: o.Sale, BuyerID: o.BuyerID, Variant: o.Variant, Status: orderstatus.Queued, AdmittedAt: o.AdmittedAt, Payload: shownPayload(o.Payload)}
	return v, g.statusInto(ctx, id, &v)
}

// shownPayload is a stored payload as an answer shows it: as it is,
// except one a gate stored before it decoded bodies strictly with
// invalid UTF-8 in it, which would make the answer invalid JSON: that one
// is shown with U+FFFD in place of the bad bytes.
func shownPayload(p json.RawMessage) json.RawMessage {
	if utf8.Valid(p) {
		return p
	}
	var v any
	if json.Unmarshal(p, &v) != nil {
		return nil
	}
	b, _ := json.Marshal(v) // a decoded value always marshals
	return b
}

// statusInto sets v's status from the status source; an order it has no
// decision for stays queued.
func (g *Gate) statusInto(ctx context.Context, id ledger.OrderID, v *orderView) error {
	if g.status == nil {
		return nil
	}
	st, err := g.status.OrderStatus(ctx, id)
	switch {
	case err == nil:
		v.Status, v.Reason, v.DecidedAt = st.Status, st.Reason, st.At
	case !errors.Is(err, orderstatus.ErrNoStatus):
		g.log.Warn("order status lookup failed", "order", id.String(), "err", err)
		return err
	}
	return nil
}

type saleView struct {
	Sale       string `json:"sale"`
	State      string `json:"state"`
	Stock      int64  `json:"stock"`
	Remaining  int64  `json:"remaining"`
	Admitted   int64  `json:"admitted"`
	Confirmed  *int64 `json:"confirmed,omitempty"`
	QueueDepth int64  `json:"queue_depth"`
	QueueBound int64  `json:"queue_bound,omitempty"`
	// Released are orders that gave their slot back (rejected, failed):
	// the sale sells its stock plus these.
	Released int64 `json:"released,omitempty"`
	// BackendRate is the sale's cap on orders/s to the backend; MaxWait
	// how long an order answered 202 may wait (the queue bound follows it).
	BackendRate float64   `json:"backend_rate,omitempty"`
	MaxWait     *float64  `json:"max_wait_seconds,omitempty"`
	DrainRate   estimate  `json:"drain_rate"`
	Wait        estimate  `json:"estimated_wait_seconds"`
	PerBuyer    int64     `json:"per_buyer"`
	StartsAt    time.Time `json:"starts_at,omitzero"`
	EndsAt      time.Time `json:"ends_at,omitzero"`
	// WaitingRoom is the sale's line, when it has one.
	WaitingRoom *roomView `json:"waiting_room,omitempty"`
	// PayloadSchema is the JSON Schema an order's payload must match,
	// served so that a front end can check before it sends.
	PayloadSchema map[string]any `json:"payload_schema,omitempty"`
	// Variants are a sale with variants' stock and counts, by variant
	// (as the last refresh read them).
	Variants map[string]ledger.VariantState `json:"variants,omitempty"`
}

// roomView is a waiting room's settings and state in the sale's view.
type roomView struct {
	// Off: the room is turned off, its line kept: tickets answer, passes
	// admit their holders, and Held items stay theirs.
	Off         bool      `json:"off,omitempty"`
	LineOpensAt time.Time `json:"line_opens_at,omitzero"`
	PassTTL     float64   `json:"pass_ttl_seconds"`
	ClaimWindow float64   `json:"claim_window_seconds"`
	LineLimit   int64     `json:"line_limit"`
	// PollRate is the polls a second the sale's gates answer in all: the
	// line opens over its length over this, front first.
	PollRate float64 `json:"poll_rate"`
	// JoinProof is "altcha" when each join pays a proof of work, solved
	// from ChallengeURL; LinePerAddress bounds the tickets of an address.
	JoinProof      string `json:"join_proof,omitempty"`
	ProofMaxNumber int64  `json:"proof_max_number,omitempty"`
	ChallengeURL   string `json:"challenge_url,omitempty"`
	LinePerAddress int64  `json:"line_per_address,omitempty"`
	Tickets        int64  `json:"line_length"`
	Sealed         bool   `json:"drawn"`
	Drawn          int64  `json:"drawn_tickets"`
	LetIn          int64  `json:"let_in"`
	Outstanding    int64  `json:"passes_outstanding"`
	// Offered: positions offered their turn; Lapsed turns nobody claimed
	// in time; Rejoined holders put at the back after a lapse.
	Offered  int64 `json:"offered"`
	Lapsed   int64 `json:"lapsed"`
	Rejoined int64 `json:"rejoined"`
	// Held: the items the turns and passes hold against the stock.
	Held    int64  `json:"held"`
	LineURL string `json:"line_url"`
	DrawURL string `json:"draw_url"`
	// LogURL is the line's public log (GET /v1/sales/{sale}/line/log).
	LogURL string `json:"log_url"`
}

// estimate is a figure the gate may not know: it is written as null then
// (no drain attached, or one that drains nothing), and a field tagged
// omitzero leaves out the zero estimate.
type estimate struct {
	v       float64
	known   bool
	present bool
}

func estimateOf(v float64, known bool) estimate { return estimate{v: v, known: known, present: true} }

func (e estimate) IsZero() bool { return !e.present }

// UnmarshalJSON reads what MarshalJSON wrote, for clients in Go.
func (e *estimate) UnmarshalJSON(b []byte) error {
	*e = estimate{present: true}
	if string(b) == "null" {
		return nil
	}
	e.known = true
	return json.Unmarshal(b, &e.v)
}

// Value is the figure and whether it is known.
func (e estimate) Value() (float64, bool) { return e.v, e.known }

func (e estimate) MarshalJSON() ([]byte, error) {
	if !e.known {
		return []byte("null"), nil
	}
	return json.Marshal(e.v)
}

// ConfirmedCounter tells how many of a sale's orders the backend
// confirmed; the gate shows it on the sale endpoint when set.
type ConfirmedCounter interface {
	ConfirmedCount(ctx context.Context, sale string) (int64, error)
}

func (g *Gate) view(ctx context.Context, s *sale, now time.Time) saleView {
	cfg := s.cfg.Load()
	// The ledger holds at least every order the drain decided: a refresh
	// read under load may be older than the decisions already seen, and a
	// sale must never show more confirmed than admitted.
	// Likewise the queue holds no order the decisions already name: the
	// refresh's count lags a decision that a client waiting for it
	// (Prefer: wait) has seen.
	adm, depth := s.admitted.Load(), s.pending.Load()
	if dc, ok := g.confirmed.(decidedCounter); ok {
		if n, err := dc.DecidedCount(ctx, s.name); err == nil {
			adm = max(adm, n)
			depth = max(0, min(depth, adm-n))
		}
	}
	v := saleView{
		Sale:        s.name,
		State:       stateOf(s, now),
		Stock:       cfg.Stock,
		Remaining:   max(0, cfg.Stock+s.released.Load()-adm),
		Released:    s.released.Load(),
		Admitted:    adm,
		QueueDepth:  depth,
		QueueBound:  s.queueBound(cfg),
		BackendRate: cfg.BackendRate,
		DrainRate:   estimateOf(s.drainRateKnown()),
		Wait:        estimateOf(s.wait(uint64(depth))),
		PerBuyer:    cfg.OrdersPerBuyer(),
		StartsAt:    cfg.StartsAt,
		EndsAt:      cfg.EndsAt,
		// cfg is immutable once stored: the map is only read.
		PayloadSchema: cfg.PayloadSchema,
	}
	if vs := s.variants.Load().states(); vs != nil {
		v.Variants = vs
		v.Remaining = 0
		for _, st := range vs {
			v.Remaining += st.Remaining
		}
	}
	if cfg.MaxWait > 0 {
		w := cfg.MaxWait.Seconds()
		v.MaxWait = &w
	}
	if g.confirmed != nil {
		if n, err := g.confirmed.ConfirmedCount(ctx, s.name); err == nil {
			v.Confirmed = &n
		}
	}
	if s.hasLine.Load() {
		r := &roomView{Off: !cfg.WaitingRoom, PollRate: cfg.LinePollRate(), LineOpensAt: cfg.LineOpensAt(), PassTTL: cfg.PassLifetime().Seconds(), ClaimWindow: cfg.ClaimLifetime().Seconds(), LineLimit: cfg.LineCap(),
			LineURL: lineURL(s.name), DrawURL: "/v1/sales/" + s.name + "/draw",
			LogURL: lineURL(s.name) + "/log", LinePerAddress: cfg.LinePerAddress}
		if cfg.JoinProof != "" {
			r.JoinProof, r.ProofMaxNumber, r.ChallengeURL = cfg.JoinProof, proofMaxNumber(cfg), lineURL(s.name)+"/challenge"
		}
		if snap := g.room(s).Snapshot(); snap != nil {
			r.Tickets, r.Sealed, r.Drawn, r.LetIn, r.Outstanding = snap.Tickets, snap.Sealed, snap.Drawn, snap.LetIn, snap.Outstanding
			r.Offered, r.Lapsed, r.Rejoined, r.Held = snap.Offered, snap.Lapsed, snap.Rejoined, snap.Held
		}
		v.WaitingRoom = r
	}
	return v
}

// getSale is GET /v1/sales/{sale}.
func (g *Gate) getSale(rc *fasthttp.RequestCtx, name string) {
	s := g.lookupSale(name)
	if s == nil {
		g.unknownSale.Respond(rc, overflow.AcceptsHTML(&rc.Request.Header))
		return
	}
	respondJSON(rc, http.StatusOK, g.view(context.Background(), s, g.now()))
}

// listSales is GET /v1/sales.
func (g *Gate) listSales(rc *fasthttp.RequestCtx) {
	now := g.now()
	sales := *g.sales.Load()
	out := make([]saleView, 0, len(sales))
	for _, s := range sales {
		out = append(out, g.view(context.Background(), s, now))
	}
	slices.SortFunc(out, func(a, b saleView) int {
		switch {
		case a.Sale < b.Sale:
			return -1
		case a.Sale > b.Sale:
			return 1
		}
		return 0
	})
	respondJSON(rc, http.StatusOK, map[string]any{"sales": out})
}

// respondJSON writes v as the JSON answer of a public request.
func respondJSON(rc *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		rc.Error("internal error", http.StatusInternalServerError)
		return
	}
	h := &rc.Response.Header
	h.SetContentTypeBytes(ctJSONb)
	h.SetCanonical(hCache, vNoStore)
	rc.SetStatusCode(status)
	rc.Response.SetBodyRaw(append(b, '\n'))
}

// writeJSON writes v as the JSON answer of an ops (net/http) request.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h["Content-Type"] = ctJSON
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document the public listener serves at
// GET /openapi.yaml: for tests that check answers against it, and for
// tools that generate clients.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }
