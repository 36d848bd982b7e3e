package admission

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/internal/ledger"
	"sluice/overflow"
)

// saleVariants is a gate's view of a sale's variants: which are sold
// out, their counts at the last refresh, and the answers that name
// them. A refresh that changes the variants' names replaces it whole;
// flags, counts and the sold-out answer move in place.
type saleVariants struct {
	names  []string // sorted
	byName map[string]*variantView
	// required and unknown answer an order naming no variant, or one the
	// sale does not sell: they list the variants.
	required, unknown *overflow.Answer
	// soldOut answers an order of a sold-out variant, with the variants
	// left; render makes it again when a flag changes.
	soldOut atomic.Pointer[overflow.Answer]
	mu      sync.Mutex // one render at a time: the last one stored sees every flag
}

// variantView is one variant as the gate knows it.
type variantView struct {
	soldOut atomic.Bool
	state   atomic.Pointer[ledger.VariantState]
}

func newSaleVariants(r *overflow.Renderer, sale string, names []string) *saleVariants {
	vs := &saleVariants{names: names, byName: make(map[string]*variantView, len(names))}
	for _, n := range names {
		vs.byName[n] = &variantView{}
	}
	vs.required = r.Render(overflow.Problem{Reason: overflow.VariantRequired, Sale: sale, Variants: names})
	vs.unknown = r.Render(overflow.Problem{Reason: overflow.UnknownVariant, Sale: sale, Variants: names})
	vs.render(r, sale)
	return vs
}

// left are the variants not known to be sold out.
func (vs *saleVariants) left() []string {
	out := []string{}
	for _, n := range vs.names {
		if !vs.byName[n].soldOut.Load() {
			out = append(out, n)
		}
	}
	return out
}

// render makes the sold-out answer again, listing the variants left.
func (vs *saleVariants) render(r *overflow.Renderer, sale string) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.soldOut.Store(r.Render(overflow.Problem{Reason: overflow.VariantSoldOut, Sale: sale, Variants: vs.left()}))
}

// states are the variants' counts at the last refresh, for the sale's
// view; nil for a sale without variants.
func (vs *saleVariants) states() map[string]ledger.VariantState {
	if vs == nil {
		return nil
	}
	out := make(map[string]ledger.VariantState, len(vs.names))
	for _, n := range vs.names {
		if st := vs.byName[n].state.Load(); st != nil {
			out[n] = *st
		}
	}
	return out
}

// applyVariants takes a refresh's variants: flags and counts, and the
// variants' metrics. A sale without variants has none.
func (g *Gate) applyVariants(s *sale, st ledger.SaleState) {
	if !st.Sale.HasVariants() {
		s.variants.Store(nil)
		return
	}
	names := st.Sale.VariantNames()
	vs := s.variants.Load()
	if vs == nil || !equalNames(vs.names, names) {
		vs = newSaleVariants(g.render, s.name, names)
		s.variants.Store(vs)
	}
	changed := false
	for _, n := range names {
		v, state := vs.byName[n], st.Variants[n]
		v.state.Store(&state)
		if v.soldOut.Swap(state.Remaining <= 0) != (state.Remaining <= 0) {
			changed = true
		}
		g.m.variantStock.WithLabelValues(s.name, n).Set(float64(state.Stock))
		g.m.variantAdmitted.WithLabelValues(s.name, n).Set(float64(state.Admitted))
		g.m.variantRemaining.WithLabelValues(s.name, n).Set(float64(state.Remaining))
		g.m.variantReleased.WithLabelValues(s.name, n).Set(float64(state.Released))
	}
	if changed {
		vs.render(g.render, s.name)
	}
}

func equalNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkVariant is the variant's part of an order: a sale with variants
// takes an order naming one it sells, and answers one whose variant is
// known sold out at once, as the sale's flag does for a sold-out sale
// (a retry with its key and an order with a pass go on to the ledger,
// the judge); a sale without variants takes none.
func (g *Gate) checkVariant(ctx *fasthttp.RequestCtx, o *orderReq) bool {
	s, start, v := o.s, o.start, o.body.variant
	vs := s.variants.Load()
	switch {
	case vs == nil && v == "" && !o.body.badVariant:
		return true
	case vs == nil:
		g.finishProblem(ctx, s, overflow.Problem{Reason: overflow.UnknownVariant, Sale: s.name,
			Detail: "This sale sells no variants: order without one."}, start)
		return false
	case v == "" && !o.body.badVariant:
		g.finish(ctx, s, overflow.VariantRequired, vs.required, start)
		return false
	}
	vv := vs.byName[v]
	if vv == nil {
		g.finish(ctx, s, overflow.UnknownVariant, vs.unknown, start)
		return false
	}
	if vv.soldOut.Load() && !o.hasKey && !o.withPass {
		g.finish(ctx, s, overflow.VariantSoldOut, vs.soldOut.Load(), start)
		return false
	}
	o.variant = v
	return true
}

// variantSoldOut answers an order the ledger refused for its variant's
// stock: the variant is marked sold out, and the answer lists the
// variants left, or says the sale is sold out when none is.
func (g *Gate) variantSoldOut(ctx *fasthttp.RequestCtx, o *orderReq) {
	s, start := o.s, o.start
	vs := s.variants.Load()
	if vs == nil {
		g.finish(ctx, s, overflow.SoldOut, s.soldOutAnswer, start)
		return
	}
	if vv := vs.byName[o.variant]; vv != nil && !vv.soldOut.Swap(true) {
		vs.render(g.render, s.name)
		g.log.Info("variant sold out", "sale", s.name, "variant", o.variant)
	}
	if len(vs.left()) == 0 {
		if !s.soldOut.Swap(true) {
			g.log.Info("sale sold out", "sale", s.name)
		}
		g.finish(ctx, s, overflow.SoldOut, s.soldOutAnswer, start)
		return
	}
	g.finish(ctx, s, overflow.VariantSoldOut, vs.soldOut.Load(), start)
}

// variantRefused answers an order the ledger refused for its variant
// (the sale's variants changed since this gate read them).
func (g *Gate) variantRefused(ctx *fasthttp.RequestCtx, s *sale, required bool, start time.Time) {
	p := overflow.Problem{Reason: overflow.UnknownVariant, Sale: s.name}
	if required {
		p.Reason = overflow.VariantRequired
	}
	if vs := s.variants.Load(); vs != nil {
		p.Variants = vs.names
	}
	g.finishProblem(ctx, s, p, start)
}

// variantsLeft are the variants of a sale with variants still on sale,
// for a ticket's holder: a pass is good for any of them, and a holder
// whose variant sold out while they chose picks another with the same
// pass (an order refused for its variant uses no pass). Nil for a sale
// without variants.
func variantsLeft(s *sale) []string {
	if vs := s.variants.Load(); vs != nil {
		return vs.left()
	}
	return nil
}
